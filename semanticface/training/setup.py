"""Model preparation, checkpoint resolution and final artifacts of a distillation run (used by recipes/distill.py)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semanticface.checkpoint import CheckpointConfig
from semanticface.errors import ConfigError
from semanticface.modeling import load_for_training
from semanticface.training.config import TINY_MODEL_PREFIX, DistillScriptArguments
from semanticface.training.model_card import save_model_card

if TYPE_CHECKING:
    from trl import ModelConfig, SFTConfig

TINY_BASE_DIRNAME = "tiny_base_model"


def resolve_model_path(name_or_path: str, output_dir: str, *, seed: int = 0) -> str:
    """``tiny:ARCH`` builds the tiny test model into ``output_dir/tiny_base_model`` (main process first);
    anything else is returned as is (Hub id or directory)."""
    if not name_or_path.startswith(TINY_MODEL_PREFIX):
        return name_or_path
    from accelerate import PartialState

    from semanticface.testing.tiny_model import build_tiny_model

    target = Path(output_dir).resolve() / TINY_BASE_DIRNAME
    state = PartialState()
    with state.main_process_first():  # the others wait, then find it built
        if state.is_main_process:
            build_tiny_model(target, architecture=name_or_path[len(TINY_MODEL_PREFIX) :], seed=seed)
    return str(target)


def prepare_model(
    model_name_or_path: str,
    model_args: ModelConfig,
    script_args: DistillScriptArguments,
    *,
    trust_remote_code: bool = False,
) -> tuple[Any, Any, Any]:
    """Load ``(model, processor, peft_config)`` with the one training loader
    (:func:`semanticface.modeling.load_for_training`): quantized if asked, vision tower frozen, LoRA kept off it."""
    return load_for_training(
        model_name_or_path,
        model_args,
        freeze_vision_tower=script_args.freeze_vision_tower,
        trust_remote_code=trust_remote_code,
        min_pixels=script_args.min_pixels,
        max_pixels=script_args.max_pixels,
    )


def resolve_resume_checkpoint(value: Any, output_dir: str) -> str | None:
    """What to pass to ``trainer.train(resume_from_checkpoint=...)``: None, the last ``checkpoint-*`` in
    ``output_dir`` for ``latest``/``true`` (None when there is none yet, so a first run starts fresh), or an
    explicit checkpoint directory."""
    if value is None or value is False or str(value).strip().lower() in ("", "false", "none", "no"):
        return None
    if value is True or str(value).strip().lower() in ("true", "latest", "last", "yes"):
        return latest_complete_checkpoint(output_dir)
    path = Path(str(value))
    if not (path / "trainer_state.json").is_file():
        raise ConfigError(f"resume_from_checkpoint={value!r} is not a checkpoint directory (no trainer_state.json)")
    return str(path)


_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


def latest_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` in ``output_dir`` with a readable ``trainer_state.json`` (None when there is
    none). Newer ones without it (a run killed while saving) are skipped, each with a warning."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT.fullmatch(p.name))]
    for _, path in sorted(found, reverse=True):
        state = path / "trainer_state.json"
        try:
            json.loads(state.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            reason = "no trainer_state.json" if not state.is_file() else f"unreadable trainer_state.json ({error})"
            warnings.warn(f"skipping incomplete checkpoint {path} ({reason})", stacklevel=2)
            continue
        return str(path)
    return None


def write_metadata(
    output_dir: str,
    *,
    base_model: str,
    script_args: DistillScriptArguments,
    training_args: SFTConfig,
    model_args: ModelConfig,
    metrics: dict[str, float],
) -> list[Path]:
    """Write the checkpoint config (:mod:`semanticface.checkpoint`: what the predictor needs) and the model card
    ``README.md``."""
    target_config = script_args.target_config()
    extra = {"metrics": metrics, "freeze_vision_tower": script_args.freeze_vision_tower}  # DPO trains it likewise
    config = CheckpointConfig.for_target(
        target_config,
        base_model=base_model,
        min_pixels=script_args.min_pixels,
        max_pixels=script_args.max_pixels,
        extra=extra,
    ).save(output_dir)
    card = save_model_card(
        output_dir,
        base_model=base_model,
        target_config=target_config,
        configs={"script": script_args, "model": model_args, "training": training_args},
        metrics=metrics,
        is_adapter=bool(model_args.use_peft),
        dataset_name=None if script_args.synthetic else script_args.dataset_name,
    )
    return [config, card]


def save_artifacts(trainer: Any, processor: Any, *, output_dir: str, **metadata: Any) -> None:
    """Save the adapter (or full model), the processor and the metadata files into ``output_dir``."""
    trainer.save_model(output_dir)
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(output_dir)
        write_metadata(output_dir, **metadata)


def push_artifacts(trainer: Any, *, output_dir: str, **metadata: Any) -> None:
    """``trainer.push_to_hub`` (weights, processor), then our model card and config over TRL's generic card."""
    trainer.push_to_hub()
    if trainer.accelerator.is_main_process:
        from huggingface_hub import HfApi

        api = HfApi()
        for path in write_metadata(output_dir, **metadata):
            api.upload_file(path_or_fileobj=str(path), path_in_repo=path.name, repo_id=trainer.hub_model_id)
