"""Datasets from a user's captures with the face crop predict uses, and neutral calibration of the capture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semanticface.errors import DatasetError
from semanticface.schema import CHANNEL_INDEX

FRAMES = 8


@pytest.fixture(scope="module")
def face_model(shared_data) -> Path:
    pytest.importorskip("mediapipe", reason="face cropping needs `pip install mediapipe`")
    task = shared_data / "mediapipe" / "face_landmarker.task"
    if not task.is_file():
        pytest.skip(f"MediaPipe model not found at {task}")
    return task


@pytest.fixture(scope="module")
def take(shared_data, tmp_path_factory):
    """The first frames of a real capture (whose noseSneer never rests) and a video of the ICT head acting them,
    off-centre in a wider frame."""
    av = pytest.importorskip("av", reason="video input needs PyAV (pip install 'semanticface[video]')")
    from semanticface.llf import read_llf, write_llf
    from semanticface.render.mesh import MeshRenderer, load_ict_rig

    source = read_llf(shared_data / "llf" / "JMTechArt__MySlate_3_Jason_Millers_iPhone.csv")
    folder = tmp_path_factory.mktemp("take")
    csv = write_llf(folder / "take.csv", source.values[:FRAMES], timecodes=source.timecodes[:FRAMES])
    renderer = MeshRenderer(load_ict_rig(shared_data / "meshes" / "ict_facekit"))
    video = folder / "take.mp4"
    container = av.open(str(video), "w")
    stream = container.add_stream("mpeg4", rate=60)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    for i in range(FRAMES):
        canvas = Image.new("RGB", (320, 240), (70, 80, 75))
        canvas.paste(renderer.render(source.frame(i), size=180), (130 + 2 * i, 30))
        for packet in stream.encode(av.VideoFrame.from_image(canvas)):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return csv, video, source


def test_llf_video_dataset_with_face_crops_and_calibration(take, face_model):
    from semanticface.calibration import NeutralCalibration
    from semanticface.userdata import load_llf_video

    csv, video, source = take
    dataset, unmatched = load_llf_video(csv, video, face_model=face_model, calibrate="auto")
    assert len(dataset) == FRAMES and unmatched == []
    boxes = np.array(dataset["crop_box"])
    assert np.all(np.abs(boxes[:, 0] + boxes[:, 2] / 2 - (130 + 90 + np.arange(FRAMES))) < 25)  # follows the face
    image = np.asarray(dataset[0]["images"][0])
    assert abs(image.shape[0] - boxes[0, 2]) <= 1 and abs(image.shape[1] - boxes[0, 2]) <= 1
    # Values are calibrated against the excerpt's own rest: noseSneer's floor is gone, its range kept.
    raw = source.values[:FRAMES]
    expected = NeutralCalibration.from_recording(raw).apply_array(raw)
    sneer = CHANNEL_INDEX["noseSneerLeft"]
    assert raw[:, sneer].min() > 0.15
    assert np.allclose(dataset["noseSneerLeft"], expected[:, sneer]) and min(dataset["noseSneerLeft"]) < 0.01
    by_frame, _ = load_llf_video(csv, video, calibrate=3)
    assert by_frame[3]["noseSneerLeft"] == 0.0 and "crop_box" not in by_frame.column_names
    with pytest.raises(DatasetError, match="neutral frame 99 is out of range"):
        load_llf_video(csv, video, calibrate=99)


def test_image_folder_with_face_crops(take, face_model, tmp_path):
    from semanticface.userdata import load_image_folder
    from semanticface.video import iter_frames

    _, video, _ = take
    photos = tmp_path / "photos"
    photos.mkdir()
    frame = next(iter_frames(video)).image
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated: orientation 8 = turn 90 degrees counter-clockwise to display
    frame.transpose(Image.Transpose.ROTATE_270).save(photos / "face.jpg", exif=exif, quality=95)
    Image.new("RGB", (200, 150), (70, 80, 75)).save(photos / "wall.png")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,jawOpen\nface.jpg,0.4\nwall.png,0.1\n")
    with pytest.raises(DatasetError, match=r"no face found in 1 image\(s\): wall\.png"):
        load_image_folder(photos, labels, missing_ok=True, face_model=face_model)
    labels.write_text("file,jawOpen\nface.jpg,0.4\n")
    dataset = load_image_folder(photos, labels, missing_ok=True, face_model=face_model)
    left, top, side = dataset[0]["crop_box"]
    assert abs(left + side / 2 - 220) < 25 and abs(top + side / 2 - 120) < 30  # upright coordinates
    assert np.abs(np.array(np.asarray(dataset[0]["images"][0]).shape[:2]) - side).max() <= 1
    assert dataset[0]["jawOpen"] == 0.4
