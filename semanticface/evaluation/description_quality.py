"""Description quality: does a model's text describe the *true* face? (Consistency asks whether it describes the
model's own numbers; this asks whether it is right.)

The reference is ``describe(truth)`` (the deterministic description the training targets were written from, at
the target's decimals). Two figures:

- **expression-category accuracy**: the category the predicted ``Expression:`` line names (an emotion, ``mixed``,
  ``other`` or ``neutral``) equals the truth's;
- **per-region action precision / recall**: each region's predicted movements (e.g. "outer brow raised on the left")
  against the truth's, as sets of action + side with the intensity word left out, micro-averaged over images.

Only outputs with a description are scored (a coefficients-only output has nothing to judge); a description lacking
a region or the expression line counts as saying nothing there. Regions whose true channels were not read are
skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from semanticface.coefficients import FaceCoefficients
from semanticface.schema import REGIONS
from semanticface.semantics import NO_MOVEMENT, describe, parse_description

_INTENSITY = re.compile(r"\s*\([^()]*\)\s*$")


def category_of(expression_text: str) -> str:
    """The category an ``Expression:`` line names: ``"disgust (moderate)"`` -> disgust, ``"mixed: a and b"`` ->
    mixed, ``"other facial activity ..."`` -> other, ``"neutral"`` -> neutral."""
    text = " ".join(expression_text.lower().split())
    for word in ("mixed", "other", "neutral"):
        if text.startswith(word):
            return word
    return _INTENSITY.sub("", text).strip()


def actions_of(region_text: str) -> frozenset[str]:
    """The movements a region's text names, without their intensity words (``NO_MOVEMENT`` -> empty)."""
    items = (" ".join(part.lower().split()) for part in region_text.split(";"))
    return frozenset(a for a in (_INTENSITY.sub("", i).strip() for i in items) if a and not a.startswith(NO_MOVEMENT))


@dataclass
class DescriptionQuality:
    """Category accuracy and action precision/recall, overall and per region, over ``compared`` descriptions."""

    category_accuracy: float = math.nan
    action_precision: float = math.nan
    action_recall: float = math.nan
    per_region: dict[str, dict[str, float]] = field(default_factory=dict)
    compared: int = 0

    def to_extra(self) -> dict[str, float]:
        out = {
            "category_accuracy": self.category_accuracy,
            "action_precision": self.action_precision,
            "action_recall": self.action_recall,
        }
        for region, scores in self.per_region.items():
            out.update({f"action_{name}_{region}": value for name, value in scores.items()})
        return out


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def description_quality(
    descriptions: Sequence[str], truths: Sequence[FaceCoefficients], *, decimals: int = 2
) -> DescriptionQuality:
    """Score each non-empty predicted description against the description of its true coefficients."""
    correct = compared = 0
    counts = {r: [0, 0, 0] for r in REGIONS}  # true positives, predicted, true
    for text, truth in zip(descriptions, truths):
        predicted = parse_description(text or "")
        if not predicted:
            continue
        reference = describe(truth.quantized(decimals), unobservable="describe")
        if not reference.observable:
            continue
        compared += 1
        correct += category_of(predicted.get("expression", "")) == reference.category
        sections = reference.sections()
        for region in REGIONS:
            if region in reference.unknown:
                continue
            said, true = actions_of(predicted.get(region, "")), actions_of(sections[region])
            counts[region][0] += len(said & true)
            counts[region][1] += len(said)
            counts[region][2] += len(true)
    if not compared:
        return DescriptionQuality()
    per_region = {
        r: {"precision": _ratio(tp, n_pred), "recall": _ratio(tp, n_true)}
        for r, (tp, n_pred, n_true) in counts.items()
    }
    tp, n_pred, n_true = (sum(c[k] for c in counts.values()) for k in range(3))
    return DescriptionQuality(correct / compared, _ratio(tp, n_pred), _ratio(tp, n_true), per_region, compared)
