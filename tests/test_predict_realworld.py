"""`semanticface predict` on real-world inputs: streamed output, unreadable files, exit codes, video timecodes,
face crops (EXIF-rotated photo, no face, two faces). Tiny random model through the real from_pretrained path."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semanticface.checkpoint import CONFIG_FILENAME
from semanticface.cli import main
from semanticface.inference import SemanticFacePredictor
from semanticface.streaming import timecode_at


@pytest.fixture(scope="module")
def coefficient_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, saved to emit the coefficient-only format (quick to force-decode)."""
    out = tmp_path_factory.mktemp("coef_model") / "model"
    shutil.copytree(tiny_model_dir, out)
    (out / CONFIG_FILENAME).write_text(json.dumps({"target": {"target_format": "coefficients"}}))
    return out


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _folder(tmp_path: Path) -> Path:
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (48, 48), "red").save(frames / "000.png")
    Image.fromarray(np.full((48, 48), 40000, np.uint16)).save(frames / "001.png")  # 16-bit grey
    (frames / "002.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.new("RGB", (48, 48), "blue").save(frames / "003.png")
    return frames


def test_unreadable_files_are_reported_and_the_rest_predicted(coefficient_model, tmp_path, capsys):
    frames = _folder(tmp_path)
    out = tmp_path / "out.jsonl"
    common = ["--model", str(coefficient_model), "--decoding", "forced", "--no-crop", "--batch-size", "2"]
    assert main(["predict", str(frames), "--out", str(out), *common]) == 0
    err = capsys.readouterr().err
    assert "002.png: not a readable image" in err and "skipped 1 unreadable file(s)" in err
    sidecar = tmp_path / "out.jsonl.skipped.tsv"
    assert sidecar.read_text().startswith(f"{frames / '002.png'}\t")
    records = _records(out)
    assert [Path(r["source"]).name for r in records] == ["000.png", "001.png", "003.png"]
    assert all(r["parse_ok"] and not r["tracking_lost"] for r in records)
    # --strict turns any skipped input into a failure; the output is still written.
    assert main(["predict", str(frames), "--out", str(out), *common, "--strict"]) == 1
    assert len(_records(out)) == 3
    # A missing file among the inputs is skipped the same way; nothing readable at all exits 1.
    assert main(["predict", str(frames / "002.png"), str(tmp_path / "gone.png"), "--out", str(out), *common]) == 1
    assert "gone.png: cannot read the file" in capsys.readouterr().err
    # A clean run removes the stale sidecar.
    assert main(["predict", str(frames / "000.png"), "--out", str(out), *common]) == 0
    assert not sidecar.exists()


def test_output_is_streamed_per_batch(coefficient_model, tmp_path, monkeypatch):
    frames = _folder(tmp_path)
    out = tmp_path / "out.csv"
    real = SemanticFacePredictor.predict
    calls = []

    def interrupted(self, images, **kwargs):
        calls.append(len(images))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user presses Ctrl-C during the second batch
        return real(self, images, **kwargs)

    monkeypatch.setattr(SemanticFacePredictor, "predict", interrupted)
    argv = ["predict", str(frames), "--out", str(out), "--model", str(coefficient_model), "--decoding", "forced"]
    with pytest.raises(KeyboardInterrupt):
        main([*argv, "--no-crop", "--batch-size", "2"])
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Timecode,BlendShapeCount")  # header + the first batch's 2 rows


def test_plain_decoding_that_never_parses_suggests_forced(coefficient_model, tmp_path, capsys):
    image = tmp_path / "face.png"
    Image.new("RGB", (48, 48), "red").save(image)
    argv = ["predict", str(image), "--model", str(coefficient_model), "--out", str(tmp_path / "o.csv")]
    assert main([*argv, "--no-crop", "--max-new-tokens", "4"]) == 1
    err = capsys.readouterr().err
    assert "none of the 1 output(s) parsed with plain decoding: try --decoding forced" in err
    assert (tmp_path / "o.csv").read_text().splitlines()[1] == "00:00:00:00.000,0"  # written as tracking-lost


def _write_video(path: Path, rate: Fraction, frames: int, size: tuple[int, int] = (64, 48)) -> Path:
    av = pytest.importorskip("av", reason="video input needs PyAV (pip install 'semanticface[video]')")
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=rate)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 20 * i % 256, np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.mark.parametrize("rate", [Fraction(24000, 1001), Fraction(30)])
def test_video_gets_one_row_per_frame_with_its_own_timecodes(coefficient_model, tmp_path, rate):
    from semanticface.llf import read_llf, timecode_seconds

    video = _write_video(tmp_path / "take.mp4", rate, 7)
    out = tmp_path / "take.csv"
    argv = ["predict", str(video), "--model", str(coefficient_model), "--out", str(out), "--decoding", "forced"]
    assert main([*argv, "--no-crop", "--batch-size", "4"]) == 0
    recording = read_llf(out)
    assert len(recording) == 7
    expected = [i / float(rate) for i in range(7)]
    assert recording.timecodes == [timecode_at(s) for s in expected]
    assert np.allclose([timecode_seconds(t) for t in recording.timecodes], expected, atol=1e-3 / 60)
    if rate == 30:
        assert recording.timecodes[1] == "00:00:00:02.000"
    else:
        assert recording.timecodes[1] == "00:00:00:02.502"  # 1001/24000 s = 2.5025 sixtieths
    # A frame range and stride: frames 2 and 5 of [2, 7), at their own times.
    jsonl = tmp_path / "part.jsonl"
    part = ["--start-frame", "2", "--end-frame", "7", "--every", "3", "--smooth", "none"]
    assert main([*argv[:-4], "--out", str(jsonl), "--decoding", "forced", "--no-crop", *part]) == 0
    records = _records(jsonl)
    assert [r["index"] for r in records] == [2, 5]
    assert [r["seconds_in"] for r in records] == pytest.approx([2 / float(rate), 5 / float(rate)])


# --- face crops on photos the tests make from the ICT head ---------------------------------------------------


@pytest.fixture(scope="module")
def face_model(shared_data) -> Path:
    pytest.importorskip("mediapipe", reason="face cropping needs `pip install mediapipe`")
    task = shared_data / "mediapipe" / "face_landmarker.task"
    if not task.is_file():
        pytest.skip(f"MediaPipe model not found at {task}")
    return task


@pytest.fixture(scope="module")
def ict_face(shared_data) -> Image.Image:
    from semanticface.coefficients import FaceCoefficients
    from semanticface.render.mesh import MeshRenderer, load_ict_rig

    rig = load_ict_rig(shared_data / "meshes" / "ict_facekit")
    return MeshRenderer(rig).render(FaceCoefficients.neutral(), size=200)


def _photo(faces: list[tuple[Image.Image, tuple[int, int]]], size=(480, 320)) -> Image.Image:
    canvas = Image.new("RGB", size, (96, 104, 92))
    for face, at in faces:
        canvas.paste(face, at)
    return canvas


def test_photos_exif_rotated_without_a_face_and_with_two_faces(
    coefficient_model, face_model, ict_face, tmp_path, capsys
):
    photos = tmp_path / "photos"
    photos.mkdir()
    # 1. A phone photo stored sideways with EXIF orientation 6; the face is on the right of the upright picture.
    upright = _photo([(ict_face, (260, 60))])
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(photos / "a_rotated.jpg", exif=exif, quality=95)
    # 2. No face at all.
    _photo([]).save(photos / "b_empty.png")
    # 3. Two faces: a large one on the left, a small one on the right.
    small = ict_face.resize((130, 130))
    _photo([(ict_face, (20, 60)), (small, (320, 100))]).save(photos / "c_two.png")
    out = tmp_path / "faces.jsonl"
    common = ["--model", str(coefficient_model), "--decoding", "forced", "--face-model", str(face_model)]
    assert main(["predict", str(photos), "--out", str(out), *common, "--crops-dir", str(tmp_path / "crops")]) == 0
    err = capsys.readouterr().err
    rotated, empty, two = _records(out)
    # EXIF applied: the box is on the face in upright coordinates (face centre about x 360, y 160).
    left, top, side = rotated["crop_box"]
    assert rotated["faces"] == 1 and abs(left + side / 2 - 360) < 30 and abs(top + side / 2 - 160) < 40
    assert 150 < side < 330 and rotated["parse_ok"] and not rotated["tracking_lost"]
    # No face: reported, written as tracking-lost, never zeros.
    assert empty["faces"] == 0 and empty["tracking_lost"] and empty["coefficients"] is None
    assert "no face found in 1 frame(s)" in err and "b_empty.png" in err
    # Two faces: the larger by default, the count reported.
    assert two["faces"] == 2 and abs(two["crop_box"][0] + two["crop_box"][2] / 2 - 120) < 30
    assert "1 frame(s) had several faces (2)" in err and "c_two.png" in err
    assert (tmp_path / "crops" / "000000.png").is_file()  # crops saved for inspection
    # --face-index 1 takes the smaller one; the CSV writes the faceless photo as a tracking-lost row.
    csv = tmp_path / "faces.csv"
    argv = ["predict", str(photos / "c_two.png"), str(photos / "b_empty.png"), "--out", str(csv), *common]
    assert main([*argv, "--face-index", "1"]) == 0
    lines = csv.read_text().splitlines()
    assert len(lines) == 3 and lines[2] == f"{timecode_at(1 / 30)},0"
    index1 = tmp_path / "index1.jsonl"
    assert main(["predict", str(photos / "c_two.png"), "--out", str(index1), *common, "--face-index", "1"]) == 0
    (record,) = _records(index1)
    assert abs(record["crop_box"][0] + record["crop_box"][2] / 2 - 385) < 25 and record["crop_box"][2] < 200


def test_neutral_calibration_when_predicting(coefficient_model, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, colour in enumerate(("red", "green", "blue")):
        Image.new("RGB", (48, 48), colour).save(frames / f"{i:03d}.png")
    common = ["predict", str(frames), "--model", str(coefficient_model), "--decoding", "forced", "--no-crop"]
    out = tmp_path / "by_frame.jsonl"
    assert main([*common, "--out", str(out), "--neutral-frame", "0"]) == 0
    assert "neutral calibration from neutral image" in capsys.readouterr().err
    first = _records(out)[0]
    raw = first["raw_coefficients"]
    # The neutral frame itself reads 0 on every channel whose rest value could be removed (< 0.95).
    assert all(
        first["coefficients"][name] == 0.0
        for name, value in raw.items()
        if value < 0.95 and name in first["coefficients"]
    )
    auto = tmp_path / "auto.csv"
    assert main([*common, "--out", str(auto), "--neutral", "auto"]) == 0
    from semanticface.llf import read_llf

    calibrated = read_llf(auto).values[:, :52]
    plain = tmp_path / "plain.csv"
    assert main([*common, "--out", str(plain)]) == 0
    assert np.all(calibrated <= read_llf(plain).values[:, :52] + 1e-9) and calibrated.min() == 0.0
    assert main([*common, "--out", str(auto), "--neutral", "auto", "--neutral-frame", "0"]) == 1
    assert "--neutral auto computes its own rest values" in capsys.readouterr().err


def test_video_crop_follows_the_face_and_a_faceless_frame_is_tracking_lost(
    coefficient_model, face_model, ict_face, tmp_path, capsys
):
    av = pytest.importorskip("av", reason="video input needs PyAV (pip install 'semanticface[video]')")
    video = tmp_path / "walk.mp4"
    container = av.open(str(video), "w")
    stream = container.add_stream("mpeg4", rate=Fraction(24000, 1001))
    stream.width, stream.height, stream.pix_fmt = 480, 320, "yuv420p"
    xs = [40, 60, 80, 100, None, 140, 160, 180]  # the face walks right; frame 4 has no face
    for x in xs:
        frame = _photo([(ict_face, (x, 60))] if x is not None else [])
        for packet in stream.encode(av.VideoFrame.from_image(frame)):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    out = tmp_path / "walk.jsonl"
    argv = ["predict", str(video), "--model", str(coefficient_model), "--out", str(out), "--decoding", "forced"]
    assert main([*argv, "--face-model", str(face_model)]) == 0
    records = _records(out)
    assert len(records) == len(xs)
    assert records[4]["tracking_lost"] and records[4]["faces"] == 0 and records[4]["coefficients"] is None
    centres = [r["crop_box"][0] + r["crop_box"][2] / 2 for r in records if r["crop_box"] is not None]
    assert np.all(np.diff(centres[:4]) > 0) and np.all(np.diff(centres[4:]) > 0)  # it follows the face
    assert abs(centres[-1] - (180 + 100)) < 30  # after the gap the box starts again on the face, not gliding
    assert "no face found in 1 frame(s)" in capsys.readouterr().err
    csv = tmp_path / "walk.csv"
    assert main([*argv[:-4], "--out", str(csv), "--decoding", "forced", "--face-model", str(face_model)]) == 0
    lines = csv.read_text().splitlines()
    assert len(lines) == 1 + len(xs) and lines[5] == f"{timecode_at(4 * 1001 / 24000)},0"
