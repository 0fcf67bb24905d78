"""The channel schema: ARKit's 52 blendshapes, Live Link Face's 9 pose channels, and everything known about them.

Canonical names are ARKit camelCase (``eyeBlinkLeft``) for blendshapes and Live Link Face PascalCase
(``HeadYaw``) for the pose channels, which ARKit itself does not name. Canonical order is Apple's documented
``ARFaceAnchor.BlendShapeLocation`` order followed by Live Link Face's pose order. Every other dialect
(Live Link Face columns, MediaPipe categories, the ``_L``/``_R`` suffix style of Face Cap and ICT-FaceKit) is
converted to and from these names here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

from semanticface.errors import ConfigError, UnknownChannelError

# Apple's documented order (ARFaceAnchor.BlendShapeLocation: eyes, mouth and jaw, eyebrows, cheeks, nose, tongue).
BLENDSHAPES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight", "eyeSquintRight",
    "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip

# Live Link Face's head and eye rotation channels, in its column order; values are normalised to [-1, 1].
POSE_CHANNELS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip

CHANNELS: tuple[str, ...] = BLENDSHAPES + POSE_CHANNELS
NUM_BLENDSHAPES = len(BLENDSHAPES)  # 52
NUM_CHANNELS = len(CHANNELS)  # 61
CHANNEL_INDEX: Mapping[str, int] = MappingProxyType({name: i for i, name in enumerate(CHANNELS)})

BLENDSHAPE_RANGE = (0.0, 1.0)
POSE_RANGE = (-1.0, 1.0)


class Dialect(str, Enum):
    """Naming conventions of the tools that produce or consume ARKit-style coefficients."""

    ARKIT = "arkit"  # eyeBlinkLeft (Apple, canonical)
    LIVE_LINK_FACE = "llf"  # EyeBlinkLeft (Epic Live Link Face CSV / Unreal)
    MEDIAPIPE = "mediapipe"  # eyeBlinkLeft plus "_neutral", no tongueOut, own order
    SUFFIX = "suffix"  # eyeBlink_L (Face Cap, ICT-FaceKit)


def _pascal(name: str) -> str:
    return name[0].upper() + name[1:]


def _suffix_style(name: str) -> str:
    # Only a trailing side word is a side; jawLeft/mouthRight are directions and keep their names.
    for side, short in (("Left", "_L"), ("Right", "_R")):
        if name.endswith(side) and name not in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):
            return name[: -len(side)] + short
    return name


# Live Link Face's CSV column order differs from Apple's (JawRight before JawLeft, MouthRight before MouthLeft).
LLF_COLUMN_ORDER: tuple[str, ...] = tuple(
    _pascal(n)
    for n in (
        *BLENDSHAPES[:14],
        "jawForward", "jawRight", "jawLeft", "jawOpen",
        "mouthClose", "mouthFunnel", "mouthPucker", "mouthRight", "mouthLeft",
        *BLENDSHAPES[23:],
    )
) + POSE_CHANNELS  # fmt: skip

MEDIAPIPE_NEUTRAL = "_neutral"
# MediaPipe Face Landmarker's 52 blendshape categories, in its output order: "_neutral" then 51 ARKit names.
MEDIAPIPE_CATEGORIES: tuple[str, ...] = (MEDIAPIPE_NEUTRAL,) + tuple(
    sorted(n for n in BLENDSHAPES if n != "tongueOut")
)
MEDIAPIPE_MISSING: tuple[str, ...] = ("tongueOut",) + POSE_CHANNELS

_TO_DIALECT: dict[Dialect, dict[str, str]] = {
    Dialect.ARKIT: {n: n for n in CHANNELS},
    Dialect.LIVE_LINK_FACE: {n: _pascal(n) for n in CHANNELS},
    Dialect.MEDIAPIPE: {n: n for n in CHANNELS if n not in MEDIAPIPE_MISSING},
    Dialect.SUFFIX: {**{n: _suffix_style(n) for n in BLENDSHAPES}, **{n: n for n in POSE_CHANNELS}},
}

# Every spelling any dialect uses, lower-cased, mapped to the canonical name.
_ALIASES: dict[str, str] = {}
for _mapping in _TO_DIALECT.values():
    for _canonical, _spelled in _mapping.items():
        _ALIASES[_spelled.lower()] = _canonical
        _ALIASES[_canonical.lower()] = _canonical


def canonical_name(name: str) -> str:
    """Return the canonical name of a channel spelled in any dialect (case-insensitive).

    Raises :class:`UnknownChannelError` for names no dialect uses (including MediaPipe's ``_neutral``,
    which is not a channel: see :func:`is_mediapipe_neutral`), for anything but a string, and for names with
    non-ASCII characters (``str.lower`` maps the Kelvin sign to ``k``: a look-alike must not pass as a channel).
    """
    if not is_known_name(name):
        raise UnknownChannelError(str(name))
    return _ALIASES[name.strip().lower()]


def is_known_name(name: str) -> bool:
    return isinstance(name, str) and name.isascii() and name.strip().lower() in _ALIASES


def is_mediapipe_neutral(name: str) -> bool:
    return name == MEDIAPIPE_NEUTRAL


def dialect_of(dialect: Dialect | str) -> Dialect:
    """``dialect`` as a :class:`Dialect`; anything else raises :class:`ConfigError` listing the dialects."""
    try:
        return Dialect(dialect)
    except (ValueError, TypeError):
        names = ", ".join(d.value for d in Dialect)
        raise ConfigError(f"unknown dialect {dialect!r:.40} (one of {names})") from None


def to_dialect(name: str, dialect: Dialect | str) -> str:
    """Spell a channel (given in any dialect) the way ``dialect`` does.

    Raises :class:`UnknownChannelError` if the dialect has no such channel (e.g. tongueOut in MediaPipe).
    """
    canonical = canonical_name(name)
    dialect = dialect_of(dialect)
    mapping = _TO_DIALECT[dialect]
    if canonical not in mapping:
        raise UnknownChannelError(f"{canonical} (absent from the {dialect.value} dialect)")
    return mapping[canonical]


def dialect_names(dialect: Dialect | str) -> tuple[str, ...]:
    """The channel names of a dialect in canonical order (channels it lacks are left out)."""
    mapping = _TO_DIALECT[dialect_of(dialect)]
    return tuple(mapping[n] for n in CHANNELS if n in mapping)


# --- Regions -------------------------------------------------------------------------------------------------

REGIONS: tuple[str, ...] = ("brows", "eyes", "cheeks", "nose", "jaw", "mouth", "tongue")
POSE_REGIONS: tuple[str, ...] = ("head", "gaze")


def _region_of(name: str) -> str:
    if name in POSE_CHANNELS:
        return "head" if name.startswith("Head") else "gaze"
    for prefix, region in (
        ("brow", "brows"), ("eye", "eyes"), ("cheek", "cheeks"), ("nose", "nose"),
        ("jaw", "jaw"), ("mouth", "mouth"), ("tongue", "tongue"),
    ):  # fmt: skip
        if name.startswith(prefix):
            return region
    raise AssertionError(name)


CHANNEL_REGION: Mapping[str, str] = MappingProxyType({n: _region_of(n) for n in CHANNELS})
REGION_CHANNELS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {r: tuple(n for n in CHANNELS if CHANNEL_REGION[n] == r) for r in REGIONS + POSE_REGIONS}
)

# Upper/lower face split for region-aware preferences. FACS puts the cheek raiser (AU6, cheekSquint) in the
# upper face; the nose wrinkler (AU9) and cheek puff belong to the lower face.
UPPER_FACE: tuple[str, ...] = tuple(
    n for n in BLENDSHAPES if CHANNEL_REGION[n] in ("brows", "eyes") or n.startswith("cheekSquint")
)
LOWER_FACE: tuple[str, ...] = tuple(n for n in BLENDSHAPES if n not in UPPER_FACE)
FACE_HALVES: Mapping[str, tuple[str, ...]] = MappingProxyType({"upper": UPPER_FACE, "lower": LOWER_FACE})


def region_of(name: str) -> str:
    """Region of a channel given in any dialect."""
    return CHANNEL_REGION[canonical_name(name)]


def face_half_of(name: str) -> str | None:
    """ "upper" or "lower" for a blendshape, None for a pose channel."""
    canonical = canonical_name(name)
    if canonical in UPPER_FACE:
        return "upper"
    if canonical in LOWER_FACE:
        return "lower"
    return None


# --- Sides -------------------------------------------------------------------------------------------------

# Left/right pairs: the subject's own left and right, as ARKit defines them (the mirror image on screen).
SYMMETRIC_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (n, n[: -len("Left")] + "Right") for n in BLENDSHAPES if n.endswith("Left") and n not in ("jawLeft", "mouthLeft")
) + (("LeftEyeYaw", "RightEyeYaw"), ("LeftEyePitch", "RightEyePitch"), ("LeftEyeRoll", "RightEyeRoll"))

# Channels that move the face sideways: their left and right are directions, not sides of the face.
DIRECTIONAL_PAIRS: tuple[tuple[str, str], ...] = (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight"))


def side_of(name: str) -> str | None:
    """ "left", "right" or None (midline or directional channel)."""
    canonical = canonical_name(name)
    for left, right in SYMMETRIC_PAIRS:
        if canonical == left:
            return "left"
        if canonical == right:
            return "right"
    return None


def mirror_name(name: str) -> str:
    """The channel on the other side (left <-> right, including jaw/mouth directions); midline maps to itself."""
    canonical = canonical_name(name)
    for left, right in SYMMETRIC_PAIRS + DIRECTIONAL_PAIRS:
        if canonical == left:
            return right
        if canonical == right:
            return left
    return canonical


# --- FACS ----------------------------------------------------------------------------------------------------

# ARKit blendshape -> FACS action unit(s). The mapping follows the usual ARKit/FACS correspondence tables;
# ARKit has no single-AU equivalent for mouthLeft/mouthRight (lip shift), which FACS codes as AD "lip shift".
ARKIT_TO_FACS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "browInnerUp": ("AU1",),
    "browOuterUpLeft": ("AU2",), "browOuterUpRight": ("AU2",),
    "browDownLeft": ("AU4",), "browDownRight": ("AU4",),
    "eyeWideLeft": ("AU5",), "eyeWideRight": ("AU5",),
    "cheekSquintLeft": ("AU6",), "cheekSquintRight": ("AU6",),
    "eyeSquintLeft": ("AU7",), "eyeSquintRight": ("AU7",),
    "noseSneerLeft": ("AU9",), "noseSneerRight": ("AU9",),
    "mouthUpperUpLeft": ("AU10",), "mouthUpperUpRight": ("AU10",),
    "mouthSmileLeft": ("AU12",), "mouthSmileRight": ("AU12",),
    "mouthDimpleLeft": ("AU14",), "mouthDimpleRight": ("AU14",),
    "mouthFrownLeft": ("AU15",), "mouthFrownRight": ("AU15",),
    "mouthLowerDownLeft": ("AU16",), "mouthLowerDownRight": ("AU16",),
    "mouthShrugLower": ("AU17",), "mouthShrugUpper": ("AU17",),
    "mouthPucker": ("AU18",),
    "tongueOut": ("AU19",),
    "mouthStretchLeft": ("AU20",), "mouthStretchRight": ("AU20",),
    "mouthFunnel": ("AU22",),
    "mouthPressLeft": ("AU24",), "mouthPressRight": ("AU24",),
    "mouthClose": ("AU25-",),  # lips together while the jaw is open: the opposite of lips part
    "jawOpen": ("AU26", "AU27"),
    "mouthRollLower": ("AU28",), "mouthRollUpper": ("AU28",),
    "jawForward": ("AU29",),
    "jawLeft": ("AU30",), "jawRight": ("AU30",),
    "cheekPuff": ("AU34",),
    "eyeBlinkLeft": ("AU45",), "eyeBlinkRight": ("AU45",),
    "eyeLookOutLeft": ("AU61",), "eyeLookInRight": ("AU61",),  # both eyes turn to the subject's left
    "eyeLookInLeft": ("AU62",), "eyeLookOutRight": ("AU62",),  # both eyes turn to the subject's right
    "eyeLookUpLeft": ("AU63",), "eyeLookUpRight": ("AU63",),
    "eyeLookDownLeft": ("AU64",), "eyeLookDownRight": ("AU64",),
    "mouthLeft": ("AD-lip-shift",), "mouthRight": ("AD-lip-shift",),
})  # fmt: skip

FACS_NAMES: Mapping[str, str] = MappingProxyType({
    "AU1": "inner brow raiser", "AU2": "outer brow raiser", "AU4": "brow lowerer", "AU5": "upper lid raiser",
    "AU6": "cheek raiser", "AU7": "lid tightener", "AU9": "nose wrinkler", "AU10": "upper lip raiser",
    "AU12": "lip corner puller", "AU14": "dimpler", "AU15": "lip corner depressor", "AU16": "lower lip depressor",
    "AU17": "chin raiser", "AU18": "lip pucker", "AU19": "tongue show", "AU20": "lip stretcher",
    "AU22": "lip funneler", "AU24": "lip pressor", "AU25-": "lips closed over open jaw", "AU26": "jaw drop",
    "AU27": "mouth stretch", "AU28": "lip suck", "AU29": "jaw thrust", "AU30": "jaw sideways", "AU34": "cheek puff",
    "AU45": "blink", "AU61": "eyes turn left", "AU62": "eyes turn right", "AU63": "eyes up", "AU64": "eyes down",
    "AD-lip-shift": "lip shift",
})  # fmt: skip

assert len(BLENDSHAPES) == 52 and len(set(BLENDSHAPES)) == 52
assert len(POSE_CHANNELS) == 9
assert sorted(LLF_COLUMN_ORDER) == sorted(_pascal(n) for n in CHANNELS)
assert len(MEDIAPIPE_CATEGORIES) == 52
assert set(ARKIT_TO_FACS) == set(BLENDSHAPES)

#: FACS action unit -> the ARKit channels that express it (the inverse of ARKIT_TO_FACS).
FACS_TO_ARKIT: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        au: tuple(n for n in BLENDSHAPES if au in ARKIT_TO_FACS[n])
        for au in dict.fromkeys(a for v in ARKIT_TO_FACS.values() for a in v)
    }
)


def map_target_names(names: tuple[str, ...] | list[str]) -> tuple[dict[str, tuple[int, ...]], tuple[str, ...]]:
    """Map rig target names (any dialect, incl. ICT's split ``browInnerUp_L``) to canonical channels.

    Returns ``(channel -> target indices, unused target names)``.
    """
    mapping: dict[str, list[int]] = {}
    unused: list[str] = []
    for i, raw in enumerate(names):
        channel = _channel_of_target(str(raw))
        if channel is None:
            unused.append(str(raw))
        else:
            mapping.setdefault(channel, []).append(i)
    return {k: tuple(v) for k, v in mapping.items()}, tuple(unused)


def _channel_of_target(name: str) -> str | None:
    candidates = [name]
    # Split halves of midline channels (ICT's browInnerUp_L) drive their whole channel.
    for suffix in ("_L", "_R", "Left", "Right", ".L", ".R"):
        if name.endswith(suffix):
            candidates.append(name[: -len(suffix)])
    for candidate in candidates:
        try:
            channel = canonical_name(candidate)
        except UnknownChannelError:
            continue
        if channel in BLENDSHAPES:
            return channel
    return None
