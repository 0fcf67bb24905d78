"""Face crops, the same at training and inference: find the face with MediaPipe and cut a square around it.

:class:`FaceCropper` runs MediaPipe's Face Landmarker (``face_landmarker.task``; ``pip install
'semanticface[mediapipe]'``) and returns every face found, largest first. :func:`square_box` turns a face's
landmark bounds into the crop: a square centred on the landmarks, ``1 + 2 * margin`` times their larger side
(:data:`DEFAULT_MARGIN` = 0.25: forehead, chin and ears stay in), which may reach past the image border (the
outside is filled with :data:`FILL`). The same function is used by ``semanticface predict``, by
:mod:`semanticface.userdata` and by :mod:`semanticface.pseudolabel`, and the box is stored per dataset row
(``crop_box`` = ``[left, top, size]`` in source pixels), so a model sees faces framed the same way when it is
trained and when it is used.

For video, :class:`BoxTracker` smooths the box over time with the One-Euro filter (centre and size), so the crop
does not jitter with the landmarks; a frame without a face resets it.

Images that are already face crops (rendered datasets) skip all of this (``--no-crop``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semanticface.errors import ConfigError
from semanticface.smoothing import OneEuroFilter

DEFAULT_MARGIN = 0.25
FILL = (0, 0, 0)
FACE_MODEL_ENV = "SEMANTICFACE_FACE_MODEL"
# The crop box follows the face slowly at rest and quickly when the head moves (pixels/s scale via beta).
BOX_MIN_CUTOFF = 0.5
BOX_BETA = 0.02


@dataclass(frozen=True)
class CropBox:
    """A square in source-image pixels: ``left``, ``top`` and side ``size`` (may extend past the image)."""

    left: float
    top: float
    size: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.left + self.size / 2, self.top + self.size / 2

    def as_list(self) -> list[float]:
        return [round(self.left, 2), round(self.top, 2), round(self.size, 2)]

    def crop(self, image: Image.Image, output_size: int | None = None) -> Image.Image:
        """The square cut out of ``image`` (outside the image filled with :data:`FILL`), optionally resized."""
        side = max(1, round(self.size))
        box = (round(self.left), round(self.top), round(self.left) + side, round(self.top) + side)  # exactly square
        inside = (max(box[0], 0), max(box[1], 0), min(box[2], image.width), min(box[3], image.height))
        out = Image.new("RGB", (box[2] - box[0], box[3] - box[1]), FILL)
        if inside[2] > inside[0] and inside[3] > inside[1]:
            out.paste(image.crop(inside), (inside[0] - box[0], inside[1] - box[1]))
        if output_size:
            out = out.resize((output_size, output_size), Image.Resampling.LANCZOS)
        return out


@dataclass(frozen=True)
class Face:
    """One detected face: landmark bounds ``(x0, y0, x1, y1)`` in pixels, and MediaPipe's blendshape scores."""

    bounds: tuple[float, float, float, float]
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bounds
        return (x1 - x0) * (y1 - y0)


def square_box(bounds: tuple[float, float, float, float], margin: float = DEFAULT_MARGIN) -> CropBox:
    """The square crop around landmark bounds: centred on them, ``(1 + 2 * margin)`` × their larger side."""
    x0, y0, x1, y1 = bounds
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return CropBox(cx - side / 2, cy - side / 2, side)


def resolve_face_model(path: str | Path | None) -> Path:
    """The Face Landmarker model file from ``path`` or ``$SEMANTICFACE_FACE_MODEL``; a clear error otherwise."""
    import os

    chosen = path or os.environ.get(FACE_MODEL_ENV)
    if not chosen:
        raise ConfigError(
            "face cropping needs MediaPipe's face_landmarker.task: pass --face-model PATH (or set "
            f"${FACE_MODEL_ENV}), or --no-crop for images that are already face crops"
        )
    chosen = Path(chosen)
    if not chosen.is_file():
        raise ConfigError(f"MediaPipe model file not found: {chosen} (face_landmarker.task)")
    return chosen


class FaceCropper:
    """Finds faces with MediaPipe's Face Landmarker. ``video=True`` tracks across frames (call in time order)."""

    def __init__(
        self,
        model_path: str | Path | None,
        *,
        max_faces: int = 4,
        min_confidence: float = 0.5,
        video: bool = False,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        from semanticface.extras import mediapipe_tasks

        if margin < 0:
            raise ConfigError(f"crop margin must be >= 0, got {margin}")
        self.model_path = resolve_face_model(model_path)
        self.margin = margin
        self.video = video
        self._mp, base_options, vision = mediapipe_tasks()
        options = vision.FaceLandmarkerOptions(
            base_options=base_options(model_asset_path=str(self.model_path)),
            output_face_blendshapes=True,
            num_faces=max_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
        )
        try:
            self._landmarker: Any = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as error:
            raise ConfigError(f"{self.model_path}: MediaPipe cannot load this model ({error})") from error
        self._last_ms = -1

    def faces(self, image: Image.Image, seconds: float | None = None) -> list[Face]:
        """Every face in ``image``, largest first (``seconds`` is the frame time, needed in video mode)."""
        if self._landmarker is None:
            raise ConfigError("this FaceCropper was closed")
        array = np.ascontiguousarray(np.asarray(image.convert("RGB")))
        frame = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=array)
        if self.video:
            if seconds is None:
                raise ConfigError("a video FaceCropper needs each frame's time")
            ms = max(int(round(seconds * 1000)), self._last_ms + 1)  # MediaPipe needs strictly increasing times
            self._last_ms = ms
            result = self._landmarker.detect_for_video(frame, ms)
        else:
            result = self._landmarker.detect(frame)
        width, height = image.size
        found = []
        for i, landmarks in enumerate(result.face_landmarks):
            xs = np.array([p.x for p in landmarks]) * width
            ys = np.array([p.y for p in landmarks]) * height
            scores = {}
            if result.face_blendshapes and i < len(result.face_blendshapes):
                scores = {c.category_name: float(c.score) for c in result.face_blendshapes[i]}
            found.append(Face((float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())), scores))
        return sorted(found, key=lambda f: -f.area)

    def box(self, face: Face) -> CropBox:
        return square_box(face.bounds, self.margin)

    def close(self) -> None:
        if getattr(self, "_landmarker", None) is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> FaceCropper:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


CROP_BOX_COLUMN = "crop_box"


def crop_features() -> Any:
    """The dataset features of cropped rows: the usual columns plus ``crop_box`` ([left, top, size] pixels)."""
    from datasets import List, Value

    from semanticface.synth import features

    cols = features()
    cols[CROP_BOX_COLUMN] = List(Value("float32"), length=3)
    return cols


def png_bytes(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def pick_face(faces: list[Face], face_index: int) -> Face | None:
    """The ``face_index``-th largest face (0 = largest), or None when there are not that many."""
    if face_index < 0:
        raise ConfigError(f"--face-index must be >= 0, got {face_index}")
    return faces[face_index] if face_index < len(faces) else None


@dataclass
class BoxTracker:
    """Smooths a video's crop boxes (centre x, centre y, size) with the One-Euro filter; :meth:`lost` resets."""

    min_cutoff: float = BOX_MIN_CUTOFF
    beta: float = BOX_BETA
    _filter: OneEuroFilter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._filter = OneEuroFilter(min_cutoff=self.min_cutoff, beta=self.beta)

    def update(self, box: CropBox, seconds: float) -> CropBox:
        cx, cy = box.centre
        sx, sy, size = self._filter(np.array([cx, cy, box.size]), seconds)
        return CropBox(sx - size / 2, sy - size / 2, size)

    def lost(self) -> None:
        self._filter.reset()
