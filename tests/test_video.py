"""Video decoding with PyAV (semanticface.video): frame times from the stream, ranges, rotation, bad files."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from semanticface.errors import ConfigError, DatasetError

av = pytest.importorskip("av", reason="video input needs PyAV (pip install 'semanticface[video]')")

from semanticface.video import iter_frames, video_info  # noqa: E402


def _video(path, rate, frames, *, rotation=None):
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=rate)
    stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
    if rotation is not None:
        stream.set_display_rotation(rotation)
    picture = np.zeros((32, 64, 3), np.uint8)
    picture[:, :32] = (230, 20, 20)  # left half red
    for _ in range(frames):
        for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def test_frame_times_range_and_stride(tmp_path):
    path = _video(tmp_path / "ntsc.mp4", Fraction(30000, 1001), 9)
    info = video_info(path)
    assert info.fps == Fraction(30000, 1001) and info.frame_count == 9 and (info.width, info.height) == (64, 32)
    frames = list(iter_frames(path, start=1, stop=8, step=3))
    assert [f.index for f in frames] == [1, 4, 7]
    assert [f.seconds for f in frames] == pytest.approx([i * 1001 / 30000 for i in (1, 4, 7)])
    with pytest.raises(ConfigError, match="bad frame range"):
        list(iter_frames(path, step=0))


def test_phone_rotation_is_applied(tmp_path):
    # A display matrix of +90 degrees (counter-clockwise), as phones write for portrait takes.
    path = _video(tmp_path / "portrait.mp4", 30, 2, rotation=90)
    frame = next(iter_frames(path)).image
    assert frame.size == (32, 64)  # shown upright: portrait
    pixels = np.asarray(frame, int)
    assert pixels[48, 16, 0] > 150 > pixels[16, 16, 0]  # the left half, turned counter-clockwise, is at the bottom


def test_bad_video_files_are_typed_errors(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video at all")
    with pytest.raises(DatasetError, match="broken.mp4: cannot open the video"):
        video_info(broken)
    with pytest.raises(DatasetError, match="absent.mp4: no such video file"):
        video_info(tmp_path / "absent.mp4")
