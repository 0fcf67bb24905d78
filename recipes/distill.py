"""Stage 2: distil semantic descriptions + ARKit coefficients into a vision-language model with TRL SFT.

    # tiny model + synthetic faces, a few minutes on a laptop CPU
    accelerate launch recipes/distill.py --config recipes/configs/quickstart.yaml

    # the paper's setting (LoRA on Qwen3-VL-4B, vision tower frozen), or 4-bit QLoRA on Qwen2.5-VL-3B
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml recipes/distill.py \
        --config recipes/configs/qwen3vl_4b_lora.yaml --dataset_name ./my_faces
    accelerate launch --config_file recipes/accelerate/multi_gpu_ddp.yaml recipes/distill.py \
        --config recipes/configs/qwen25vl_3b_qlora.yaml

Every YAML key can be overridden on the command line (``--learning_rate 1e-4 --target_format coefficients``).
``--resume_from_checkpoint latest`` continues from the last checkpoint in ``output_dir``.
"""

from __future__ import annotations

import logging
from typing import Any

from trl import ModelConfig, SFTConfig, TrlParser

from semanticface.modeling import load_processor
from semanticface.training.callbacks import GenerationEvalCallback
from semanticface.training.config import DistillScriptArguments
from semanticface.training.data import load_rows, split_rows
from semanticface.training.formatting import check_max_length, format_dataset
from semanticface.training.launch import distributed_training_args
from semanticface.training.setup import (
    prepare_model,
    push_artifacts,
    resolve_model_path,
    resolve_resume_checkpoint,
    save_artifacts,
)
from semanticface.training.summary import report_heldout
from semanticface.training.trainer import DistillTrainer
from semanticface.training.vision_pretrain import VisionPretrainConfig, pretrain_before_distillation

logger = logging.getLogger("semanticface.distill")


def main(
    script_args: DistillScriptArguments,
    training_args: SFTConfig,
    model_args: ModelConfig,
    callbacks: list[Any] | None = None,
    vision_args: VisionPretrainConfig | None = None,
) -> DistillTrainer:
    training_args = distributed_training_args(training_args)  # N CPU processes -> one gloo DDP group
    target_config = script_args.target_config()
    model_path = resolve_model_path(
        model_args.model_name_or_path, training_args.output_dir, seed=script_args.tiny_model_seed
    )
    # Data: semanticface rows -> prompt/completion rows (loss on the completion only) with one image each.
    train_rows, eval_rows = split_rows(*load_rows(script_args), script_args, seed=training_args.seed)
    checkpoint = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    # trust_remote_code lives in SFTConfig in TRL >= 1.x (ModelConfig in older releases).
    trust_remote_code = getattr(training_args, "trust_remote_code", getattr(model_args, "trust_remote_code", False))

    train_dataset = format_dataset(train_rows, target_config)
    eval_dataset = format_dataset(eval_rows, target_config) if eval_rows is not None else None
    # A max_length that would truncate is refused before the model is loaded: the processor (the model's own
    # tokenizer and image settings) is enough to measure the longest sequence.
    length_processor = load_processor(
        model_path,
        trust_remote_code=bool(trust_remote_code),
        min_pixels=script_args.min_pixels,
        max_pixels=script_args.max_pixels,
        revision=model_args.model_revision,
    )
    needed = check_max_length(training_args.max_length, length_processor, train_dataset)
    logger.info("longest training sequence: %d tokens (max_length=%s)", needed, training_args.max_length)
    # A random tiny model needs eyes first: its vision tower trains on the training rows only (no-op by default).
    pretrain_before_distillation(
        model_path, train_rows, vision_args, resuming_full_model=bool(checkpoint) and not model_args.use_peft
    )
    model, processor, peft_config = prepare_model(
        model_path, model_args, script_args, trust_remote_code=bool(trust_remote_code)
    )
    if eval_dataset is None:
        training_args.eval_strategy = "no"

    trainer = DistillTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=callbacks,
        number_token_weight=script_args.number_token_weight,
    )
    generation_eval = None
    if eval_dataset is not None and script_args.eval_generate_samples > 0:
        generation_eval = GenerationEvalCallback(
            trainer,
            eval_dataset,
            processor,
            target_config,
            num_samples=script_args.eval_generate_samples,
            max_new_tokens=script_args.eval_max_new_tokens,
            train_dataset=train_rows,
            decoding=script_args.eval_decoding,
            number_estimate=script_args.eval_numbers,
        )
        trainer.add_callback(generation_eval)

    # Trainer ignores args.resume_from_checkpoint: it must be passed to train() explicitly.
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)

    metrics: dict[str, float] = {}
    if eval_dataset is not None:
        metrics = trainer.evaluate()  # teacher-forced loss, plus eval_gen_* from the generation callback
    metadata = dict(base_model=model_path, script_args=script_args, training_args=training_args, model_args=model_args)
    save_artifacts(trainer, processor, output_dir=training_args.output_dir, metrics=metrics, **metadata)
    if training_args.push_to_hub:
        push_artifacts(trainer, output_dir=training_args.output_dir, metrics=metrics, **metadata)
    if trainer.accelerator.is_main_process:
        report_heldout(metrics, output_dir=training_args.output_dir, script_args=script_args)
    return trainer


if __name__ == "__main__":
    parser = TrlParser((DistillScriptArguments, VisionPretrainConfig, SFTConfig, ModelConfig))
    script_args, vision_args, training_args, model_args = parser.parse_args_and_config()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main(script_args, training_args, model_args, vision_args=vision_args)
