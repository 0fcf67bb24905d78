"""Evaluation that generates: at each evaluation, greedy-decode held-out faces, parse them, log MAE and the
parse-failure rate next to the teacher-forced eval loss (so they reach tensorboard/wandb like any metric)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from transformers import TrainerCallback

from semanticface.contract import TargetConfig, parse_output
from semanticface.errors import OutputParseError
from semanticface.rows import row_to_coefficients
from semanticface.schema import CHANNEL_INDEX
from semanticface.training.formatting import IMAGE_COLUMN, build_prompt_messages


def score_outputs(texts: list[str], truths: list[Any], channels: tuple[str, ...]) -> dict[str, float]:
    """MAE over the channels each output gave (parse failures excluded and counted), failure and missing rates."""
    errors: list[float] = []
    failures = missing = 0
    for text, truth in zip(texts, truths):
        try:
            parsed = parse_output(text)
        except OutputParseError:
            failures += 1
            continue
        for name in channels:
            if name in truth.missing:
                continue
            if name in parsed.coefficients.missing:
                missing += 1
                continue
            index = CHANNEL_INDEX[name]
            errors.append(abs(float(parsed.coefficients.values[index]) - float(truth.values[index])))
    n = max(len(texts), 1)
    return {
        "gen_mae": float(np.mean(errors)) if errors else math.nan,
        "gen_parse_failure_rate": failures / n,
        "gen_missing_channel_rate": missing / max(n * len(channels), 1),
        "gen_samples": float(len(texts)),
    }


def generate_texts(
    model: Any,
    processor: Any,
    images: list[Any],
    target_config: TargetConfig,
    *,
    max_new_tokens: int,
    batch_size: int = 8,
) -> list[str]:
    """Greedy outputs for ``images`` with the training prompt (left padding, as generation needs)."""
    import torch

    tokenizer = getattr(processor, "tokenizer", processor)
    prompt = processor.apply_chat_template(
        build_prompt_messages(target_config), add_generation_prompt=True, tokenize=False
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    texts: list[str] = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        inputs = processor(
            text=[prompt] * len(batch),
            images=[[image] for image in batch],
            padding=True,
            padding_side="left",
            return_tensors="pt",
        ).to(model.device)
        with torch.no_grad():
            output = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad_id,
                use_cache=True,
            )
        texts += tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return [t.strip() for t in texts]


class GenerationEvalCallback(TrainerCallback):
    """After each evaluation, generate on ``num_samples`` held-out rows and log ``eval_gen_*`` metrics.

    Works under DDP: every rank generates its share of the rows, results are gathered, all ranks log the same
    numbers (only the main one reports them). ``last_metrics`` keeps the latest result for the model card.
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
    ) -> None:
        self.trainer = trainer
        self.processor = processor
        self.target_config = target_config
        self.rows = eval_dataset.select(range(min(num_samples, len(eval_dataset))))
        if max_new_tokens is None:
            tokenizer = getattr(processor, "tokenizer", processor)
            targets = [c[0]["content"][0]["text"] for c in self.rows["completion"]] or [""]
            max_new_tokens = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets) + 32
        self.max_new_tokens = max_new_tokens
        self.last_metrics: dict[str, float] = {}

    def evaluate(self) -> dict[str, float]:
        """Generate, parse and score now; returns ``eval_gen_*`` metrics (same on every rank)."""
        accelerator = self.trainer.accelerator
        rank, world = accelerator.process_index, accelerator.num_processes
        indices = list(range(rank, len(self.rows), world))
        model = accelerator.unwrap_model(self.trainer.model)
        was_training = model.training
        model.eval()
        try:
            shard = self.rows.select(indices)
            images = [row[IMAGE_COLUMN][0] for row in shard]
            texts = generate_texts(
                model, self.processor, images, self.target_config, max_new_tokens=self.max_new_tokens
            )
        finally:
            model.train(was_training)
        pairs = list(zip(indices, texts))
        if world > 1:
            from accelerate.utils import gather_object

            pairs = gather_object(pairs)
        pairs.sort()
        truths = [row_to_coefficients(self.rows[i], where=f"eval row {i}") for i, _ in pairs]
        metrics = score_outputs([t for _, t in pairs], truths, self.target_config.channels())
        self.last_metrics = {f"eval_{k}": v for k, v in metrics.items()}
        self.last_texts = [t for _, t in pairs]
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
