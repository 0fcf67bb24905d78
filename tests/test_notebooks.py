"""The notebooks run top to bottom (nbclient) against the tiny model and ../shared data, and are stored with their
outputs (figures visible where the repository is browsed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_stage1_descriptions", "02_rendering_and_datasets", "03_predict_and_evaluate")


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A "python3" kernelspec that runs *this* interpreter, first on JUPYTER_PATH: in a fresh CI venv the
    stock spec says plain ``python``, which may be another interpreter without semanticface installed."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "semanticface", "language": "python"}))
    return {"JUPYTER_PATH": str(root)}


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name: str, kernel_env, request, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    for key, value in kernel_env.items():
        monkeypatch.setenv(key, value)
    if name.startswith("01"):  # reads a real recording; the others use ../shared only when it is there
        monkeypatch.setenv("SEMANTICFACE_SHARED_DATA", str(request.getfixturevalue("shared_data")))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # figures as outputs
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError naming the cell on any failure
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    produced = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in produced), "expected at least one figure"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_with_its_outputs(name: str):
    """Where the repository is browsed, the notebooks show what they compute: every code cell ran, in order, without
    an error, and at least one figure is stored (``python notebooks/execute.py`` refreshes them)."""
    notebook = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert [cell["execution_count"] for cell in code] == list(range(1, len(code) + 1))
    outputs = [o for cell in code for o in cell["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure stored"
