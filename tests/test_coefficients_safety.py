"""Issue 12, item 5: coefficients and rows refuse bad input with a typed error naming the channel, row or file.

``FaceCoefficients.from_dict`` maps no garbled name onto a real channel, says which value it used when a midline
channel comes both whole and as halves, and rejects strings, bools and complex numbers; the container, the row
helpers and the preference manifest raise typed errors for every bad input instead of raw exceptions.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from pref_helpers import make_candidate_set

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import (
    CoefficientError,
    CoefficientWarning,
    ConfigError,
    DatasetError,
    SemanticFaceError,
    UnknownChannelError,
)
from semanticface.preferences.manifest import MANIFEST_NAME, CandidateSet
from semanticface.rows import coefficients_to_row, row_to_coefficients
from semanticface.schema import BLENDSHAPES, CHANNELS

BASE = {name: 0.1 for name in BLENDSHAPES}


@pytest.mark.parametrize(
    ("garbled", "real"),
    [("eyeBlinkLeft_R", "eyeBlinkLeft"), ("mouthSmileLeftRight", "mouthSmileLeft"), ("jawOpen_L", "jawOpen")],
)
def test_garbled_names_are_not_mapped_onto_real_channels(garbled: str, real: str) -> None:
    mapping = {k: v for k, v in BASE.items() if k != real} | {garbled: 0.9}
    with pytest.raises(UnknownChannelError, match=garbled):
        FaceCoefficients.from_dict(mapping)
    with pytest.raises(UnknownChannelError):
        FaceCoefficients.from_dict({**BASE, garbled: 0.9})  # not even when the real channel is there too
    parsed = FaceCoefficients.from_dict(mapping, ignore_unknown=True, missing_ok=True)
    assert real in parsed.missing


def test_ict_halves_still_average_and_whole_plus_halves_says_which_was_used() -> None:
    halves = {k: v for k, v in BASE.items() if k != "browInnerUp"} | {"browInnerUp_L": 0.2, "browInnerUp_R": 0.4}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert FaceCoefficients.from_dict(halves)["browInnerUp"] == pytest.approx(0.3)
    with pytest.warns(CoefficientWarning, match="browInnerUp is given whole and as halves.*used the whole value"):
        both = FaceCoefficients.from_dict({**BASE, "browInnerUp_L": 0.9, "browInnerUp_R": 0.9})
    assert both["browInnerUp"] == 0.1
    one = {k: v for k, v in BASE.items() if k != "cheekPuff"} | {"cheekPuff_L": 0.5}
    with pytest.warns(CoefficientWarning, match="only one half"):
        assert FaceCoefficients.from_dict(one)["cheekPuff"] == 0.5


@pytest.mark.parametrize("value", ["0.5", True, np.bool_(False), 0.5 + 0j, None, [0.5], 10**400, float("nan")])
def test_from_dict_rejects_what_is_not_a_real_number_naming_the_channel(value) -> None:
    with pytest.raises(CoefficientError, match="jawOpen") as caught:
        FaceCoefficients.from_dict({**BASE, "jawOpen": value})
    assert caught.value.channel == "jawOpen"


@pytest.mark.parametrize(
    "build",
    [
        lambda: FaceCoefficients(["abc"] * 61),
        lambda: FaceCoefficients([True] * 61),
        lambda: FaceCoefficients(["0.5"] * 61),
        lambda: FaceCoefficients([0.1] * 60 + [10**400]),
        lambda: FaceCoefficients([0.1] * 60 + [1j]),
        lambda: FaceCoefficients([[0.1]] * 61),
        lambda: FaceCoefficients(np.zeros(61), frozenset({5})),
        lambda: FaceCoefficients(np.zeros(61), 5),
        lambda: FaceCoefficients.from_array(["x"] * 52),
        lambda: FaceCoefficients.from_array(5),
        lambda: FaceCoefficients.from_array(np.zeros(52), missing="jaw"),
        lambda: FaceCoefficients.from_dict({5: 0.5}),
        lambda: FaceCoefficients.from_dict([("jawOpen", 0.5)]),
        lambda: FaceCoefficients.from_dict({**BASE, "jawOpen": 10**400}),
        lambda: FaceCoefficients.neutral().quantized(400),
        lambda: FaceCoefficients.neutral().quantized(-1),
        lambda: FaceCoefficients.neutral().quantized(2.5),
        lambda: FaceCoefficients.neutral().to_dict("klingon"),
        lambda: FaceCoefficients.neutral().replace(jawOpen="x"),
        lambda: FaceCoefficients.neutral().replace(jawOpen=10**400),
        lambda: FaceCoefficients.neutral()[5],
        lambda: coefficients_to_row("abc"),
        lambda: row_to_coefficients("abc"),
    ],
)
def test_every_bad_input_to_the_container_raises_a_typed_error(build) -> None:
    with pytest.raises(SemanticFaceError):
        build()


def test_errors_name_the_channel() -> None:
    with pytest.raises(CoefficientError, match="eyeBlinkLeft") as caught:
        FaceCoefficients(["abc"] * 61)
    assert caught.value.channel == "eyeBlinkLeft"
    values: list[object] = [0.1] * 61
    values[CHANNELS.index("HeadYaw")] = 10**400
    with pytest.raises(CoefficientError, match="HeadYaw"):
        FaceCoefficients(values)
    with pytest.raises(ConfigError, match="klingon.*arkit"):
        FaceCoefficients.neutral().to_dict("klingon")


@pytest.mark.parametrize("value", ["abc", [0.5], True, {"v": 0.5}, 10**400, "0.5"])
def test_row_helpers_name_row_and_channel(value) -> None:
    row = coefficients_to_row(FaceCoefficients.neutral())
    row["jawOpen"] = value
    with pytest.raises(DatasetError, match=r"row 7: .*jawOpen"):
        row_to_coefficients(row, where="row 7")


@pytest.mark.parametrize("value", ["abc", [0.5], True, 10**400])
def test_manifest_values_raise_naming_file_line_and_channel(tmp_path, value) -> None:
    make_candidate_set(tmp_path / "c", n_items=2, k=2)
    manifest = tmp_path / "c" / MANIFEST_NAME
    lines = manifest.read_text(encoding="utf-8").splitlines()
    item = json.loads(lines[1])
    item["candidates"][1]["coefficients"]["jawOpen"] = value
    lines[1] = json.dumps(item)
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"manifest\.jsonl, line 2, candidate 1: .*jawOpen"):
        CandidateSet.load(tmp_path / "c")


@pytest.mark.parametrize(
    "line",
    [
        b'{"id": "x", "image": "a.png", "candidates": [] \xff}',
        b"[" * 100_000 + b"]" * 100_000,
        b"metadata",
    ],
)
def test_manifest_lines_that_are_not_text_or_too_deep_name_their_line(tmp_path, line: bytes) -> None:
    make_candidate_set(tmp_path / "c", n_items=2, k=2)
    manifest = tmp_path / "c" / MANIFEST_NAME
    if line == b"metadata":  # a valid item whose metadata is a list of numbers
        item = json.loads(manifest.read_text(encoding="utf-8").splitlines()[0])
        line = json.dumps({**item, "id": "another", "metadata": [1, 2]}).encode()
    manifest.write_bytes(manifest.read_bytes() + line + b"\n")
    with pytest.raises(DatasetError, match=r"line 3"):
        CandidateSet.load(tmp_path / "c")
