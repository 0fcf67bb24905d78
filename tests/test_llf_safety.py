"""Issue 12, item 4: the Live Link Face reader on hostile and careless files.

Drop-frame timecodes, a last row cut off by the end of the file, repeated or decreasing timecodes, a file stamped
once a second, over-long fields and bad bytes (each error names its row), a symmetric overshoot tolerance, and a
fuzz test of 1,000+ mutations of the real recordings in ``../shared/data/llf`` that must give no raw exception.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest

from semanticface.errors import RecordingError
from semanticface.llf import Recording, detect_fps, read_llf, timecode_seconds
from semanticface.schema import CHANNELS, LLF_COLUMN_ORDER

HEADER = "Timecode,BlendShapeCount," + ",".join(LLF_COLUMN_ORDER)


def _row(timecode: str, value: str = "0.1234567891") -> str:
    return ",".join([timecode, "61", *[value] * 61])


def _write(path: Path, lines: list[str], *, final_newline: bool = True, newline: str = "\n") -> Path:
    path.write_bytes((newline.join(lines) + (newline if final_newline else "")).encode("utf-8"))
    return path


def _timecode(frame: int, separator: str = ":") -> str:
    seconds, ff = divmod(frame, 60)
    return f"12:21:{seconds:02d}{separator}{ff:02d}.595"


def test_drop_frame_timecodes_are_read_never_an_index_error(tmp_path) -> None:
    assert timecode_seconds("12:21:59;06.595") == pytest.approx(12 * 3600 + 21 * 60 + 59 + 6.595 / 60)
    assert detect_fps(["12:21:59;06.595", "12:21:59;08.595", "12:21:59;10.595"]) == 30
    path = _write(tmp_path / "drop.csv", [HEADER, *(_row(_timecode(2 * i, ";")) for i in range(10))])
    recording = read_llf(path)
    assert len(recording) == 10 and recording.fps == 30 and recording.issues == []


@pytest.mark.parametrize(
    ("cut", "why"),
    [
        (lambda row: row[:-5], "decimals"),  # inside the last value: 0.12345 of 0.1234567891
        (lambda row: row[: row.rindex(",") + 2], "decimals"),  # just '0' of the last value
        (lambda row: row[: len(row) // 2], "columns"),  # fewer fields
        (lambda row: row[:9], "timecode"),  # inside the timecode
    ],
)
def test_a_last_row_cut_by_the_end_of_the_file_is_reported_not_loaded(tmp_path, cut, why) -> None:
    rows = [_row(_timecode(i)) for i in range(5)]
    path = _write(tmp_path / "cut.csv", [HEADER, *rows[:-1], cut(rows[-1])], final_newline=False)
    recording = read_llf(path)
    assert len(recording) == 4, "the cut row must not be loaded"
    assert any(i.startswith("line 6:") and "cut off" in i for i in recording.issues), recording.issues
    assert np.all(recording.values == pytest.approx(0.1234567891))
    # The same short value with a final newline is a complete, if imprecise, row; fewer fields are an error.
    if why == "decimals":
        assert len(read_llf(_write(tmp_path / "whole.csv", [HEADER, *rows[:-1], cut(rows[-1])]))) == 5
    else:
        with pytest.raises(RecordingError) as caught:
            read_llf(_write(tmp_path / "whole.csv", [HEADER, *rows[:-1], cut(rows[-1])]))
        assert caught.value.row == 6


def test_a_complete_last_row_without_a_final_newline_is_read(tmp_path) -> None:
    path = _write(tmp_path / "ok.csv", [HEADER, *(_row(_timecode(i)) for i in range(5))], final_newline=False)
    recording = read_llf(path)
    assert len(recording) == 5 and recording.issues == []


def test_repeated_and_decreasing_timecodes_are_reported_and_left_out_of_the_fps(tmp_path) -> None:
    frames = [0, 2, 4, 4, 4, 6, 8, 2, 10, 12, 14, 16, 16, 16, 16, 16, 18]
    path = _write(tmp_path / "odd.csv", [HEADER, *(_row(_timecode(f)) for f in frames)])
    recording = read_llf(path)
    assert len(recording) == len(frames)  # kept: the values are there
    assert recording.fps == 30
    repeats = [i for i in recording.issues if "repeats" in i]
    back = [i for i in recording.issues if "is before" in i]
    assert len(repeats) == 6 and repeats[0].startswith("line 5:")
    assert len(back) == 1 and back[0].startswith("line 9:") and _timecode(8) in back[0]
    # The frame field cycles through 60 per second: a step back that is a second later is no step back.
    assert detect_fps([_timecode(58), _timecode(60), _timecode(62)]) == 30


def test_a_file_stamped_once_a_second_is_one_fps(tmp_path) -> None:
    path = _write(tmp_path / "slow.csv", [HEADER, *(_row(f"12:21:{s:02d}:00.000") for s in range(20))])
    assert read_llf(path).fps == 1


def test_overshoot_tolerance_is_symmetric(tmp_path) -> None:
    values = ["0.5"] * 61
    values[LLF_COLUMN_ORDER.index("JawOpen")] = "1.1"
    values[LLF_COLUMN_ORDER.index("MouthClose")] = "-0.1"
    values[LLF_COLUMN_ORDER.index("HeadYaw")] = "-1.1"
    values[LLF_COLUMN_ORDER.index("HeadRoll")] = "1.1"
    path = _write(tmp_path / "over.csv", [HEADER, ",".join(["12:00:00:00.000", "61", *values])])
    recording = read_llf(path)
    assert {channel for _, channel, _ in recording.clamped} == {"jawOpen", "mouthClose", "HeadYaw", "HeadRoll"}
    frame = recording.frame(0)
    assert (frame["jawOpen"], frame["mouthClose"], frame["HeadYaw"], frame["HeadRoll"]) == (1.0, 0.0, -1.0, 1.0)
    values[LLF_COLUMN_ORDER.index("JawOpen")] = "1.1000001"
    with pytest.raises(RecordingError, match="jawOpen"):
        read_llf(_write(tmp_path / "over2.csv", [HEADER, ",".join(["12:00:00:00.000", "61", *values])]))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda line: line.encode() + b"\xff\xfe", "not UTF-8"),
        (lambda line: line.replace("0.1234567891", "1" * 200_000, 1).encode(), "characters long"),
        (lambda line: line.replace("0.1234567891", "1" * 100, 1).encode(), "not a number"),
        (lambda line: line.replace("0.1234567891", "\u0661.5", 1).encode(), "not a number"),  # Arabic-Indic one
        (lambda line: line.replace("12:21", "\u0661\u0662:21", 1).encode(), "bad timecode"),
        (lambda line: line.replace("0.1234567891", '"0.1', 1).encode(), "columns"),  # an open quote
        (lambda line: line.replace("0.1234567891", "1e999", 1).encode(), "not a finite number"),
        (lambda line: b"\x00" + line.encode(), "bad timecode"),
    ],
)
def test_every_recording_error_names_its_row(tmp_path, damage, message) -> None:
    lines = [HEADER.encode(), *(_row(_timecode(i)).encode() for i in range(6))]
    lines[4] = damage(lines[4].decode())
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(RecordingError, match=message) as caught:
        read_llf(path)
    assert caught.value.row == 5 and "row 5" in str(caught.value) and str(path) in str(caught.value)


# --- fuzz: 1,000+ mutations of the real recordings ------------------------------------------------------------------

_VALUE = re.compile(rb"-?\d+\.\d{10}")
_TIMECODE_CELL = re.compile(rb"\d\d:\d\d:\d\d:\d\d\.\d+")
_JUNK_VALUES = [b"nan", b"NaN", b"inf", b"-inf", b"1e308", b"-1e308", b"1e999", b"9" * 400, b"", b" ", b"0x1F",
                b"1,5", b'"0.5"', b"\xff", b"0.5.5", b"1e-400", b"+0.5", b"-0", b"1.1", b"-0.1", b"1.1000001"]  # fmt: skip
_JUNK_TIMECODES = [b"12:21:59;06.595", b"99:99:99:99.999", b"12:21:59:60.000", b"12:21:59", b"", b"00:00:00:00",
                   b"23:59:59:59.999", b"00:00:00:00.000", b"12:21:59:06.5950000000000000001", b"\xef\xbb\xbf12:00:00:00.0"]  # fmt: skip


def _data_line(rng: random.Random, lines: list[bytes]) -> int:
    return rng.randrange(1, len(lines))


def _mutate(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return rng.choice([b"", b"\n", HEADER.encode()])
    lines = data.split(b"\n")
    if len(lines) < 2:
        lines.append(b"")
    kind = rng.randrange(12)
    if kind == 0:  # truncated at any byte
        return data[: rng.randrange(len(data) + 1)]
    if kind == 1:  # a value replaced
        i = _data_line(rng, lines)
        spots = list(_VALUE.finditer(lines[i]))
        if spots:
            spot = rng.choice(spots)
            lines[i] = lines[i][: spot.start()] + rng.choice(_JUNK_VALUES) + lines[i][spot.end() :]
        return b"\n".join(lines)
    if kind == 2:  # a timecode replaced, repeated or moved back
        i = _data_line(rng, lines)
        spot = _TIMECODE_CELL.match(lines[i])
        if spot:
            other = _TIMECODE_CELL.match(lines[_data_line(rng, lines)])
            new = rng.choice([*_JUNK_TIMECODES, other.group() if other else b""])
            lines[i] = new + lines[i][spot.end() :]
        return b"\n".join(lines)
    if kind == 3:  # columns dropped, added or swapped (header included)
        i = rng.randrange(len(lines))
        cells = lines[i].split(b",")
        op = rng.randrange(3)
        if op == 0 and cells:
            del cells[rng.randrange(len(cells))]
        elif op == 1:
            cells.insert(rng.randrange(len(cells) + 1), rng.choice([b"0.5", b"", b"Extra"]))
        elif len(cells) > 1:
            a, b = rng.sample(range(len(cells)), 2)
            cells[a], cells[b] = cells[b], cells[a]
        lines[i] = b",".join(cells)
        return b"\n".join(lines)
    if kind == 4:  # byte-order marks
        bom = rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf\xef\xbb\xbf"])
        i = rng.randrange(len(lines))
        lines[i] = bom + lines[i]
        return b"\n".join(lines)
    if kind == 5:  # line endings
        return rng.choice([data.replace(b"\n", b"\r\n"), data.replace(b"\n", b"\r"), data.rstrip(b"\n"),
                           data + b"\n\n\n", data.replace(b"\n", b"\n\n", 3)])  # fmt: skip
    if kind == 6:  # random bytes
        out = bytearray(data)
        for _ in range(rng.randrange(1, 10)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if kind == 7:  # lost-tracking rows in odd forms
        i = _data_line(rng, lines)
        spot = _TIMECODE_CELL.match(lines[i])
        timecode = spot.group() if spot else b"12:00:00:00.000"
        lines[i] = timecode + rng.choice([b",0", b",0.0", b",00", b", 0 ", b",-0", b",", b",0,", b",nan"])
        return b"\n".join(lines)
    if kind == 8:  # over-long fields and lines
        i = rng.randrange(len(lines))
        lines[i] = lines[i] + rng.choice([b"1" * 70_000, b"," * 300, b'"' + b"x" * 200_000 + b'"'])
        return b"\n".join(lines)
    if kind == 9:  # header damage
        lines[0] = rng.choice([lines[0].lower(), lines[0].replace(b"Timecode", b"Time"), b"", lines[0] + b",",
                               lines[0].replace(b",", b";"), lines[1] if len(lines) > 1 else b""])  # fmt: skip
        return b"\n".join(lines)
    if kind == 10:  # quoting
        i = _data_line(rng, lines)
        lines[i] = rng.choice([b'"' + lines[i], lines[i].replace(b",", b'","', 2), lines[i] + b'"'])
        return b"\n".join(lines)
    # NUL bytes and control characters
    i = rng.randrange(len(data))
    return data[:i] + rng.choice([b"\x00", b"\x1a", b"\x0b", b"\x0c", b"\x85", b"\xe2\x80\xa8"]) + data[i:]


def _check(path: Path) -> str:
    try:
        recording = read_llf(path)
    except RecordingError as error:
        assert error.row is not None and error.path == str(path), str(error)
        return "error"
    assert isinstance(recording, Recording)
    values = recording.values
    assert values.shape == (len(recording.timecodes), len(CHANNELS))
    tracked = np.delete(values, recording.lost_frames, axis=0)
    assert np.isfinite(tracked).all() and (np.abs(tracked) <= 1).all()
    assert np.isfinite(recording.fps) and recording.fps > 0
    for issue in recording.issues:
        assert issue.startswith("line "), issue
    if len(recording):
        recording.frame(-1)
        assert np.isfinite(recording.times).all()
    return "issues" if recording.issues or recording.clamped else "clean"


def test_fuzz_a_thousand_mutations_of_the_real_recordings_raise_nothing_raw(shared_data, tmp_path) -> None:
    folder = shared_data / "llf"
    files = sorted(folder.glob("*.csv"))
    if not files:
        pytest.skip(f"no Live Link Face recordings in {folder}")
    rng = random.Random(12)
    bases = []
    for file in files:
        lines = file.read_bytes().split(b"\n")
        for start in (1, len(lines) // 2):  # the head of each file and a slice from its middle (apfel's lost rows)
            bases.append(b"\n".join([lines[0], *lines[start : start + 12]]) + b"\n")
    outcomes = {"error": 0, "issues": 0, "clean": 0}
    path = tmp_path / "mutant.csv"
    for _ in range(1_200):
        data = _mutate(rng, rng.choice(bases))
        if rng.random() < 0.3:
            data = _mutate(rng, data)
        path.write_bytes(data)
        outcomes[_check(path)] += 1
    for file in files:  # whole files, one mutation each
        path.write_bytes(_mutate(rng, file.read_bytes()))
        outcomes[_check(path)] += 1
    assert sum(outcomes.values()) >= 1_000
    assert outcomes["error"] > 100 and outcomes["clean"] + outcomes["issues"] > 100, outcomes
