"""`semanticface describe`: description and training target of a recording frame, clean errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from semanticface.cli import main
from semanticface.coefficients import FaceCoefficients
from semanticface.contract import parse_output
from semanticface.llf import write_llf


def _recording(tmp_path):
    smile = FaceCoefficients.neutral().replace(mouthSmileLeft=0.8, mouthSmileRight=0.8, cheekSquintLeft=0.5)
    return write_llf(tmp_path / "take.csv", [FaceCoefficients.neutral(), smile])


def test_describe_prints_description_and_target(tmp_path, capsys) -> None:
    path = _recording(tmp_path)
    assert main(["describe", str(path), "--frame", "1"]) == 0
    out = capsys.readouterr().out
    assert "frame 1 of 2" in out and "category: happiness" in out and "AU12 lip corner puller 0.80" in out
    target = out.split("## Training target\n", 1)[1]
    assert target.startswith("Expression: happiness (strong)")
    parsed = parse_output(target)
    assert parsed.issues == [] and parsed.coefficients["mouthSmileLeft"] == 0.8


def test_describe_options(tmp_path, capsys) -> None:
    path = _recording(tmp_path)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "description.j2").write_text("Looks like: {{ expression }}\n", encoding="utf-8")
    args = ["describe", str(path), "--frame", "-1", "--decimals", "1", "--include-pose", "--key-dialect", "llf"]
    assert main([*args, "--template-dir", str(templates)]) == 0
    target = capsys.readouterr().out.split("## Training target\n", 1)[1]
    assert target.startswith("Looks like: happiness")
    assert '"MouthSmileLeft": 0.8' in target and '"RightEyeRoll": 0.0}' in target


def test_describe_errors_are_clean(tmp_path, capsys) -> None:
    path = _recording(tmp_path)
    assert main(["describe", str(path), "--frame", "2"]) == 1
    assert "frame 2 is out of range (the recording has 2 frames)" in capsys.readouterr().err
    assert main(["describe", str(tmp_path / "absent.csv")]) == 1
    assert "cannot open" in capsys.readouterr().err


def test_describe_does_not_import_torch(tmp_path) -> None:
    path = _recording(tmp_path)
    code = (
        "import sys; from semanticface.cli import main; "
        f"rc = main(['describe', {str(path)!r}]); assert 'torch' not in sys.modules; sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Expression: neutral" in result.stdout


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path) -> None:
    """`semanticface describe take.csv | head -1`: the pipe closes under the command, which ends quietly."""
    path = _recording(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "semanticface.cli", "describe", str(path), "--frame", "1", "--include-pose"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": ""},
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the command writes (`head` that already has its lines)
    _, stderr = process.communicate(timeout=120)
    assert b"Traceback" not in stderr and b"BrokenPipeError" not in stderr
    assert process.returncode in (0, 141)
