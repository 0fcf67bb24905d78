"""Stored rankings -> a preference dataset in TRL's format.

Columns: ``prompt`` (the training prompt messages, conversational, with the image placeholder), ``chosen`` and
``rejected`` (one assistant message each: the candidates' target texts), ``images`` (a list with the input image),
``margin`` (how many rank groups apart chosen and rejected are), ``annotator``, ``item_id``, ``chosen_id``,
``rejected_id`` and ``region``.

Pairs: ``"all"`` makes a pair of every two candidates in different groups; ``"best_vs_rest"`` pairs the best
group with every other candidate. Tied candidates never form a pair. Items marked "all bad" give no pair by
default: their order says which wrong answer is least wrong, which is not a preference for a good answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from semanticface.choices import check_choices
from semanticface.errors import ConfigError, DatasetError
from semanticface.preferences.manifest import CandidateSet
from semanticface.preferences.storage import Ranking

PAIR_MODES = ("all", "best_vs_rest")


@dataclass
class ExportConfig:
    pairs: str = field(default="all", metadata={"help": "'all' pairs or 'best_vs_rest'.", "choices": PAIR_MODES})
    min_margin: int = field(default=1, metadata={"help": "Keep pairs at least this many rank groups apart."})
    keep_all_bad: bool = field(
        default=False, metadata={"help": "Also make pairs from items marked 'all bad' (dropped by default)."}
    )
    annotators: tuple[str, ...] | None = field(
        default=None, metadata={"help": "Only these annotators' rankings (default: everyone's)."}
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if self.min_margin < 1:
            raise ConfigError("min_margin must be >= 1 (tied candidates make no pair)")


def structured_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages with every content as a list of ``{"type", "text"}`` parts, so that Arrow stores one schema."""
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message["content"]
        parts: list[dict[str, Any]]
        if isinstance(content, str):
            parts = [{"type": "text", "text": content}]
        else:
            parts = [{"type": p["type"], "text": p.get("text") if p["type"] == "text" else None} for p in content]
        out.append({"role": message["role"], "content": parts})
    return out


def _assistant(text: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]


def ranking_pairs(ranking: Ranking, mode: str = "all", min_margin: int = 1) -> list[tuple[str, str, int]]:
    """``(chosen_id, rejected_id, margin)`` for one ranking."""
    groups = ranking.groups
    better_groups = range(len(groups)) if mode == "all" else range(min(1, len(groups)))
    pairs: list[tuple[str, str, int]] = []
    for i in better_groups:
        for j in range(i + 1, len(groups)):
            if j - i < min_margin:
                continue
            pairs.extend((chosen, rejected, j - i) for chosen in groups[i] for rejected in groups[j])
    return pairs


def preference_rows(
    candidates: CandidateSet,
    rankings: Iterable[Ranking],
    prompt_messages: Sequence[Mapping[str, Any]],
    config: ExportConfig | None = None,
) -> list[dict[str, Any]]:
    """One row per preference pair; images are opened once per item."""
    config = config or ExportConfig()
    prompt = structured_messages(prompt_messages)
    if not any(p["type"] == "image" for m in prompt for p in m["content"]):
        raise ConfigError("the prompt messages need an image placeholder ({'type': 'image'})")
    rows: list[dict[str, Any]] = []
    images: dict[str, Image.Image] = {}
    for ranking in rankings:
        if config.annotators is not None and ranking.annotator not in config.annotators:
            continue
        if ranking.all_bad and not config.keep_all_bad:
            continue
        if ranking.item_id not in candidates:
            raise DatasetError(
                f"ranking {ranking.submission_id} names item {ranking.item_id!r}, not in {candidates.root}"
            )
        item = candidates.get(ranking.item_id)
        pairs = ranking_pairs(ranking, config.pairs, config.min_margin)
        if not pairs:
            continue
        if item.id not in images:
            path = candidates.root / item.image
            try:
                with Image.open(path) as image:
                    images[item.id] = image.convert("RGB")
            except OSError as error:
                raise DatasetError(f"{path}: cannot read the input image ({error})") from None
        shown = {cid: i + 1 for i, cid in enumerate(ranking.display_order)}  # place on screen, 1 = first
        for chosen_id, rejected_id, margin in pairs:
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": _assistant(item.candidate(chosen_id).completion),
                    "rejected": _assistant(item.candidate(rejected_id).completion),
                    "images": [images[item.id]],
                    "margin": float(margin),
                    "annotator": ranking.annotator,
                    "item_id": item.id,
                    "chosen_id": chosen_id,
                    "rejected_id": rejected_id,
                    "region": item.region,
                    "chosen_position": shown.get(chosen_id, 0),  # 0: the order shown was not recorded
                    "rejected_position": shown.get(rejected_id, 0),
                }
            )
    return rows


def export_summary(rankings: Sequence[Ranking], dataset: Any) -> dict[str, Any]:
    """What ``export-prefs`` prints: pair, ranking and annotator counts, inter-annotator agreement (Kendall tau-b
    over items ranked by several people) and how often the best-ranked candidate was the one shown first."""
    from semanticface.preferences.agreement import inter_annotator_agreement

    shown_first = [r.groups[0][0] == r.display_order[0] for r in rankings if r.display_order and r.groups]
    return {
        "pairs": len(dataset),
        "rankings": len(rankings),
        "annotators": sorted({r.annotator for r in rankings}),
        "agreement": inter_annotator_agreement(rankings),
        "best_shown_first": (sum(shown_first) / len(shown_first)) if shown_first else None,
        "orders_recorded": len(shown_first),
    }


def preference_dataset(
    candidates: CandidateSet,
    rankings: Iterable[Ranking],
    prompt_messages: Sequence[Mapping[str, Any]],
    config: ExportConfig | None = None,
):
    """A ``datasets.Dataset`` of preference pairs (``save_to_disk`` / ``push_to_hub`` it as usual)."""
    from datasets import Dataset

    rows = preference_rows(candidates, rankings, prompt_messages, config)
    if not rows:
        raise DatasetError("no preference pair: every ranking was a tie, 'all bad', or filtered out")
    return Dataset.from_list(rows)
