"""Camera, light and head/eye pose conventions shared by the renderers.

Conventions (both renderers): the face looks along +z towards the camera, +y is up, and the subject's own left
(ARKit ``...Left``) is at +x, i.e. on the right of the image, as in a photograph (not a mirror).
Live Link Face stores pose channels normalised to [-1, 1]; we map 1.0 to :data:`HEAD_MAX_DEGREES` and
:data:`EYE_MAX_DEGREES`. Positive HeadYaw turns the face towards the subject's left (image right), positive
HeadPitch tilts the chin down, positive HeadRoll tilts the head towards the subject's left shoulder; positive eye
yaw looks towards the subject's left, positive eye pitch looks down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from semanticface.coefficients import FaceCoefficients

# What 1.0 on a normalised pose channel means, in degrees (Live Link Face normalises to about these limits).
HEAD_MAX_DEGREES = (40.0, 30.0, 30.0)  # yaw, pitch, roll
EYE_MAX_DEGREES = (30.0, 25.0)  # yaw, pitch


@dataclass(frozen=True)
class Camera:
    """A pinhole camera on the +z axis looking at ``target``."""

    distance: float = field(default=80.0, metadata={"help": "Camera distance from the target, in mesh units."})
    fov_degrees: float = field(default=20.0, metadata={"help": "Vertical field of view in degrees."})
    target: tuple[float, float, float] | None = field(
        default=None, metadata={"help": "Point the camera looks at; None centres the face region of the mesh."}
    )
    elevation_degrees: float = field(default=0.0, metadata={"help": "Camera elevation above the face's horizon."})
    azimuth_degrees: float = field(default=0.0, metadata={"help": "Camera azimuth; positive moves it to image right."})


@dataclass(frozen=True)
class Lighting:
    """One directional key light plus ambient, with a Blinn-Phong highlight."""

    direction: tuple[float, float, float] = field(
        default=(-0.35, 0.45, 1.0), metadata={"help": "Direction towards the key light (camera space)."}
    )
    ambient: float = field(default=0.35, metadata={"help": "Ambient light level in [0, 1]."})
    diffuse: float = field(default=0.75, metadata={"help": "Key light strength."})
    specular: float = field(default=0.12, metadata={"help": "Highlight strength (0 disables)."})
    shininess: float = field(default=24.0, metadata={"help": "Blinn-Phong exponent of the highlight."})
    background: tuple[int, int, int] = field(default=(92, 100, 112), metadata={"help": "Background RGB."})


def rotation_matrix(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """3x3 rotation applied to column vectors: roll about z, then pitch about x, then yaw about y."""
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    # Positive pitch moves the chin down, i.e. rotates the face's +z (the nose) towards -y.
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    # Positive roll tilts the top of the head towards +x (subject's left shoulder seen from the camera is +x).
    rz = np.array([[math.cos(r), math.sin(r), 0], [-math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def head_angles(coefficients: FaceCoefficients) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the HeadYaw/HeadPitch/HeadRoll channels (missing = 0)."""
    pose = np.nan_to_num(coefficients.pose)
    return tuple(float(pose[i]) * HEAD_MAX_DEGREES[i] for i in range(3))  # type: ignore[return-value]


def eye_angles(coefficients: FaceCoefficients, side: str) -> tuple[float, float]:
    """(yaw, pitch) in degrees of one eye ("left" or "right") from the eye pose channels (missing = 0)."""
    pose = np.nan_to_num(coefficients.pose)
    base = 3 if side == "left" else 6
    return float(pose[base]) * EYE_MAX_DEGREES[0], float(pose[base + 1]) * EYE_MAX_DEGREES[1]
