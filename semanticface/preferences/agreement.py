"""Agreement of two rankings of the same candidates: Kendall's tau-b over the candidate pairs (ties allowed).

Used for the pixel annotator against the coefficient oracle, and for people against each other (the export
summary's inter-annotator agreement).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

from semanticface.preferences.storage import Ranking


def kendall_tau(a: Mapping[str, int], b: Mapping[str, int]) -> float | None:
    """Kendall's tau-b of two rank maps (``{candidate: rank}``, equal ranks tie) over their common candidates;
    None when undefined (fewer than 2 common candidates, or one side ties everything)."""
    common = sorted(set(a) & set(b))
    concordant = discordant = ties_a = ties_b = 0
    for x, y in combinations(common, 2):
        da, db = a[x] - a[y], b[x] - b[y]
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif (da > 0) == (db > 0):
            concordant += 1
        else:
            discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return None if denominator == 0 else (concordant - discordant) / denominator


def mean_tau(pairs: Iterable[tuple[Ranking, Ranking]]) -> tuple[float | None, int]:
    """Mean tau-b over ranking pairs (undefined ones skipped) and how many were defined."""
    taus = [t for a, b in pairs if (t := kendall_tau(a.rank_of(), b.rank_of())) is not None]
    return (sum(taus) / len(taus) if taus else None), len(taus)


def annotator_agreement(a: Sequence[Ranking], b: Sequence[Ranking]) -> dict[str, float | int | None]:
    """Mean tau-b of two annotators over the items both ranked; also how often they pick the same best candidate."""
    by_item = {r.item_id: r for r in b}
    pairs = [(r, by_item[r.item_id]) for r in a if r.item_id in by_item]
    tau, defined = mean_tau(pairs)
    same_best = sum(bool(set(x.groups[0]) & set(y.groups[0])) for x, y in pairs if x.groups and y.groups)
    return {
        "items": len(pairs),
        "kendall_tau": tau,
        "tau_items": defined,
        "same_best": same_best / len(pairs) if pairs else None,
    }


def inter_annotator_agreement(rankings: Sequence[Ranking]) -> dict[str, float | int | None]:
    """Mean tau-b over every pair of different annotators' rankings of the same item."""
    by_item: dict[str, dict[str, Ranking]] = defaultdict(dict)
    for ranking in rankings:
        by_item[ranking.item_id][ranking.annotator] = ranking  # an annotator's latest ranking of the item
    pairs = [p for item in by_item.values() for p in combinations(item.values(), 2)]
    tau, defined = mean_tau(pairs)
    return {"items_ranked_twice": sum(len(v) > 1 for v in by_item.values()), "pairs": defined, "kendall_tau": tau}
