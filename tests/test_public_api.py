"""The public API: ``from semanticface import ...`` works, lazily (no torch until a model loads), the README's first
code block runs as written, and ``semanticface/`` has no import cycle (every import counted, lazy ones too)."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import semanticface

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "semanticface"
PUBLIC = [
    "SemanticFacePredictor",
    "FaceCoefficients",
    "describe",
    "TargetConfig",
    "render_target",
    "parse_output",
    "read_llf",
    "write_llf",
    "get_renderer",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_is_the_object_its_module_defines(name: str) -> None:
    assert name in semanticface.__all__ and name in dir(semanticface)
    module = importlib.import_module(semanticface._EXPORTS[name])
    assert getattr(semanticface, name) is getattr(module, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'predict'"):
        semanticface.predict  # noqa: B018
    with pytest.raises(ImportError):
        exec("from semanticface import predictor_v2", {})


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT)


def test_importing_the_whole_api_loads_no_torch() -> None:
    names = ", ".join(PUBLIC)
    result = _run(
        f"import sys\nfrom semanticface import {names}\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    assert result.returncode == 0, result.stderr


def test_import_semanticface_alone_imports_no_submodule() -> None:
    result = _run("import sys, semanticface\nprint(sorted(m for m in sys.modules if m.startswith('semanticface.')))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _first_code_block() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"```(\w*)\n(.*?)```", text, re.S)
    assert match is not None, "README has no code block"
    assert match.group(1) == "python", "the README's first code block is the public API example"
    return match.group(2)


def test_readme_first_code_block_imports_the_public_api() -> None:
    block = _first_code_block()
    imported = re.search(r"from semanticface import \((.*?)\)", block, re.S)
    assert imported is not None
    assert {n.strip() for n in imported.group(1).split(",") if n.strip()} == set(PUBLIC)


def test_readme_first_code_block_runs(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As written, with the Quick start's checkpoint replaced by the tiny test model (random weights)."""
    block = _first_code_block()
    assert '"outputs/quickstart"' in block
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(block.replace('"outputs/quickstart"', repr(str(tiny_model_dir))), "README.md", "exec"), scope)
    assert (tmp_path / "face.png").is_file() and (tmp_path / "take.csv").is_file()
    assert scope["recording"].values.shape == (2, 61)  # type: ignore[attr-defined]
    assert scope["prediction"].raw_text  # type: ignore[attr-defined]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ``semanticface`` that ``path`` imports anywhere (module level or inside functions), except
    under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(parts + ([child.module] if child.module else []))
                for alias in child.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {name for name in found if name in known}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    return {name: _imports(path, set(paths)) for name, path in paths.items()}


def test_semanticface_has_no_import_cycle() -> None:
    graph = _graph()
    assert len(graph) > 50 and graph["semanticface.inference"], "the walk found the package's modules and imports"
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = _graph()
    graph["semanticface.schema"] = graph["semanticface.schema"] | {"semanticface.contract"}  # contract -> schema
    (cycle,) = _cycles(graph)
    assert {"semanticface.contract", "semanticface.schema"} <= set(cycle)


def test_no_module_imports_another_modules_private_names() -> None:
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("semanticface"):
                found += [
                    f"{path.relative_to(REPO_ROOT)}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert found == []
