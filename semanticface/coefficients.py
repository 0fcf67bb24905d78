"""A validated vector of the 61 face channels (52 ARKit blendshapes + 9 Live Link Face pose channels)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from semanticface.errors import CoefficientError, CoefficientWarning, UnknownChannelError
from semanticface.schema import (
    BLENDSHAPE_RANGE,
    BLENDSHAPES,
    CHANNEL_INDEX,
    CHANNELS,
    NUM_BLENDSHAPES,
    NUM_CHANNELS,
    POSE_RANGE,
    Dialect,
    canonical_name,
    dialect_of,
    is_mediapipe_neutral,
    to_dialect,
)


def channel_range(name: str) -> tuple[float, float]:
    """Valid range of a canonical channel: [0, 1] for blendshapes, [-1, 1] for pose."""
    return BLENDSHAPE_RANGE if CHANNEL_INDEX[name] < NUM_BLENDSHAPES else POSE_RANGE


_LOW = np.array([channel_range(n)[0] for n in CHANNELS])
_HIGH = np.array([channel_range(n)[1] for n in CHANNELS])


@dataclass(frozen=True)
class FaceCoefficients:
    """61 channel values in canonical order, validated on construction.

    ``missing`` names channels the source did not provide (e.g. tongueOut and pose from MediaPipe); their value
    is stored as NaN and they are skipped by metrics. Any other NaN/inf or out-of-range value raises
    :class:`CoefficientError` naming the channel.
    """

    values: np.ndarray
    missing: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        values = _as_vector(self.values, NUM_CHANNELS)
        try:
            missing = frozenset(self.missing)
        except TypeError:
            raise CoefficientError(f"missing must be a set of channel names, got {self.missing!r:.80}") from None
        for name in missing:
            if not isinstance(name, str) or name not in CHANNEL_INDEX:
                raise UnknownChannelError(str(name))
        values = values.copy()
        missing_mask = np.zeros(NUM_CHANNELS, dtype=bool)
        for name in missing:
            missing_mask[CHANNEL_INDEX[name]] = True
        values[missing_mask] = np.nan
        bad = ~missing_mask & ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise CoefficientError(f"{CHANNELS[i]} is {values[i]!r}: values must be finite", CHANNELS[i])
        out = ~missing_mask & ((values < _LOW) | (values > _HIGH))
        if out.any():
            i = int(np.argmax(out))
            low, high = _LOW[i], _HIGH[i]
            raise CoefficientError(f"{CHANNELS[i]} = {values[i]:g} is outside [{low:g}, {high:g}]", CHANNELS[i])
        values.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "missing", missing)

    # --- construction ---------------------------------------------------------------------------------------

    @classmethod
    def neutral(cls) -> FaceCoefficients:
        """All blendshapes at rest, head and eyes straight ahead."""
        return cls(np.zeros(NUM_CHANNELS))

    @classmethod
    def from_array(cls, array: Iterable[float], missing: Iterable[str] = ()) -> FaceCoefficients:
        """From 61 values in canonical order, or 52 blendshape values (pose then defaults to 0)."""
        try:
            items = array if isinstance(array, np.ndarray) else list(array)
        except TypeError:
            raise CoefficientError(f"expected a sequence of numbers, got {type(array).__name__}") from None
        size = NUM_BLENDSHAPES if len(items) == NUM_BLENDSHAPES else NUM_CHANNELS
        values = _as_vector(items, size)
        if size == NUM_BLENDSHAPES:
            values = np.concatenate([values, np.zeros(NUM_CHANNELS - NUM_BLENDSHAPES)])
        if isinstance(missing, str):
            missing = (missing,)
        return cls(values, frozenset(canonical_name(m) for m in missing))

    @classmethod
    def from_dict(
        cls,
        mapping: Mapping[str, float],
        *,
        missing_ok: bool = False,
        ignore_unknown: bool = False,
    ) -> FaceCoefficients:
        """From ``{name: value}`` in any dialect (ARKit, Live Link Face, MediaPipe, ``_L``/``_R``).

        ``_L``/``_R`` halves of the midline channels rigs split (ICT-FaceKit's ``browInnerUp_L``/``_R`` and
        ``cheekPuff_L``/``_R``: :data:`SPLIT_MIDLINE_CHANNELS`) are averaged; a name that only looks split
        (``jawOpen_L``, ``eyeBlinkLeft_R``) is an unknown channel. When the whole channel and halves are both given,
        the whole value is used, with a :class:`CoefficientWarning` saying so (as when only one half is given).
        Values must be real numbers: strings, bools and complex numbers raise :class:`CoefficientError` naming the
        channel. Channels absent from the mapping raise, unless ``missing_ok`` (then they are recorded as missing).
        Pose channels absent from a mapping that has no pose channel at all default to 0 (most sources have none).
        """
        if not isinstance(mapping, Mapping):
            raise CoefficientError(f"expected a mapping of channel names to numbers, got {type(mapping).__name__}")
        values = np.full(NUM_CHANNELS, np.nan)
        split_parts: dict[str, dict[str, float]] = {}
        for raw_name, raw_value in mapping.items():
            if is_mediapipe_neutral(raw_name):
                continue
            try:
                name = canonical_name(raw_name)
            except UnknownChannelError:
                split = split_channel_name(raw_name)
                if split is not None:
                    split_parts.setdefault(split, {})[raw_name] = as_float(raw_value, raw_name)
                    continue
                if ignore_unknown:
                    continue
                raise
            value = as_float(raw_value, raw_name)
            index = CHANNEL_INDEX[name]
            if not math.isnan(values[index]):
                raise CoefficientError(f"channel {name} is given twice (as {raw_name!r})", name)
            values[index] = value
        for name, parts in split_parts.items():
            halves = ", ".join(map(repr, parts))
            if not math.isnan(values[CHANNEL_INDEX[name]]):
                warnings.warn(
                    f"{name} is given whole and as halves ({halves}): used the whole value",
                    CoefficientWarning,
                    stacklevel=2,
                )
                continue
            if len(parts) == 1:
                warnings.warn(
                    f"{name}: only one half is given ({halves}); used it for the whole channel",
                    CoefficientWarning,
                    stacklevel=2,
                )
            values[CHANNEL_INDEX[name]] = float(np.mean(list(parts.values())))
        pose = values[NUM_BLENDSHAPES:]
        if np.isnan(pose).all():
            pose[:] = 0.0
        absent = frozenset(CHANNELS[i] for i in np.flatnonzero(np.isnan(values)))
        if absent and not missing_ok:
            names = ", ".join(sorted(absent, key=CHANNEL_INDEX.__getitem__))
            raise CoefficientError(f"missing channel(s): {names}", sorted(absent, key=CHANNEL_INDEX.__getitem__)[0])
        return cls(np.nan_to_num(values, nan=0.0), absent)

    # --- access ---------------------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> float:
        return float(self.values[CHANNEL_INDEX[canonical_name(name)]])

    @property
    def blendshapes(self) -> np.ndarray:
        return self.values[:NUM_BLENDSHAPES]

    @property
    def pose(self) -> np.ndarray:
        return self.values[NUM_BLENDSHAPES:]

    def to_dict(self, dialect: Dialect | str = Dialect.ARKIT, *, include_pose: bool = True) -> dict[str, float]:
        """``{name: value}`` spelled in ``dialect``; missing channels and channels the dialect lacks are left out."""
        dialect = dialect_of(dialect)
        names = CHANNELS if include_pose else BLENDSHAPES
        out: dict[str, float] = {}
        for name in names:
            if name in self.missing:
                continue
            try:
                key = to_dialect(name, dialect)
            except UnknownChannelError:
                continue
            out[key] = float(self.values[CHANNEL_INDEX[name]])
        return out

    def quantized(self, decimals: int) -> FaceCoefficients:
        """Rounded to ``decimals`` places (half away from zero, as text formatting does); ``decimals`` in [0, 15]."""
        if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)) or not 0 <= decimals <= 15:
            raise CoefficientError(f"decimals must be an integer in [0, 15], got {decimals!r:.40}")
        scale = 10.0**decimals
        rounded = np.sign(self.values) * np.floor(np.abs(self.values) * scale + 0.5) / scale
        rounded = np.where(rounded == 0, 0.0, rounded)  # no negative zeros
        return FaceCoefficients(np.clip(np.nan_to_num(rounded), _LOW, _HIGH), self.missing)

    def replace(self, **values: float) -> FaceCoefficients:
        """A copy with some channels (any dialect) set to new values."""
        array = np.nan_to_num(self.values.copy())
        missing = set(self.missing)
        for raw_name, value in values.items():
            name = canonical_name(raw_name)
            array[CHANNEL_INDEX[name]] = as_float(value, name)
            missing.discard(name)
        return FaceCoefficients(array, frozenset(missing))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FaceCoefficients):
            return NotImplemented
        return self.missing == other.missing and bool(np.array_equal(self.values, other.values, equal_nan=True))

    def __hash__(self) -> int:
        return hash((np.nan_to_num(self.values).tobytes(), self.missing))

    def __repr__(self) -> str:
        active = {n: round(float(v), 3) for n, v in zip(CHANNELS, self.values) if np.isfinite(v) and v != 0}
        return f"FaceCoefficients({active}, missing={sorted(self.missing)})"


def as_float(value: object, name: str) -> float:
    """A real number (int or float, numpy's included) as a float; anything else raises naming the channel."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise CoefficientError(f"{name} must be a number, got {type(value).__name__} {value!r:.40}", name)
    try:
        number = float(value)
    except OverflowError:
        raise CoefficientError(f"{name} = {value!r:.40} is too large: values must be finite", name) from None
    if not math.isfinite(number):
        raise CoefficientError(f"{name} is {value!r}: values must be finite", name)
    return number


def _as_vector(values: object, size: int) -> np.ndarray:
    """``size`` channel values as a float64 array; bools, strings, complex numbers and anything else that is not
    a real number raise :class:`CoefficientError` naming the channel."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError) as error:
        raise CoefficientError(f"expected {size} channel values, got {type(values).__name__} ({error})") from None
    if array.shape != (size,):
        raise CoefficientError(f"expected {size} channel values, got shape {array.shape}")
    if array.dtype.kind in "iuf":
        return array.astype(np.float64)
    return np.array([as_float(v.item() if isinstance(v, np.generic) else v, CHANNELS[i]) for i, v in enumerate(array)])


# ICT-FaceKit splits these midline channels into _L/_R halves; no rig splits the others (jawOpen_L is a typo).
SPLIT_MIDLINE_CHANNELS: tuple[str, ...] = ("browInnerUp", "cheekPuff")


def split_channel_name(name: object) -> str | None:
    """The whole channel an ICT-FaceKit style half names (``browInnerUp_L`` -> ``browInnerUp``), else None."""
    if not isinstance(name, str) or not name.isascii():
        return None
    stem = name.strip()
    for suffix in ("_L", "_R", "Left", "Right"):
        if stem.endswith(suffix):
            base = stem[: -len(suffix)]
            for channel in SPLIT_MIDLINE_CHANNELS:
                if base.lower() == channel.lower():
                    return channel
    return None
