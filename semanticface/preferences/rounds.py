"""Iterative preference rounds (SuperFace): sample from round r-1's model, annotate, export pairs, train round r.

Layout under ``output_dir``::

    round_<r>/candidates/          candidate directory (manifest.jsonl, images/, renders/)
    round_<r>/rankings.sqlite      the rankings (people through `semanticface annotate`, or the simulated annotator)
    round_<r>/preferences/         the TRL preference dataset (save_to_disk)
    round_<r>/model/               the trained policy (adapter or full model) + processor + checkpoint config
    round_<r>/metrics.json         pair counts, training metrics, held-out MAE
    rounds.json                    every finished round's metrics (and the starting model's held-out MAE)

With people annotating, a round stops after writing its candidates and prints the annotate command; running the
same command again once the rankings are in continues from there (finished rounds are never redone).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semanticface.choices import check_choices
from semanticface.errors import ConfigError, DatasetError
from semanticface.inference import DECODING_MODES
from semanticface.preferences.candidates import CANDIDATE_REGION_MODES
from semanticface.preferences.export import PAIR_MODES
from semanticface.render import RENDERER_NAMES
from semanticface.rows import dataset_split, open_dataset

if TYPE_CHECKING:
    from trl import DPOConfig, ModelConfig

logger = logging.getLogger(__name__)


ANNOTATORS = ("simulated", "people")


@dataclass
class DPOScriptArguments:
    """Data, candidate, annotation and export settings of ``recipes/dpo.py`` (YAML keys and CLI flags)."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Images to sample candidates for: a save_to_disk directory or Hub id in the semanticface row "
            "layout. Its coefficient columns are the truth the simulated annotator judges against."
        },
    )
    dataset_split: str = field(default="train", metadata={"help": "Split of dataset_name."})
    preference_dataset: str | None = field(
        default=None,
        metadata={
            "help": "An already exported preference dataset (save_to_disk): train one round on it, no sampling."
        },
    )
    eval_dataset_name: str | None = field(
        default=None, metadata={"help": "Held-out rows (with true coefficients) for the per-round MAE report."}
    )
    eval_split: str = field(default="train", metadata={"help": "Split of eval_dataset_name."})
    eval_samples: int = field(default=32, metadata={"help": "Held-out rows scored after every round."})
    num_rounds: int = field(default=1, metadata={"help": "Preference rounds to run."})
    images_per_round: int = field(default=32, metadata={"help": "Images sampled for candidates in each round."})
    annotator: str = field(
        default="simulated",
        metadata={"help": "'simulated' (automatic, needs true coefficients) or 'people'.", "choices": ANNOTATORS},
    )
    min_rankings_per_item: int = field(
        default=1, metadata={"help": "With people: rankings each item needs before the round trains."}
    )
    simulated_noise: float = field(default=0.0, metadata={"help": "Simulated annotator's distance noise (std)."})
    simulated_tie_threshold: float = field(default=0.0, metadata={"help": "Simulated annotator's tie threshold."})
    num_samples: int = field(default=4, metadata={"help": "Model samples per image."})
    temperatures: list[float] = field(
        default_factory=lambda: [0.7, 1.0], metadata={"help": "Sampling temperatures, cycled over samples."}
    )
    sample_max_new_tokens: int = field(default=1024, metadata={"help": "Generation budget of one sample."})
    decoding: str = field(
        default="generate",
        metadata={
            "help": "'generate' or 'forced' (template-forced: every sample parses; see semanticface.decoding).",
            "choices": DECODING_MODES,
        },
    )
    num_perturbations: int = field(
        default=0,
        metadata={"help": "Extra candidates: half-face perturbations of the model's own output (never of the data)."},
    )
    perturbation_scale: float = field(default=0.1, metadata={"help": "Std of the perturbations."})
    region_mode: str = field(
        default="full",
        metadata={
            "help": "'full', 'upper', 'lower' or 'alternate' (region-aware candidates).",
            "choices": CANDIDATE_REGION_MODES,
        },
    )
    max_candidates: int = field(default=6, metadata={"help": "At most this many candidates per image."})
    renderer: str = field(
        default="avatar",
        metadata={"help": "Renderer of candidates: avatar, avatar-shaded, mesh.", "choices": RENDERER_NAMES},
    )
    mesh_dir: str | None = field(default=None, metadata={"help": "Mesh folder for renderer: mesh."})
    render_size: int = field(default=192, metadata={"help": "Side of candidate renders in pixels."})
    pairs: str = field(default="all", metadata={"help": "'all' pairs or 'best_vs_rest'.", "choices": PAIR_MODES})
    min_margin: int = field(default=1, metadata={"help": "Keep pairs at least this many rank groups apart."})
    min_pixels: int | None = field(default=None, metadata={"help": "Qwen-VL image resolution lower bound."})
    max_pixels: int | None = field(default=None, metadata={"help": "Qwen-VL image resolution upper bound."})
    sampling_seed: int = field(default=0, metadata={"help": "Seed of candidate sampling and the simulated annotator."})
    train_vision_tower: bool | None = field(
        default=None,
        metadata={"help": "Train the vision tower too; default: as the SFT did (its checkpoint config)."},
    )
    rpo_alpha: float | None = field(
        default=None,
        metadata={"help": "Weight of TRL's 'sft' loss (NLL of the chosen completion) added to loss_type: RPO."},
    )

    def __post_init__(self) -> None:
        check_choices(self)  # YAML values too (argparse checks flags only), before any model loads
        if self.num_rounds < 1:
            raise ConfigError("num_rounds must be >= 1")
        if self.dataset_name is None and self.preference_dataset is None:
            raise ConfigError("give dataset_name (images to sample from) or preference_dataset (exported pairs)")


def load_rows(name: str, split: str) -> Any:
    """Split ``split`` of a saved (``save_to_disk``) dataset directory, a data folder or a Hub dataset id."""
    return dataset_split(open_dataset(name), split, name)


def _rows_for_round(rows: Any, round_index: int, count: int) -> list[int]:
    # Each round takes the next block of rows (wrapping), so rounds see different images.
    n = len(rows)
    if n == 0:
        raise DatasetError("the candidate dataset is empty")
    return [((round_index - 1) * count + i) % n for i in range(min(count, n))]


def row_truths(rows: Any, indices: list[int]) -> list[Any]:
    from semanticface.rows import row_to_coefficients

    return [row_to_coefficients(rows[i], where=f"row {i}") for i in indices]


def row_images(rows: Any, indices: list[int]) -> list[Any]:
    out = []
    for i in indices:
        images = rows[i].get("images")
        if not images:
            raise DatasetError(f"row {i}: no image in column 'images'")
        out.append(images[0].convert("RGB"))
    return out


def evaluate_policy(model_path: str, rows: Any, args: DPOScriptArguments) -> dict[str, Any]:
    """Predictions on held-out rows, scored against their coefficients (MAE overall and per region); with
    decoding='forced' read with median numbers, as distillation is evaluated."""
    from semanticface.evaluation.metrics import coefficient_metrics
    from semanticface.inference import SemanticFacePredictor

    indices = list(range(min(args.eval_samples, len(rows))))
    predictor = SemanticFacePredictor.from_pretrained(
        model_path, dtype="auto", decoding=args.decoding, min_pixels=args.min_pixels, max_pixels=args.max_pixels
    )
    predictions = predictor.predict(
        row_images(rows, indices),
        max_new_tokens=args.sample_max_new_tokens,
        number_estimate="median" if args.decoding == "forced" else "mode",
    )
    metrics = coefficient_metrics([p.coefficients for p in predictions], row_truths(rows, indices))
    return {
        "num_samples": metrics.num_samples,
        "parse_failures": metrics.num_parse_failures,
        "mae": metrics.overall.mae,
        "mae_regions": {k: v.mae for k, v in metrics.regions.items()},
        "mae_halves": {k: v.mae for k, v in metrics.halves.items()},
        "readout": "median" if args.decoding == "forced" else "greedy",
    }


def write_candidates(model_path: str, rows: Any, indices: list[int], out_dir: Path, args: DPOScriptArguments) -> Any:
    from semanticface.inference import SemanticFacePredictor
    from semanticface.preferences.candidates import CandidateConfig, generate_candidates
    from semanticface.render import get_renderer

    predictor = SemanticFacePredictor.from_pretrained(
        model_path, dtype="auto", decoding=args.decoding, min_pixels=args.min_pixels, max_pixels=args.max_pixels
    )
    config = CandidateConfig(
        num_samples=args.num_samples,
        temperatures=tuple(args.temperatures),
        max_new_tokens=args.sample_max_new_tokens,
        seed=args.sampling_seed,
        num_perturbations=args.num_perturbations,
        perturbation_scale=args.perturbation_scale,
        region_mode=args.region_mode,
        max_candidates=args.max_candidates,
        render_size=args.render_size,
    )
    renderer_kwargs = {"mesh_dir": args.mesh_dir} if args.renderer == "mesh" else {}
    images_only = rows.select_columns(["images"])  # the coefficient columns may be the truth: never read them
    return generate_candidates(
        out_dir,
        row_images(images_only, indices),
        get_renderer(args.renderer, **renderer_kwargs),
        predictor=predictor,
        item_ids=[f"row-{i:06d}" for i in indices],
        metadata=[{"row": i} for i in indices],
        config=config,
    )


def annotate_round(candidates: Any, rows: Any, round_dir: Path, args: DPOScriptArguments) -> Any | None:
    """The round's rankings store, or None while people still have items to rank."""
    from semanticface.preferences.simulated import SimulatedAnnotator, SimulatedAnnotatorConfig
    from semanticface.preferences.storage import RankingStore

    store = RankingStore(round_dir / "rankings.sqlite")
    if args.annotator == "simulated":
        truths = {item.id: row_truths(rows, [int(item.metadata["row"])])[0] for item in candidates}
        annotator = SimulatedAnnotator(
            SimulatedAnnotatorConfig(
                noise=args.simulated_noise, tie_threshold=args.simulated_tie_threshold, seed=args.sampling_seed
            )
        )
        annotator.annotate(candidates, truths, store)
        return store
    counts: dict[str, int] = {}
    for ranking in store.rankings():
        counts[ranking.item_id] = counts.get(ranking.item_id, 0) + 1
    pending = [item.id for item in candidates if counts.get(item.id, 0) < args.min_rankings_per_item]
    if pending:
        logger.warning(
            "%d of %d items still need rankings. Annotate, then run this command again:\n"
            "  semanticface annotate --candidates %s --db %s",
            len(pending),
            len(candidates),
            candidates.root,
            store.path,
        )
        return None
    return store


def prepare_round(
    model_path: str, rows: Any, r: int, round_dir: Path, args: DPOScriptArguments
) -> tuple[Any, dict[str, int]] | None:
    """Round r's preference dataset (sampled, annotated, exported; reused when already saved), or None while
    people still have items to rank."""
    from datasets import load_from_disk

    from semanticface.preferences.export import ExportConfig, preference_dataset
    from semanticface.preferences.manifest import MANIFEST_NAME, CandidateSet
    from semanticface.training.formatting import build_prompt_messages

    candidates_dir = round_dir / "candidates"
    if (candidates_dir / MANIFEST_NAME).is_file():
        candidates = CandidateSet.load(candidates_dir)
    else:
        indices = _rows_for_round(rows, r, args.images_per_round)
        candidates = write_candidates(model_path, rows, indices, candidates_dir, args)
    store = annotate_round(candidates, rows, round_dir, args)
    if store is None:
        return None
    rankings = store.rankings()
    counts = {"items": len(candidates), "rankings": len(rankings)}
    saved = round_dir / "preferences"
    if (saved / "dataset_info.json").is_file():
        return load_from_disk(str(saved)), counts
    dataset = preference_dataset(
        candidates,
        rankings,
        build_prompt_messages(_target_config(model_path)),
        ExportConfig(pairs=args.pairs, min_margin=args.min_margin),
    )
    dataset.save_to_disk(str(saved))
    return load_from_disk(str(saved)), counts


def run_rounds(script_args: DPOScriptArguments, training_args: DPOConfig, model_args: ModelConfig) -> dict[str, Any]:
    """Run (or resume) every round; returns the report also written to ``output_dir/rounds.json``."""
    from accelerate import PartialState
    from datasets import load_from_disk

    from semanticface.preferences.dpo_training import save_policy, train_dpo

    state = PartialState()
    if training_args.output_dir is None:
        raise ConfigError("output_dir is required: the rounds, their datasets and rounds.json are written there")
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    report_path = output_dir / "rounds.json"
    report: dict[str, Any] = json.loads(report_path.read_text()) if report_path.is_file() else {"rounds": []}
    rows = load_rows(script_args.dataset_name, script_args.dataset_split) if script_args.dataset_name else None
    eval_rows = (
        load_rows(script_args.eval_dataset_name, script_args.eval_split) if script_args.eval_dataset_name else None
    )
    model_path = str(model_args.model_name_or_path)
    if eval_rows is not None and "start" not in report and state.is_main_process:
        report["start"] = {"model": model_path, "eval": evaluate_policy(model_path, eval_rows, script_args)}
        report_path.write_text(json.dumps(report, indent=2))
    num_rounds = 1 if script_args.preference_dataset else script_args.num_rounds
    load_kwargs = {
        "min_pixels": script_args.min_pixels,
        "max_pixels": script_args.max_pixels,
        "train_vision": script_args.train_vision_tower,
    }
    for r in range(1, num_rounds + 1):
        round_dir = output_dir / f"round_{r}"
        metrics_path = round_dir / "metrics.json"
        if metrics_path.is_file():  # finished earlier: continue from its model
            model_path = str(round_dir / "model")
            continue
        round_dir.mkdir(parents=True, exist_ok=True)
        metrics: dict[str, Any] = {"round": r, "from_model": model_path}
        if script_args.preference_dataset:
            dataset = load_from_disk(script_args.preference_dataset)
        else:
            # The main process samples, annotates and exports; the others then load what it saved.
            with state.main_process_first():
                prepared = prepare_round(model_path, rows, r, round_dir, script_args)
            if prepared is None:
                report["waiting_for"] = {
                    "round": r,
                    "candidates": str(round_dir / "candidates"),
                    "db": str(round_dir / "rankings.sqlite"),
                }
                if state.is_main_process:
                    report_path.write_text(json.dumps(report, indent=2))
                return report
            dataset, counts = prepared
            metrics.update(counts)
        metrics["pairs"] = len(dataset)
        args = dataclasses.replace(training_args, output_dir=str(round_dir / "trainer"))
        trainer, processor = train_dpo(
            model_path, dataset, args, model_args, rpo_alpha=script_args.rpo_alpha, **load_kwargs
        )
        metrics["loss_type"] = list(args.loss_type)
        metrics["loss_weights"] = list(args.loss_weights) if args.loss_weights else None
        # The last logged step (loss, rewards/accuracies, margins...) and the run summary (train_loss, runtime).
        steps = [h for h in trainer.state.log_history if "loss" in h]
        summary = [h for h in trainer.state.log_history if "train_runtime" in h]
        logged = {**(steps[-1] if steps else {}), **(summary[-1] if summary else {})}
        metrics["train"] = {k: v for k, v in logged.items() if isinstance(v, (int, float))}
        model_dir = save_policy(trainer, processor, round_dir / "model", model_path, metrics)
        del trainer
        if state.is_main_process:
            if eval_rows is not None:
                metrics["eval"] = evaluate_policy(str(model_dir), eval_rows, script_args)
            metrics_path.write_text(json.dumps(metrics, indent=2, default=str))
            report["rounds"].append(metrics)
            report.pop("waiting_for", None)
            report_path.write_text(json.dumps(report, indent=2, default=str))
        state.wait_for_everyone()  # every process trains the next round from the saved model
        model_path = str(model_dir)
    report["final_model"] = model_path
    if state.is_main_process:
        report_path.write_text(json.dumps(report, indent=2, default=str))
    return report


def _target_config(model_path: str) -> Any:
    from semanticface.checkpoint import read_target_config

    return read_target_config(model_path)
