"""Live Link Face CSV reading and writing, on the real captures and on malformed files."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import RecordingError
from semanticface.llf import detect_fps, format_timecode, read_llf, timecode_seconds, write_llf
from semanticface.schema import CHANNELS, LLF_COLUMN_ORDER
from semanticface.streaming import timecode_at

HEADER = "Timecode,BlendShapeCount," + ",".join(LLF_COLUMN_ORDER)
EXPECTED = {  # name: (frames after skipping lost rows, fps, lost rows)
    "JMTechArt__MySlate_3_Jason_Millers_iPhone.csv": (328, 60, 0),
    "NeuroSync__Happy.csv": (3046, 60, 0),
    "alexdjulin__S07-001.csv": (2028, 30, 0),
    "alexdjulin__alex_rom_3.csv": (4030, 30, 0),
    "alexdjulin__apfel.csv": (1891, 30, 35),
}


def test_every_real_recording_loads(shared_data) -> None:
    files = sorted(p.name for p in (shared_data / "llf").glob("*.csv"))
    assert files == sorted(EXPECTED)
    for name, (frames, fps, lost) in EXPECTED.items():
        recording = read_llf(shared_data / "llf" / name)
        assert (len(recording), recording.fps, len(recording.lost_rows)) == (frames, fps, lost), name
        assert recording.values.shape == (frames, 61) and np.isfinite(recording.values).all()
        assert np.all(np.diff(recording.times) > 0), name


def test_columns_land_on_their_canonical_channels(shared_data) -> None:
    # Live Link Face puts JawRight before JawLeft and MouthRight before MouthLeft: check against the raw cells.
    path = shared_data / "llf" / "alexdjulin__alex_rom_3.csv"
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    recording = read_llf(path)
    for line in (1, 700, 2000, 4030):
        raw = dict(zip(header, rows[line]))
        frame = recording.frame(line - 1)
        for column in ("JawLeft", "JawRight", "MouthLeft", "MouthRight", "TongueOut", "LeftEyeYaw", "EyeBlinkLeft"):
            assert frame[column] == pytest.approx(min(float(raw[column]), 1.0), abs=0), (line, column)
    assert recording.values[:, CHANNELS.index("tongueOut")].max() > 0.999  # the take sticks the tongue out fully


def test_tracking_lost_rows_are_reported_never_zeros(shared_data) -> None:
    path = shared_data / "llf" / "alexdjulin__apfel.csv"
    with open(path) as handle:
        lost_lines = [i for i, line in enumerate(handle, start=1) if line.strip().count(",") == 1]
    skipped = read_llf(path)
    assert skipped.lost_rows == lost_lines and len(lost_lines) == 35
    assert not (skipped.values[:, :52] == 0).all(axis=1).any()  # no all-zero frame was invented
    flagged = read_llf(path, lost="flag")
    assert len(flagged) == len(skipped) + 35 and len(flagged.lost_frames) == 35
    lost = flagged.frame(flagged.lost_frames[0])
    assert lost.missing == frozenset(CHANNELS)
    assert flagged.timecodes[flagged.lost_frames[0]] == "12:22:06:30.534"
    with pytest.raises(RecordingError):
        read_llf(path, lost="zero")


def test_header_spelling_variant_and_overshoot(shared_data) -> None:
    assert read_llf(shared_data / "llf" / "NeuroSync__Happy.csv").values.shape[1] == 61  # "BlendshapeCount"
    apfel = read_llf(shared_data / "llf" / "alexdjulin__apfel.csv")
    assert apfel.clamped and all(1.0 < value <= 1.1 for _, _, value in apfel.clamped)
    assert {channel for _, channel, _ in apfel.clamped} == {"eyeLookInLeft", "eyeLookOutRight"}


def test_timecodes_and_fps() -> None:
    assert timecode_seconds("01:02:03:30.500") == pytest.approx(3723 + 30.5 / 60)
    for bad in ("1:02:03:04", "00:00:00:60.000", "00:61:00:00.000", "garbage"):
        with pytest.raises(ValueError):
            timecode_seconds(bad)
    assert detect_fps([format_timecode(i, 30) for i in range(10)]) == 30
    assert detect_fps([format_timecode(i, 60) for i in range(10)]) == 60
    assert format_timecode(61, 60, start_seconds=3599) == "01:00:00:01.000"


@pytest.mark.parametrize(
    ("rate", "nominal"), [(24000 / 1001, 24), (25, 25), (30000 / 1001, 30), (50, 50), (12.5, 12.5)]
)
def test_fps_of_rates_that_do_not_divide_60(rate: float, nominal: float) -> None:
    # A 23.976 or 25 fps take's steps alternate 2 and 3 frames of 60: the rate is not the median whole step
    # (which read 20 or 30). With and without the sub-frame fraction, with a dropped frame and a pause.
    start = 12 * 3600 + 0.3
    times = [start + i / rate for i in range(240) if i not in (50, 120, 121, 122)]
    times += [times[-1] + 2.0 + i / rate for i in range(40)]
    assert detect_fps([timecode_at(t) for t in times]) == nominal
    assert detect_fps([timecode_at(t)[:-4] for t in times]) == pytest.approx(nominal, rel=0.01)


def test_write_then_read_round_trips_exactly(tmp_path) -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.random((50, 52)), rng.uniform(-1, 1, (50, 9))], axis=1)
    values[0, :] = 0.0
    values[1, :52], values[1, 52:] = 1.0, -1.0
    path = write_llf(tmp_path / "take.csv", [FaceCoefficients(v) for v in values], fps=30)
    text = path.read_text(encoding="utf-8").splitlines()
    assert text[0] == HEADER and text[1].startswith("00:00:00:00.000,61,0.0000000000,")
    assert text[2].split(",")[0] == "00:00:00:02.000" and len(text) == 51
    recording = read_llf(path)
    assert recording.fps == 30 and recording.lost_rows == []
    np.testing.assert_array_equal(recording.values, np.round(values, 10))
    again = write_llf(tmp_path / "again.csv", recording.values, recording.timecodes)
    assert again.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_writer_refuses_what_it_cannot_write(tmp_path) -> None:
    with pytest.raises(RecordingError, match="missing"):
        write_llf(tmp_path / "a.csv", [FaceCoefficients(np.zeros(61), frozenset({"tongueOut"}))])
    with pytest.raises(RecordingError, match="timecodes"):
        write_llf(tmp_path / "a.csv", np.zeros((2, 61)), ["00:00:00:00.000"])
    with pytest.raises(RecordingError, match="fps"):
        write_llf(tmp_path / "a.csv", np.zeros((2, 61)), fps=7)


def _row(timecode: str = "00:00:01:00.000", values: list[str] | None = None) -> str:
    return ",".join([timecode, "61", *(values or ["0.1000000000"] * 61)])


@pytest.mark.parametrize(
    ("lines", "message", "row"),
    [
        ([HEADER, _row(), _row(values=["0.1"] * 60)], "expected 63 columns, found 62", 3),
        ([HEADER, _row(values=["0.1"] * 10 + ["abc"] + ["0.1"] * 50)], "EyeLookOutRight is not a number", 2),
        ([HEADER, _row(values=["nan"] + ["0.1"] * 60)], "EyeBlinkLeft is not a finite number", 2),
        ([HEADER, _row(values=["0.1"] * 17 + ["1.5"] + ["0.1"] * 43)], "jawOpen = 1.5 is outside", 2),
        ([HEADER, _row(timecode="25:99:00")], "bad timecode", 2),
        ([HEADER, _row().replace(",61,", ",52,", 1)], "BlendShapeCount", 2),
        ([HEADER.replace("JawRight,JawLeft", "JawLeft,JawRight")], "expected 'JawRight'", 1),
        ([HEADER.replace("TongueOut", "Tongue")], "'Tongue'", 1),
        (["Time,Count," + ",".join(LLF_COLUMN_ORDER)], "Timecode,BlendShapeCount", 1),
        ([], "empty file", 1),
    ],
)
def test_malformed_files_name_file_and_row(tmp_path, lines: list[str], message: str, row: int) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RecordingError, match=message) as caught:
        read_llf(path)
    assert caught.value.row == row and caught.value.path == str(path)
    assert str(path) in str(caught.value) and f"row {row}" in str(caught.value)


def test_missing_file_and_frame_out_of_range(tmp_path) -> None:
    with pytest.raises(RecordingError, match="cannot open"):
        read_llf(tmp_path / "absent.csv")
    path = write_llf(tmp_path / "one.csv", np.zeros((1, 61)))
    recording = read_llf(path)
    assert recording.frame(-1) == FaceCoefficients.neutral()
    with pytest.raises(RecordingError, match="out of range"):
        recording.frame(1)
