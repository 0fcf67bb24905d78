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

from semanticface.choices import check_choices, parser_dataclass
from semanticface.errors import ConfigError, DatasetError
from semanticface.inference import DECODING_MODES
from semanticface.preferences.candidates import CandidateConfig
from semanticface.preferences.export import ExportConfig
from semanticface.preferences.simulated import SimulatedAnnotatorConfig
from semanticface.render import RENDERER_NAMES
from semanticface.rows import dataset_split, open_dataset

if TYPE_CHECKING:
    from trl import DPOConfig, ModelConfig, TrlParser

logger = logging.getLogger(__name__)


ANNOTATORS = ("simulated", "people")


@dataclass
class DPOScriptArguments:
    """Data, round, annotation-mode, decoding and rendering settings of ``recipes/dpo.py`` (YAML keys and CLI flags).

    The candidate, simulated-annotator and export settings are the fields of :class:`CandidateConfig`,
    :class:`SimulatedAnnotatorConfig` and :class:`ExportConfig`, parsed beside this class (see :func:`dpo_parser`)."""

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
    decoding: str = field(
        default="generate",
        metadata={
            "help": "'generate' or 'forced' (template-forced: every sample parses; see semanticface.decoding).",
            "choices": DECODING_MODES,
        },
    )
    renderer: str = field(
        default="avatar",
        metadata={"help": "Renderer of candidates: avatar, avatar-shaded, mesh.", "choices": RENDERER_NAMES},
    )
    mesh_dir: str | None = field(default=None, metadata={"help": "Mesh folder for renderer: mesh."})
    min_pixels: int | None = field(default=None, metadata={"help": "Qwen-VL image resolution lower bound."})
    max_pixels: int | None = field(default=None, metadata={"help": "Qwen-VL image resolution upper bound."})
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


# The library configs under the recipe's YAML keys / flags. TRL's DPOConfig owns ``seed``, and the candidate and
# annotator configs both have one, so those (and a few ambiguous names) are renamed; every other key is the field name.
CandidateArguments = parser_dataclass(
    CandidateConfig,
    "CandidateArguments",
    __name__,
    rename={
        "seed": "sampling_seed",
        "max_new_tokens": "sample_max_new_tokens",
        "batch_size": "sample_batch_size",
        "identity": "render_identity",
    },
    group="candidates (CandidateConfig)",
)
SimulatedAnnotatorArguments = parser_dataclass(
    SimulatedAnnotatorConfig,
    "SimulatedAnnotatorArguments",
    __name__,
    prefix="simulated_",
    group="simulated annotator (SimulatedAnnotatorConfig, every key prefixed simulated_)",
)
ExportArguments = parser_dataclass(
    ExportConfig,
    "ExportArguments",
    __name__,
    rename={"annotators": "export_annotators"},
    group="preference pairs (ExportConfig)",
)


def dpo_parser() -> TrlParser:
    """``recipes/dpo.py``'s parser: DPOScriptArguments, the candidate, annotator and export configs, DPOConfig and
    ModelConfig. Every field is a YAML key and a flag; bad choices fail here, before any model loads."""
    from trl import DPOConfig, ModelConfig, TrlParser

    dataclasses_: list[Any] = [
        DPOScriptArguments,
        CandidateArguments,
        SimulatedAnnotatorArguments,
        ExportArguments,
        DPOConfig,
        ModelConfig,
    ]
    return TrlParser(dataclasses_)


def parse_dpo_arguments(
    argv: list[str] | None = None,
) -> tuple[DPOScriptArguments, CandidateConfig, SimulatedAnnotatorConfig, ExportConfig, DPOConfig, ModelConfig]:
    """Parse ``argv`` (default: ``sys.argv``; ``--config FILE`` reads a YAML) into the six configs of a DPO run."""
    script, candidates, simulated, export, training, model = dpo_parser().parse_args_and_config(argv)
    return script, candidates.build(), simulated.build(), export.build(), training, model


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


def evaluate_policy(model_path: str, rows: Any, args: DPOScriptArguments, max_new_tokens: int) -> dict[str, Any]:
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
        max_new_tokens=max_new_tokens,
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


def write_candidates(
    model_path: str, rows: Any, indices: list[int], out_dir: Path, args: DPOScriptArguments, config: CandidateConfig
) -> Any:
    from semanticface.inference import SemanticFacePredictor
    from semanticface.preferences.candidates import generate_candidates
    from semanticface.render import get_renderer

    predictor = SemanticFacePredictor.from_pretrained(
        model_path, dtype="auto", decoding=args.decoding, min_pixels=args.min_pixels, max_pixels=args.max_pixels
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


def annotate_round(
    candidates: Any, rows: Any, round_dir: Path, args: DPOScriptArguments, simulated: SimulatedAnnotatorConfig
) -> Any | None:
    """The round's rankings store, or None while people still have items to rank."""
    from semanticface.preferences.simulated import SimulatedAnnotator
    from semanticface.preferences.storage import RankingStore

    store = RankingStore(round_dir / "rankings.sqlite")
    if args.annotator == "simulated":
        truths = {item.id: row_truths(rows, [int(item.metadata["row"])])[0] for item in candidates}
        SimulatedAnnotator(simulated).annotate(candidates, truths, store)
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
    model_path: str,
    rows: Any,
    r: int,
    round_dir: Path,
    args: DPOScriptArguments,
    candidate_config: CandidateConfig | None = None,
    simulated_config: SimulatedAnnotatorConfig | None = None,
    export_config: ExportConfig | None = None,
) -> tuple[Any, dict[str, int]] | None:
    """Round r's preference dataset (sampled, annotated, exported; reused when already saved), or None while
    people still have items to rank. A config left out is its class's defaults."""
    from datasets import load_from_disk

    from semanticface.contract import build_prompt_messages
    from semanticface.preferences.export import preference_dataset
    from semanticface.preferences.manifest import MANIFEST_NAME, CandidateSet

    candidates_dir = round_dir / "candidates"
    if (candidates_dir / MANIFEST_NAME).is_file():
        candidates = CandidateSet.load(candidates_dir)
    else:
        indices = _rows_for_round(rows, r, args.images_per_round)
        candidates = write_candidates(
            model_path, rows, indices, candidates_dir, args, candidate_config or CandidateConfig()
        )
    store = annotate_round(candidates, rows, round_dir, args, simulated_config or SimulatedAnnotatorConfig())
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
        export_config or ExportConfig(),
    )
    dataset.save_to_disk(str(saved))
    return load_from_disk(str(saved)), counts


def run_rounds(
    script_args: DPOScriptArguments,
    training_args: DPOConfig,
    model_args: ModelConfig,
    candidate_config: CandidateConfig | None = None,
    simulated_config: SimulatedAnnotatorConfig | None = None,
    export_config: ExportConfig | None = None,
) -> dict[str, Any]:
    """Run (or resume) every round; returns the report also written to ``output_dir/rounds.json``. A config left
    out is its class's defaults; held-out predictions get the candidates' generation budget."""
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
    candidate_config = candidate_config or CandidateConfig()
    budget = candidate_config.max_new_tokens
    if eval_rows is not None and "start" not in report and state.is_main_process:
        report["start"] = {"model": model_path, "eval": evaluate_policy(model_path, eval_rows, script_args, budget)}
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
                prepared = prepare_round(
                    model_path, rows, r, round_dir, script_args, candidate_config, simulated_config, export_config
                )
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
                metrics["eval"] = evaluate_policy(str(model_dir), eval_rows, script_args, budget)
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
