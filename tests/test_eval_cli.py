"""`semanticface eval`, `predict` and `merge` end to end: tiny model, rendered synthetic dataset, real files out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semanticface.checkpoint import CONFIG_FILENAME
from semanticface.cli import main
from semanticface.evaluation.baselines import ConstantMeanBaseline, MedianBaseline
from semanticface.evaluation.metrics import coefficient_metrics
from semanticface.rows import dataset_coefficients
from semanticface.schema import BLENDSHAPES, LLF_COLUMN_ORDER, canonical_name

PLOTS = ("mae_per_blendshape.png", "mae_per_region.png", "pred_vs_truth.png", "renders.png")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from semanticface.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("synth") / "faces"
    synthesize(SynthConfig(n=12, size=64, identities=4, splits={"train": 0.5, "test": 0.5}, seed=3), out)
    return out


@pytest.fixture(scope="module")
def coefficient_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a saved target config of the coefficient-only format (quick to force-decode)."""
    out = tmp_path_factory.mktemp("coef_model") / "model"
    shutil.copytree(tiny_model_dir, out)
    (out / CONFIG_FILENAME).write_text(json.dumps({"target": {"target_format": "coefficients"}}))
    return out


def _splits(dataset_dir: Path):
    from datasets import load_from_disk

    data = load_from_disk(str(dataset_dir))
    return data["train"], data["test"]


def test_eval_model_with_baselines_writes_json_markdown_and_plots(coefficient_model, dataset_dir, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["eval", "--model", str(coefficient_model), "--dataset", str(dataset_dir), "--out", str(out)]
    assert (
        main([*args, "--decoding", "forced", "--batch-size", "3", "--render-samples", "3", "--render-size", "96"]) == 0
    )
    report = json.loads((out / "metrics.json").read_text())
    systems = report["systems"]
    assert list(systems) == ["model", "median", "constant_mean", "neutral"]
    # The tiny model's vision tower is random: it writes the same face for every image, and the user is told.
    assert systems["model"]["spread_ratio"] < 0.1
    assert "WARNING: model ignores the image" in capsys.readouterr().err
    assert report["warnings"] and report["warnings"][0].startswith("model ignores the image")
    model = systems["model"]
    # Forced decoding always yields a parseable block, even from a random model.
    assert model["num_parse_failures"] == 0 and model["num_samples"] == 6
    assert model["mean_output_tokens"] == 52 and model["seconds_per_image"] > 0
    assert 0 <= model["overall"]["mae"] <= 1 and set(model["regions"]) >= {"brows", "mouth", "tongue"}
    assert all(0 <= systems[s]["render_distance"] <= 1 for s in systems)
    assert "description_consistency" not in model  # the coefficient-only format has no description
    # The constant-mean baseline uses the train split's mean: recompute it independently.
    train, test = _splits(dataset_dir)
    truths = dataset_coefficients(test)
    expected = coefficient_metrics(ConstantMeanBaseline.fit(dataset_coefficients(train)).predict(truths), truths)
    assert systems["constant_mean"]["overall"]["mae"] == pytest.approx(expected.overall.mae)
    # The median baseline is the train split's per-channel median: recompute it with numpy.
    train_matrix = np.array([t.blendshapes for t in dataset_coefficients(train)])
    median = np.median(train_matrix, axis=0)
    test_matrix = np.array([t.blendshapes for t in truths])
    assert systems["median"]["overall"]["mae"] == pytest.approx(np.abs(test_matrix - median).mean())
    # The model against every baseline: paired bootstrap intervals over the 6 test images.
    comparisons = report["comparisons"]
    assert list(comparisons) == ["model vs median", "model vs constant_mean", "model vs neutral"]
    versus_median = comparisons["model vs median"]
    assert (
        versus_median["n"] == 6 and versus_median["ci_low"] <= versus_median["mean_diff"] <= versus_median["ci_high"]
    )
    assert versus_median["mean_diff"] == pytest.approx(model["overall"]["mae"] - systems["median"]["overall"]["mae"])
    errors = [json.loads(line) for line in (out / "per_image_errors.jsonl").read_text().splitlines()]
    assert len(errors) == 4 * 6 and {e["system"] for e in errors} == set(systems)
    neutral = np.mean([np.abs(t.blendshapes).mean() for t in truths])
    assert systems["neutral"]["overall"]["mae"] == pytest.approx(neutral)
    saved = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(saved) == 6 and all(s["parse_ok"] and s["raw_text"].startswith("Coefficients:") for s in saved)
    summary = (out / "summary.md").read_text()
    assert "| model |" in summary and "| constant_mean |" in summary and "| neutral |" in summary
    assert "| median |" in summary and "## model against each baseline" in summary and "| jawOpen |" in summary
    for name in PLOTS:
        with Image.open(out / name) as png:
            assert png.format == "PNG" and png.width > 300, name
        assert f"({name})" in summary


def test_eval_counts_parse_failures_instead_of_failing(tiny_model_dir, dataset_dir, tmp_path):
    out = tmp_path / "report"
    argv = ["eval", "--model", str(tiny_model_dir), "--dataset", str(dataset_dir), "--out", str(out)]
    argv += ["--limit", "2", "--max-new-tokens", "6", "--no-baselines", "--renderer", "none"]
    assert main(argv) == 0
    model = json.loads((out / "metrics.json").read_text())["systems"]["model"]
    assert model["num_parse_failures"] == 2 and model["parse_failure_rate"] == 1.0
    # Nothing was given, so nothing is scored on the model's own cells, and every cell is scored as the train
    # split's per-channel median (a failed row never scores better than the median baseline).
    assert model["own_mask"]["mae"] is None and model["own_mask"]["count"] == 0 and model["coverage"] == 0
    train, test = _splits(dataset_dir)
    median = MedianBaseline.fit(dataset_coefficients(train)).median
    truths = dataset_coefficients(test)[:2]
    expected = np.mean([np.abs(t.blendshapes - median.blendshapes).mean() for t in truths])
    assert model["overall"]["mae"] == pytest.approx(expected) and model["overall"]["count"] == 2 * 52
    assert not (out / "renders.png").exists()


def _release_text(values: dict[str, float]) -> str:
    """An output in the released SemanticFace format: markdown analysis, then 61 PascalCase keys at 1 decimal."""
    block = ", ".join(f'"{key}": {values[canonical_name(key)]:.1f}' for key in LLF_COLUMN_ORDER)
    return f"## Analysis\n\n**Expression**: a face.\n\n```json\n{{{block}}}\n```"


def test_eval_scores_imported_semanticface_release_predictions(dataset_dir, tmp_path, capsys):
    _, test = _splits(dataset_dir)
    truths = dataset_coefficients(test)
    lines = [
        {"index": i, "text": _release_text(dict(zip(t.to_dict().keys(), t.values)))} for i, t in enumerate(truths)
    ]
    lines[1]["text"] = "## Analysis\nI could not see a face."  # unparseable
    del lines[2]  # unanswered row
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = tmp_path / "report"
    argv = ["eval", "--predictions", str(preds), "--format", "semanticface", "--dataset", str(dataset_dir)]
    assert main([*argv, "--out", str(out), "--renderer", "none"]) == 0
    scored = json.loads((out / "metrics.json").read_text())["systems"]["semanticface"]
    assert scored["num_parse_failures"] == 2 and scored["num_samples"] == 6
    # Truth rounded to 1 decimal: every error is at most 0.05.
    assert 0 < scored["overall"]["mae"] <= 0.05
    # The two unanswered rows are scored as the train median (not skipped); on the cells it gave, every error of
    # the release output is at most 0.05.
    assert scored["coverage"] == pytest.approx(4 / 6) and 0 < scored["own_mask"]["mae"] <= 0.05
    assert "description_consistency" not in scored

    preds.write_text('{"index": 0, "text": "x"}\n{"index": 0 "text": "y"}\n')
    assert main([*argv, "--out", str(out)]) == 1
    assert "line 2: not JSON" in capsys.readouterr().err


def test_predict_writes_live_link_face_csv_and_jsonl(coefficient_model, tmp_path):
    from semanticface.llf import read_llf

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, colour in enumerate(("red", "green", "blue")):
        Image.new("RGB", (48, 48), colour).save(frames / f"{i:03d}.png")
    common = ["--model", str(coefficient_model), "--decoding", "forced", "--batch-size", "2", "--no-crop"]
    assert main(["predict", str(frames), "--out", str(tmp_path / "out.csv"), *common]) == 0
    recording = read_llf(tmp_path / "out.csv")
    assert len(recording) == 3 and recording.fps == pytest.approx(30)
    assert main(["predict", str(frames / "001.png"), "--out", str(tmp_path / "out.jsonl"), *common]) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert record["parse_ok"] and record["source"].endswith("001.png") and len(record["coefficients"]) == 52
    assert np.allclose(list(record["coefficients"].values()), recording.values[1, :52], atol=1e-9)
    assert main(["predict", str(frames), "--out", str(tmp_path / "out.txt"), *common]) == 1


def test_predict_reads_video_frames(coefficient_model, tmp_path):
    pytest.importorskip("av", reason="video input needs PyAV (pip install 'semanticface[video]')")
    cv2 = pytest.importorskip("cv2", reason="this test writes its video with OpenCV (installed with mediapipe)")
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (48, 48))
    for value in range(0, 250, 50):
        writer.write(np.full((48, 48, 3), value, dtype=np.uint8))
    writer.release()
    out = tmp_path / "clip.jsonl"
    argv = ["predict", str(video), "--model", str(coefficient_model), "--out", str(out), "--every", "2", "--no-crop"]
    assert main([*argv, "--decoding", "forced"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["source"].rsplit("#", 1)[1] for r in records] == ["0", "2", "4"]
    assert records[1]["seconds_in"] == pytest.approx(2 / 30)


def test_eval_adds_the_mediapipe_baseline_when_given_its_model(shared_data, dataset_dir, tmp_path):
    pytest.importorskip("mediapipe", reason="the MediaPipe baseline needs `pip install mediapipe`")
    task = shared_data / "mediapipe" / "face_landmarker.task"
    if not task.is_file():
        pytest.skip(f"MediaPipe model not found at {task}")
    _, test = _splits(dataset_dir)
    truths = dataset_coefficients(test)
    preds = tmp_path / "preds.jsonl"
    lines = [
        {"index": i, "text": _release_text(dict(zip(t.to_dict().keys(), t.values)))} for i, t in enumerate(truths)
    ]
    preds.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = tmp_path / "report"
    argv = ["eval", "--predictions", str(preds), "--dataset", str(dataset_dir), "--out", str(out)]
    assert main([*argv, "--renderer", "none", "--no-baselines", "--mediapipe-model", str(task)]) == 0
    systems = json.loads((out / "metrics.json").read_text())["systems"]
    assert list(systems) == ["semanticface", "mediapipe"]
    mediapipe = systems["mediapipe"]
    assert mediapipe["num_samples"] == 6 and mediapipe["num_parse_failures"] < 6  # it finds the rendered faces
    # MediaPipe has no tongueOut: its cells are scored as the train median's, like any system's missing cells.
    assert mediapipe["coverage"] < 51 / 52 + 1e-9 and mediapipe["own_mask"]["count"] < mediapipe["overall"]["count"]
    train, _ = _splits(dataset_dir)
    median = MedianBaseline.fit(dataset_coefficients(train)).median
    tongue = np.mean([abs(t["tongueOut"] - median["tongueOut"]) for t in truths])
    assert mediapipe["channels"]["tongueOut"]["count"] == 6
    assert mediapipe["channels"]["tongueOut"]["mae"] == pytest.approx(tongue)
    assert 0 < mediapipe["overall"]["mae"] < 1


def test_eval_imported_toolkit_predictions_measure_description_consistency(dataset_dir, tmp_path):
    from semanticface.contract import render_target

    _, test = _splits(dataset_dir)
    truths = dataset_coefficients(test)
    lines = [{"index": i, "raw_text": render_target(t)} for i, t in enumerate(truths)]
    # Row 0's text claims a different face than its numbers: an inconsistent output.
    other = render_target(truths[0].replace(jawOpen=1.0, browInnerUp=1.0))
    lines[0]["raw_text"] = (
        other.split("Coefficients:")[0] + "Coefficients:" + lines[0]["raw_text"].split("Coefficients:")[1]
    )
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = tmp_path / "report"
    argv = ["eval", "--predictions", str(preds), "--format", "semanticface-toolkit", "--dataset", str(dataset_dir)]
    assert main([*argv, "--out", str(out), "--renderer", "none", "--no-baselines"]) == 0
    scored = json.loads((out / "metrics.json").read_text())["systems"]["semanticface-toolkit"]
    assert scored["num_parse_failures"] == 0 and scored["overall"]["mae"] <= 0.005  # 2-decimal rounding only
    assert scored["fully_consistent_rate"] == pytest.approx(5 / 6)
    assert scored["consistency_jaw"] == pytest.approx(5 / 6) and scored["consistency_tongue"] == 1.0


def test_predict_median_numbers_need_forced_decoding(coefficient_model, tmp_path, capsys):
    image = tmp_path / "face.png"
    Image.new("RGB", (48, 48), "red").save(image)
    common = ["predict", str(image), "--model", str(coefficient_model), "--numbers", "median", "--no-crop"]
    assert main([*common, "--out", str(tmp_path / "generate.jsonl")]) == 1
    assert "decoding='forced'" in capsys.readouterr().err
    assert main([*common, "--decoding", "forced", "--out", str(tmp_path / "median.jsonl")]) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "median.jsonl").read_text().splitlines()]
    assert record["parse_ok"] and len(record["coefficients"]) == 52


def _toolkit_predictions(path: Path, faces: list[dict[str, object]]) -> Path:
    """A predictions file in this toolkit's format: one coefficient block per row, as given."""
    lines = [{"index": i, "raw_text": "Coefficients:\n" + json.dumps(face)} for i, face in enumerate(faces)]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def _eval_toolkit(dataset_dir: Path, preds: Path, out: Path, *extra: str) -> dict:
    argv = ["eval", "--predictions", str(preds), "--format", "semanticface-toolkit", "--dataset", str(dataset_dir)]
    assert main([*argv, "--out", str(out), "--renderer", "none", "--bootstrap-samples", "500", *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_eval_warns_when_the_predictions_ignore_the_image(dataset_dir, tmp_path, capsys):
    _, test = _splits(dataset_dir)
    truths = dataset_coefficients(test)
    one_face = {name: round(float(value), 2) for name, value in truths[0].to_dict(include_pose=False).items()}
    report = _eval_toolkit(dataset_dir, _toolkit_predictions(tmp_path / "p.jsonl", [one_face] * 6), tmp_path / "r")
    err = capsys.readouterr().err
    assert "WARNING: semanticface-toolkit ignores the image" in err
    assert report["systems"]["semanticface-toolkit"]["spread_ratio"] == pytest.approx(0, abs=1e-9)
    # Only the system under test is warned about: the constant baselines are constant by design.
    (warning,) = report["warnings"]
    assert warning.startswith("semanticface-toolkit ignores the image") and "0.0% of the truth's" in warning
    assert report["systems"]["semanticface-toolkit"]["warnings"] == [warning]
    assert f"> **Warning:** {warning}." in (tmp_path / "r" / "summary.md").read_text()

    # Predictions that follow the faces (the truth at 2 decimals) get no warning and a spread near 1.
    faces = [{n: round(float(v), 2) for n, v in t.to_dict(include_pose=False).items()} for t in truths]
    report = _eval_toolkit(dataset_dir, _toolkit_predictions(tmp_path / "q.jsonl", faces), tmp_path / "s")
    assert report["warnings"] == [] and "WARNING" not in capsys.readouterr().err
    assert report["systems"]["semanticface-toolkit"]["spread_ratio"] == pytest.approx(1.0, abs=0.05)


def test_a_dropped_or_unreadable_channel_never_scores_better_than_the_median_baseline(dataset_dir, tmp_path):
    train, test = _splits(dataset_dir)
    truths = dataset_coefficients(test)
    # Drop the channel on which the median constant is worst: the one a model could most flatter itself on.
    median_face = MedianBaseline.fit(dataset_coefficients(train)).median
    dropped = max(BLENDSHAPES, key=lambda n: np.mean([abs(t[n] - median_face[n]) for t in truths]))
    faces = [{n: round(float(v), 2) for n, v in t.to_dict(include_pose=False).items()} for t in truths]
    for face in faces:
        del face[dropped]  # never given
    faces[1]["mouthSmileLeft"] = "wide"  # unreadable in one row
    faces[2] = {}  # nothing parseable in another: a parse failure
    report = _eval_toolkit(dataset_dir, _toolkit_predictions(tmp_path / "p.jsonl", faces), tmp_path / "r")
    model, median = report["systems"]["semanticface-toolkit"], report["systems"]["median"]
    # The dropped channel scores exactly what the median baseline scores on it, on every row.
    assert model["channels"][dropped]["count"] == median["channels"][dropped]["count"] == 6
    assert model["channels"][dropped]["mae"] == pytest.approx(median["channels"][dropped]["mae"])
    assert model["channels"][dropped]["mae"] > 0.01
    # The parse-failed row is scored as the median too, cell for cell.
    errors = {(e["system"], e["row"]): e for e in map(json.loads, (tmp_path / "r" / "per_image_errors.jsonl").open())}
    row = errors[("semanticface-toolkit", "2")]
    assert row["mae"] == pytest.approx(errors[("median", "2")]["mae"])
    # Headline and own-cells figures: the model gave 52*6 - 6 - 1 - 52 cells; the rest are scored, not skipped.
    assert model["overall"]["count"] == median["overall"]["count"] == 6 * 52
    assert model["own_mask"]["count"] == 6 * 52 - 5 - 1 - 52
    assert model["coverage"] == pytest.approx(model["own_mask"]["count"] / (6 * 52))
    assert model["own_mask"]["mae"] < model["overall"]["mae"]  # skipping cells would have flattered it
