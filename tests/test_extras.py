"""Packaging: the core install is the design card's stack; everything else is an extra, and a missing extra raises
an error naming the ``pip install`` to run (simulated here by hiding the module from the import system)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from semanticface.cli import main as cli_main
from semanticface.errors import ConfigError, MissingExtraError
from semanticface.extras import EXTRAS, require

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")

REPO_ROOT = Path(__file__).resolve().parents[1]
CORE_STACK = {"torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes", "pillow", "jinja2"}


def _project() -> dict:
    with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]


def _name(requirement: str) -> str:
    for stop in "<>=!~[; ":
        requirement = requirement.split(stop, 1)[0]
    return requirement.lower()


def _hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make ``import module`` (and its submodules) fail as if the package were not installed."""
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # None in sys.modules -> ImportError on import


def test_core_requirements_are_the_design_stack() -> None:
    core = {_name(r) for r in _project()["dependencies"]}
    assert core - {"numpy", "tqdm"} == CORE_STACK


def test_every_optional_module_has_an_extra_and_all_installs_every_extra() -> None:
    extras = _project()["optional-dependencies"]
    for module, extra in EXTRAS.items():
        assert module in {_name(r) for r in extras[extra]}, f"{module} is not in extra [{extra}]"
    (everything,) = extras["all"]
    assert set(everything.split("[", 1)[1].rstrip("]").split(",")) == set(EXTRAS.values())
    assert "semanticface[all]" in extras["test"] and "semanticface[test]" in extras["dev"]
    assert {"ruff", "mypy"} <= {_name(r) for r in extras["dev"]}


def test_version_lives_in_one_place() -> None:
    import semanticface

    project = _project()
    assert "version" not in project and "version" in project["dynamic"]
    assert semanticface.__version__.count(".") == 2


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_a_missing_extra_names_the_pip_install(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    _hide(monkeypatch, module)
    with pytest.raises(MissingExtraError, match=rf"pip install 'semanticface\[{EXTRAS[module]}\]'") as info:
        require(module, "this feature")
    assert isinstance(info.value, ConfigError) and info.value.extra == EXTRAS[module]


def test_a_missing_submodule_is_reported_by_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "matplotlib")
    with pytest.raises(MissingExtraError, match=r"needs matplotlib: pip install 'semanticface\[eval\]'"):
        require("matplotlib.pyplot", "plots")


def test_require_refuses_a_module_that_is_no_extra() -> None:
    with pytest.raises(KeyError, match="not an optional dependency"):
        require("json", "anything")


def test_features_raise_the_extra_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from semanticface.evaluation.report import write_report
    from semanticface.render.gltf import read_gltf
    from semanticface.video import video_info

    _hide(monkeypatch, "pygltflib")
    with pytest.raises(MissingExtraError, match=r"semanticface\[gltf\]"):
        read_gltf(tmp_path / "rig.glb")
    _hide(monkeypatch, "av")
    with pytest.raises(MissingExtraError, match=r"semanticface\[video\]"):
        video_info(tmp_path / "clip.mp4")
    _hide(monkeypatch, "matplotlib")
    with pytest.raises(MissingExtraError, match=r"semanticface\[eval\]"):
        write_report(tmp_path / "report", [], [])


def test_annotate_without_flask_tells_the_user_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _hide(monkeypatch, "flask")
    code = cli_main(["annotate", "--candidates", str(tmp_path), "--db", str(tmp_path / "r.sqlite")])
    assert code == 1
    assert "pip install 'semanticface[annotate]'" in capsys.readouterr().err


def test_describe_runs_with_no_extra_and_no_model_stack(tmp_path: Path) -> None:
    """``pip install .`` without extras then ``semanticface describe``: run it with every extra (and the model
    stack, which describe must not need) made unimportable."""
    import subprocess

    from semanticface.coefficients import FaceCoefficients
    from semanticface.llf import write_llf

    take = write_llf(tmp_path / "take.csv", [FaceCoefficients.neutral().replace(jawOpen=0.7)])
    blocked = sorted({*EXTRAS, "torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes"})
    code = (
        "import sys\n"
        f"BLOCKED = {blocked!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in BLOCKED:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (blocked by the test)')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from semanticface.cli import main\n"
        f"sys.exit(main(['describe', {str(take)!r}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "jaw" in result.stdout.lower() and "Coefficients:" in result.stdout
