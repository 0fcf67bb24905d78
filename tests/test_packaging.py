"""The wheel ships every package and the prompt templates (a user's pip install must find them)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _listed_packages() -> set[str]:
    with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
        return set(tomllib.load(handle)["tool"]["setuptools"]["packages"])


def test_every_python_package_is_listed_in_pyproject() -> None:
    found = {
        ".".join(path.parent.relative_to(REPO_ROOT).parts)
        for path in (REPO_ROOT / "semanticface").rglob("__init__.py")
        if "__pycache__" not in path.parts
    }
    assert found <= _listed_packages(), f"add to [tool.setuptools] packages: {sorted(found - _listed_packages())}"


@pytest.mark.slow
def test_wheel_contains_templates_and_static_files(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("semanticface-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (REPO_ROOT / "prompts").glob("*.j2"):
        assert f"semanticface/_prompts/{template.name}" in names
    assert any(n.startswith("semanticface/preferences/static/") for n in names)
    assert any(n.startswith("semanticface/preferences/templates/") for n in names)
