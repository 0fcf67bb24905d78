"""Issue 12, item 1: prompt templates are text, never code.

Templates render in Jinja's immutable sandbox, and templates that come with a model folder or Hub repo are used
only with ``trust_remote_code=True``; a user's own ``template_dir`` keeps working.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from semanticface.checkpoint import CONFIG_FILENAME, target_config_from
from semanticface.coefficients import FaceCoefficients
from semanticface.contract import TargetConfig, render_target, system_prompt
from semanticface.errors import ConfigError, UntrustedTemplateError
from semanticface.inference import SemanticFacePredictor


def _payload(marker: Path) -> str:
    return "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}\n"


def _model_folder(folder: Path, marker: Path, template_dir: str = "templates") -> Path:
    (folder / template_dir).mkdir(parents=True)
    (folder / template_dir / "system.j2").write_text(_payload(marker), encoding="utf-8")
    config = {"target": {"target_format": "semantic", "decimals": 2, "template_dir": template_dir}}
    (folder / CONFIG_FILENAME).write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_model_templates_need_trust_remote_code_and_run_nothing(tmp_path) -> None:
    marker = tmp_path / "pwned"
    folder = _model_folder(tmp_path / "model", marker)
    with pytest.raises(UntrustedTemplateError, match="trust_remote_code=True") as caught:
        SemanticFacePredictor.from_pretrained(folder)
    assert "template_dir" in str(caught.value) and str(folder) in str(caught.value)
    assert isinstance(caught.value, ConfigError)
    assert not marker.exists()
    # Absolute paths are refused the same way.
    saved = json.loads((folder / CONFIG_FILENAME).read_text())
    saved["target"]["template_dir"] = str(folder / "templates")
    with pytest.raises(UntrustedTemplateError):
        target_config_from(saved, source=folder)
    assert not marker.exists()


def test_the_sandbox_stops_the_payload_even_in_the_users_own_template_dir(tmp_path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "system.j2").write_text(_payload(marker), encoding="utf-8")
    with pytest.raises(ConfigError, match="system.j2"):
        system_prompt(TargetConfig(template_dir=str(tmp_path / "mine")))
    assert not marker.exists()
    for attack in (
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lipsum.__globals__ }}",
        "{% set x = regions.append(1) %}{{ x }}",  # immutable: no mutation of the context either
    ):
        (tmp_path / "mine" / "system.j2").write_text(attack, encoding="utf-8")
        from semanticface.prompts import environment

        environment.cache_clear()
        with pytest.raises(ConfigError):
            system_prompt(TargetConfig(template_dir=str(tmp_path / "mine")))


def test_a_users_own_template_dir_keeps_working(tmp_path) -> None:
    (tmp_path / "target.j2").write_text("Mine:\n{{ coefficients }}\n", encoding="utf-8")
    text = render_target(FaceCoefficients.neutral(), TargetConfig(template_dir=str(tmp_path)))
    assert text.startswith('Mine:\n{"eyeBlinkLeft": 0.00')


def test_trusted_model_templates_are_used_from_inside_the_model_folder(tiny_model_dir, tmp_path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "templates").mkdir()
    (folder / "templates" / "user.j2").write_text("Read this face, model-specific wording.\n", encoding="utf-8")
    (folder / CONFIG_FILENAME).write_text(json.dumps({"target": {"template_dir": "templates"}}), encoding="utf-8")
    with pytest.raises(UntrustedTemplateError):
        SemanticFacePredictor.from_pretrained(folder, device="cpu", dtype="float32")
    predictor = SemanticFacePredictor.from_pretrained(folder, device="cpu", dtype="float32", trust_remote_code=True)
    assert predictor.target_config.template_dir == str(folder / "templates")
    assert "model-specific wording" in json.dumps(predictor.prompt_messages)
    # A caller's own target_config wins and needs no trust.
    own = SemanticFacePredictor.from_pretrained(folder, device="cpu", dtype="float32", target_config=TargetConfig())
    assert "model-specific wording" not in json.dumps(own.prompt_messages)
