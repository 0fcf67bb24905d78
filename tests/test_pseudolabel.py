"""MediaPipe pseudo-labels: name mapping, missing channels, no-face reporting, CLI; detection on ICT renders."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from semanticface.cli import main
from semanticface.errors import ConfigError, DatasetError
from semanticface.pseudolabel import scores_to_coefficients
from semanticface.schema import BLENDSHAPES, MEDIAPIPE_CATEGORIES, POSE_CHANNELS


def test_scores_map_by_name_and_mark_missing_channels():
    scores = {name: i / 100 for i, name in enumerate(MEDIAPIPE_CATEGORIES)}
    coefficients = scores_to_coefficients(dict(reversed(list(scores.items()))))  # order must not matter
    for name in BLENDSHAPES:
        if name != "tongueOut":
            assert coefficients[name] == pytest.approx(scores[name])
    assert coefficients.missing == frozenset(("tongueOut",) + POSE_CHANNELS)
    clipped = scores_to_coefficients({**scores, "jawOpen": 1.0000003, "eyeBlinkLeft": -1e-7})
    assert clipped["jawOpen"] == 1.0 and clipped["eyeBlinkLeft"] == 0.0


@pytest.fixture(scope="module")
def model(shared_data):
    pytest.importorskip("mediapipe")
    return shared_data / "mediapipe" / "face_landmarker.task"


@pytest.fixture(scope="module")
def ict_renders(shared_data, tmp_path_factory):
    from semanticface.coefficients import FaceCoefficients
    from semanticface.render.mesh import MeshRenderer, load_ict_rig

    renderer = MeshRenderer(load_ict_rig(shared_data / "meshes" / "ict_facekit"))
    folder = tmp_path_factory.mktemp("renders")
    neutral = FaceCoefficients.neutral()
    for name, coefficients in (("neutral", neutral), ("open", neutral.replace(jawOpen=0.8, HeadYaw=0.2))):
        renderer.render(coefficients).save(folder / f"{name}.png")
    Image.new("RGB", (256, 256), (90, 100, 110)).save(folder / "blank.png")
    return folder


def test_mediapipe_finds_the_ict_face_and_reads_the_jaw(model, ict_renders):
    from semanticface.pseudolabel import MediaPipeLabeler

    with MediaPipeLabeler(model) as labeler:
        neutral = labeler.label(Image.open(ict_renders / "neutral.png"))
        opened = labeler.label(Image.open(ict_renders / "open.png"))
        assert labeler.label(Image.open(ict_renders / "blank.png")) is None
    assert neutral is not None and opened is not None
    assert opened["jawOpen"] > neutral["jawOpen"] + 0.3
    assert "tongueOut" in opened.missing and "HeadYaw" in opened.missing
    with pytest.raises(ConfigError, match="closed"):
        labeler.label(Image.open(ict_renders / "neutral.png"))


def test_cli_pseudolabel_reports_faceless_images(model, ict_renders, tmp_path, capsys):
    out = tmp_path / "labels"
    assert main(["pseudolabel", "--model", str(model), str(ict_renders), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "labelled 2 of 3 images; no face found in 1" in text and "blank.png" in text
    from datasets import load_from_disk

    dataset = load_from_disk(str(out))
    assert (
        len(dataset) == 2
        and all(v is None for v in dataset["tongueOut"])
        and all(v is None for v in dataset["HeadYaw"])
    )
    assert (out / "no_face.txt").read_text().strip().endswith("blank.png")
    # Rows hold the square face crop predict would make, and its box in the source image.
    height, width, _ = np.asarray(dataset[0]["images"][0]).shape
    left, top, side = dataset[0]["crop_box"]
    assert height == width == round(side) and 60 < side < 300 and abs(left + side / 2 - 128) < 30
    uncropped = tmp_path / "whole"
    assert (
        main(["pseudolabel", "--model", str(model), str(ict_renders), "--out", str(uncropped), "--quiet", "--no-crop"])
        == 0
    )
    assert np.asarray(load_from_disk(str(uncropped))[0]["images"][0]).shape == (256, 256, 3)


def test_cli_pseudolabel_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["pseudolabel", "--model", str(tmp_path / "none.task"), str(empty), "--out", str(tmp_path / "o")]) == 1
    assert "no images given" in capsys.readouterr().err
    Image.new("RGB", (8, 8)).save(empty / "a.png")
    assert main(["pseudolabel", "--model", str(tmp_path / "none.task"), str(empty), "--out", str(tmp_path / "o")]) == 1
    assert "model file not found" in capsys.readouterr().err
    from semanticface.pseudolabel import expand_image_paths

    with pytest.raises(DatasetError, match="no such image"):
        expand_image_paths([tmp_path / "missing.png"])
