"""The order candidates are shown in: shuffled per item and per annotator, seeded, so the model's own output (the
first candidate of every item) is not always in the first place and each annotator sees their own order.

The page names candidates by their place on screen (slots ``p1``, ``p2``, ...), never by candidate id; a submission
in slots is turned back into candidate ids with the same seeded order, and that order is stored with the ranking.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from semanticface.preferences.storage import RankingError


def display_order(candidate_ids: Sequence[str], *, item_id: str, annotator: str, seed: int | None) -> tuple[str, ...]:
    """``candidate_ids`` in the order ``annotator`` sees them for ``item_id``; unshuffled when ``seed`` is None."""
    ids = tuple(candidate_ids)
    if seed is None:
        return ids
    digest = hashlib.sha256(f"{seed}\x00{annotator}\x00{item_id}".encode()).digest()
    permutation = np.random.default_rng(int.from_bytes(digest[:8], "little")).permutation(len(ids))
    return tuple(ids[i] for i in permutation)


def slot(position: int) -> str:
    """The on-screen name of the candidate at 0-based ``position``."""
    return f"p{position + 1}"


def slot_position(name: str, count: int) -> int:
    """0-based position of slot ``name`` (``p1``..``p<count>``); RankingError otherwise."""
    if not (isinstance(name, str) and name[:1] == "p" and name[1:].isdigit() and 1 <= int(name[1:]) <= count):
        raise RankingError(f"unknown candidate slot {name!r} (p1..p{count})")
    return int(name[1:]) - 1


def groups_from_slots(display_groups: Sequence[Sequence[str]], order: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """A ranking given in on-screen slots, in candidate ids (the order shown is ``order``)."""
    return tuple(tuple(order[slot_position(s, len(order))] for s in group) for group in display_groups)
