"""Description-coefficient consistency: does a model's text say what its own numbers say?

The stage-1 description is a deterministic function of the coefficients (``semantics.describe``), so a model
whose text and numbers agree reproduces, section by section, the description re-derived from its numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from semanticface.coefficients import FaceCoefficients
from semanticface.semantics import SECTION_NAMES, describe, parse_description


def _normalise(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


def section_agreement(description: str, coefficients: FaceCoefficients, *, decimals: int = 2) -> dict[str, bool]:
    """``{section: predicted text == re-derived text}`` for every section the predicted description contains.

    The coefficients are quantised to the target's decimals first, as the training targets were described from
    quantised numbers. Missing sections are left out (they count as parse issues, not as disagreement).
    """
    description_of_numbers = describe(coefficients.quantized(decimals), unobservable="describe")
    if not description_of_numbers.observable:
        return {}  # no blendshape was read: the numbers settle nothing
    derived = description_of_numbers.sections()
    unsettled = set(description_of_numbers.unknown_regions())  # regions with channels not read: nothing to check
    predicted = parse_description(description)
    return {
        name: _normalise(predicted[name]) == _normalise(derived[name])
        for name in SECTION_NAMES
        if name in predicted and name not in unsettled
    }


@dataclass
class ConsistencyStats:
    """Agreement rate over all compared sections, per section, and the share of outputs fully consistent."""

    rate: float
    per_section: dict[str, float] = field(default_factory=dict)
    fully_consistent: float = math.nan
    compared: int = 0

    def to_extra(self) -> dict[str, float]:
        out = {"description_consistency": self.rate, "fully_consistent_rate": self.fully_consistent}
        out.update({f"consistency_{name}": rate for name, rate in self.per_section.items()})
        return out


def consistency(
    descriptions: Sequence[str], coefficients: Sequence[FaceCoefficients | None], *, decimals: int = 2
) -> ConsistencyStats:
    """Consistency over predictions with parsed coefficients and a non-empty description (others are skipped)."""
    per: dict[str, list[bool]] = {}
    full: list[bool] = []
    for text, coeffs in zip(descriptions, coefficients):
        if coeffs is None or not text.strip():
            continue
        agreement = section_agreement(text, coeffs, decimals=decimals)
        if not agreement:
            continue
        full.append(all(agreement.values()) and len(agreement) == len(SECTION_NAMES))
        for name, ok in agreement.items():
            per.setdefault(name, []).append(ok)
    cells = [ok for values in per.values() for ok in values]
    if not cells:
        return ConsistencyStats(math.nan)
    return ConsistencyStats(
        rate=sum(cells) / len(cells),
        per_section={name: sum(v) / len(v) for name, v in per.items()},
        fully_consistent=sum(full) / len(full),
        compared=len(full),
    )
