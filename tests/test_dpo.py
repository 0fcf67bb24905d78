"""DPO rounds on the tiny real-architecture model: adapter start with a frozen 'ref' copy, simulated and people
annotation, per-round models and metrics, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semanticface.preferences.candidates import CandidateConfig
from semanticface.preferences.rounds import DPOScriptArguments, dpo_parser, parse_dpo_arguments, run_rounds
from semanticface.preferences.storage import Ranking, RankingStore
from semanticface.testing.faces import face_dataset, random_faces

TARGET = {"target_format": "coefficients", "decimals": 2, "include_pose": False, "key_dialect": "arkit"}


@pytest.fixture(scope="module")
def sft_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA 'SFT' adapter on the tiny model, saved as distillation saves it."""
    import torch
    from peft import LoraConfig, get_peft_model

    from semanticface.modeling import load_model_and_processor

    model, processor = load_model_and_processor(tiny_model_dir, dtype="float32")
    torch.manual_seed(0)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, lora)
    out = tmp_path_factory.mktemp("sft_adapter")
    peft_model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "semanticface_config.json").write_text(json.dumps({"target": TARGET, "base_model": str(tiny_model_dir)}))
    return out


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Avatar renders with their true coefficients, in the semanticface row layout."""
    out = tmp_path_factory.mktemp("faces")
    face_dataset(random_faces(4, high=0.5), size=56, identity_column=True).save_to_disk(str(out))
    return out


def _configs(output_dir: Path, model: Path, faces: Path, **script):
    """(script, training, model, candidate) configs of run_rounds; the annotator and export configs: defaults."""
    from trl import DPOConfig, ModelConfig

    defaults = dict(
        dataset_name=str(faces),
        num_rounds=2,
        images_per_round=2,
        decoding="forced",  # every output parses: the own output is the base that perturbations start from
        min_pixels=56 * 56,
        max_pixels=56 * 56,
    )
    script_args = DPOScriptArguments(**{**defaults, **script})
    candidates = CandidateConfig(
        num_samples=2, max_new_tokens=1024, num_perturbations=3, perturbation_scale=0.2, render_size=48
    )
    training_args = DPOConfig(
        output_dir=str(output_dir),
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=5e-3,
        beta=0.1,
        max_length=None,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        bf16=False,
    )
    model_args = ModelConfig(model_name_or_path=str(model), use_peft=True, lora_r=4)
    return script_args, training_args, model_args, candidates


def _adapter_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_two_simulated_rounds_from_an_adapter(tmp_path, sft_adapter, faces):
    out = tmp_path / "dpo"
    report = run_rounds(*_configs(out, sft_adapter, faces, eval_dataset_name=str(faces), eval_samples=2))
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert report["final_model"] == str(out / "round_2" / "model")
    assert report["rounds"][1]["from_model"] == str(out / "round_1" / "model")
    sft = _adapter_weights(sft_adapter)
    for r in (1, 2):
        metrics = json.loads((out / f"round_{r}" / "metrics.json").read_text())
        assert metrics["pairs"] > 0 and metrics["items"] == 2 and metrics["rankings"] == 2
        assert "loss" in metrics["train"] and metrics["eval"]["num_samples"] == 2
        assert metrics["eval"]["readout"] == "median" and metrics["loss_type"] == ["sigmoid"]
        model_dir = out / f"round_{r}" / "model"
        assert not (model_dir / "ref").exists()  # TRL's frozen reference copy is not saved as a policy
        saved = _adapter_weights(model_dir)
        assert saved.keys() == sft.keys()
        assert any(not np.allclose(saved[k], sft[k]) for k in sft)  # DPO moved the adapter
        assert json.loads((model_dir / "semanticface_config.json").read_text())["target"] == TARGET
    # Round 2 sampled different images than round 1.
    ids = [sorted(p.name for p in (out / f"round_{r}" / "candidates" / "images").iterdir()) for r in (1, 2)]
    assert ids[0] != ids[1]
    assert "start" in report and report["start"]["eval"]["num_samples"] == 2

    # Finished rounds are not redone.
    before = (out / "round_2" / "model" / "adapter_model.safetensors").stat().st_mtime_ns
    again = run_rounds(*_configs(out, sft_adapter, faces, eval_dataset_name=str(faces), eval_samples=2))
    assert again["final_model"] == report["final_model"]
    assert (out / "round_2" / "model" / "adapter_model.safetensors").stat().st_mtime_ns == before


@pytest.fixture(scope="module")
def prefs(sft_adapter, faces, tmp_path_factory):
    """One round's preference pairs (sampled from the SFT adapter, simulated ranking, exported), untrained."""
    from semanticface.preferences.rounds import load_rows, prepare_round

    script_args, _, _, candidates = _configs(Path("unused"), sft_adapter, faces)
    dataset, counts = prepare_round(
        str(sft_adapter), load_rows(str(faces), "train"), 1, tmp_path_factory.mktemp("round"), script_args, candidates
    )
    assert counts == {"items": 2, "rankings": 2} and len(dataset) > 0
    return dataset


def test_reference_is_the_frozen_sft_adapter(tmp_path, sft_adapter, prefs):
    from trl import DPOConfig

    from semanticface.preferences.dpo_training import train_dpo

    args = DPOConfig(output_dir=str(tmp_path / "t"), max_steps=2, per_device_train_batch_size=2, learning_rate=5e-3,
                     max_length=None, report_to=[], save_strategy="no", use_cpu=True)  # fmt: skip
    trainer, _ = train_dpo(str(sft_adapter), prefs, args, min_pixels=56 * 56, max_pixels=56 * 56)
    model = trainer.model
    assert set(model.peft_config) == {"default", "ref"}
    sft = _adapter_weights(sft_adapter)
    params = dict(model.named_parameters())
    moved = False
    for key, value in sft.items():
        stem = key.replace("base_model.model.", "").removesuffix(".weight")
        ref = next(p for n, p in params.items() if n.endswith(f"{stem}.ref.weight"))
        default = next(p for n, p in params.items() if n.endswith(f"{stem}.default.weight"))
        assert np.allclose(ref.detach().numpy(), value) and not ref.requires_grad
        moved |= not np.allclose(default.detach().numpy(), value)
    assert moved


def test_people_round_waits_for_rankings_then_continues(tmp_path, sft_adapter, faces):
    out = tmp_path / "dpo"
    configs = _configs(out, sft_adapter, faces, num_rounds=1, annotator="people")
    report = run_rounds(*configs)
    waiting = report["waiting_for"]
    assert waiting["round"] == 1 and not (out / "round_1" / "model").exists()
    from semanticface.preferences.manifest import CandidateSet

    candidates = CandidateSet.load(waiting["candidates"])
    store = RankingStore(waiting["db"])
    for item in candidates:  # a person ranks in reverse order of generation
        groups = tuple((cid,) for cid in reversed(item.candidate_ids))
        store.submit(Ranking(item.id, "ana", groups, False, f"sub-{item.id}"), item.candidate_ids)
    report = run_rounds(*configs)
    assert "waiting_for" not in report and (out / "round_1" / "model" / "adapter_model.safetensors").is_file()
    k = len(candidates.items[0].candidates)
    assert report["rounds"][0]["pairs"] == sum(len(i.candidates) * (len(i.candidates) - 1) // 2 for i in candidates)
    assert k >= 2


@pytest.mark.parametrize("name", ["dpo_quickstart.yaml", "dpo_qwen3vl_4b_lora.yaml"])
def test_recipe_configs_parse(name):
    import yaml

    config = Path(__file__).resolve().parents[1] / "recipes" / "configs" / name
    script_args, candidates, simulated, export, training_args, model_args = parse_dpo_arguments(
        ["--config", str(config), "--bf16", "false", "--use_cpu", "true"]
    )
    assert script_args.num_rounds >= 2 and training_args.max_length is None
    # The candidate, annotator and export keys reach their library configs (renamed keys included).
    values = yaml.safe_load(config.read_text())
    assert candidates.num_samples == values["num_samples"] and candidates.temperatures == (0.7, 1.0)
    assert candidates.max_new_tokens == values["sample_max_new_tokens"] and candidates.seed == 0
    assert candidates.region_mode == values["region_mode"] and export.pairs == values["pairs"]
    assert simulated.noise == values.get("simulated_noise", 0.0) and training_args.seed == values["seed"]
    assert not training_args.precompute_ref_log_probs and training_args.beta > 0
    # The SFT configs' name for gradient checkpointing (transformers' current one), not the deprecated alias.
    assert "activation_checkpointing:" in config.read_text() and "gradient_checkpointing:" not in config.read_text()
    on = name != "dpo_quickstart.yaml"  # the YAML value wins over TRL's default (True)
    assert training_args.activation_checkpointing is on and training_args.gradient_checkpointing is on


_MISSPELT = {
    "pairs": "best-vs-rest",
    "annotator": "simulate",
    "decoding": "force",
    "region_mode": "uper",
    "renderer": "avatar_shaded",
    "own_output_estimate": "medain",  # CandidateConfig's field
    "simulated_regions": "forehead",  # SimulatedAnnotatorConfig's regions
}


def test_dpo_recipe_keys_are_the_library_config_fields():
    """Each candidate / annotator / export setting is declared once, in its library dataclass: the recipe parses
    those fields (under non-clashing names) and builds the library configs with their defaults."""
    import dataclasses

    from semanticface.preferences.export import ExportConfig
    from semanticface.preferences.rounds import CandidateArguments, ExportArguments, SimulatedAnnotatorArguments
    from semanticface.preferences.simulated import SimulatedAnnotatorConfig

    for wrapper, cls in (
        (CandidateArguments, CandidateConfig),
        (SimulatedAnnotatorArguments, SimulatedAnnotatorConfig),
        (ExportArguments, ExportConfig),
    ):
        assert sorted(wrapper.field_names.values()) == sorted(f.name for f in dataclasses.fields(cls))
        assert wrapper().build() == cls()
        assert not {f.name for f in dataclasses.fields(cls)} & {f.name for f in dataclasses.fields(DPOScriptArguments)}
    script, candidates, simulated, export, _, _ = parse_dpo_arguments(
        ["--dataset_name", "faces", "--output_dir", "out", "--use_cpu", "true", "--sampling_seed", "3",
         "--seed", "7", "--simulated_seed", "5", "--temperatures", "0.5", "0.9", "--export_annotators", "ana"]
    )  # fmt: skip
    assert candidates.seed == 3 and simulated.seed == 5 and candidates.temperatures == (0.5, 0.9)
    assert export.annotators == ("ana",) and script.dataset_name == "faces"


@pytest.mark.parametrize(("key", "value"), sorted(_MISSPELT.items()))
def test_a_misspelt_choice_in_the_dpo_yaml_fails_at_parse_time(tmp_path, key, value):
    """YAML values reach argparse as defaults, which it does not check against ``choices``: __post_init__ does,
    before anything is sampled, rendered, ranked or loaded."""
    from semanticface.errors import ConfigError

    source = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "dpo_quickstart.yaml"
    config = tmp_path / "dpo.yaml"
    config.write_text(source.read_text() + f"\n{key}: {value}\n")
    with pytest.raises(ConfigError, match=rf"{key} must be one of .*got '{value}'"):
        dpo_parser().parse_args_and_config(["--config", str(config), "--bf16", "false", "--use_cpu", "true"])


@pytest.mark.parametrize(("key", "value"), sorted(_MISSPELT.items()))
def test_a_misspelt_choice_on_the_dpo_command_line_fails_at_parse_time(key, value, capsys):
    argv = ["--dataset_name", "faces", "--output_dir", "out", "--use_cpu", "true", f"--{key}", value]
    with pytest.raises(SystemExit) as info:
        dpo_parser().parse_args_and_config(argv)
    assert info.value.code == 2 and f"invalid choice: '{value}'" in capsys.readouterr().err


def test_full_checkpoint_gets_a_fresh_lora_adapter(tmp_path, tiny_model_dir, prefs):
    from trl import DPOConfig, ModelConfig

    from semanticface.checkpoint import is_adapter
    from semanticface.inference import SemanticFacePredictor
    from semanticface.preferences.dpo_training import save_policy, train_dpo

    args = DPOConfig(output_dir=str(tmp_path / "t"), max_steps=2, per_device_train_batch_size=2, learning_rate=5e-3,
                     max_length=None, report_to=[], save_strategy="no", use_cpu=True)  # fmt: skip
    trainer, processor = train_dpo(
        str(tiny_model_dir), prefs, args, ModelConfig(use_peft=True, lora_r=4, lora_alpha=8)
    )
    model = trainer.model
    assert set(model.peft_config) == {"default"}  # reference = the same model with the adapter disabled
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    out = save_policy(trainer, processor, tmp_path / "policy", str(tiny_model_dir), {"pairs": len(prefs)})
    assert is_adapter(out) and not (out / "model.safetensors").exists()
    predictor = SemanticFacePredictor.from_pretrained(out, dtype="float32", device="cpu")
    assert len(predictor.predict([prefs[0]["images"][0]], max_new_tokens=4)) == 1


def test_loss_type_rpo_alpha_and_vision_tower_follow_the_config(tmp_path, tiny_model_dir, prefs):
    """loss_type (ipo) and rpo_alpha come from the DPO config (TrlParser flags), and a full checkpoint whose SFT
    trained the vision tower gets it trained again (frozen when the SFT froze it)."""
    import shutil

    from trl import DPOConfig, ModelConfig

    from semanticface.modeling import vision_module_names
    from semanticface.preferences.dpo_training import train_dpo

    config = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "dpo_quickstart.yaml"
    script_args, _, _, _, training_args, _ = parse_dpo_arguments(
        ["--config", str(config), "--bf16", "false", "--use_cpu", "true", "--loss_type", "ipo", "--rpo_alpha", "0.5",
         "--output_dir", str(tmp_path / "t"), "--max_steps", "2", "--per_device_train_batch_size", "2",
         "--learning_rate", "5e-3", "--logging_steps", "1"]
    )  # fmt: skip
    assert training_args.loss_type == ["ipo"] and script_args.rpo_alpha == 0.5
    sft = tmp_path / "sft"
    shutil.copytree(tiny_model_dir, sft)
    config_path = sft / "semanticface_config.json"
    payload = json.loads(config_path.read_text()) if config_path.is_file() else {"target": TARGET}
    config_path.write_text(json.dumps({**payload, "freeze_vision_tower": False}))
    trainer, _ = train_dpo(
        str(sft), prefs, training_args, ModelConfig(use_peft=False), rpo_alpha=script_args.rpo_alpha
    )
    assert trainer.loss_types == ["ipo", "sft"] and trainer.loss_weights == [1.0, 0.5]
    vision = vision_module_names(trainer.model)
    visual = [p for n, p in trainer.model.named_parameters() if any(n.startswith(v) for v in vision)]
    assert visual and all(p.requires_grad for p in visual)
    assert any("loss" in h for h in trainer.state.log_history)
    # The SFT froze it (the default): DPO keeps it frozen.
    config_path.write_text(json.dumps({**payload, "freeze_vision_tower": True}))
    args = DPOConfig(output_dir=str(tmp_path / "u"), max_steps=1, per_device_train_batch_size=2, max_length=None,
                     report_to=[], save_strategy="no", use_cpu=True, loss_type=["sigmoid"])  # fmt: skip
    trainer, _ = train_dpo(str(sft), prefs, args, ModelConfig(use_peft=False))
    visual = [p for n, p in trainer.model.named_parameters() if any(n.startswith(v) for v in vision)]
    assert visual and not any(p.requires_grad for p in visual)


@pytest.mark.slow
def test_dpo_recipe_two_process_ddp(tmp_path, sft_adapter, faces):
    """`accelerate launch --multi_gpu --num_processes 2 recipes/dpo.py` on CPU: one gloo DDP group."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "dpo"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(repo / "recipes" / "dpo.py"), "--config", str(repo / "recipes" / "configs" / "dpo_quickstart.yaml"),
        "--model_name_or_path", str(sft_adapter), "--dataset_name", str(faces), "--eval_dataset_name", str(faces),
        "--eval_samples", "2", "--output_dir", str(out), "--num_rounds", "1", "--images_per_round", "4",
        "--num_samples", "2", "--decoding", "forced", "--num_perturbations", "3", "--render_size", "48",
        "--min_pixels", "3136", "--max_pixels", "3136", "--max_steps", "2", "--per_device_train_batch_size", "2",
        "--save_strategy", "steps", "--save_steps", "2",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (out / "round_1" / "model" / "adapter_model.safetensors").is_file()
    metrics = json.loads((out / "round_1" / "metrics.json").read_text())
    assert metrics["pairs"] > 0 and metrics["eval"]["num_samples"] == 2
    checkpoint = out / "round_1" / "trainer" / "checkpoint-2"
    assert sorted(p.name for p in checkpoint.glob("rng_state*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]


def test_dpo_honours_load_in_4bit_on_qwen3_vl(tmp_path, tiny_qwen3_dir, prefs):
    """The DPO policy loads through the one training loader, so ``load_in_4bit`` gives a QLoRA policy (it used to
    build its LoraConfig by hand and load the base in full precision)."""
    import bitsandbytes as bnb
    from trl import DPOConfig, ModelConfig

    from semanticface.preferences.dpo_training import train_dpo

    args = DPOConfig(output_dir=str(tmp_path / "t"), max_steps=2, per_device_train_batch_size=2, learning_rate=5e-3,
                     max_length=None, report_to=[], save_strategy="no", use_cpu=True)  # fmt: skip
    model_args = ModelConfig(use_peft=True, load_in_4bit=True, lora_r=4, lora_alpha=8,
                             lora_target_modules=["q_proj", "v_proj"], dtype="float32")  # fmt: skip
    trainer, _ = train_dpo(str(tiny_qwen3_dir), prefs, args, model_args)
    assert trainer.state.global_step == 2
    base = trainer.model.get_base_model()
    assert type(base).__name__ == "Qwen3VLForConditionalGeneration"
    assert isinstance(base.model.language_model.layers[0].self_attn.q_proj.base_layer, bnb.nn.Linear4bit)
    assert isinstance(base.model.language_model.layers[0].mlp.up_proj, bnb.nn.Linear4bit)
    trained = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n and "visual" not in n for n in trained)


def test_quantized_dpo_without_lora_is_refused_before_loading(tmp_path, tiny_model_dir, prefs):
    from trl import DPOConfig, ModelConfig

    from semanticface.errors import ConfigError
    from semanticface.preferences.dpo_training import train_dpo

    args = DPOConfig(output_dir=str(tmp_path / "t"), max_steps=1, report_to=[], use_cpu=True, max_length=None)
    with pytest.raises(ConfigError, match="load_in_4bit needs use_peft"):
        train_dpo(str(tiny_model_dir), prefs, args, ModelConfig(use_peft=False, load_in_4bit=True))
