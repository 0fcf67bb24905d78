"""The built-in avatar: a parametric 2.5-D cartoon face drawn with PIL polygons, no assets needed.

Every ARKit blendshape moves named control points of its region (brows, eyelids, irises, cheeks, nostrils,
lips, jaw line, tongue); the points live on a head-shaped surface so that head pose (HeadYaw/Pitch/Roll) turns
the face in 3-D before an orthographic projection, and eye pose channels move the irises like eyeLook* shapes.
Identities (face shape, skin, hair, brow/eye/lip geometry) come from :class:`~semanticface.render.identity.Identity`.

Styles: ``flat`` (solid fills with ink outlines) and ``shaded`` (layered gradients and shadows, no outlines).
The subject's left (ARKit ``...Left``) is on the image's right, as in a photograph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError
from semanticface.render.camera import eye_pose_excess, head_angles, rotation_matrix
from semanticface.render.identity import Identity
from semanticface.schema import BLENDSHAPES, CHANNEL_INDEX, CHANNEL_REGION, canonical_name, side_of

STYLES = ("flat", "shaded")
EYE_Y = 0.12
MOUTH_Y = -0.68
_SCALE = 0.29  # pixels per face unit, as a fraction of the image size
_CENTRE_Y = 0.43
_INK = (45, 30, 28)
_MOUTH_DARK = (70, 18, 25)
_TEETH = (245, 242, 232)
_TONGUE = (214, 100, 110)
# Named keypoints (:meth:`AvatarRenderer.keypoints`), in this order; the subject's left side (image right) first.
KEYPOINT_NAMES: tuple[str, ...] = (
    *(f"outline_{k}" for k in range(12)),
    *(f"brow{side}_{k}" for side in ("Left", "Right") for k in ("inner", "middle", "outer")),
    *(
        f"eye{side}_{k}"
        for side in ("Left", "Right")
        for k in ("corner_inner", "upper_1", "upper_2", "upper_3", "corner_outer", "lower_1", "lower_2", "lower_3", "iris")
    ),
    "nose_tip", "noseWingLeft", "noseWingRight",
    "mouth_upper_outer", "mouth_corner_right", "mouth_upper_1", "mouth_upper_2", "mouth_upper_3", "mouth_corner_left",
    "mouth_lower_1", "mouth_lower_2", "mouth_lower_3", "mouth_lower_outer",
)  # fmt: skip


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


@dataclass
class _Pose:
    scale: float
    cx: float
    cy: float
    rot: np.ndarray
    depth: float
    width: float
    height: float

    def project(self, pts: np.ndarray, z_offset: float | np.ndarray = 0.0, surface: bool = True) -> list[float]:
        """Face-unit points (N, 2) on the head surface (or the silhouette plane) -> flat pixel list."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        if surface:
            r = 1 - (pts[:, 0] / (self.width * 1.1)) ** 2 - (pts[:, 1] / (self.height * 1.15)) ** 2
            z = self.depth * np.sqrt(np.clip(r, 0.0, 1.0)) + z_offset
        else:
            z = np.zeros(len(pts)) + z_offset
        p = np.stack([pts[:, 0], pts[:, 1], z], axis=1) @ self.rot.T
        out = np.empty((len(pts), 2))
        out[:, 0] = self.cx + self.scale * p[:, 0]
        out[:, 1] = self.cy - self.scale * p[:, 1]
        return out.ravel().tolist()


class AvatarRenderer:
    """Render coefficients as the built-in avatar (``style`` "flat" or "shaded")."""

    def __init__(self, style: str = "flat", *, supersample: int = 2, background: tuple[int, int, int] | None = None):
        if style not in STYLES:
            raise ConfigError(f"unknown avatar style {style!r} (choose from {', '.join(STYLES)})")
        if supersample not in (1, 2, 3, 4):
            raise ConfigError(f"supersample must be 1-4, got {supersample}")
        self.style = style
        self.supersample = supersample
        self.background = background or ((228, 232, 238) if style == "flat" else (170, 182, 196))
        self.name = f"avatar-{style}"

    # --- public ---------------------------------------------------------------------------------------------

    def render(self, coefficients: FaceCoefficients, *, identity: int | Identity = 0, size: int = 256) -> Image.Image:
        """An RGB ``size`` x ``size`` image of the expression and pose (missing channels count as 0)."""
        ident = identity if isinstance(identity, Identity) else Identity.from_seed(int(identity))
        res = size * self.supersample
        image = Image.new("RGB", (res, res), self.background)
        draw = ImageDraw.Draw(image)
        w = np.nan_to_num(coefficients.values)
        yaw, pitch, roll = head_angles(coefficients)
        pose = _Pose(
            scale=res * _SCALE,
            cx=res / 2,
            cy=res * _CENTRE_Y,
            rot=rotation_matrix(yaw, pitch, roll),
            depth=0.75,
            width=ident.face_width,
            height=ident.face_height,
        )
        _Painter(draw, pose, ident, w, self.style, res, coefficients).paint()
        if self.supersample > 1:
            image = image.reduce(self.supersample)
        return image

    def keypoints(
        self, coefficients: FaceCoefficients, *, identity: int | Identity = 0, size: int = 256
    ) -> np.ndarray:
        """Pixel positions ``(len(KEYPOINT_NAMES), 2)`` (x, y) of the face's keypoints in the ``size`` image that
        :meth:`render` draws: the same control points the painter draws (face outline, brows, lids and irises,
        nose, lips), under the same expression, head pose and projection. Hidden points (the iris behind a closed
        lid) keep their position."""
        ident = identity if isinstance(identity, Identity) else Identity.from_seed(int(identity))
        yaw, pitch, roll = head_angles(coefficients)
        pose = _Pose(
            scale=size * _SCALE, cx=size / 2, cy=size * _CENTRE_Y, rot=rotation_matrix(yaw, pitch, roll),
            depth=0.75, width=ident.face_width, height=ident.face_height,
        )  # fmt: skip
        painter = _Painter(_NoDraw(), pose, ident, np.nan_to_num(coefficients.values), self.style, size, coefficients)
        painter.paint()
        return np.concatenate([painter.marks[name] for name in _MARK_ORDER])

    def channel_region_box(
        self, channel: str, *, identity: int | Identity = 0, size: int = 256
    ) -> tuple[int, int, int, int]:
        """Pixel box ``(left, top, right, bottom)`` (exclusive right/bottom) that a blendshape changes, at
        neutral head pose. Sided channels get their side's half of the region."""
        ident = identity if isinstance(identity, Identity) else Identity.from_seed(int(identity))
        name = canonical_name(channel)
        if name not in BLENDSHAPES:
            raise ConfigError(f"{name} is a pose channel: it moves the whole face, not one region")
        region = CHANNEL_REGION[name]
        side = side_of(name)
        fw, fh = ident.face_width, ident.face_height
        brow_y = EYE_Y + ident.brow_height
        ex, ew = ident.eye_spacing, ident.eye_width
        if region == "brows":
            x0, x1, y0, y1 = 0.0, ex + ew + 0.2, brow_y - 0.2, brow_y + 0.42
        elif region == "eyes":
            x0, x1, y0, y1 = ex - ew - 0.06, ex + ew + 0.06, EYE_Y - 0.16, EYE_Y + 0.17
        elif region == "cheeks":
            x0, x1, y0, y1 = 0.2, fw + 0.2, MOUTH_Y - 0.15, EYE_Y - 0.07
        elif region == "nose":
            x0, x1, y0, y1 = 0.0, ident.nose_width + 0.17, EYE_Y - ident.nose_length - 0.15, EYE_Y - 0.02
        else:  # mouth, jaw, tongue: the lower face down past the lowest the chin can drop
            # a one-sided lip movement pulls the whole lip, so its half reaches past the midline
            # (up to the nose wings, where a smile's nasolabial fold starts).
            x0, x1, y0, y1 = -0.6 * ident.mouth_width, fw + 0.12, -fh - 0.55, EYE_Y - ident.nose_length + 0.07
        xs = (x0, x1) if side == "left" else (-x1, -x0) if side == "right" else (-x1, x1)
        scale, cx, cy = size * _SCALE, size / 2, size * _CENTRE_Y
        left, right = cx + scale * min(xs), cx + scale * max(xs)
        top, bottom = cy - scale * y1, cy - scale * y0
        clamp = lambda v: int(min(max(v, 0), size))  # noqa: E731
        return clamp(math.floor(left)), clamp(math.floor(top)), clamp(math.ceil(right)), clamp(math.ceil(bottom))


class _NoDraw:
    """A drawing surface that draws nothing (keypoints need the painter's geometry only)."""

    def polygon(self, *args: object, **kwargs: object) -> None:
        pass

    def line(self, *args: object, **kwargs: object) -> None:
        pass


# Groups of keypoints the painter marks, in KEYPOINT_NAMES order.
_MARK_ORDER = ("outline", "brow1", "brow-1", "eye1", "eye-1", "nose", "mouth")


class _Painter:
    """Builds and draws one frame; split out so the renderer object stays stateless and thread-safe."""

    def __init__(self, draw, pose: _Pose, ident: Identity, w: np.ndarray, style: str, res: int, coeffs) -> None:
        self.d, self.p, self.i, self.w, self.style, self.res, self.coeffs = draw, pose, ident, w, style, res, coeffs
        self.flat = style == "flat"
        self.lw = max(1, round(res / 180))
        self.marks: dict[str, np.ndarray] = {}

    def mark(self, group: str, pts, z: float | np.ndarray = 0.0, surface: bool = True) -> None:
        """Record keypoints (face units, projected exactly as the drawing is) under ``group``."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        self.marks[group] = np.asarray(self.p.project(pts, z, surface)).reshape(-1, 2)

    def v(self, name: str) -> float:
        return float(self.w[CHANNEL_INDEX[name]])

    def side(self, stem: str, sx: int) -> float:
        return self.v(stem + ("Left" if sx > 0 else "Right"))

    def poly(self, pts, fill, *, outline: bool = True, z: float | np.ndarray = 0.0, surface: bool = True) -> None:
        xy = self.p.project(pts, z, surface)
        if self.flat and outline:
            self.d.polygon(xy, fill=fill, outline=_INK, width=self.lw)
        else:
            self.d.polygon(xy, fill=fill)

    def line(self, pts, fill, width: float = 1.0, z: float = 0.0) -> None:
        self.d.line(self.p.project(pts, z), fill=fill, width=max(1, round(self.lw * width)), joint="curve")

    # --- the face -------------------------------------------------------------------------------------------

    def paint(self) -> None:
        i = self.i
        jaw_open = self.v("jawOpen")
        self.jaw_drop = 0.36 * jaw_open + 0.12 * self.v("tongueOut") + 0.06 * self.v("jawForward")
        self.jaw_shift = 0.2 * (self.v("jawLeft") - self.v("jawRight"))
        skin = i.skin
        self.skin_dark = _mix(skin, (60, 30, 30), 0.28)
        self.skin_light = _mix(skin, (255, 250, 245), 0.3)
        self._hair_back()
        self._neck()
        self._ears()
        outline = self._outline()
        self.mark("outline", outline[::6], surface=False)
        self.poly(outline, skin if self.flat else _mix(skin, (70, 35, 35), 0.22), surface=False)
        if not self.flat:
            self._shading(outline)
        self._cheeks()
        self._hair_front()
        for sx in (1, -1):
            self._brow(sx)
            self._eye(sx)
        self._nose()
        self._mouth()

    def _outline(self) -> np.ndarray:
        i = self.i
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        x = np.sin(t) * i.face_width
        y = np.cos(t) * i.face_height
        low = np.clip(-y / i.face_height, 0, 1)
        x = x * (1 - (1 - i.jaw_width) * low**1.6)
        # cheekPuff bulges the cheeks outwards around mouth height
        bump = np.exp(-(((y - (MOUTH_Y + 0.25)) / 0.3) ** 2))
        x = x * (1 + 0.14 * self.v("cheekPuff") * bump)
        # the jaw: points below the mouth drop, slide sideways and (forward) widen with it
        jaw = np.clip((MOUTH_Y + 0.2 - y) / (i.face_height + MOUTH_Y + 0.2), 0, 1)
        y = y - self.jaw_drop * jaw
        x = x * (1 + 0.08 * self.v("jawForward") * jaw) + self.jaw_shift * jaw
        return np.stack([x, y], axis=1)

    def _shading(self, outline: np.ndarray) -> None:
        # The face was filled a shade darker; layers of the outline shrunk towards a light point (top-left) make a
        # cheap radial gradient, leaving a shadowed rim along the jaw and the far cheek.
        centre = np.array([-0.3, 0.35])
        for s, t in ((0.94, 0.0), (0.82, 0.08), (0.64, 0.16), (0.42, 0.25)):
            pts = centre + (outline - centre) * s
            self.poly(pts, _mix(self.i.skin, (255, 250, 245), t), outline=False, surface=False)

    def _neck(self) -> None:
        i = self.i
        nw = 0.42 * i.face_width * (0.6 + 0.5 * i.jaw_width)
        top = -i.face_height * 0.55
        pts = np.array([[-nw, top], [nw, top], [nw * 1.05, -2.0], [2.2, -2.3], [2.2, -3.5], [-2.2, -3.5],
                        [-2.2, -2.3], [-nw * 1.05, -2.0]])  # fmt: skip
        self.poly(pts, self.skin_dark if not self.flat else _mix(self.i.skin, (0, 0, 0), 0.12), surface=False, z=-0.6)
        shirt = np.array([[-2.2, -2.25], [-nw * 1.2, -2.05], [0, -2.35], [nw * 1.2, -2.05], [2.2, -2.25],
                          [2.2, -3.5], [-2.2, -3.5]])  # fmt: skip
        self.poly(shirt, _mix(self.i.hair, (90, 110, 150), 0.7), surface=False, z=-0.6)

    def _ears(self) -> None:
        i = self.i
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        for sx in (1, -1):
            pts = np.stack([sx * (i.face_width * 0.97 + 0.1 * np.cos(t)), EYE_Y - 0.08 + 0.22 * np.sin(t)], axis=1)
            self.poly(pts, _mix(i.skin, (120, 60, 50), 0.12), surface=False, z=-0.35)

    def _hair_back(self) -> None:
        i = self.i
        if i.hair_style not in ("bob", "long"):
            return
        bottom = -0.6 if i.hair_style == "bob" else -1.9
        t = np.linspace(-np.pi / 2, np.pi / 2, 24)
        w = i.face_width + 0.2
        top = np.stack([w * np.sin(t), i.face_height * 0.2 + (i.face_height + 0.05) * np.cos(t)], axis=1)
        pts = np.vstack([[[-w - 0.05, bottom]], top, [[w + 0.05, bottom]]])
        self.poly(pts, _mix(i.hair, (0, 0, 0), 0.25), surface=False, z=-0.8)

    def _hair_front(self) -> None:
        i = self.i
        fw, fh = i.face_width, i.face_height
        buzz = i.hair_style == "buzz"
        cap_w, cap_h = fw + (0.03 if buzz else 0.08), fh + (0.02 if buzz else 0.1)
        side_y = {"short": 0.4, "buzz": 0.5, "bob": 0.1, "long": 0.1}[i.hair_style]
        end = math.acos(min(side_y / cap_h, 1.0))
        t = np.linspace(-end, end, 25)
        cap = np.stack([cap_w * np.sin(t), cap_h * np.cos(t)], axis=1)
        # hairline: where the hair meets the forehead, an arch whose middle dips into a fringe
        base = fh * (0.66 if buzz else 0.6)
        # the arch must stay inside the cap (and over the face outline) or the polygon folds over itself
        xe = 0.85 * cap_w * math.sqrt(max(1 - (base / cap_h) ** 2, 0.0))
        side_x = cap_w * math.sin(end) - 0.08
        xs = np.linspace(xe, -xe, 15)
        fringe = base - (0.05 if buzz else 0.12 if i.hair_style == "short" else 0.18) * (1 - (xs / xe) ** 2)
        hairline = np.vstack([[[side_x, side_y]], np.stack([xs, fringe], axis=1), [[-side_x, side_y]]])
        colour = _mix(i.hair, i.skin, 0.45) if buzz else i.hair
        self.poly(np.vstack([cap, hairline]), colour, surface=False, z=0.0)
        if not self.flat and not buzz:
            s = t[7:15]
            sheen = np.stack([0.6 * cap_w * np.sin(s) - 0.2, cap_h * 0.93 * np.cos(s)], axis=1)
            self.line(sheen, _mix(i.hair, (255, 255, 255), 0.25), width=2.5, z=0.05)

    # --- brows ----------------------------------------------------------------------------------------------

    def _brow(self, sx: int) -> None:
        i = self.i
        t = np.linspace(0, 1, 9)
        inner_x, outer_x = i.eye_spacing - i.eye_width * 0.95, i.eye_spacing + i.eye_width * 1.25
        down, inner_up, outer_up = self.side("browDown", sx), self.v("browInnerUp"), self.side("browOuterUp", sx)
        x = inner_x + (outer_x - inner_x) * t - 0.05 * down * (1 - t)
        y = EYE_Y + i.brow_height + i.brow_arch * np.sin(np.pi * t * 0.85)
        y = y - 0.07 * down - 0.07 * down * (1 - t) ** 1.5  # brow lowerer pulls the inner end down hardest
        y = y + 0.14 * inner_up * (1 - t) ** 1.6 + 0.14 * outer_up * t**1.6
        thick = i.brow_thickness * (1.15 - 0.55 * t)
        upper = np.stack([sx * x, y + thick / 2], axis=1)
        lower = np.stack([sx * x, y - thick / 2], axis=1)[::-1]
        colour = _mix(i.hair, (20, 15, 10), 0.35)
        self.mark(f"brow{sx}", np.stack([sx * x, y], axis=1)[[0, 4, 8]], z=0.04)
        self.poly(np.vstack([upper, lower]), colour, outline=False, z=0.04)
        # wrinkles: frown lines between the brows, forehead lines above a raised inner brow
        if down > 0.05:
            c = _mix(i.skin, (60, 30, 30), 0.45 * down)
            self.line([[sx * 0.05, EYE_Y + i.brow_height - 0.1], [sx * 0.09, EYE_Y + i.brow_height + 0.06]], c, 1.4)
        if inner_up > 0.05:
            c = _mix(i.skin, (60, 30, 30), 0.4 * inner_up)
            for k in range(2):
                yy = EYE_Y + i.brow_height + 0.15 + 0.07 * k
                self.line([[sx * 0.02, yy], [sx * 0.14, yy + 0.015], [sx * 0.26, yy - 0.005]], c, 1.2)

    # --- eyes -----------------------------------------------------------------------------------------------

    def _eye(self, sx: int) -> None:
        i = self.i
        ex, a, h = sx * i.eye_spacing, i.eye_width, i.eye_height
        u = np.linspace(-1, 1, 15)
        x = ex + a * u
        shape = (1 - u**2) ** 0.75
        tilt = 0.012 * sx * u  # outer corner slightly higher
        blink, squint, wide = self.side("eyeBlink", sx), self.side("eyeSquint", sx), self.side("eyeWide", sx)
        look_up, look_down = self.side("eyeLookUp", sx), self.side("eyeLookDown", sx)
        cheek_sq = self.side("cheekSquint", sx)
        lower = EYE_Y - 0.55 * h * shape + tilt
        upper_open = EYE_Y + (1.0 + 0.65 * wide + 0.2 * look_up - 0.3 * look_down) * h * shape + tilt
        lower = lower + (upper_open - lower) * (0.42 * squint)
        upper = lower + (upper_open - lower) * (1 - blink) * (1 - 0.22 * squint)
        # sclera (eye opening)
        opening = np.vstack([np.stack([x, upper], 1), np.stack([x, lower], 1)[::-1]])
        # iris follows eyeLook* blendshapes and the eye pose channels
        look_in, look_out = self.side("eyeLookIn", sx), self.side("eyeLookOut", sx)
        yaw, pitch = eye_pose_excess(self.coeffs, "left" if sx > 0 else "right")
        # positive eye yaw looks towards the subject's right, i.e. image left (-x)
        dx = sx * (look_out - look_in) * 0.62 * a - math.sin(math.radians(yaw)) * 1.3 * a
        dy = (look_up - look_down) * 0.75 * h - math.sin(math.radians(pitch)) * 1.4 * h
        inner, outer = (0, 14) if sx > 0 else (14, 0)  # u runs towards +x: the left eye's inner corner is at u=-1
        lid = [inner, 4, 7, 10, outer] if sx > 0 else [inner, 10, 7, 4, outer]
        eye_pts = np.vstack([np.stack([x, upper], 1)[lid], np.stack([x, lower], 1)[lid[1:4]], [[ex + dx, EYE_Y + dy]]])
        self.mark(f"eye{sx}", eye_pts, z=0.01)
        if float(np.max(upper - lower)) > 0.004:
            self.poly(opening, (250, 250, 248) if self.flat else (236, 234, 230), outline=False, z=0.0)
            r = 0.43 * a
            self._clipped_disc(ex + dx, EYE_Y + dy, r, x, upper, lower, i.iris)
            self._clipped_disc(ex + dx, EYE_Y + dy, r * 0.45, x, upper, lower, (15, 12, 12))
            if not self.flat:
                self._clipped_disc(
                    ex + dx - 0.3 * r, EYE_Y + dy + 0.35 * r, r * 0.18, x, upper, lower, (255, 255, 255)
                )
        # lids: the upper lid line is drawn thick (lashes); crease above it
        lid_w = 2.2 if blink < 0.5 else 2.6
        self.line(np.stack([x, upper], 1), _INK if self.flat else (40, 28, 26), lid_w, z=0.01)
        self.line(np.stack([x, lower], 1), self.skin_dark, 0.8, z=0.01)
        crease = np.stack([x[2:-2], upper_open[2:-2] + 0.045 + 0.03 * (1 - wide)], 1)
        self.line(crease, _mix(i.skin, (60, 30, 30), 0.3), 0.9, z=0.01)
        # cheek raiser crease under the eye
        if cheek_sq > 0.05:
            arc = np.stack([x[3:-1] + sx * 0.02, lower[3:-1] - 0.07 + 0.02 * (1 - cheek_sq)], 1)
            self.line(arc, _mix(i.skin, (60, 30, 30), 0.5 * cheek_sq), 1.2, z=0.01)

    def _clipped_disc(self, cx, cy, r, lid_x, upper, lower, colour) -> None:
        # A disc clipped to the eye opening: for each x, keep the part between the lids.
        xs = np.linspace(max(cx - r, lid_x[0]), min(cx + r, lid_x[-1]), 13)
        if xs[-1] <= xs[0]:
            return
        half = np.sqrt(np.clip(r**2 - (xs - cx) ** 2, 0, None))
        top = np.minimum(cy + half, np.interp(xs, lid_x, upper))
        bottom = np.maximum(cy - half, np.interp(xs, lid_x, lower))
        ok = top > bottom
        if ok.sum() < 2:
            return
        xs, top, bottom = xs[ok], top[ok], bottom[ok]
        self.poly(np.vstack([np.stack([xs, top], 1), np.stack([xs, bottom], 1)[::-1]]), colour, outline=False, z=0.01)

    # --- cheeks and nose ------------------------------------------------------------------------------------

    def _cheeks(self) -> None:
        i = self.i
        t = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        puff = self.v("cheekPuff")
        for sx in (1, -1):
            squint = self.side("cheekSquint", sx)
            cx = sx * (i.eye_spacing + 0.1 + 0.1 * puff)
            cy = EYE_Y - 0.42 + 0.16 * squint
            rx, ry = 0.17 + 0.12 * puff, 0.11 + 0.1 * puff - 0.03 * squint
            blush = _mix(i.skin, (230, 90, 100), 0.22 + 0.25 * max(squint, puff))
            self.poly(np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1), blush, outline=False, z=0.02)
            if puff > 0.05 and not self.flat:
                self.poly(np.stack([cx - sx * 0.04 + 0.05 * np.cos(t), cy + 0.04 + 0.03 * np.sin(t)], 1),
                          _mix(blush, (255, 255, 255), 0.5), outline=False, z=0.03)  # fmt: skip
            if puff > 0.05 and self.flat:
                arc = np.stack([cx + rx * 1.05 * np.cos(t[14:19]) * sx, cy + ry * 1.1 * np.sin(t[14:19])], 1)
                self.line(arc, _mix(i.skin, (60, 30, 30), 0.4 * puff), 1.0)

    def _nose(self) -> None:
        i = self.i
        tip_y = EYE_Y - i.nose_length
        nw = i.nose_width
        sneer = {sx: self.side("noseSneer", sx) for sx in (1, -1)}
        shade = _mix(i.skin, (60, 30, 30), 0.3)
        # bridge (shaded style: a soft shadow on the unlit side)
        if not self.flat:
            bridge = np.array([[0.05, EYE_Y - 0.02], [0.09, tip_y + 0.12], [0.03, tip_y + 0.05], [0.01, EYE_Y - 0.05]])
            self.poly(bridge, _mix(i.skin, (60, 30, 30), 0.15), outline=False, z=0.1)
        # wings and nostrils: each side lifts with noseSneer
        for sx in (1, -1):
            lift = 0.07 * sneer[sx]
            wing = np.array([[sx * 0.04, tip_y - 0.02], [sx * (nw * 0.8), tip_y + 0.02 + lift], [sx * nw, tip_y + 0.07 + lift],
                             [sx * (nw * 0.85), tip_y + 0.12 + lift]])  # fmt: skip
            self.line(wing, shade if not self.flat else _INK, 1.1, z=0.12)
            nostril = np.array([[sx * 0.035, tip_y - 0.03 + lift * 0.6], [sx * (nw * 0.55), tip_y - 0.005 + lift],
                                [sx * (nw * 0.45), tip_y - 0.045 + lift * 0.8]])  # fmt: skip
            self.poly(nostril, _mix(i.skin, (40, 10, 10), 0.55), outline=False, z=0.14)
            if sneer[sx] > 0.05:
                c = _mix(i.skin, (60, 30, 30), 0.55 * sneer[sx])
                for k in range(2):
                    yy = tip_y + 0.2 + 0.08 * k
                    self.line([[sx * 0.03, yy + 0.03], [sx * (nw * 0.75), yy - 0.02]], c, 1.2, z=0.1)
        self.mark("nose", [[0.0, tip_y - 0.02]], z=0.15)
        self.marks["nose"] = np.vstack(
            [self.marks["nose"], *(self.p.project(np.array([[sx * nw, tip_y + 0.07 + 0.07 * sneer[sx]]]), 0.12)
                                   for sx in (1, -1))]
        ).reshape(-1, 2)  # fmt: skip
        tip = np.array([[-0.05, tip_y + 0.01], [0.0, tip_y - 0.02], [0.05, tip_y + 0.01]])
        self.line(tip, shade if not self.flat else _INK, 0.9, z=0.15)

    # --- mouth ----------------------------------------------------------------------------------------------

    def _mouth(self) -> None:  # noqa: C901 - one place for all lip channels keeps their interplay readable
        i, v = self.i, self.v
        t = np.linspace(-1, 1, 17)
        prof = np.sqrt(np.clip(1 - t**2, 0, 1))
        jaw_open, close = v("jawOpen"), v("mouthClose")
        funnel, pucker = v("mouthFunnel"), v("mouthPucker")
        tongue = v("tongueOut")
        width = i.mouth_width * (1 - 0.28 * funnel - 0.42 * pucker - 0.08 * jaw_open)
        x = width * t + 0.16 * (v("mouthLeft") - v("mouthRight")) * prof**0.3
        base = np.full_like(t, MOUTH_Y) + 0.05 * v("mouthShrugUpper") + 0.03 * v("mouthShrugLower") * prof
        up_th: float | np.ndarray = i.upper_lip * (1 - 0.75 * v("mouthRollUpper")) * (1 + 0.5 * funnel + 0.45 * pucker)
        lo_th: float | np.ndarray = i.lower_lip * (1 - 0.75 * v("mouthRollLower")) * (1 + 0.45 * funnel + 0.4 * pucker)
        upper_in = base.copy()
        lower_in = base.copy()
        # jaw opening drops the lower lip; mouthClose seals the lips against it
        drop = (0.34 * jaw_open * (1 - 0.95 * close) + 0.1 * tongue + 0.05 * v("jawForward")) * (0.25 + 0.75 * prof)
        lower_in = lower_in - drop - 0.035 * close * prof
        lower_in = lower_in - 0.1 * funnel * prof
        upper_in = upper_in + 0.04 * funnel * prof
        for sx in (1, -1):
            wgt = np.clip((sx * t + 0.35) / 1.35, 0, 1) ** 1.4  # how much this side's corner moves each point
            cw = np.clip((sx * t - 0.2) / 0.8, 0, 1) ** 1.5
            smile, frown = self.side("mouthSmile", sx), self.side("mouthFrown", sx)
            dimple, stretch = self.side("mouthDimple", sx), self.side("mouthStretch", sx)
            press = self.side("mouthPress", sx)
            dx = 0.1 * smile + 0.02 * frown + 0.08 * dimple + 0.13 * stretch
            dy = 0.13 * smile - 0.13 * frown + 0.01 * dimple - 0.05 * stretch
            x = x + sx * dx * cw
            upper_in = upper_in + dy * cw
            lower_in = lower_in + dy * cw
            up_th = up_th * (1 - 0.5 * press * wgt) * (1 - 0.25 * stretch * wgt)
            lo_th = lo_th * (1 - 0.5 * press * wgt) * (1 - 0.25 * stretch * wgt)
            lower_in = lower_in - 0.12 * self.side("mouthLowerDown", sx) * wgt * prof**0.5
            upper_in = upper_in + 0.09 * self.side("mouthUpperUp", sx) * wgt * prof**0.5
        lower_in = lower_in + 0.04 * v("mouthShrugLower") * prof
        # the jaw slides the lower lip sideways
        lower_x = x + self.jaw_shift * 0.7 * prof
        upper_out = upper_in + up_th * prof**0.6 + 0.012 * prof * np.cos(np.pi * t * 3) * 0.5
        lower_out = lower_in - lo_th * prof**0.6
        gap = upper_in - lower_in
        up_pts_in = np.stack([x, upper_in], 1)
        lo_pts_in = np.stack([lower_x, lower_in], 1)
        mouth_pts = np.vstack([[[x[8], upper_out[8]]], up_pts_in[[0, 4, 8, 12, 16]], lo_pts_in[[4, 8, 12]],
                               [[lower_x[8], lower_out[8]]]])  # fmt: skip
        self.mark("mouth", mouth_pts, z=0.05)
        if float(gap.max()) > 0.01:
            mouth = np.vstack([up_pts_in, lo_pts_in[::-1]])
            self.poly(mouth, _MOUTH_DARK, outline=False, z=0.03)
            # teeth: upper row hangs from the upper lip, lower row rises from the lower lip (forward when jawForward)
            top_row = np.minimum(upper_in, np.maximum(upper_in - 0.07, lower_in))
            self.poly(
                np.vstack([up_pts_in[2:-2], np.stack([x, top_row], 1)[2:-2][::-1]]), _TEETH, outline=False, z=0.03
            )
            fwd = v("jawForward")
            bot_row = np.maximum(lower_in, np.minimum(lower_in + 0.04 + 0.05 * fwd, upper_in))
            self.poly(np.vstack([lo_pts_in[3:-3], np.stack([lower_x, bot_row], 1)[3:-3][::-1]]),
                      _mix(_TEETH, (200, 200, 190), 0.3), outline=False, z=0.03)  # fmt: skip
            if tongue > 0.02 or jaw_open > 0.3:
                tw = 0.55 * width
                tip = float(lower_in.min())
                tongue_pts = np.array(
                    [[-tw, tip + 0.01], [tw, tip + 0.01], [tw * 0.6, tip + 0.05], [-tw * 0.6, tip + 0.05]]
                )
                self.poly(tongue_pts + [self.jaw_shift * 0.7, 0], _TONGUE, outline=False, z=0.03)
        lip = i.lip_colour
        self.poly(
            np.vstack([np.stack([x, upper_out], 1), up_pts_in[::-1]]),
            _mix(lip, (0, 0, 0), 0.12 if not self.flat else 0.0),
            z=0.05,
        )
        self.poly(np.vstack([lo_pts_in, np.stack([lower_x, lower_out], 1)[::-1]]), lip, z=0.05)
        if not self.flat:
            hl = np.stack([lower_x[6:11], (lower_in[6:11] * 0.4 + lower_out[6:11] * 0.6)], 1)
            self.line(hl, _mix(lip, (255, 255, 255), 0.35), 1.6, z=0.06)
        if float(gap.max()) <= 0.01:
            self.line(up_pts_in, _mix(lip, (40, 0, 0), 0.55), 1.1, z=0.06)
        # tongue out over the lower lip
        if tongue > 0.02:
            tw = 0.5 * width
            tip_y = float(lower_in.min()) - 0.02 - 0.3 * tongue
            cx = float(np.mean(lower_x))
            s = np.linspace(np.pi, 2 * np.pi, 13)
            base_y = float(lower_in.min()) + 0.03
            tongue_tip = np.stack([cx + tw * np.cos(s), tip_y + tw * 0.9 * (1 + np.sin(s))], 1)
            tongue_pts = np.vstack([[[cx - tw, base_y]], tongue_tip, [[cx + tw, base_y]]])
            self.poly(tongue_pts, _TONGUE, z=0.08)
            self.line([[cx, tip_y + 0.2 * tongue], [cx, tip_y + 0.06]], _mix(_TONGUE, (90, 20, 30), 0.4), 1.0, z=0.09)
        # marks: dimples, chin boss (mouthShrugLower), corner lines when pressed
        for sx in (1, -1):
            dimple = self.side("mouthDimple", sx)
            k = int(sx > 0) * (len(t) - 1)
            cx, cy = float(x[k]) + sx * 0.04, float(upper_in[k])
            if dimple > 0.05:
                self.line(
                    [[cx, cy + 0.05], [cx + sx * 0.015, cy - 0.05]], _mix(i.skin, (60, 30, 30), 0.6 * dimple), 1.3
                )
            smile = self.side("mouthSmile", sx)
            if smile > 0.1:  # nasolabial fold deepens with a smile
                fold = np.array(
                    [[sx * (i.nose_width + 0.04), EYE_Y - i.nose_length + 0.02], [cx + sx * 0.06, cy + 0.02]]
                )
                self.line(fold, _mix(i.skin, (60, 30, 30), 0.35 * smile), 1.1)
            press = self.side("mouthPress", sx)
            if press > 0.05:
                self.line(
                    [[cx - sx * 0.01, cy + 0.02], [cx + sx * 0.03, cy - 0.03]],
                    _mix(i.skin, (60, 30, 30), 0.6 * press),
                    1.3,
                )
        shrug = v("mouthShrugLower")
        chin_y = float(lower_out.min()) - 0.12
        if shrug > 0.05:
            s = np.linspace(0.2 * np.pi, 0.8 * np.pi, 9)
            boss = np.stack([np.mean(lower_x) + 0.16 * np.cos(s), chin_y - 0.03 + 0.06 * np.sin(s) * shrug], 1)
            self.line(boss, _mix(i.skin, (60, 30, 30), 0.5 * shrug), 1.3)
