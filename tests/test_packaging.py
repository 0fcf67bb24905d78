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


def test_the_readme_layout_table_names_every_module_and_file_it_lists() -> None:
    """Every top-level module and subpackage of semanticface/ is named in the
    README's layout table, and every path the table names exists."""
    import re

    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    names = {n for row in rows for n in re.findall(r"`([^`]+)`", row.split(" | ")[0])}
    package = REPO_ROOT / "semanticface"
    modules = {
        p.name
        for p in package.iterdir()
        if not p.name.startswith("_") and (p.suffix == ".py" or (p / "__init__.py").is_file())
    }
    named = {n.removeprefix("semanticface/").rstrip("/") for n in names}
    assert not modules - named, f"add to the README's layout table: {sorted(modules - named)}"
    for row in rows:
        first = re.findall(r"`([^`]+)`", row.split(" | ")[0])
        base = REPO_ROOT / first[0].rstrip("/")
        assert base.exists(), f"README layout names {first[0]}, which does not exist"
        folder = base if base.is_dir() else base.parent
        for name in first[1:]:
            candidates = [folder / name.rstrip("/"), folder.parent / name.rstrip("/"), REPO_ROOT / name.rstrip("/")]
            assert any(c.exists() for c in candidates), f"README layout names {name} ({first[0]} row): not found"


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
