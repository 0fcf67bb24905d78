"""Stage 2 distillation: row formatting, the eval callback, and short real training runs through the recipe."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from transformers import TrainerCallback

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import TargetConfig, build_prompt_messages, render_target, system_prompt, user_prompt
from semanticface.errors import ConfigError, DatasetError
from semanticface.rows import coefficients_to_row
from semanticface.schema import CHANNELS, NUM_BLENDSHAPES
from semanticface.training.callbacks import score_outputs
from semanticface.training.formatting import check_max_length, format_dataset, format_row
from semanticface.training.launch import distributed_training_args
from semanticface.training.setup import resolve_resume_checkpoint

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "configs" / "quickstart.yaml"


def _recipe():
    spec = importlib.util.spec_from_file_location("distill_recipe", REPO / "recipes" / "distill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse(argv: list[str]):
    """``(script, training, model)`` args as the recipe parses them; vision pretraining is left out (unit tests
    use the tiny random tower; ``_parse_with_vision`` keeps it)."""
    script_args, _, training_args, model_args = _parse_with_vision(argv)
    return script_args, training_args, model_args


def _parse_with_vision(argv: list[str]):
    from trl import ModelConfig, SFTConfig, TrlParser

    from semanticface.training.config import DistillScriptArguments
    from semanticface.training.vision_pretrain import VisionPretrainConfig

    return TrlParser((DistillScriptArguments, VisionPretrainConfig, SFTConfig, ModelConfig)).parse_args_and_config(
        args=argv
    )


def _coefficients(rng: np.random.Generator) -> FaceCoefficients:
    values = np.zeros(len(CHANNELS))
    active = rng.random(NUM_BLENDSHAPES) < 0.3
    values[:NUM_BLENDSHAPES] = np.where(active, rng.random(NUM_BLENDSHAPES), 0.0)
    return FaceCoefficients(values)


@pytest.fixture(scope="module")
def face_dataset_dir(tmp_path_factory) -> Path:
    """Rendered avatar faces with their coefficients (engineer B's synth), saved with save_to_disk."""
    from semanticface.synth import SynthConfig, build_dataset

    out = tmp_path_factory.mktemp("faces")
    build_dataset(SynthConfig(n=48, size=56, seed=0, identities=6), cache_dir=str(out / "cache")).save_to_disk(
        str(out / "data")
    )
    return out / "data"


def _short_run_args(data: Path, out: Path, *extra: str) -> list[str]:
    """The quickstart config, pinned to what these tests exercise (the semantic target on the tiny Qwen2.5-VL,
    evaluated during training) whatever the quickstart's own choices."""
    return [
        "--config", str(QUICKSTART),
        "--model_name_or_path", "tiny:qwen2_5_vl",
        "--target_format", "semantic",
        "--freeze_vision_tower", "false",
        "--eval_strategy", "steps",
        "--synthetic", "false",
        "--dataset_name", str(data),
        "--dataset_test_split", "validation",
        "--output_dir", str(out),
        "--max_steps", "6",
        "--per_device_train_batch_size", "4",
        "--learning_rate", "3e-3",
        "--warmup_steps", "0",
        "--logging_steps", "1",
        "--eval_steps", "6",
        "--save_steps", "6",
        "--eval_generate_samples", "2",
        "--eval_max_new_tokens", "16",
        *extra,
    ]  # fmt: skip


# --- formatting ---------------------------------------------------------------------------------------------------


def test_prompt_messages_come_from_the_contract_with_one_image_placeholder():
    config = TargetConfig(target_format="coefficients", decimals=3)
    system, user = build_prompt_messages(config)
    assert system == {"role": "system", "content": [{"type": "text", "text": system_prompt(config)}]}
    assert user["role"] == "user"
    assert user["content"][0] == {"type": "image"}
    assert user["content"][1] == {"type": "text", "text": user_prompt(config)}
    assert build_prompt_messages(TargetConfig()) != build_prompt_messages(config)


def test_format_row_completion_is_the_rendered_target():
    from PIL import Image

    rng = np.random.default_rng(1)
    coefficients = _coefficients(rng)
    row = {**coefficients_to_row(coefficients), "images": [Image.new("L", (32, 32))]}
    for config in (TargetConfig(), TargetConfig(target_format="coefficients", include_pose=True)):
        formatted = format_row(row, config)
        assert formatted["completion"] == [
            {"role": "assistant", "content": [{"type": "text", "text": render_target(coefficients, config)}]}
        ]
        assert formatted["prompt"] == build_prompt_messages(config)
        assert formatted["images"][0].mode == "RGB"


def test_format_row_rejects_bad_rows():
    row = coefficients_to_row(FaceCoefficients.neutral())
    with pytest.raises(DatasetError, match="images"):
        format_row({**row, "images": []}, TargetConfig(), where="row 7")
    with pytest.raises(DatasetError, match="row 7"):
        format_row({**row, "images": ["not an image"]}, TargetConfig(), where="row 7")
    bad = {**row, "jawOpen": 3.0, "images": []}
    with pytest.raises(DatasetError, match="jawOpen"):
        format_row(bad, TargetConfig(), where="row 7")


def test_dataset_prompt_renders_exactly_like_the_inference_prompt(face_dataset_dir, tiny_model_dir):
    """After the Arrow round trip, the chat template gives the same prompt text the predictor will use."""
    import datasets

    from semanticface.modeling import load_processor

    processor = load_processor(tiny_model_dir)
    config = TargetConfig()
    formatted = format_dataset(datasets.load_from_disk(str(face_dataset_dir))["validation"], config)
    assert {"prompt", "completion", "images", "jawOpen"} <= set(formatted.column_names)
    assert "identity" not in formatted.column_names
    train_text = processor.apply_chat_template(formatted[0]["prompt"], add_generation_prompt=True, tokenize=False)
    infer_text = processor.apply_chat_template(
        build_prompt_messages(config), add_generation_prompt=True, tokenize=False
    )
    assert train_text == infer_text
    assert train_text.count("<|image_pad|>") == 1


def test_max_length_that_would_truncate_is_refused(face_dataset_dir, tiny_model_dir):
    import datasets

    from semanticface.modeling import load_processor

    processor = load_processor(tiny_model_dir)
    formatted = format_dataset(datasets.load_from_disk(str(face_dataset_dir))["validation"], TargetConfig())
    needed = check_max_length(None, processor, formatted)
    assert needed > 100
    assert check_max_length(needed, processor, formatted) == needed
    with pytest.raises(ConfigError, match="truncate"):
        check_max_length(needed - 1, processor, formatted)


def test_format_dataset_needs_the_row_layout():
    import datasets

    with pytest.raises(DatasetError, match="images"):
        format_dataset(datasets.Dataset.from_dict({"jawOpen": [0.1]}), TargetConfig())


# --- evaluation metrics -------------------------------------------------------------------------------------------


def test_score_outputs_mae_and_failures():
    rng = np.random.default_rng(3)
    truths = [_coefficients(rng) for _ in range(4)]
    config = TargetConfig()
    perfect = [render_target(t, config) for t in truths]
    scores = score_outputs(perfect, truths, config.channels())
    assert scores["gen_mae"] < 0.005 + 1e-9  # 2-decimal quantisation only
    assert scores["gen_parse_failure_rate"] == 0
    shifted = [render_target(t.replace(jawOpen=min(1.0, float(t.to_dict()["jawOpen"]) + 0.5)), config) for t in truths]
    assert score_outputs(shifted, truths, config.channels())["gen_mae"] > scores["gen_mae"]
    mixed = score_outputs(perfect[:2] + ["garbage", "Expression: smile"], truths, config.channels())
    assert mixed["gen_parse_failure_rate"] == 0.5
    assert mixed["gen_mae"] == pytest.approx(score_outputs(perfect[:2], truths[:2], config.channels())["gen_mae"])


# --- resume resolution --------------------------------------------------------------------------------------------


def test_resolve_resume_checkpoint(tmp_path):
    assert resolve_resume_checkpoint(None, str(tmp_path)) is None
    assert resolve_resume_checkpoint("false", str(tmp_path)) is None
    assert resolve_resume_checkpoint("latest", str(tmp_path)) is None  # nothing yet: a first run starts fresh
    for step in (2, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert resolve_resume_checkpoint("latest", str(tmp_path)) == str(tmp_path / "checkpoint-10")
    assert resolve_resume_checkpoint("True", str(tmp_path)) == str(tmp_path / "checkpoint-10")
    assert resolve_resume_checkpoint(str(tmp_path / "checkpoint-2"), str(tmp_path)) == str(tmp_path / "checkpoint-2")
    with pytest.raises(ConfigError, match="not a checkpoint"):
        resolve_resume_checkpoint(str(tmp_path / "nope"), str(tmp_path))


def test_single_process_training_args_are_left_alone(monkeypatch):
    from trl import SFTConfig

    args = SFTConfig(output_dir="unused", report_to="none", bf16=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed_training_args(args) is args  # plain `python recipes/distill.py`
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE='two'"):
        distributed_training_args(args)


@pytest.mark.parametrize(
    ("key", "value"),
    [("target_format", "prose"), ("key_dialect", "arkt"), ("block_style", "compacted"), ("eval_decoding", "force")],
)
def test_a_misspelt_choice_fails_at_parse_time(tmp_path, capsys, key, value):
    """On the command line argparse refuses it; in the YAML (an unchecked argparse default) __post_init__ does."""
    with pytest.raises(SystemExit) as info:
        _parse(["--config", str(QUICKSTART), f"--{key}", value])
    assert info.value.code == 2 and f"invalid choice: '{value}'" in capsys.readouterr().err
    config = tmp_path / "run.yaml"
    config.write_text(QUICKSTART.read_text() + f"\n{key}: {value}\n")
    with pytest.raises(ConfigError, match=rf"{key} must be one of .*got '{value}'"):
        _parse(["--config", str(config)])


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="dataset_name"):
        _parse(["--config", str(QUICKSTART), "--synthetic", "false"])
    with pytest.raises(SystemExit):  # a fixed-choice flag: argparse refuses it (issue 13)
        _parse(["--config", str(QUICKSTART), "--target_format", "prose"])
    with pytest.raises(ConfigError, match="eval_numbers: median needs eval_decoding: forced"):
        _parse(["--config", str(QUICKSTART), "--eval_decoding", "generate"])
    script_args, _, _ = _parse(["--config", str(QUICKSTART), "--eval_decoding", "generate", "--eval_numbers", "mode"])
    assert (script_args.eval_decoding, script_args.eval_numbers) == ("generate", "mode")


# --- real training runs through the recipe ------------------------------------------------------------------------


class _CountSteps(TrainerCallback):
    def __init__(self, stop_at: int | None = None) -> None:
        self.steps: list[int] = []
        self.stop_at = stop_at

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)
        if self.stop_at is not None and state.global_step >= self.stop_at:
            control.should_training_stop = True  # an interruption right after the checkpoint at stop_at
        return control


def test_full_finetune_run_saves_a_checkpoint_the_predictor_loads(face_dataset_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from semanticface.inference import SemanticFacePredictor

    out = tmp_path / "run"
    script_args, training_args, model_args = _parse(
        _short_run_args(face_dataset_dir, out, "--report_to", "tensorboard")
    )
    assert training_args.max_length is None and model_args.use_peft is False  # from the YAML
    trainer = _recipe().main(script_args, training_args, model_args)
    history = trainer.state.log_history
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert losses[-1] < losses[0]  # real learning signal even in 6 steps
    generated = [entry for entry in history if "eval_gen_parse_failure_rate" in entry]
    assert generated and generated[-1]["eval_gen_samples"] == 2

    # Completion-only loss: every prompt position (text and image tokens) is masked, the target is learned.
    batch = next(iter(trainer.get_train_dataloader()))
    image_id = trainer.model.config.image_token_id
    labels, input_ids = batch["labels"][0], batch["input_ids"][0]
    assert (labels[input_ids == image_id] == -100).all()
    learned = input_ids[labels != -100]
    tokenizer = trainer.processing_class.tokenizer
    text = tokenizer.decode(learned, skip_special_tokens=True)
    assert text.startswith("Expression:") and '"tongueOut":' in text
    assert "Analyse the face" not in text

    # Artifacts: full model (safetensors), processor under the stock class, target config, model card.
    assert (out / "model.safetensors").is_file()
    assert json.loads((out / "processor_config.json").read_text())["processor_class"] == "Qwen2_5_VLProcessor"
    saved = json.loads((out / "semanticface_config.json").read_text())
    assert saved["target"]["target_format"] == "semantic"
    assert "eval_gen_parse_failure_rate" in saved["metrics"]
    card = (out / "README.md").read_text()
    assert "eval_gen_parse_failure_rate" in card and '"learning_rate": 0.003' in card

    # Metrics reached tensorboard.
    tags: set[str] = set()
    for event_file in (out / "runs").rglob("events.out.tfevents.*"):
        tags |= set(EventAccumulator(str(event_file)).Reload().Tags()["scalars"])
    assert {"eval/gen_parse_failure_rate", "train/loss"} <= tags

    predictor = SemanticFacePredictor.from_pretrained(out)
    import datasets

    image = datasets.load_from_disk(str(face_dataset_dir))["validation"][0]["images"][0]
    prediction = predictor.predict([image], max_new_tokens=8)[0]
    assert prediction.num_tokens > 0


def test_generation_eval_equals_semanticface_eval_on_the_same_rows(face_dataset_dir, tmp_path, caplog):
    """The training-time generation eval wraps the live model in the predictor and scores like `semanticface eval`:
    same MAE, same baselines, same parse failures on the same rows with the same decoding."""
    import logging

    from semanticface.cli import main as cli

    out = tmp_path / "run"
    args = _short_run_args(
        face_dataset_dir, out, "--target_format", "coefficients", "--max_steps", "2", "--eval_steps", "2",
        "--save_steps", "2", "--eval_generate_samples", "3",
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="semanticface.training.callbacks"):
        trainer = _recipe().main(*_parse(args))
    assert "generation eval: 3 held-out faces, decoding=forced, numbers=median" in caplog.text  # not silent
    logged = json.loads((out / "semanticface_config.json").read_text())["metrics"]
    assert logged["eval_gen_samples"] == 3 and logged["eval_gen_coverage"] == 1.0  # forced decoding always parses
    for key in ("eval_gen_median_mae", "eval_gen_mean_mae", "eval_gen_neutral_mae", "eval_gen_spread_ratio"):
        assert key in logged, key

    report = tmp_path / "report"
    argv = ["eval", "--model", str(out), "--dataset", str(face_dataset_dir), "--split", "validation"]
    argv += ["--limit", "3", "--decoding", "forced", "--numbers", "median", "--max-new-tokens", "16"]
    assert cli([*argv, "--out", str(report), "--renderer", "none", "--bootstrap-samples", "100"]) == 0
    systems = json.loads((report / "metrics.json").read_text())["systems"]
    assert logged["eval_gen_mae"] == pytest.approx(systems["model"]["overall"]["mae"], abs=1e-9)
    assert logged["eval_gen_median_mae"] == pytest.approx(systems["median"]["overall"]["mae"], abs=1e-9)
    assert logged["eval_gen_mean_mae"] == pytest.approx(systems["constant_mean"]["overall"]["mae"], abs=1e-9)
    assert logged["eval_gen_neutral_mae"] == pytest.approx(systems["neutral"]["overall"]["mae"], abs=1e-9)
    assert logged["eval_gen_parse_failure_rate"] == systems["model"]["parse_failure_rate"]
    # The same texts, not merely the same figure.
    saved = [json.loads(line)["raw_text"] for line in (report / "predictions.jsonl").read_text().splitlines()]
    callback = next(c for c in trainer.callback_handler.callbacks if hasattr(c, "last_texts"))
    assert callback.last_texts == saved


def test_lora_run_targets_the_language_model_only(face_dataset_dir, tmp_path):
    from semanticface.inference import SemanticFacePredictor

    out = tmp_path / "lora"
    args = _short_run_args(
        face_dataset_dir, out, "--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "all-linear",
        "--freeze_vision_tower", "true", "--target_format", "coefficients", "--max_steps", "2",
        "--activation_checkpointing", "true",
    )  # fmt: skip
    trainer = _recipe().main(*_parse(args))
    lora_names = [n for n, p in trainer.model.named_parameters() if "lora_" in n]
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert lora_names and set(trainable) == set(lora_names)
    assert not any(".visual." in n for n in lora_names)
    assert any("language_model" in n for n in lora_names)
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "semanticface_config.json").read_text())["target"]["target_format"] == "coefficients"
    predictor = SemanticFacePredictor.from_pretrained(out)
    assert predictor.target_config.target_format == "coefficients"
    assert type(predictor.model).__name__ == "PeftModelForCausalLM"


def test_interrupted_run_resumes_from_its_checkpoint_to_the_same_final_step(face_dataset_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    common = ["--max_steps", "6", "--save_steps", "3", "--eval_strategy", "no", "--eval_generate_samples", "0"]
    recipe = _recipe()

    # Reference: an uninterrupted run.
    reference = tmp_path / "reference"
    recipe.main(*_parse(_short_run_args(face_dataset_dir, reference, *common)))

    # Interrupted after the step-3 checkpoint, then resumed with "latest".
    out = tmp_path / "interrupted"
    first = _CountSteps(stop_at=3)
    trainer = recipe.main(*_parse(_short_run_args(face_dataset_dir, out, *common)), callbacks=[first])
    assert trainer.state.global_step == 3 and (out / "checkpoint-3").is_dir()
    assert not (out / "checkpoint-6").exists()

    second = _CountSteps()
    resumed = recipe.main(
        *_parse(_short_run_args(face_dataset_dir, out, *common, "--resume_from_checkpoint", "latest")),
        callbacks=[second],
    )
    assert resumed.state.global_step == 6
    assert second.steps == [4, 5, 6]  # continued from the checkpoint, not restarted
    assert (out / "checkpoint-6").is_dir()
    # Same data order, optimizer and scheduler state as the uninterrupted run: same weights.
    final, expected = load_file(out / "model.safetensors"), load_file(reference / "model.safetensors")
    assert final.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_quickstart_two_process_ddp(tmp_path):
    """CI's DDP check: the README's quickstart as 2 CPU processes (gloo), shortened."""
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO / "recipes" / "distill.py"), "--config", str(QUICKSTART),
        "--output_dir", str(out), "--synthetic_samples", "64", "--synthetic_identities", "8", "--eval_strategy", "steps",
        "--max_steps", "4", "--per_device_train_batch_size", "2", "--eval_steps", "4", "--save_steps", "4",
        "--eval_generate_samples", "2", "--eval_max_new_tokens", "16", "--logging_steps", "1",
        "--vision_pretrain_steps", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-4000:]
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    # Really one DDP group of 2 (not two lone trainers sharing output_dir): one RNG state per rank.
    assert sorted(p.name for p in (out / "checkpoint-4").glob("rng_state*.pth")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]
    assert any(entry.get("eval_gen_samples") == 2 for entry in state["log_history"])
    assert (out / "model.safetensors").is_file() and (out / "semanticface_config.json").is_file()
    assert (out / "tiny_base_model" / "vision_pretraining.json").is_file()  # rank 0 pretrained, rank 1 waited
    print(f"2-process DDP quickstart (4 steps) wall time: {wall:.1f} s")


# --- shipped configs ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "model", "quantized"),
    [
        ("qwen3vl_4b_lora.yaml", "Qwen/Qwen3-VL-4B-Instruct", False),
        ("qwen25vl_3b_qlora.yaml", "Qwen/Qwen2.5-VL-3B-Instruct", True),
        ("quickstart.yaml", "tiny:qwen3_vl", False),
    ],
)
def test_recipe_configs_parse_and_cli_overrides_win(name, model, quantized):
    path = REPO / "recipes" / "configs" / name
    # bf16 needs a GPU to validate; the CLI override also shows any YAML key can be overridden.
    script_args, training_args, model_args = _parse(
        ["--config", str(path), "--dataset_name", "faces", "--bf16", "false", "--learning_rate", "5e-5"]
    )
    assert model_args.model_name_or_path == model
    assert model_args.load_in_4bit is quantized
    assert training_args.learning_rate == 5e-5
    assert training_args.max_length == (2048 if name == "qwen3vl_4b_lora.yaml" else None)
    assert script_args.freeze_vision_tower is (name != "quickstart.yaml")
    assert model_args.use_peft is (name != "quickstart.yaml")
    expected = "coefficients" if name == "quickstart.yaml" else "semantic"  # see quickstart.yaml for why
    assert script_args.target_config().target_format == expected


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("single_gpu.yaml", "NO"),
        ("multi_gpu_ddp.yaml", "MULTI_GPU"),
        ("fsdp.yaml", "FSDP"),
        ("deepspeed_zero2.yaml", "DEEPSPEED"),
        ("deepspeed_zero3.yaml", "DEEPSPEED"),
    ],
)
def test_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(REPO / "recipes" / "accelerate" / name))
    assert str(config.distributed_type).split(".")[-1] == kind
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == int(name[-6])


def test_qlora_4bit_run_on_qwen3_vl(face_dataset_dir, tmp_path):
    """QLoRA through the recipe on the tiny Qwen3-VL: 4-bit language model, LoRA adapters trained and saved.

    No generation during this run: on CPU, bitsandbytes cannot train a 4-bit model after running it in eval mode.
    """
    import bitsandbytes as bnb

    out = tmp_path / "qlora"
    args = _short_run_args(
        face_dataset_dir, out, "--model_name_or_path", "tiny:qwen3_vl", "--use_peft", "true",
        "--load_in_4bit", "true", "--lora_r", "4", "--lora_target_modules", "q_proj", "v_proj",
        "--freeze_vision_tower", "true", "--max_steps", "2", "--eval_strategy", "no", "--eval_generate_samples", "0",
        "--target_format", "coefficients", "--dtype", "float32",
    )  # fmt: skip
    trainer = _recipe().main(*_parse(args))
    assert trainer.state.global_step == 2
    base = trainer.model.get_base_model()
    assert type(base).__name__ == "Qwen3VLForConditionalGeneration"
    assert isinstance(base.model.language_model.layers[0].mlp.up_proj, bnb.nn.Linear4bit)
    assert (out / "adapter_model.safetensors").is_file()
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert set(adapter["target_modules"]) == {"q_proj", "v_proj"}
    assert json.loads((out / "processor_config.json").read_text())["processor_class"] == "Qwen3VLProcessor"


# --- the main job's eyes and closing lines ----------------------------------------------------------------------


def test_recipe_pretrains_the_vision_tower_on_training_rows_and_ends_with_a_heldout_summary(
    face_dataset_dir, tmp_path, capsys
):
    from datasets import load_from_disk

    from semanticface.training.summary import SUMMARY_FILENAME

    out = tmp_path / "eyes"
    argv = _short_run_args(
        face_dataset_dir, out, "--model_name_or_path", "tiny:qwen3_vl", "--vision_pretrain_steps", "5"
    )
    script_args, vision_args, training_args, model_args = _parse_with_vision(argv)
    _recipe().main(script_args, training_args, model_args, vision_args=vision_args)
    record = json.loads((out / "tiny_base_model" / "vision_pretraining.json").read_text())
    assert record["steps"] == 5 and record["rows"] == len(load_from_disk(str(face_dataset_dir))["train"])
    summary = json.loads((out / SUMMARY_FILENAME).read_text())
    assert summary["rows"] == 2 and summary["median_constant_mae"] > 0
    assert summary["ratio_to_median_constant"] == pytest.approx(summary["mae"] / summary["median_constant_mae"], 1e-3)
    printed = capsys.readouterr().out
    assert "held-out faces (2 rows" in printed and f"semanticface predict my_face.jpg --model {out}" in printed


def test_heldout_summary_says_whether_the_model_beats_the_best_constant():
    from semanticface.training.summary import format_summary, heldout_summary

    metrics = {"eval_gen_mae": 0.03, "eval_gen_median_mae": 0.04, "eval_gen_neutral_mae": 0.05, "eval_gen_samples": 9}
    good = heldout_summary(metrics, output_dir="o", target_format="semantic", decoding="forced")
    assert good["ratio_to_median_constant"] == 0.75 and good["beats_median_constant"]
    assert "reads the image" in format_summary(good)
    blind = heldout_summary({**metrics, "eval_gen_mae": 0.041}, output_dir="o", target_format="semantic", decoding="x")
    assert not blind["beats_median_constant"] and "WARNING" in format_summary(blind)
    empty = heldout_summary({}, output_dir="o", target_format="semantic", decoding="x")
    assert empty["mae"] is None and "no held-out evaluation" in format_summary(empty)
