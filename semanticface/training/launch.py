"""Make a multi-process CPU launch really distributed.

``accelerate launch --multi_gpu --num_processes 2`` on a machine without an accelerator starts two processes, but
``TrainingArguments`` only sets up gloo DDP when ``use_cpu`` is true. Without it every process trains alone on
the whole dataset and all of them write the same ``output_dir`` (measured with transformers 5.23: world_size 1,
``rng_state.pth`` instead of ``rng_state_{rank}.pth``, and a rank crashing at save time).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING, TypeVar

from semanticface.errors import ConfigError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from transformers import TrainingArguments

ArgsT = TypeVar("ArgsT", bound="TrainingArguments")


def launched_world_size() -> int:
    """How many processes the launcher (accelerate, torchrun) started; 1 for a plain ``python`` run."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(value)
    except ValueError as error:
        raise ConfigError(f"environment variable WORLD_SIZE={value!r} is not an integer") from error


def _accelerator_available() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def distributed_training_args(training_args: ArgsT) -> ArgsT:
    """``training_args`` with ``use_cpu=True`` when several processes were launched on a machine without an
    accelerator, so that they form one gloo DDP group. Call it right after parsing, before anything touches
    ``accelerate.PartialState`` (the first caller fixes its backend for the whole process)."""
    world_size = launched_world_size()
    if world_size <= 1 or getattr(training_args, "use_cpu", False) or _accelerator_available():
        return training_args
    logger.info("%d processes launched without an accelerator: training with gloo DDP on CPU", world_size)
    fixed = dataclasses.replace(training_args, use_cpu=True)
    if fixed.world_size != world_size:
        raise ConfigError(
            f"the launcher started {world_size} processes but the trainer sees world_size={fixed.world_size}; "
            "launch with `accelerate launch --multi_gpu --num_processes N` (or torchrun) and pass --use_cpu true"
        )
    return fixed
