"""Camera, light and head/eye pose conventions shared by the renderers.

Conventions (both renderers): the face looks along +z towards the camera, +y is up, and the subject's own left
(ARKit ``...Left``) is at +x, i.e. on the right of the image, as in a photograph (not a mirror).
Live Link Face stores pose channels normalised to [-1, 1]; we map 1.0 to :data:`HEAD_MAX_DEGREES` and
:data:`EYE_MAX_DEGREES`. Positive HeadYaw turns the face towards the subject's left (image right), positive
HeadPitch tilts the chin down, positive HeadRoll tilts the head towards the subject's left shoulder (Live Link
Face's files carry no head rotation, so these signs are our own). Eye channels follow the real recordings: there
LeftEyeYaw = -0.61 (eyeLookOutLeft - eyeLookInLeft), RightEyeYaw = +0.58 (eyeLookOutRight - eyeLookInRight) and
EyePitch = -0.53 (eyeLookUp - eyeLookDown) (fits over all frames, |r| > 0.97): positive eye yaw looks towards the
subject's right (image left), positive eye pitch looks down.

Gaze is thus given twice in ARKit data, by the eyeLook blendshapes and by the eye pose channels. Renderers move the
eyes with the blendshapes and add only what a non-zero eye pose channel says *beyond* them
(:func:`eye_pose_excess`): consistent captures are not doubled, pose-only input still turns the eyes, and a zero
pose channel means "not given".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.schema import CHANNEL_INDEX

# What 1.0 on a normalised pose channel means, in degrees (Live Link Face normalises to about these limits).
HEAD_MAX_DEGREES = (40.0, 30.0, 30.0)  # yaw, pitch, roll
EYE_MAX_DEGREES = (50.0, 50.0)  # yaw, pitch: eyeLook* = 1 (about 30 degrees) reads as ~0.6 in the recordings
# Normalised eye pose implied by the eyeLook blendshapes, fitted on the Live Link Face recordings.
_YAW_PER_LOOK = 0.6
_PITCH_PER_LOOK = 0.53


# Camera distance per unit of face height: ICT-FaceKit's face (28.85 cm tall) was framed from 80 cm.
FACE_DISTANCE_PER_HEIGHT = 80.0 / 28.846


@dataclass(frozen=True)
class Camera:
    """A pinhole camera on the +z axis looking at ``target``."""

    distance: float | None = field(
        default=None,
        metadata={
            "help": "Camera distance from the target, in mesh units; None frames the face from the mesh's own "
            "bounds (FACE_DISTANCE_PER_HEIGHT × the face's height), so any rig, in cm or m, fills the image alike."
        },
    )
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


def eye_pose_excess(coefficients: FaceCoefficients, side: str) -> tuple[float, float]:
    """(yaw, pitch) in degrees that a non-zero eye pose asks for beyond what the eyeLook blendshapes already show.

    Positive yaw looks towards the subject's right, positive pitch looks down (see the module docstring).
    """
    values = np.nan_to_num(coefficients.values)
    suffix = "Left" if side == "left" else "Right"
    look = {d: float(values[CHANNEL_INDEX[f"eyeLook{d}{suffix}"]]) for d in ("In", "Out", "Up", "Down")}
    # The left eye looks out towards the subject's left (negative yaw), the right eye towards the right.
    implied_yaw = (-1.0 if side == "left" else 1.0) * _YAW_PER_LOOK * (look["Out"] - look["In"])
    implied_pitch = -_PITCH_PER_LOOK * (look["Up"] - look["Down"])
    yaw, pitch = (a / m for a, m in zip(eye_angles(coefficients, side), EYE_MAX_DEGREES))
    extra_yaw = (yaw - implied_yaw) if yaw != 0 else 0.0
    extra_pitch = (pitch - implied_pitch) if pitch != 0 else 0.0
    return extra_yaw * EYE_MAX_DEGREES[0], extra_pitch * EYE_MAX_DEGREES[1]
