"""MediaPipe pseudo-labels: Face Landmarker's blendshape scores as :class:`FaceCoefficients` (optional extra).

MediaPipe returns ``_neutral`` plus 51 ARKit-named scores, in its own order, with the same left/right convention
as ARKit (the subject's own side). They are mapped by category name; channels MediaPipe lacks (tongueOut and all
9 pose channels) are marked *missing*, never zero, so metrics skip them. Images without a detected face get no
label and are reported. ``pip install 'semanticface[mediapipe]'``; the ``face_landmarker.task`` model file is
not part of MediaPipe's wheel and is passed explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError, DatasetError
from semanticface.extras import mediapipe_tasks
from semanticface.rows import coefficients_to_row
from semanticface.schema import CHANNEL_INDEX, MEDIAPIPE_MISSING, NUM_CHANNELS, canonical_name, is_mediapipe_neutral

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def scores_to_coefficients(scores: Mapping[str, float]) -> FaceCoefficients:
    """MediaPipe ``{category_name: score}`` -> coefficients with tongueOut and pose missing.

    Scores are clipped to [0, 1] (MediaPipe occasionally returns tiny negatives or values above 1).
    """
    values = np.zeros(NUM_CHANNELS)
    seen = set()
    for name, score in scores.items():
        if is_mediapipe_neutral(name):
            continue
        channel = canonical_name(name)
        values[CHANNEL_INDEX[channel]] = min(max(float(score), 0.0), 1.0)
        seen.add(channel)
    missing = frozenset(MEDIAPIPE_MISSING) | frozenset(
        n for n in CHANNEL_INDEX if n not in seen and CHANNEL_INDEX[n] < 52
    )
    return FaceCoefficients(values, missing)


class MediaPipeLabeler:
    """Wraps a MediaPipe Face Landmarker. Use as a context manager, or call :meth:`close` explicitly."""

    def __init__(self, model_path: str | Path, *, min_detection_confidence: float = 0.5) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ConfigError(f"MediaPipe model file not found: {self.model_path} (face_landmarker.task)")
        self._mp, base_options, vision = mediapipe_tasks()
        options = vision.FaceLandmarkerOptions(
            base_options=base_options(model_asset_path=str(self.model_path)),
            output_face_blendshapes=True,
            num_faces=1,
            min_face_detection_confidence=min_detection_confidence,
            running_mode=vision.RunningMode.IMAGE,
        )
        try:
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as error:
            raise ConfigError(f"{self.model_path}: MediaPipe cannot load this model ({error})") from error

    def scores(self, image: Image.Image | np.ndarray) -> dict[str, float] | None:
        """Raw ``{category: score}`` of the first face, or None when no face is found."""
        if self._landmarker is None:
            raise ConfigError("this MediaPipeLabeler was closed")
        array = np.ascontiguousarray(np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image))
        if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
            raise DatasetError(f"expected an RGB uint8 image, got shape {array.shape} {array.dtype}")
        result = self._landmarker.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=array))
        if not result.face_blendshapes:
            return None
        return {c.category_name: float(c.score) for c in result.face_blendshapes[0]}

    def label(self, image: Image.Image | np.ndarray) -> FaceCoefficients | None:
        """Coefficients (tongueOut and pose missing) of the first face, or None when no face is found."""
        scores = self.scores(image)
        return None if scores is None else scores_to_coefficients(scores)

    def close(self) -> None:
        if getattr(self, "_landmarker", None) is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> MediaPipeLabeler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def expand_image_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their image files (sorted); nonexistent paths raise."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            out.append(path)
        else:
            raise DatasetError(f"{path}: no such image file or folder")
    return out


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise DatasetError(f"{path}: not a readable image ({error})") from None


def pseudolabel(
    images: Sequence[str | Path],
    model_path: str | Path,
    *,
    progress: bool = True,
    crop: bool = True,
    margin: float | None = None,
) -> tuple[Any, list[str]]:
    """Label image files with MediaPipe. Returns ``(datasets.Dataset, paths with no face)``.

    The dataset has the toolkit's row layout (``images``, 61 channel columns with tongueOut/pose None,
    ``identity`` -1, ``style`` "photo", ``source`` the file path, ``renderer`` None). Images are read upright
    (EXIF applied, :func:`semanticface.images.read_image`). With ``crop`` (the default) each row holds the square
    face crop :mod:`semanticface.facecrop` makes, as ``semanticface predict`` does, and its ``crop_box``; the
    largest face is labelled. Without it the file's own bytes are stored.
    """
    from datasets import Dataset
    from tqdm.auto import tqdm

    from semanticface.facecrop import CROP_BOX_COLUMN, DEFAULT_MARGIN, FaceCropper, crop_features, png_bytes
    from semanticface.images import read_image
    from semanticface.synth import features

    paths = expand_image_paths(images)
    if not paths:
        raise DatasetError("no images given")
    schema = crop_features() if crop else features()
    rows: dict[str, list[Any]] = {name: [] for name in schema}
    no_face: list[str] = []
    with FaceCropper(model_path, margin=DEFAULT_MARGIN if margin is None else margin) as cropper:
        for path in tqdm(paths, desc="pseudo-labelling", unit="image", disable=not progress):
            image = read_image(path)
            faces = cropper.faces(image)
            if not faces or not faces[0].scores:
                no_face.append(str(path))
                continue
            coefficients = scores_to_coefficients(faces[0].scores)
            if crop:
                box = cropper.box(faces[0])
                rows["images"].append([{"bytes": png_bytes(box.crop(image)), "path": None}])
                rows[CROP_BOX_COLUMN].append(box.as_list())
            else:
                # the file's own bytes, not the decoded image: keeps memory flat and the image lossless
                rows["images"].append([{"bytes": path.read_bytes(), "path": None}])
            for name, value in coefficients_to_row(coefficients).items():
                rows[name].append(value)
            rows["identity"].append(-1)
            rows["style"].append("photo")
            rows["source"].append(str(path))
            rows["renderer"].append(None)
    return Dataset.from_dict(rows, features=schema), no_face
