"""`semanticface export-prefs`: stored rankings -> a TRL preference dataset (prompt/chosen/rejected/images)."""

from __future__ import annotations

import argparse

from semanticface.cli.options import add_dataclass_arguments, dataclass_from_arguments
from semanticface.preferences.export import ExportConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--candidates", required=True, help="candidate directory (with manifest.jsonl)")
    parser.add_argument("--db", required=True, help="SQLite file of rankings")
    parser.add_argument("--out", help="directory to save_to_disk the dataset into")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="also push the dataset to this Hub repo")
    parser.add_argument("--private", action="store_true", help="make the pushed dataset private")
    # --pairs, --min-margin, --keep-all-bad: ExportConfig's fields (defaults, help and choices from there).
    add_dataclass_arguments(parser, ExportConfig, exclude=("annotators",))
    parser.add_argument("--annotator", action="append", help="only this annotator's rankings (repeatable)")
    parser.add_argument(
        "--model", help="the model the candidates came from: its saved target config defines the training prompt"
    )
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="use prompt templates that come with --model (see predict)"
    )
    parser.add_argument("--target-format", choices=("semantic", "coefficients"), default="semantic")
    parser.add_argument("--decimals", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    from semanticface.contract import TargetConfig, build_prompt_messages
    from semanticface.errors import ConfigError
    from semanticface.preferences.export import export_summary, preference_dataset
    from semanticface.preferences.manifest import CandidateSet
    from semanticface.preferences.storage import RankingStore

    if not args.out and not args.push_to_hub:
        raise ConfigError("give --out DIR and/or --push-to-hub REPO_ID")
    if args.model:
        from semanticface.checkpoint import read_target_config

        target_config = read_target_config(args.model, trust_remote_code=args.trust_remote_code)
    else:
        target_config = TargetConfig(target_format=args.target_format, decimals=args.decimals)
    candidates = CandidateSet.load(args.candidates)
    config = dataclass_from_arguments(ExportConfig, args, annotators=tuple(args.annotator) if args.annotator else None)
    rankings = RankingStore(args.db).rankings()
    dataset = preference_dataset(candidates, rankings, build_prompt_messages(target_config), config)
    if args.out:
        dataset.save_to_disk(args.out)
    if args.push_to_hub:
        dataset.push_to_hub(args.push_to_hub, private=args.private)
    annotators = sorted(set(dataset["annotator"]))
    print(f"{len(dataset)} pairs from {len(rankings)} rankings by {len(annotators)} annotator(s)")
    summary = export_summary(rankings, dataset)
    agreement = summary["agreement"]
    if agreement["pairs"]:
        print(
            f"inter-annotator agreement: Kendall tau-b {agreement['kendall_tau']:.2f} over {agreement['pairs']} "
            f"pair(s) of rankings of {agreement['items_ranked_twice']} item(s) ranked by several people"
        )
    else:
        print("inter-annotator agreement: no item was ranked by two people (rank some items twice to measure it)")
    if summary["best_shown_first"] is not None:
        print(
            f"best candidate was the one shown first in {summary['best_shown_first']:.0%} of "
            f"{summary['orders_recorded']} rankings (order shuffled per annotator; ~1/k expected)"
        )
    return 0
