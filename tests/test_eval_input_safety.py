"""Issue 12, item 7: evaluation input and checkpoints.

``eval --predictions`` with non-UTF-8 bytes or wrongly typed fields gives a typed error naming the line; a truncated
``model.safetensors`` gives an error naming the file; ``--resume_from_checkpoint latest`` skips incomplete
checkpoints (no ``trainer_state.json``) with a warning and uses the newest complete one.
"""

from __future__ import annotations

import json
import shutil

import pytest

from semanticface.errors import ConfigError, DatasetError
from semanticface.evaluation.imported import load_predictions
from semanticface.training.setup import resolve_resume_checkpoint

GOOD = {"index": 0, "text": '{"jawOpen": 0.5}'}


@pytest.fixture(scope="module")
def dataset():
    from datasets import Dataset

    return Dataset.from_dict({"id": ["a", "b", "c"]})


def _write(tmp_path, lines: list[bytes]):
    path = tmp_path / "preds.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"index": 1, "text": "caf\xe9"}', "not UTF-8"),
        (b"\xff\xfe{}", "not UTF-8"),
        (json.dumps({"index": 1, "text": "x", "num_tokens": "many"}).encode(), "num_tokens"),
        (json.dumps({"index": 1, "text": "x", "num_tokens": [3]}).encode(), "num_tokens"),
        (json.dumps({"index": 1, "text": "x", "num_tokens": -1}).encode(), "num_tokens"),
        (json.dumps({"index": 1, "text": "x", "seconds": "slow"}).encode(), "seconds"),
        (json.dumps({"index": 1, "text": "x", "seconds": {"s": 1}}).encode(), "seconds"),
        (json.dumps({"index": 1, "text": "x", "seconds": 10**400}).encode(), "seconds"),
        (json.dumps({"index": 1, "text": ["x"]}).encode(), "'text' must be a string"),
        (json.dumps({"index": 1, "output": 5}).encode(), "'output' must be a string"),
        (json.dumps({"index": "1", "text": "x"}).encode(), "integer 'index'"),
        (json.dumps({"id": {"a": 1}, "text": "x"}).encode(), "'id' must be"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_prediction_lines_give_a_typed_error_naming_the_line(tmp_path, dataset, line, message) -> None:
    path = _write(tmp_path, [json.dumps(GOOD).encode(), line])
    with pytest.raises(DatasetError, match=message) as caught:
        load_predictions(path, dataset, fmt="semanticface-toolkit")
    assert f"{path}, line 2" in str(caught.value)


def test_well_typed_optional_fields_are_read(tmp_path, dataset) -> None:
    record = {"id": "b", "text": '{"jawOpen": 0.5}', "num_tokens": 12.0, "seconds": 0.25}
    predictions = load_predictions(
        _write(tmp_path, [json.dumps(record).encode()]), dataset, fmt="semanticface-toolkit"
    )
    assert predictions[1].num_tokens == 12 and predictions[1].seconds == 0.25
    assert predictions[1].coefficients["jawOpen"] == 0.5 and predictions[0].coefficients is None


def test_eval_cli_reports_the_line_of_a_non_utf8_file(tmp_path, capsys) -> None:
    from semanticface.cli import main
    from semanticface.synth import SynthConfig, synthesize

    data = tmp_path / "faces"
    synthesize(SynthConfig(n=4, size=32, identities=2, splits={"train": 0.5, "test": 0.5}, seed=1), data)
    preds = _write(tmp_path, [json.dumps(GOOD).encode(), b'{"index": 1, "text": "\xff"}'])
    argv = ["eval", "--predictions", str(preds), "--format", "semanticface-toolkit", "--dataset", str(data)]
    assert main([*argv, "--out", str(tmp_path / "report"), "--renderer", "none", "--no-baselines"]) == 1
    assert "line 2: not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize("keep", [0.5, 0.01, 0.0])
def test_a_truncated_safetensors_file_is_named(tiny_model_dir, tmp_path, keep: float) -> None:
    from semanticface.modeling import load_model

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ConfigError, match="model.safetensors") as caught:
        load_model(folder, dtype="float32")
    assert str(weights) in str(caught.value) and "truncated" in str(caught.value)


def test_a_truncated_adapter_is_named_by_the_predictor(tiny_model_dir, tmp_path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    from semanticface.inference import SemanticFacePredictor
    from semanticface.modeling import load_model_and_processor

    model, processor = load_model_and_processor(tiny_model_dir, dtype="float32")
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    folder = tmp_path / "adapter"
    peft_model.save_pretrained(folder)
    processor.save_pretrained(folder)
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ConfigError, match="adapter_model.safetensors"):
        SemanticFacePredictor.from_pretrained(folder, device="cpu", dtype="float32")


def test_resume_latest_skips_incomplete_checkpoints_with_a_warning(tmp_path) -> None:
    for step, state in ((5, "{}"), (10, "{}"), (15, None), (20, '{"global_step": 2')):  # 15: none, 20: half-written
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-99.tmp").mkdir()  # not a checkpoint name
    with pytest.warns(UserWarning) as record:
        assert resolve_resume_checkpoint("latest", str(tmp_path)) == str(tmp_path / "checkpoint-10")
    messages = [str(w.message) for w in record]
    assert any("checkpoint-20" in m and "trainer_state.json" in m for m in messages)
    assert any("checkpoint-15" in m and "no trainer_state.json" in m for m in messages)
    shutil.rmtree(tmp_path / "checkpoint-5")
    shutil.rmtree(tmp_path / "checkpoint-10")
    with pytest.warns(UserWarning):
        assert resolve_resume_checkpoint("latest", str(tmp_path)) is None  # nothing complete: start fresh
