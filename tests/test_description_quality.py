"""Description quality against describe(truth): expression-category accuracy and per-region action P/R."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import TargetConfig, render_target
from semanticface.evaluation.description_quality import actions_of, category_of, description_quality

NEUTRAL = FaceCoefficients.neutral()
SMILE = NEUTRAL.replace(mouthSmileLeft=0.7, mouthSmileRight=0.7, cheekSquintLeft=0.5, cheekSquintRight=0.5)
SURPRISE = NEUTRAL.replace(browInnerUp=0.8, browOuterUpLeft=0.7, browOuterUpRight=0.7, eyeWideLeft=0.6,
                           eyeWideRight=0.6, jawOpen=0.6)  # fmt: skip


def _text(face: FaceCoefficients) -> str:
    return render_target(face, TargetConfig(target_format="semantic"))


def test_parsing_the_category_and_actions():
    assert category_of("disgust (moderate)") == "disgust"
    assert category_of("Mixed: happiness and surprise") == "mixed"
    assert category_of("other facial activity (no prototypical emotion)") == "other"
    assert category_of("neutral") == "neutral"
    assert actions_of("no visible movement") == frozenset()
    assert actions_of("lips pressed on the right (slight); upper lip raised on the right (strong)") == {
        "lips pressed on the right",
        "upper lip raised on the right",
    }


def test_a_true_description_scores_perfectly_and_a_wrong_one_does_not():
    truths = [SMILE, SURPRISE, NEUTRAL]
    right = description_quality([_text(t) for t in truths], truths)
    assert right.compared == 3 and right.category_accuracy == 1.0
    assert right.action_precision == 1.0 and right.action_recall == 1.0
    swapped = description_quality([_text(SURPRISE), _text(SMILE), _text(NEUTRAL)], truths)
    assert swapped.category_accuracy == pytest.approx(1 / 3)  # only the neutral face is named right
    assert swapped.action_precision == 0.0 and swapped.action_recall == 0.0  # no true movement is named
    assert swapped.per_region["brows"]["recall"] == 0.0 and math.isnan(swapped.per_region["tongue"]["precision"])


def test_intensity_is_ignored_but_side_and_omissions_count():
    stronger = SMILE.replace(mouthSmileLeft=1.0, mouthSmileRight=1.0)
    same = description_quality([_text(stronger)], [SMILE])
    assert same.action_precision == 1.0 and same.action_recall == 1.0
    one_side = SMILE.replace(mouthSmileRight=0.0)  # "lip corner pulled up on the left" vs "on both sides"
    quality = description_quality([_text(one_side)], [SMILE])
    assert quality.per_region["mouth"] == {"precision": 0.0, "recall": 0.0}
    assert quality.per_region["cheeks"] == {"precision": 1.0, "recall": 1.0}
    text = "\n".join(line for line in _text(SMILE).splitlines() if not line.startswith("- Cheeks"))
    dropped = description_quality([text], [SMILE])
    assert dropped.per_region["cheeks"]["recall"] == 0.0 and dropped.action_precision == 1.0


def test_outputs_without_a_description_are_not_scored():
    coefficients_only = render_target(SMILE, TargetConfig(target_format="coefficients"))
    quality = description_quality([coefficients_only, ""], [SMILE, SMILE])
    assert quality.compared == 0 and math.isnan(quality.category_accuracy) and quality.to_extra()


def test_semanticface_eval_reports_description_quality(tmp_path):
    from semanticface.cli import main
    from semanticface.rows import dataset_coefficients
    from semanticface.synth import SynthConfig, synthesize

    data = tmp_path / "data"
    test = synthesize(SynthConfig(n=60, size=48, seed=3, identities=6), data)["test"]
    truths = dataset_coefficients(test)
    # Every description true except the first, which describes a different face.
    texts = [_text(t) for t in truths]
    texts[0] = _text(SURPRISE if "surprise" not in texts[0] else SMILE)
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"index": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "report"
    argv = ["eval", "--predictions", str(preds), "--format", "semanticface-toolkit", "--dataset", str(data)]
    assert main([*argv, "--out", str(out), "--renderer", "none", "--no-baselines"]) == 0
    scored = json.loads((out / "metrics.json").read_text())["systems"]["semanticface-toolkit"]
    expected = description_quality(texts, truths)
    assert scored["category_accuracy"] == pytest.approx(expected.category_accuracy)
    assert scored["action_recall"] == pytest.approx(expected.action_recall) and expected.action_recall < 1.0
    assert scored["action_precision_mouth"] == pytest.approx(expected.per_region["mouth"]["precision"], nan_ok=True)
    assert np.isclose(scored["description_consistency"], 1.0)  # each text is the description of its own numbers
    assert "expression category accuracy" in (out / "summary.md").read_text()
