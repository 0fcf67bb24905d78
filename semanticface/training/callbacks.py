"""Evaluation that generates: at each evaluation, predict held-out faces with the live model and log their MAE next
to the teacher-forced eval loss (so they reach tensorboard/wandb like any metric).

The live model is wrapped in :class:`~semanticface.inference.SemanticFacePredictor` and the predictions are scored
by :mod:`semanticface.evaluation.scoring`, exactly as ``semanticface eval`` scores them: ``eval_gen_mae`` equals
the MAE ``semanticface eval`` reports for the saved model on the same rows with the same decoding. The
per-channel median, constant-mean and neutral baselines of the training split are logged beside it
(``eval_gen_median_mae``, ``eval_gen_mean_mae``, ``eval_gen_neutral_mae``), with a warning when the model's
predictions hardly vary across images.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import TargetConfig, parse_output, parse_target
from semanticface.errors import ConfigError, OutputParseError
from semanticface.evaluation.metrics import coefficient_metrics
from semanticface.evaluation.scoring import reference_median, score_with_baselines
from semanticface.rows import dataset_coefficients
from semanticface.training.formatting import IMAGE_COLUMN

logger = logging.getLogger(__name__)

EVAL_DECODINGS = ("forced", "generate")


def generation_scores(
    coefficients: Sequence[FaceCoefficients | None],
    truths: Sequence[FaceCoefficients],
    channels: tuple[str, ...],
    *,
    fill: FaceCoefficients | None = None,
) -> dict[str, float]:
    """``gen_*`` figures of parsed outputs (``None`` = parse failure): MAE over the 52 blendshapes as
    :func:`~semanticface.evaluation.metrics.coefficient_metrics` scores it (missing cells scored as ``fill``, or
    excluded without one), the parse-failure rate, and the share of ``channels`` missing in parsed outputs."""
    metrics = coefficient_metrics(coefficients, truths, fill=fill)
    parsed = [c for c in coefficients if c is not None]
    missing = sum(name in c.missing for c in parsed for name in channels)
    n = max(len(coefficients), 1)
    return {
        "gen_mae": metrics.overall.mae,
        "gen_parse_failure_rate": metrics.num_parse_failures / n,
        "gen_missing_channel_rate": missing / max(len(parsed) * len(channels), 1),
        "gen_samples": float(len(coefficients)),
    }


def score_outputs(
    texts: list[str],
    truths: list[Any],
    channels: tuple[str, ...],
    *,
    fill: FaceCoefficients | None = None,
    target_config: TargetConfig | None = None,
) -> dict[str, float]:
    """:func:`generation_scores` of raw output texts, parsed with the target's expected channels (with
    ``target_config``, by its block style: :func:`~semanticface.contract.parse_target`)."""
    coefficients: list[FaceCoefficients | None] = []
    for text in texts:
        try:
            if target_config is not None:
                coefficients.append(parse_target(text, target_config).coefficients)
                continue
            coefficients.append(parse_output(text, expected_channels=channels).coefficients)
        except OutputParseError:
            coefficients.append(None)
    return generation_scores(coefficients, truths, channels, fill=fill)


class GenerationEvalCallback(TrainerCallback):
    """After each evaluation, predict ``num_samples`` held-out rows with the live model and log ``eval_gen_*``.

    The baselines are fitted on ``train_dataset`` (default: the trainer's training set). ``decoding`` and
    ``number_estimate`` are the predictor's (default: template-forced decoding with median numbers, the cheapest
    and most accurate readout; ``decoding="generate"`` for free generation, which then needs
    ``number_estimate="mode"``). Works under DDP: every rank predicts its share of the rows, results are gathered,
    all ranks log the same numbers (only the main one reports them and shows a progress bar).
    ``last_metrics``/``last_texts`` keep the latest result for the model card.
    """

    def __init__(
        self,
        trainer: Any,
        eval_dataset: Any,
        processor: Any,
        target_config: TargetConfig,
        *,
        num_samples: int = 16,
        max_new_tokens: int | None = None,
        train_dataset: Any = None,
        decoding: str = "forced",
        number_estimate: str = "median",
        batch_size: int = 8,
    ) -> None:
        from semanticface.inference import GenerationOptions

        if decoding not in EVAL_DECODINGS:
            raise ConfigError(f"eval decoding must be one of {', '.join(EVAL_DECODINGS)}; got {decoding!r}")
        if number_estimate != "mode" and decoding != "forced":
            raise ConfigError(f"eval numbers {number_estimate!r} need decoding='forced' (got {decoding!r})")
        self.trainer = trainer
        self.processor = processor
        self.target_config = target_config
        self.decoding = decoding
        self.batch_size = batch_size
        self.rows = eval_dataset.select(range(min(num_samples, len(eval_dataset))))
        if max_new_tokens is None:
            tokenizer = getattr(processor, "tokenizer", processor)
            targets = [c[0]["content"][0]["text"] for c in self.rows["completion"]] or [""]
            max_new_tokens = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets) + 32
        self.max_new_tokens = max_new_tokens
        self.options = GenerationOptions(max_new_tokens=max_new_tokens, number_estimate=number_estimate)
        self.truths = dataset_coefficients(self.rows) if len(self.rows) else []
        train = train_dataset if train_dataset is not None else getattr(trainer, "train_dataset", None)
        self.train_truths = dataset_coefficients(train) if train is not None and len(train) else None
        # What every cell an output does not give is scored as (the same face `semanticface eval` uses).
        self.fill = reference_median(self.train_truths, self.truths).median if self.truths else None
        self.last_metrics: dict[str, float] = {}
        self.last_texts: list[str] = []

    def _predict(self, indices: list[int]) -> list[Any]:
        """Predictions for ``self.rows[indices]`` with the live model (restored to training mode afterwards)."""
        from semanticface.inference import SemanticFacePredictor

        accelerator = self.trainer.accelerator
        model = accelerator.unwrap_model(self.trainer.model)
        was_training = model.training
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        padding_side = tokenizer.padding_side  # the predictor pads left; training batches keep their side
        try:
            predictor = SemanticFacePredictor(
                model, self.processor, target_config=self.target_config, decoding=self.decoding
            )
            images = [row[IMAGE_COLUMN][0] for row in self.rows.select(indices)]
            return predictor.predict(
                images, batch_size=self.batch_size, options=self.options, progress=accelerator.is_main_process
            )
        finally:
            tokenizer.padding_side = padding_side
            model.train(was_training)

    def evaluate(self) -> dict[str, float]:
        """Predict, parse and score now; returns ``eval_gen_*`` metrics (same on every rank)."""
        accelerator = self.trainer.accelerator
        rank, world = accelerator.process_index, accelerator.num_processes
        indices = list(range(rank, len(self.rows), world))
        start = time.perf_counter()
        if accelerator.is_main_process:
            logger.info(
                "generation eval: %d held-out faces, decoding=%s, numbers=%s",
                len(self.rows),
                self.decoding,
                self.options.number_estimate,
            )
        pairs = list(zip(indices, self._predict(indices)))
        if world > 1:
            from accelerate.utils import gather_object

            pairs = gather_object(pairs)
        pairs.sort(key=lambda pair: pair[0])
        predictions = [p for _, p in pairs]
        coefficients = [p.coefficients for p in predictions]
        results, _ = score_with_baselines("model", coefficients, self.truths, self.train_truths, n_boot=0)
        model = results[0]
        metrics = generation_scores(coefficients, self.truths, self.target_config.channels(), fill=self.fill)
        own = model.metrics.own_mask
        metrics |= {
            "gen_mae_own_cells": own.mae if own is not None else math.nan,
            "gen_coverage": model.metrics.coverage,
            "gen_mean_pearson": model.metrics.mean_pearson,
            "gen_spread_ratio": model.metrics.spread_ratio,
            "gen_seconds": time.perf_counter() - start,
        }
        keys = {"median": "gen_median_mae", "constant_mean": "gen_mean_mae", "neutral": "gen_neutral_mae"}
        for baseline in results[1:]:
            metrics[keys.get(baseline.name.split(" ")[0], f"gen_{baseline.name}_mae")] = baseline.metrics.overall.mae
        self.last_metrics = {f"eval_{k}": v for k, v in metrics.items()}
        self.last_texts = [p.raw_text for p in predictions]
        if accelerator.is_main_process:
            logger.info(
                "generation eval: MAE %.4f (median constant %.4f, neutral %.4f), parse failures %d/%d, %.1f s",
                metrics["gen_mae"],
                metrics.get("gen_median_mae", math.nan),
                metrics.get("gen_neutral_mae", math.nan),
                model.metrics.num_parse_failures,
                len(predictions),
                metrics["gen_seconds"],
            )
            for warning in model.warnings:
                logger.warning("generation eval: %s", warning)
        return self.last_metrics

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any):
        if len(self.rows) == 0:
            return control
        result = self.evaluate()
        if metrics is not None:
            metrics.update(result)
        # Trainer.log appends to state.log_history and calls every reporting callback (tensorboard, wandb).
        self.trainer.log(dict(result))
        return control
