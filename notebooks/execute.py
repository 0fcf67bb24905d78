"""Run every notebook top to bottom and store it with its outputs (figures visible where the repository is browsed).

    python notebooks/execute.py            # after the README's main job, so notebook 3 uses its model

Notebook 1 reads a real recording from ../shared/data (SEMANTICFACE_SHARED_DATA); notebook 3 uses
outputs/quickstart when it exists. The test suite re-executes them in memory (tests/test_notebooks.py).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import nbclient
import nbformat

HERE = Path(__file__).resolve().parent


def _kernel_for_this_interpreter() -> None:
    """A "python3" kernelspec that runs this interpreter (the one with semanticface installed), first on
    JUPYTER_PATH: the stock spec says plain ``python``, which may be another interpreter."""
    root = Path(tempfile.mkdtemp(prefix="semanticface-kernel-"))
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    os.environ["JUPYTER_PATH"] = str(root)


def main() -> int:
    _kernel_for_this_interpreter()
    os.environ.setdefault("SEMANTICFACE_SHARED_DATA", str(HERE.parent.parent / "shared" / "data"))
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # stored outputs without progress noise
    os.environ.setdefault("TQDM_DISABLE", "1")
    names = sys.argv[1:] or sorted(p.name for p in HERE.glob("*.ipynb"))
    for name in names:
        path = HERE / name
        notebook = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
        )
        client.execute()
        nbformat.write(notebook, path)
        print(f"executed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
