"""The checkpoint config (``semanticface/checkpoint.py``): one module knows the file, it round-trips, and reading
is strict (only "no such file" means absent; unreadable, newer, or unreachable raises)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semanticface.checkpoint import CONFIG_FILENAME, FORMAT_VERSION, CheckpointConfig, read_target_config
from semanticface.contract import TargetConfig
from semanticface.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_only_the_checkpoint_module_names_the_file() -> None:
    holders = sorted(
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / "semanticface").rglob("*.py")
        if CONFIG_FILENAME in p.read_text(encoding="utf-8")
    )
    assert holders == ["semanticface/checkpoint.py"]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    target = TargetConfig(target_format="coefficients", decimals=3, include_pose=True, block_style="compact")
    saved = CheckpointConfig.for_target(target, base_model="base", min_pixels=3136, max_pixels=12544,
                                        extra={"metrics": {"eval_gen_mae": 0.1}})  # fmt: skip
    path = saved.save(tmp_path)
    assert path.name == CONFIG_FILENAME and json.loads(path.read_text())["version"] == FORMAT_VERSION
    loaded = CheckpointConfig.load(tmp_path)
    assert loaded == saved
    assert loaded.target_config() == target and read_target_config(tmp_path) == target
    derived = loaded.derived("dpo", tmp_path, dpo_metrics={"pairs": 3})
    assert derived.target == saved.target and derived.min_pixels == 3136
    assert derived.extra["lineage"] == [{"stage": "dpo", "from": str(tmp_path)}] and derived.extra["dpo_metrics"]


def test_files_written_before_the_version_field_still_load(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILENAME).write_text(json.dumps({"target": {"decimals": 1}, "base_model": "b", "metrics": {}}))
    loaded = CheckpointConfig.load(tmp_path)
    assert loaded is not None and loaded.target_config().decimals == 1 and loaded.extra == {"metrics": {}}
    (tmp_path / CONFIG_FILENAME).write_text(json.dumps({"decimals": 3, "include_pose": True}))  # top-level fields
    assert read_target_config(tmp_path) == TargetConfig(decimals=3, include_pose=True)


def test_a_folder_without_the_file_has_no_config(tmp_path: Path) -> None:
    assert CheckpointConfig.load(tmp_path) is None
    assert read_target_config(tmp_path) == TargetConfig()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"version": FORMAT_VERSION + 1, "target": {}}), "newer semanticface"),
        (json.dumps({"version": "2"}), "version must be a positive integer"),
        (json.dumps({"target": "semantic"}), "target section must be an object"),
        (json.dumps({"target": {}, "min_pixels": -4}), "min_pixels must be a positive integer"),
    ],
)
def test_an_unusable_config_raises_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / CONFIG_FILENAME).write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        CheckpointConfig.load(tmp_path)
    assert CONFIG_FILENAME in str(info.value)


def test_an_unreadable_config_raises(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILENAME).mkdir()  # exists, cannot be read as a file
    with pytest.raises(ConfigError, match="cannot read the checkpoint config"):
        CheckpointConfig.load(tmp_path)
    (tmp_path / CONFIG_FILENAME).rmdir()
    (tmp_path / CONFIG_FILENAME).write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=CONFIG_FILENAME):
        CheckpointConfig.load(tmp_path)


def test_the_predictor_refuses_an_unreadable_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    """It used to fall back to the default TargetConfig and parse outputs against the wrong template."""
    import shutil

    from semanticface.inference import SemanticFacePredictor

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / CONFIG_FILENAME).write_text('{"target": {"decimals": 3},')
    with pytest.raises(ConfigError, match="not valid JSON"):
        SemanticFacePredictor.from_pretrained(model, device="cpu")


def _without_hub(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environment |= {"PYTHONPATH": str(REPO_ROOT), "HF_HOME": str(tmp_path / "hf"), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)


_CALLS = {
    "config": "CheckpointConfig.load('someone/face-model')",
    "adapter": "is_adapter('someone/face-model')",
    "predictor": "SemanticFacePredictor.from_pretrained('someone/face-model')",
}


def _expect_config_errors(calls: list[str]) -> str:
    lines = [
        "from semanticface.errors import ConfigError",
        "from semanticface.checkpoint import CheckpointConfig, is_adapter",
        "from semanticface.inference import SemanticFacePredictor",
    ]
    for call in calls:
        lines += [
            "try:",
            f"    {call}",
            "except ConfigError as error:",
            "    assert 'someone/face-model' in str(error) and 'Hub' in str(error), error",
            "else:",
            f"    raise SystemExit({call!r} + ' did not raise')",
        ]
    return "\n".join([*lines, "print('raised')"])


def test_an_offline_hub_raises_instead_of_falling_back(tmp_path: Path) -> None:
    """Offline with nothing cached: the repo may well have a config, so its absence cannot be assumed."""
    result = _without_hub(_expect_config_errors(list(_CALLS.values())), tmp_path, HF_HUB_OFFLINE="1")
    assert result.returncode == 0 and result.stdout.strip() == "raised", result.stderr[-2000:]


@pytest.mark.slow  # huggingface_hub retries a refused connection with backoff (~25 s)
def test_an_unreachable_hub_raises_instead_of_falling_back(tmp_path: Path) -> None:
    result = _without_hub(_expect_config_errors([_CALLS["predictor"]]), tmp_path, HF_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 0 and result.stdout.strip() == "raised", result.stderr[-2000:]
