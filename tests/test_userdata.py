"""Users' own data: image folder + CSV/JSONL of coefficients, and a Live Link Face take + its video frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import DatasetError
from semanticface.llf import format_timecode, write_llf
from semanticface.rows import dataset_coefficients
from semanticface.schema import BLENDSHAPES, CHANNEL_INDEX, NUM_BLENDSHAPES, to_dialect
from semanticface.userdata import frame_time, load_image_folder, load_llf_video


def _images(folder, names, size=16):
    folder.mkdir(exist_ok=True)
    for k, name in enumerate(names):
        Image.new("RGB", (size, size), (k * 40 % 256, 100, 150)).save(folder / name)
    return folder


def _csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(str(c) for c in r) for r in rows]) + "\n")
    return path


def test_csv_in_live_link_face_dialect(tmp_path):
    images = _images(tmp_path / "img", ["a.png", "b.png"])
    header = ["file"] + [to_dialect(n, "llf") for n in BLENDSHAPES] + ["identity"]
    rows = [["a.png"] + [0.1] * 52 + [3], ["b.png"] + [0.0] * 51 + [0.9] + [4]]
    dataset = load_image_folder(images, _csv(tmp_path / "labels.csv", header, rows))
    assert len(dataset) == 2 and dataset[0]["identity"] == 3
    coefficients = dataset_coefficients(dataset)
    assert coefficients[0]["eyeBlinkLeft"] == pytest.approx(0.1)
    assert coefficients[1]["tongueOut"] == pytest.approx(0.9)
    assert coefficients[0]["HeadYaw"] == 0.0 and not coefficients[0].missing  # no pose columns: pose at rest
    assert dataset[1]["images"][0].size == (16, 16) and dataset[0]["source"] == "user:labels.csv"


def test_jsonl_with_nested_mediapipe_scores_marks_tongue_missing(tmp_path):
    images = _images(tmp_path / "img", ["x.jpg"])
    scores = {"_neutral": 0.5, **{n: 0.2 for n in BLENDSHAPES if n != "tongueOut"}}
    (tmp_path / "labels.jsonl").write_text(json.dumps({"image": "x.jpg", "coefficients": scores}) + "\n")
    with pytest.raises(DatasetError, match="tongueOut"):
        load_image_folder(images, tmp_path / "labels.jsonl")
    dataset = load_image_folder(images, tmp_path / "labels.jsonl", missing_ok=True)
    row = dataset[0]
    assert row["tongueOut"] is None and row["jawOpen"] == pytest.approx(0.2)


def test_errors_name_file_row_and_column(tmp_path):
    images = _images(tmp_path / "img", ["a.png"])
    header = ["file"] + list(BLENDSHAPES)
    bad_value = _csv(tmp_path / "v.csv", header, [["a.png"] + [0.1] * 10 + ["abc"] + [0.1] * 41])
    with pytest.raises(DatasetError, match=r"v\.csv, row 2, column 'eyeLookOutRight'.*'abc'"):
        load_image_folder(images, bad_value)
    out_of_range = _csv(tmp_path / "r.csv", header, [["a.png"] + [1.5] + [0.1] * 51])
    with pytest.raises(DatasetError, match=r"r\.csv, row 2.*eyeBlinkLeft"):
        load_image_folder(images, out_of_range)
    unknown = _csv(tmp_path / "u.csv", header + ["smirk"], [["a.png"] + [0.1] * 52 + [1]])
    with pytest.raises(DatasetError, match="column 'smirk'"):
        load_image_folder(images, unknown)
    assert len(load_image_folder(images, unknown, ignore_unknown=True)) == 1
    missing = _csv(tmp_path / "m.csv", header, [["a.png"] + [0.1] * 52, ["gone.png"] + [0.1] * 52])
    with pytest.raises(DatasetError, match=r"gone\.png \(.*m\.csv, row 3\)"):
        load_image_folder(images, missing)
    escape = _csv(tmp_path / "e.csv", header, [["../e.csv"] + [0.1] * 52])
    with pytest.raises(DatasetError, match="escapes the image folder"):
        load_image_folder(images, escape)
    (images / "broken.png").write_bytes(b"not an image")
    broken = _csv(tmp_path / "b.csv", header, [["broken.png"] + [0.1] * 52])
    with pytest.raises(DatasetError, match="not a readable image"):
        load_image_folder(images, broken)


def test_frame_names():
    assert frame_time("000012.png") == ("number", 12.0)
    kind, seconds = frame_time("01_00_02_30.png")
    assert kind == "timecode" and seconds == pytest.approx(3602.5)
    assert frame_time("cover.png") is None


def _take(tmp_path, n=40, fps=60):
    values = np.zeros((n, 61))
    values[:, CHANNEL_INDEX["jawOpen"]] = np.linspace(0, 1, n)  # a ramp makes the pairing checkable
    timecodes = [format_timecode(k, fps, start_seconds=3600.0) for k in range(n)]
    return write_llf(tmp_path / "take.csv", values, timecodes, fps=fps), values


def test_llf_paired_with_numbered_frames_at_half_rate(tmp_path):
    csv_path, values = _take(tmp_path)
    # a 30 fps video: ffmpeg numbering from 1; frame k shows capture row 2k
    frames = _images(tmp_path / "frames", [f"{k + 1:06d}.png" for k in range(25)])
    dataset, unmatched = load_llf_video(csv_path, frames, video_fps=30)
    assert len(dataset) == 20 and unmatched == [f"{k + 1:06d}.png" for k in range(20, 25)]
    jaw = np.array(dataset["jawOpen"])
    assert np.allclose(jaw, values[0:40:2, CHANNEL_INDEX["jawOpen"]])
    assert dataset[0]["source"].startswith("llf-video:take.csv@01:00:00:00")


def test_llf_paired_with_timecode_frames(tmp_path):
    csv_path, values = _take(tmp_path)
    frames = _images(tmp_path / "tc", ["01_00_00_10.png", "01_00_00_11.png", "01_00_05_00.png"])
    dataset, unmatched = load_llf_video(csv_path, frames)
    assert np.allclose(dataset["jawOpen"], values[[10, 11], CHANNEL_INDEX["jawOpen"]])
    assert unmatched == ["01_00_05_00.png"]
    with pytest.raises(DatasetError, match="no such frame folder"):
        load_llf_video(csv_path, tmp_path / "nothing")


def test_llf_paired_with_a_video_file(tmp_path):
    cv2 = pytest.importorskip("cv2")
    csv_path, values = _take(tmp_path)
    video = tmp_path / "take.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 60.0, (32, 32))
    for k in range(10):
        writer.write(np.full((32, 32, 3), k * 20, dtype=np.uint8))
    writer.release()
    dataset, unmatched = load_llf_video(csv_path, video)
    assert len(dataset) == 10 and not unmatched
    assert np.allclose(dataset["jawOpen"], values[:10, CHANNEL_INDEX["jawOpen"]])
    brightness = [np.asarray(r["images"][0]).mean() for r in dataset]
    assert np.all(np.diff(brightness) > 5)  # frames arrive in order, each decoded once
    assert FaceCoefficients.neutral().blendshapes.shape == (NUM_BLENDSHAPES,)
