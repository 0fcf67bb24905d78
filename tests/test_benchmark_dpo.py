"""recipes/benchmarks/dpo.py --quick: every system and control in report.json's layout, the gate stops a blind run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = [
    "pseudo_labels", "median_constant", "sft_pseudo", "continued_sft", "best_of_n_sft",
    "dpo_round_1", "dpo_round_2", "dpo_round_3", "sft_truth",
]  # fmt: skip


def _load():
    spec = importlib.util.spec_from_file_location("bench_dpo", REPO / "recipes" / "benchmarks" / "dpo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_run_reports_every_system_and_the_gate_stops_a_blind_model(tmp_path, capsys):
    bench = _load()
    out = tmp_path / "bench"
    report = bench.main(["--quick", "--out", str(out)])
    assert json.loads((out / "report.json").read_text())["systems"].keys() == report["systems"].keys()
    assert list(report["systems"]) == SYSTEMS
    for name, system in report["systems"].items():
        assert {"mae", "mae_se", "per_seed", "regions", "halves"} <= system.keys(), name
        assert len(system["per_seed"]) == 1 and set(system["halves"]) == {"upper", "lower"}
        assert system["mae"] > 0
    for r in (1, 2, 3):
        assert f"dpo_round_{r} vs sft_pseudo" in report["comparisons"]
    seed = report["seeds"]["seed0"]
    for r in (1, 2, 3):
        round_ = seed["rounds"][f"dpo_round_{r}"]
        assert round_["pairs"] > 0 and 0 <= round_["headroom"]["best_beats_own"] <= 1
        assert "kendall_tau" in round_["agreement_with_oracle"]
    # Four SFT steps leave the model blind: the gate says so (not enforced in --quick) ...
    assert seed["gate"] == {**seed["gate"], "passed": False, "reads_image": False, "enforced": False}
    assert "GATE:" in capsys.readouterr().out
    assert (out / "seed0" / "errors.jsonl").is_file()
    # ... and stops the run when enforced (the finished stages are reused, so this is quick).
    with pytest.raises(SystemExit, match="GATE"):
        bench.main(["--quick", "--enforce-gate", "--out", str(out)])
