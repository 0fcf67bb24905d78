"""Stage 1: turn coefficients into a structured, interpretable description (the SemanticFace paper's four parts).

``describe`` derives, deterministically and in Python only, (1) an expression category from EMFACS-style rules
over FACS action units, (2) per-region muscle movements with intensity words, (3) an emotion cue and (4) the
symmetry of the face. Templates in ``prompts/`` only lay the resulting strings out (see ``semanticface.prompts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError, UnobservableFaceError
from semanticface.schema import ARKIT_TO_FACS, BLENDSHAPES, CHANNEL_INDEX, CHANNEL_REGION, REGIONS

NO_MOVEMENT = "no visible movement"
NOT_OBSERVABLE = "not clearly observable"
UNKNOWN = "unknown (not read)"  # a region none of whose channels was read
UNOBSERVABLE = "not observable (no channel was read)"  # a frame with every blendshape missing (tracking lost)

# Region titles as they appear in the text ("- Brows: ...").
REGION_TITLES: dict[str, str] = {r: r.capitalize() for r in REGIONS}


@dataclass(frozen=True)
class IntensityScale:
    """The one table of intensity words: a channel at or above a threshold gets that word (highest wins)."""

    trace: float = field(default=0.05, metadata={"help": "Lowest value that counts as any movement at all."})
    slight: float = field(default=0.15, metadata={"help": "Lower bound of 'slight'."})
    moderate: float = field(default=0.35, metadata={"help": "Lower bound of 'moderate'."})
    strong: float = field(default=0.6, metadata={"help": "Lower bound of 'strong'."})
    extreme: float = field(default=0.85, metadata={"help": "Lower bound of 'extreme'."})

    def __post_init__(self) -> None:
        levels = [v for _, v in self.levels()]
        if levels != sorted(levels) or len(set(levels)) != len(levels) or levels[0] <= 0 or levels[-1] > 1:
            raise ConfigError(f"intensity thresholds must increase strictly within (0, 1], got {levels}")

    def levels(self) -> list[tuple[str, float]]:
        return [(w, getattr(self, w)) for w in ("trace", "slight", "moderate", "strong", "extreme")]

    def word(self, value: float) -> str | None:
        """Intensity word of a value, or None below ``trace``."""
        found = None
        for name, low in self.levels():
            if value >= low:
                found = name
        return found

    def threshold(self, word: str) -> float:
        if word not in dict(self.levels()):
            raise ConfigError(f"unknown intensity word {word!r}; known: {[w for w, _ in self.levels()]}")
        return float(getattr(self, word))


@dataclass(frozen=True)
class DescriptionConfig:
    """Everything ``describe`` decides by threshold."""

    intensity: IntensityScale = field(
        default_factory=IntensityScale, metadata={"help": "Intensity words and their thresholds."}
    )
    mention_from: str = field(
        default="slight", metadata={"help": "Weakest intensity word a movement needs to be described."}
    )
    au_active: float = field(
        default=0.25, metadata={"help": "Action-unit intensity at which it counts for the expression rules."}
    )
    asymmetry: float = field(
        default=0.15, metadata={"help": "Left/right difference above which the face is called asymmetric."}
    )
    blend_margin: float = field(
        default=0.1,
        metadata={"help": "Two matched emotions whose scores differ by less than this are reported as a blend."},
    )

    def __post_init__(self) -> None:
        self.intensity.threshold(self.mention_from)


@dataclass(frozen=True)
class Movement:
    """One described muscle movement: an action in a region, its intensity and side."""

    region: str
    action: str
    channels: tuple[str, ...]
    value: float
    intensity: str
    side: str | None  # "left", "right", "both" (subject's own sides) or None for midline/directional movements
    text: str


@dataclass(frozen=True)
class Symmetry:
    symmetric: bool
    side: str | None = None  # the subject's side that moves more
    region: str | None = None
    channel: str | None = None
    difference: float = 0.0
    text: str = "symmetric"


@dataclass(frozen=True)
class FaceDescription:
    """Structured stage-1 description; ``sections()`` gives the strings the templates lay out."""

    category: str  # "neutral", "other", an emotion name, or "mixed"
    category_text: str
    emotions: tuple[str, ...]  # matched emotions, strongest first (two for a blend)
    regions: dict[str, tuple[Movement, ...]]
    emotion: str
    symmetry: Symmetry
    action_units: dict[str, float]  # active AUs (>= au_active) and their intensities
    unknown: dict[str, tuple[str, ...]] = field(default_factory=dict)  # region -> its channels that were not read
    observable: bool = True  # False only for the explicit "not observable" description of an all-missing frame

    def region_text(self, region: str) -> str:
        """The region's movements; a region with channels that were not read says so (never "no visible
        movement" about what nobody saw)."""
        movements = self.regions.get(region, ())
        text = "; ".join(m.text for m in movements) if movements else NO_MOVEMENT
        missing = self.unknown.get(region, ())
        if not missing:
            return text
        if len(missing) == len(_REGION_BLENDSHAPES[region]):
            return UNKNOWN
        named = ", ".join(missing) if len(missing) <= 3 else f"{len(missing)} of its channels"
        if not movements:
            text = f"{NO_MOVEMENT} in what was read"
        return f"{text}; unknown in part ({named} not read)"

    def unknown_regions(self) -> tuple[str, ...]:
        """Regions with at least one channel that was not read."""
        return tuple(r for r in REGIONS if self.unknown.get(r))

    def active_regions(self) -> tuple[str, ...]:
        return tuple(r for r in REGIONS if self.regions.get(r))

    def sections(self) -> dict[str, str]:
        """``{"expression", <each region>, "emotion", "symmetry"} -> text``, the fields the templates render."""
        out = {"expression": self.category_text}
        out.update({r: self.region_text(r) for r in REGIONS})
        out["emotion"] = self.emotion
        out["symmetry"] = self.symmetry.text
        return out


SECTION_NAMES: tuple[str, ...] = ("expression", *REGIONS, "emotion", "symmetry")
_REGION_BLENDSHAPES: dict[str, tuple[str, ...]] = {
    r: tuple(n for n in BLENDSHAPES if CHANNEL_REGION[n] == r) for r in REGIONS
}

# --- movements ------------------------------------------------------------------------------------------------

# Phrase for each ARKit action, by its side-less stem. Sided stems are merged across the two sides.
_ACTIONS: dict[str, str] = {
    "browDown": "brow lowered",
    "browInnerUp": "inner brows raised",
    "browOuterUp": "outer brow raised",
    "eyeBlink": "eyelid closed",
    "eyeSquint": "lower eyelid tightened",
    "eyeWide": "eye widened",
    "cheekSquint": "cheek raised",
    "cheekPuff": "cheeks puffed out",
    "noseSneer": "nose wrinkled",
    "jawOpen": "jaw dropped open",
    "jawForward": "jaw thrust forward",
    "jawLeft": "jaw shifted to the subject's left",
    "jawRight": "jaw shifted to the subject's right",
    "mouthClose": "lips closed over the open jaw",
    "mouthFunnel": "lips funneled",
    "mouthPucker": "lips puckered",
    "mouthLeft": "mouth shifted to the subject's left",
    "mouthRight": "mouth shifted to the subject's right",
    "mouthSmile": "lip corner pulled up",
    "mouthFrown": "lip corner pulled down",
    "mouthDimple": "lip corner dimpled",
    "mouthStretch": "lip corner stretched sideways",
    "mouthRollLower": "lower lip rolled in",
    "mouthRollUpper": "upper lip rolled in",
    "mouthShrugLower": "lower lip pushed up",
    "mouthShrugUpper": "upper lip pushed up",
    "mouthPress": "lips pressed",
    "mouthLowerDown": "lower lip pulled down",
    "mouthUpperUp": "upper lip raised",
    "tongueOut": "tongue out",
}
_GAZE_PREFIX = "eyeLook"


def _stem(name: str) -> tuple[str, str | None]:
    if name in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):
        return name, None
    for side in ("Left", "Right"):
        if name.endswith(side):
            return name[: -len(side)], side.lower()
    return name, None


# stem -> (left channel, right channel) or (channel,), in canonical order of first appearance.
_GROUPS: dict[str, tuple[str, ...]] = {}
for _name in BLENDSHAPES:
    if _name.startswith(_GAZE_PREFIX):
        continue
    _s, _ = _stem(_name)
    _GROUPS.setdefault(_s, ())
    _GROUPS[_s] = (*_GROUPS[_s], _name)


def _movements(values: np.ndarray, config: DescriptionConfig) -> dict[str, tuple[Movement, ...]]:
    scale = config.intensity
    floor = scale.threshold(config.mention_from)
    regions: dict[str, list[Movement]] = {r: [] for r in REGIONS}
    for stem, channels in _GROUPS.items():
        action = _ACTIONS[stem]
        region = CHANNEL_REGION[channels[0]]
        vals = [float(values[CHANNEL_INDEX[c]]) for c in channels]
        if max(vals) < floor:
            continue
        if len(channels) == 1:
            word = scale.word(vals[0])
            regions[region].append(Movement(region, action, channels, vals[0], word, None, f"{action} ({word})"))  # type: ignore[arg-type]
            continue
        lv, rv = vals
        lw, rw = (scale.word(v) if v >= floor else None for v in (lv, rv))
        if lw and rw:
            detail = lw if lw == rw else f"{lw} left, {rw} right"
            text = f"{action} on both sides ({detail})"
            regions[region].append(
                Movement(region, action, channels, max(lv, rv), max_word(lw, rw, scale), "both", text)
            )
        else:
            side, word, value = ("left", lw, lv) if lw else ("right", rw, rv)
            text = f"{action} on the {side} ({word})"
            regions[region].append(Movement(region, action, channels, value, word, side, text))  # type: ignore[arg-type]
    gaze = _gaze(values, config)
    if gaze is not None:
        regions["eyes"].append(gaze)
    return {r: tuple(m) for r, m in regions.items()}


def max_word(a: str, b: str, scale: IntensityScale) -> str:
    return a if scale.threshold(a) >= scale.threshold(b) else b


def _gaze(values: np.ndarray, config: DescriptionConfig) -> Movement | None:
    """Both eyes' look channels combined into one gaze direction (the subject's left/right, up/down)."""

    def v(name: str) -> float:
        return float(values[CHANNEL_INDEX[name]])

    # Looking to the subject's left turns the left eye out and the right eye in.
    to_left = (v("eyeLookOutLeft") + v("eyeLookInRight")) / 2
    to_right = (v("eyeLookInLeft") + v("eyeLookOutRight")) / 2
    up = (v("eyeLookUpLeft") + v("eyeLookUpRight")) / 2
    down = (v("eyeLookDownLeft") + v("eyeLookDownRight")) / 2
    horizontal, vertical = to_left - to_right, up - down
    floor = config.intensity.threshold(config.mention_from)
    parts: list[tuple[str, float]] = []
    if abs(vertical) >= floor:
        parts.append(("up" if vertical > 0 else "down", abs(vertical)))
    if abs(horizontal) >= floor:
        parts.append(("to the subject's left" if horizontal > 0 else "to the subject's right", abs(horizontal)))
    if not parts:
        return None
    strength = max(p[1] for p in parts)
    word = config.intensity.word(strength)
    direction = " and ".join(p[0] for p in parts)
    channels = tuple(n for n in BLENDSHAPES if n.startswith(_GAZE_PREFIX))
    return Movement("eyes", "gaze", channels, strength, word, None, f"gaze {direction} ({word})")  # type: ignore[arg-type]


# --- action units and categories --------------------------------------------------------------------------------

_AU_CHANNELS: dict[str, tuple[str, ...]] = {}
for _name, _aus in ARKIT_TO_FACS.items():
    for _au in _aus:
        _AU_CHANNELS.setdefault(_au, ())
        _AU_CHANNELS[_au] = (*_AU_CHANNELS[_au], _name)


def action_units(coefficients: FaceCoefficients) -> dict[str, float]:
    """Intensity of every FACS action unit: the max of its ARKit channels (missing channels count as 0)."""
    values = np.nan_to_num(coefficients.values)
    return {au: max(float(values[CHANNEL_INDEX[c]]) for c in chans) for au, chans in _AU_CHANNELS.items()}


@dataclass(frozen=True)
class Prototype:
    """An EMFACS-style prototype: every group in ``required`` needs one active AU, no AU in ``excludes`` may be
    active; active ``support`` AUs add evidence. The score is the mean intensity of the evidence."""

    emotion: str
    required: tuple[tuple[str, ...], ...]
    support: tuple[str, ...] = ()
    cue: str = ""
    excludes: tuple[str, ...] = ()  # AUs whose activity contradicts the prototype (e.g. AU1 in anger)


PROTOTYPES: tuple[Prototype, ...] = (
    Prototype("happiness", (("AU12",),), ("AU6",), "lip corners pulled up"),
    Prototype("sadness", (("AU15",), ("AU1", "AU4")), ("AU17",), "lip corners pulled down under a troubled brow"),
    Prototype("surprise", (("AU1",), ("AU2",), ("AU5", "AU26")), ("AU5", "AU26"), "raised brows with widened eyes or a dropped jaw", ("AU4",)),
    Prototype("fear", (("AU1",), ("AU4",), ("AU5", "AU20")), ("AU2", "AU20", "AU26"), "raised and drawn-together brows with tense eyes or stretched lips"),
    Prototype("anger", (("AU4",), ("AU5", "AU7", "AU24")), ("AU7", "AU24"), "lowered brows with tightened lids or pressed lips", ("AU1",)),
    Prototype("disgust", (("AU9", "AU10"),), ("AU15", "AU16", "AU17"), "wrinkled nose or raised upper lip"),
)  # fmt: skip


def _prototype_score(proto: Prototype, aus: dict[str, float], on: float) -> float | None:
    if any(aus[a] >= on for a in proto.excludes):
        return None
    evidence = []
    for group in proto.required:
        best = max(aus[a] for a in group)
        if best < on:
            return None
        evidence.append(best)
    evidence += [aus[a] for a in proto.support if aus[a] >= on]
    return float(np.mean(evidence))


def _contempt(values: np.ndarray, config: DescriptionConfig) -> tuple[float, str] | None:
    """Unilateral lip corner pull or dimpler (AU12/AU14 on one side only)."""
    for stem in ("mouthDimple", "mouthSmile"):
        lv, rv = (float(values[CHANNEL_INDEX[stem + s]]) for s in ("Left", "Right"))
        strong, weak = max(lv, rv), min(lv, rv)
        if strong >= config.au_active and strong - weak >= config.asymmetry and weak < config.au_active:
            return strong, "left" if lv > rv else "right"
    return None


def _category(
    values: np.ndarray, aus: dict[str, float], config: DescriptionConfig
) -> tuple[str, str, tuple[str, ...], str]:
    on = config.au_active
    scores: dict[str, float] = {}
    contempt = _contempt(values, config)
    for proto in PROTOTYPES:
        if proto.emotion == "happiness" and contempt is not None:
            continue  # a one-sided smile is contempt, not happiness
        score = _prototype_score(proto, aus, on)
        if score is not None:
            scores[proto.emotion] = score
    if contempt is not None:
        scores["contempt"] = contempt[0]
    word_of = config.intensity.word
    if not scores:
        facial = [au for au, v in aus.items() if v >= on and not au.startswith(("AU6", "AU45"))]
        facial = [au for au in facial if au not in ("AU61", "AU62", "AU63", "AU64")]
        if not facial:
            return "neutral", "neutral", (), NOT_OBSERVABLE
        return "other", "other facial activity (no prototypical emotion)", (), NOT_OBSERVABLE
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    cues = {p.emotion: p.cue for p in PROTOTYPES}
    cues["contempt"] = f"one-sided lip corner tightening on the subject's {contempt[1]}" if contempt else ""
    top, top_score = ranked[0]
    if len(ranked) > 1 and top_score - ranked[1][1] < config.blend_margin:
        second = ranked[1][0]
        text = f"mixed: {top} and {second}"
        emotion = f"{cues[top]} point to {top}; {cues[second]} point to {second}"
        return "mixed", text, (top, second), emotion
    text = f"{top} ({word_of(top_score)})"
    return top, text, (top,), f"{cues[top]} point to {top}"


def _symmetry(values: np.ndarray, config: DescriptionConfig, missing: frozenset[str] = frozenset()) -> Symmetry:
    best: tuple[float, str, str] | None = None
    for stem, channels in _GROUPS.items():
        if len(channels) != 2 or missing.intersection(channels):
            continue  # a pair with a side not read says nothing about symmetry
        left, right = channels
        diff = float(values[CHANNEL_INDEX[left]] - values[CHANNEL_INDEX[right]])
        if best is None or abs(diff) > abs(best[0]):
            best = (diff, stem, left if diff > 0 else right)
    if best is None:
        return Symmetry(True, text=f"{NOT_OBSERVABLE} (no left/right pair was read)")
    diff, stem, channel = best
    if abs(diff) < config.asymmetry:
        return Symmetry(True)
    side = "left" if diff > 0 else "right"
    region = CHANNEL_REGION[channel]
    text = f"asymmetric: stronger on the subject's {side} side, in the {region} ({_ACTIONS[stem]})"
    return Symmetry(False, side, region, channel, abs(diff), text)


def describe(
    coefficients: FaceCoefficients, config: DescriptionConfig | None = None, *, unobservable: str = "raise"
) -> FaceDescription:
    """The stage-1 description of a face. Deterministic: the same coefficients always give the same text.

    Missing channels (e.g. tongueOut from MediaPipe) are not movements: the regions they belong to say which
    channels were not read (``FaceDescription.unknown``), and a left/right pair with a side missing is left out of
    the symmetry. A frame with every blendshape missing (tracking lost) is no face at all: it raises
    :class:`UnobservableFaceError`, or with ``unobservable="describe"`` gives an explicit "not observable"
    description.
    """
    if unobservable not in ("raise", "describe"):
        raise ConfigError(f"unobservable must be 'raise' or 'describe', got {unobservable!r}")
    config = config or DescriptionConfig()
    missing = frozenset(coefficients.missing)
    unknown = {r: tuple(n for n in channels if n in missing) for r, channels in _REGION_BLENDSHAPES.items()}
    unknown = {r: names for r, names in unknown.items() if names}
    if missing.issuperset(BLENDSHAPES):
        if unobservable == "raise":
            raise UnobservableFaceError(
                "every blendshape channel is missing (tracking lost?): there is no face to describe; "
                "skip the frame, or pass unobservable='describe' for an explicit 'not observable' description"
            )
        return FaceDescription(
            "not observable", UNOBSERVABLE, (), {}, UNOBSERVABLE, Symmetry(True, text=UNOBSERVABLE), {}, unknown, False
        )
    values = np.nan_to_num(coefficients.values)
    aus = action_units(coefficients)
    category, category_text, emotions, emotion = _category(values, aus, config)
    return FaceDescription(
        category=category,
        category_text=category_text,
        emotions=emotions,
        regions=_movements(values, config),
        emotion=emotion,
        symmetry=_symmetry(values, config, missing),
        action_units={au: v for au, v in aus.items() if v >= config.au_active},
        unknown=unknown,
    )


def parse_description(text: str) -> dict[str, str]:
    """Split a rendered description (default layout) back into its sections.

    Returns ``{section: text}`` for the sections found (keys from ``SECTION_NAMES``); unknown lines are ignored,
    so a partial or garbled model output gives the sections it does contain.
    """
    labels = {"expression": "expression", "emotion cue": "emotion", "symmetry": "symmetry"}
    titles = {t.lower(): r for r, t in REGION_TITLES.items()}
    out: dict[str, str] = {}
    for raw in str(text).splitlines():
        line = raw.strip()
        bullet = line.startswith(("- ", "* "))
        if bullet:
            line = line[2:].strip()
        if ":" not in line:
            continue
        label, _, rest = line.partition(":")
        key = label.strip().strip("*").strip().lower()
        section = titles.get(key) if bullet or key in titles else None
        section = section or labels.get(key)
        if section and section not in out:
            out[section] = rest.strip()
    return out
