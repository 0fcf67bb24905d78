"""One DPO training run with TRL, starting from a distilled (SFT) checkpoint.

From a LoRA adapter: the adapter is loaded trainable, and TRL copies it into a frozen ``ref`` adapter that serves
as the reference policy (one model in memory, no second copy). From a full checkpoint: a fresh LoRA adapter is
added (``use_peft``), and the reference is the same model with the adapter disabled; without ``use_peft`` the
whole model is trained and TRL loads a reference copy (fine for tiny models, costly for real ones).

The vision tower is trained where the SFT trained it (``freeze_vision_tower: false`` recorded in the source's
``semanticface_config.json``) and frozen otherwise, unless ``train_vision`` says which. DPO's loss is TRL's
(``DPOConfig.loss_type``: ``sigmoid``, ``ipo``, ... and ``loss_weights``); ``rpo_alpha`` adds TRL's ``sft`` loss (the
chosen completion's NLL, RPO's regulariser) with that weight, since TRL 1.x has no ``rpo_alpha`` field of its own.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semanticface.errors import ConfigError

if TYPE_CHECKING:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

logger = logging.getLogger(__name__)
CONFIG_FILENAME = "semanticface_config.json"


def source_trained_vision(model_path: str) -> bool:
    """Whether the SFT that made ``model_path`` trained its vision tower (recorded ``freeze_vision_tower: false``)."""
    config = Path(model_path) / CONFIG_FILENAME
    if not config.is_file():
        return False
    try:
        payload = json.loads(config.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{config}: not valid JSON ({error})") from None
    return payload.get("freeze_vision_tower") is False


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
    *,
    use_peft: bool,
    train_vision: bool | None = None,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    lora_target_modules: Any = "all-linear",
    dtype: str = "auto",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any, Any]:
    """``(model, processor, peft_config)`` ready for :class:`trl.DPOTrainer`. ``train_vision`` None: as the SFT did.

    From an adapter only the adapter trains (its vision modules too, if the SFT put LoRA on them)."""
    from semanticface.inference import adapter_base_model, is_adapter
    from semanticface.modeling import load_model, load_processor, vision_module_names

    adapter = is_adapter(model_path)
    base = adapter_base_model(model_path, revision=None) if adapter else model_path
    try:
        processor = load_processor(
            model_path, trust_remote_code=trust_remote_code, min_pixels=min_pixels, max_pixels=max_pixels
        )
    except ConfigError:
        processor = load_processor(
            base, trust_remote_code=trust_remote_code, min_pixels=min_pixels, max_pixels=max_pixels
        )
    model = load_model(base, dtype=dtype, trust_remote_code=trust_remote_code)
    if train_vision is None:
        train_vision = source_trained_vision(model_path)
    for name in vision_module_names(model):
        model.get_submodule(name).requires_grad_(bool(train_vision) and not adapter)
    peft_config = None
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, model_path, is_trainable=True)
    elif use_peft:
        from peft import LoraConfig

        from semanticface.training.setup import vision_exclude_pattern

        peft_config = LoraConfig(
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=lora_target_modules,
            exclude_modules=None if train_vision else vision_exclude_pattern(model),
            task_type="CAUSAL_LM",
        )
    return model, processor, peft_config


def save_policy(trainer: Any, processor: Any, out_dir: Path, source: str, metrics: dict[str, Any]) -> Path:
    """Save the trained policy (the ``default`` adapter only, never TRL's ``ref`` copy, or the full model),
    its processor, and ``semanticface_config.json`` carried over from the source with the metrics added."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if not trainer.accelerator.is_main_process:
        return out_dir
    if hasattr(model, "peft_config"):
        model.save_pretrained(out_dir, selected_adapters=["default"])
    else:
        model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    source_config = Path(source) / CONFIG_FILENAME
    payload = json.loads(source_config.read_text()) if source_config.is_file() else {}
    payload.setdefault("lineage", []).append({"stage": "dpo", "from": str(source)})
    payload["dpo_metrics"] = metrics
    (out_dir / CONFIG_FILENAME).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return out_dir


def train_dpo(
    model_path: str,
    train_dataset: Dataset,
    args: DPOConfig,
    *,
    use_peft: bool = True,
    rpo_alpha: float | None = None,
    **load_kwargs: Any,
) -> tuple[DPOTrainer, Any]:
    """Train one round; returns ``(trainer, processor)``."""
    from trl import DPOTrainer

    if getattr(args, "precompute_ref_log_probs", False):
        raise ConfigError("precompute_ref_log_probs=True is refused by TRL for vision data; set it to false")
    if args.max_length is not None:
        logger.info("max_length=%s: make sure it leaves room for every image token", args.max_length)
    args = apply_rpo_alpha(args, rpo_alpha)
    model, processor, peft_config = load_policy(model_path, use_peft=use_peft, **load_kwargs)
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=peft_config,
    )
    trainer.train()
    return trainer, processor
