"""One DPO training run with TRL, starting from a distilled (SFT) checkpoint.

From a LoRA adapter: the adapter is loaded trainable, and TRL copies it into a frozen ``ref`` adapter that serves
as the reference policy (one model in memory, no second copy). From a full checkpoint: a fresh LoRA adapter is
added (``use_peft``), and the reference is the same model with the adapter disabled; without ``use_peft`` the
whole model is trained and TRL loads a reference copy (fine for tiny models, costly for real ones).

The vision tower is trained where the SFT trained it (``freeze_vision_tower: false`` recorded in the source's
checkpoint config) and frozen otherwise, unless ``train_vision`` says which. DPO's loss is TRL's
(``DPOConfig.loss_type``: ``sigmoid``, ``ipo``, ... and ``loss_weights``); ``rpo_alpha`` adds TRL's ``sft`` loss (the
chosen completion's NLL, RPO's regulariser) with that weight, since TRL 1.x has no ``rpo_alpha`` field of its own.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semanticface.checkpoint import CheckpointConfig
from semanticface.errors import ConfigError

if TYPE_CHECKING:
    from datasets import Dataset
    from peft import PeftConfig
    from trl import DPOConfig, DPOTrainer, ModelConfig

logger = logging.getLogger(__name__)


def source_trained_vision(model_path: str) -> bool:
    """Whether the SFT that made ``model_path`` trained its vision tower (recorded ``freeze_vision_tower: false``)."""
    config = CheckpointConfig.load(model_path)
    return config is not None and config.extra.get("freeze_vision_tower") is False


def apply_rpo_alpha(args: Any, rpo_alpha: float | None) -> Any:
    """``args`` (a :class:`trl.DPOConfig`) with TRL's ``sft`` loss added at weight ``rpo_alpha`` (RPO); unchanged
    for None."""
    if rpo_alpha is None:
        return args
    if rpo_alpha <= 0:
        raise ConfigError(f"rpo_alpha must be > 0, got {rpo_alpha}")
    loss_types = list(args.loss_type)
    if "sft" in loss_types:
        raise ConfigError("rpo_alpha adds the 'sft' loss: loss_type already has it (set its weight in loss_weights)")
    weights = list(args.loss_weights) if args.loss_weights else [1.0] * len(loss_types)
    if len(weights) != len(loss_types):
        raise ConfigError(f"loss_weights has {len(weights)} entries for {len(loss_types)} loss_type entries")
    args.loss_type = [*loss_types, "sft"]
    args.loss_weights = [*weights, float(rpo_alpha)]
    return args


def load_policy(
    model_path: str,
    model_args: ModelConfig,
    *,
    train_vision: bool | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any, PeftConfig | None]:
    """``(model, processor, peft_config)`` ready for :class:`trl.DPOTrainer`, through the one training loader
    (:func:`semanticface.modeling.load_for_training`: ``load_in_4bit``/``8bit``, ``dtype``, ``attn_implementation``,
    ``model_revision`` and the LoRA settings of ``model_args`` honoured). ``train_vision`` None: the vision tower
    trains as the SFT's did. From an adapter only the adapter trains (its vision modules too, if the SFT put LoRA
    on them)."""
    from semanticface.modeling import load_for_training

    if model_args.lora_target_modules is None:  # DPO's default: every linear layer of the language model
        model_args = dataclasses.replace(model_args, lora_target_modules=["all-linear"])
    if train_vision is None:
        train_vision = source_trained_vision(model_path)
    return load_for_training(
        model_path,
        model_args,
        freeze_vision_tower=not train_vision,
        trust_remote_code=trust_remote_code,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
    )


def save_policy(trainer: Any, processor: Any, out_dir: Path, source: str, metrics: dict[str, Any]) -> Path:
    """Save the trained policy (the ``default`` adapter only, never TRL's ``ref`` copy, or the full model),
    its processor, and the checkpoint config carried over from the source with the metrics added."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if not trainer.accelerator.is_main_process:
        return out_dir
    if hasattr(model, "peft_config"):
        model.save_pretrained(out_dir, selected_adapters=["default"])
    else:
        model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    source_config = CheckpointConfig.load(source) or CheckpointConfig()
    source_config.derived("dpo", source, dpo_metrics=metrics).save(out_dir)
    return out_dir


def train_dpo(
    model_path: str,
    train_dataset: Dataset,
    args: DPOConfig,
    model_args: ModelConfig | None = None,
    *,
    rpo_alpha: float | None = None,
    **load_kwargs: Any,
) -> tuple[DPOTrainer, Any]:
    """Train one round; returns ``(trainer, processor)``. ``model_args`` (TRL's ``ModelConfig``; default: LoRA with
    its defaults) says how the policy loads; ``load_kwargs`` go to :func:`load_policy`."""
    from trl import DPOTrainer

    if getattr(args, "precompute_ref_log_probs", False):
        raise ConfigError("precompute_ref_log_probs=True is refused by TRL for vision data; set it to false")
    if args.max_length is not None:
        logger.info("max_length=%s: make sure it leaves room for every image token", args.max_length)
    args = apply_rpo_alpha(args, rpo_alpha)
    if model_args is None:
        from trl import ModelConfig

        model_args = ModelConfig(use_peft=True)
    model, processor, peft_config = load_policy(model_path, model_args, **load_kwargs)
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=peft_config,
    )
    trainer.train()
    return trainer, processor
