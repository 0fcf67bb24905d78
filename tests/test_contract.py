"""The output contract: render -> parse round trips, the skeleton for forced decoding, and a parser that never
crashes on malformed model output."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import (
    FREE_TEXT_LIMITS,
    FreeText,
    LiteralPiece,
    NumberPiece,
    ParsedOutput,
    TargetConfig,
    fill_skeleton,
    parse_output,
    parse_semanticface_release,
    render_description,
    render_target,
    system_prompt,
    target_skeleton,
    user_prompt,
)
from semanticface.errors import ConfigError, OutputParseError
from semanticface.schema import BLENDSHAPES, CHANNELS, LLF_COLUMN_ORDER, POSE_CHANNELS, REGIONS, to_dialect
from semanticface.semantics import describe, parse_description

blendshape_values = st.floats(0.0, 1.0, allow_nan=False)
pose_values = st.floats(-1.0, 1.0, allow_nan=False)
coefficients_strategy = st.builds(
    lambda b, p: FaceCoefficients(np.array(b + p)),
    st.lists(blendshape_values, min_size=52, max_size=52),
    st.lists(pose_values, min_size=9, max_size=9),
)
configs = st.builds(
    TargetConfig,
    target_format=st.sampled_from(["semantic", "coefficients"]),
    decimals=st.integers(0, 4),
    include_pose=st.booleans(),
    key_dialect=st.sampled_from(["arkit", "llf", "suffix"]),
)


def expected_parse(c: FaceCoefficients, config: TargetConfig) -> FaceCoefficients:
    """What parsing a rendered target must give: c quantised; pose marked missing when it was not emitted."""
    quantized = c.quantized(config.decimals)
    if config.include_pose:
        return quantized
    return FaceCoefficients(quantized.values, frozenset(POSE_CHANNELS))


def random_face(rng: np.random.Generator) -> FaceCoefficients:
    return FaceCoefficients(np.concatenate([rng.random(52) ** 2, rng.uniform(-1, 1, 9)]))


# --- round trips -------------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=coefficients_strategy, config=configs)
def test_parse_of_render_is_the_quantised_coefficients(c: FaceCoefficients, config: TargetConfig) -> None:
    parsed = parse_output(render_target(c, config))
    assert parsed.issues == []
    assert parsed.coefficients == expected_parse(c, config)


@settings(max_examples=100, deadline=None)
@given(c=coefficients_strategy, config=configs)
def test_filling_the_skeleton_reproduces_render_target(c: FaceCoefficients, config: TargetConfig) -> None:
    sections = describe(c.quantized(config.decimals)).sections()
    assert fill_skeleton(target_skeleton(config), sections, c) == render_target(c, config)


@settings(max_examples=60, deadline=None)
@given(c=coefficients_strategy)
def test_parsed_description_is_the_rendered_description(c: FaceCoefficients) -> None:
    parsed = parse_output(render_target(c))
    assert parsed.description == render_description(c).strip()
    assert parse_description(parsed.description) == describe(c.quantized(2)).sections()


def test_default_target_layout_is_the_documented_one() -> None:
    c = FaceCoefficients.neutral().replace(mouthSmileLeft=0.7, mouthSmileRight=0.694, cheekSquintLeft=0.5)
    lines = render_target(c).split("\n")
    assert lines[0].startswith("Expression: happiness")
    assert lines[1] == "Muscle movements:"
    assert [line.split(":")[0] for line in lines[2:9]] == [
        "- Brows", "- Eyes", "- Cheeks", "- Nose", "- Jaw", "- Mouth", "- Tongue",
    ]  # fmt: skip
    assert lines[9].startswith("Emotion cue: ") and lines[10].startswith("Symmetry: ")
    assert lines[11] == "Coefficients:" and len(lines) == 13
    block = json.loads(lines[12])
    assert list(block) == list(BLENDSHAPES)
    assert '"mouthSmileLeft": 0.70, "mouthSmileRight": 0.69' in lines[12]  # fixed decimals, half away from zero
    only_numbers = render_target(c, TargetConfig(target_format="coefficients"))
    assert only_numbers.split("\n") == lines[11:]


def test_pose_and_dialect_options() -> None:
    c = FaceCoefficients.neutral().replace(HeadYaw=-0.255, jawRight=0.3)
    block = json.loads(
        render_target(c, TargetConfig(include_pose=True, key_dialect="llf", decimals=1)).split("\n")[-1]
    )
    assert list(block) == [to_dialect(n, "llf") for n in CHANNELS]  # canonical order, LLF spelling
    assert block["HeadYaw"] == -0.3 and block["JawRight"] == 0.3


def test_missing_channels_are_left_out_of_the_block_and_read_back_as_missing() -> None:
    c = FaceCoefficients(np.full(61, 0.2), frozenset({"tongueOut"}))
    text = render_target(c)
    assert "tongueOut" not in text
    parsed = parse_output(text)
    assert "tongueOut" in parsed.coefficients.missing
    assert any("tongueOut" in issue for issue in parsed.issues)


def test_skeleton_slots() -> None:
    skeleton = target_skeleton(TargetConfig(include_pose=True))
    free = [s for s in skeleton if isinstance(s, FreeText)]
    numbers = [s for s in skeleton if isinstance(s, NumberPiece)]
    assert [s.name for s in free] == ["expression", *REGIONS, "emotion",
                                      "symmetry"]  # fmt: skip
    assert free[1].stop == "\n- Eyes: " and free[-1].stop == "\nCoefficients:\n{" + '"eyeBlinkLeft": '
    assert [n.channel for n in numbers] == list(CHANNELS)
    assert numbers[0].minimum == 0 and numbers[-1].minimum == -1 and numbers[-1].maximum == 1
    for i, segment in enumerate(skeleton):
        if isinstance(segment, FreeText):
            assert isinstance(skeleton[i + 1], LiteralPiece) and skeleton[i + 1].text == segment.stop
    only_numbers = target_skeleton(TargetConfig(target_format="coefficients"))
    assert not any(isinstance(s, FreeText) for s in only_numbers)
    assert only_numbers[0] == LiteralPiece('Coefficients:\n{"eyeBlinkLeft": ')


def test_number_pattern_matches_rendered_values() -> None:
    import re

    for segment in target_skeleton(TargetConfig(include_pose=True, decimals=3)):
        if isinstance(segment, NumberPiece):
            assert re.fullmatch(segment.pattern, "-0.125" if segment.minimum < 0 else "0.125")
            assert not re.fullmatch(segment.pattern, "0.12")


def test_free_text_stays_within_its_bound() -> None:
    rng = np.random.default_rng(3)
    faces = [FaceCoefficients.from_array(np.ones(52)), FaceCoefficients.from_array(np.full(52, 0.5))]
    faces += [random_face(rng) for _ in range(300)]
    faces += [FaceCoefficients.from_array(np.where(rng.random(52) < 0.5, 1.0, 0.0)) for _ in range(200)]
    for face in faces:
        for name, text in describe(face).sections().items():
            assert 0 < len(text) <= FREE_TEXT_LIMITS[name], (name, text)
            assert "\n" not in text


def test_template_dir_overrides_one_template(tmp_path) -> None:
    (tmp_path / "target.j2").write_text("{{ coefficients }}\nbye", encoding="utf-8")
    config = TargetConfig(template_dir=str(tmp_path))
    c = FaceCoefficients.neutral().replace(jawOpen=0.5)
    text = render_target(c, config)
    assert text.startswith('{"eyeBlinkLeft": 0.00') and text.endswith("}\nbye")
    assert fill_skeleton(target_skeleton(config), {}, c) == text
    assert parse_output(text).coefficients["jawOpen"] == 0.5
    with pytest.raises(ConfigError):
        render_target(c, TargetConfig(template_dir=str(tmp_path / "absent")))


def test_target_config_validation() -> None:
    for bad in ({"target_format": "json"}, {"decimals": -1}, {"decimals": 2.5}, {"key_dialect": "facs"}):
        with pytest.raises(ConfigError):
            TargetConfig(**bad)


def test_prompts_ask_for_the_block_and_list_keys_in_order() -> None:
    config = TargetConfig(include_pose=True, key_dialect="llf")
    user = user_prompt(config)
    assert user.index("EyeBlinkLeft") < user.index("JawLeft") < user.index("JawRight") < user.index("RightEyeRoll")
    assert "61 keys" in user and "Coefficients:" in user
    assert "2 decimals" in system_prompt() and "Muscle movements" in user_prompt()
    assert "describe" not in system_prompt(TargetConfig(target_format="coefficients"))


# --- the parser's leniency, each recorded --------------------------------------------------------------------


def block(values: dict[str, object] | None = None, **overrides: object) -> str:
    data = {name: 0.1 for name in BLENDSHAPES} if values is None else dict(values)
    data.update(overrides)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in data.items()) + "}"


def test_block_after_free_text_with_braces_and_fences() -> None:
    text = "I see {a smile} here.\n```json\n" + block(jawOpen=0.5) + "\n```"
    parsed = parse_output(text)
    assert parsed.issues == [] and parsed.coefficients["jawOpen"] == 0.5
    assert parsed.description == "I see {a smile} here."


def test_every_dialect_is_accepted() -> None:
    llf = {name: 0.2 for name in LLF_COLUMN_ORDER}
    parsed = parse_output(block(llf))
    assert parsed.issues == [] and not parsed.coefficients.missing
    suffix = {name.replace("Left", "_L").replace("Right", "_R") if not name.startswith(("jaw", "mouthL", "mouthR"))
              else name: 0.3 for name in BLENDSHAPES}  # fmt: skip
    assert parse_output(block(suffix)).coefficients["eyeBlinkLeft"] == 0.3
    mediapipe = {"_neutral": 0.9, **{n: 0.1 for n in BLENDSHAPES if n != "tongueOut"}}
    parsed = parse_output(block(mediapipe))
    assert parsed.coefficients.missing == frozenset({"tongueOut", *POSE_CHANNELS})
    assert parsed.issues == ["missing channel(s), marked missing: tongueOut"]


@pytest.mark.parametrize(
    ("text", "issue", "check"),
    [
        (block(jawOpen=1.7), "outside [0, 1]; clamped", lambda c: c["jawOpen"] == 1.0),
        (block(jawOpen=-0.2), "clamped", lambda c: c["jawOpen"] == 0.0),
        (block(jawOpen="NaN"), "not finite", lambda c: "jawOpen" in c.missing),
        (block(jawOpen='"0.4"'), "is a string", lambda c: c["jawOpen"] == 0.4),
        (block(jawOpen='"wide"'), "not a number", lambda c: "jawOpen" in c.missing),
        (block(jawOpen="null"), "not a number", lambda c: "jawOpen" in c.missing),
        (block(jawOpen="true"), "not a number", lambda c: "jawOpen" in c.missing),
        (block(jawOpen="[0.1]"), "not a number", lambda c: "jawOpen" in c.missing),
        (block(smileyFace=0.3), "unknown key 'smileyFace'", lambda c: not c.missing - set(POSE_CHANNELS)),
        (block(JawOpen=0.9), "duplicate key 'JawOpen'", lambda c: c["jawOpen"] == 0.1),
        (block()[:-1] + ",}", "trailing comma", lambda c: c["jawOpen"] == 0.1),
        (block().replace('"', "'"), "single quotes", lambda c: c["jawOpen"] == 0.1),
        (block() + "\nThat is all.", "text after", lambda c: c["jawOpen"] == 0.1),
        (block()[:200], "incomplete", lambda c: "tongueOut" in c.missing and c["eyeBlinkLeft"] == 0.1),
        ('{"blendshapes": ' + block() + "}", None, lambda c: c["jawOpen"] == 0.1),
        (
            block({n: 0.1 for n in BLENDSHAPES if n != "jawOpen"}),
            "missing channel(s)",
            lambda c: "jawOpen" in c.missing,
        ),
    ],
)
def test_leniencies_are_recorded(text: str, issue: str | None, check) -> None:
    parsed = parse_output(text)
    assert isinstance(parsed, ParsedOutput)
    if issue is None:
        assert parsed.issues == []
    else:
        assert any(issue in i for i in parsed.issues), parsed.issues
    assert check(parsed.coefficients)


@pytest.mark.parametrize(
    "text",
    ["", "The face is smiling.", "{}", '{"a": 1}', "{not json at all}", '{"jawOpen": "x"}', "[0.1, 0.2]", "{" * 5000,
     "[" * 100000 + "{" + "]" * 100000, '{"jawOpen": ' + "1" * 5000 + "}", b"\xff\xfe", None, 42],
)  # fmt: skip
def test_unrecoverable_outputs_raise_only_output_parse_error(text) -> None:
    with pytest.raises(OutputParseError):
        parse_output(text)


def test_semanticface_release_format() -> None:
    rng = np.random.default_rng(7)
    values = {name: round(float(v), 1) for name, v in zip(LLF_COLUMN_ORDER, rng.random(61))}
    for pose in POSE_CHANNELS:
        values[pose] = round(float(rng.uniform(-1, 1)), 1)
    text = (
        "## Facial analysis\n\n**Expression:** mild happiness\n\n**Muscle movements:**\n- *Mouth*: corners up\n\n"
        "```json\n" + json.dumps(values, indent=2) + "\n```\n"
    )
    parsed = parse_semanticface_release(text)
    assert parsed.issues == []
    assert parsed.coefficients.to_dict("llf") == values
    assert parsed.description.startswith("## Facial analysis") and "corners up" in parsed.description
    del values["HeadRoll"]
    parsed = parse_semanticface_release("analysis\n" + json.dumps(values))
    assert "HeadRoll" in parsed.coefficients.missing and any("HeadRoll" in i for i in parsed.issues)


# --- fuzz --------------------------------------------------------------------------------------------------------

_JUNK_VALUES = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", '"0.5"', '"abc"', "null", "true", "[]", "{}",
                "{\"x\": 1}", "0.5.5", "--1", "1e-400", "9" * 400, "0x10", ".5", "5.", "", "'0.3'"]  # fmt: skip
_JUNK_KEYS = ["", "eye", "eyeBlinkLeftt", "_neutral", "EYEBLINKLEFT", "jaw Open", "tongueOut\u0000", "\u00e9\u00e8",
              "browInnerUp_L", "123", '\\"', "HeadYaw"]  # fmt: skip


def _malformed(rng: random.Random, good: list[str]) -> str:
    base = rng.choice(good)
    kind = rng.randrange(12)
    if kind == 0:  # truncated anywhere
        return base[: rng.randrange(len(base) + 1)]
    if kind == 1:  # random bytes decoded
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))).decode("latin-1")
    if kind == 2:  # text only
        return base.split("Coefficients:")[0] if "Coefficients:" in base else "no numbers here"
    if kind == 3:  # junk values
        pairs = [f'"{n}": {rng.choice(_JUNK_VALUES) if rng.random() < 0.3 else round(rng.random(), 2)}'
                 for n in rng.sample(CHANNELS, rng.randrange(1, 61))]  # fmt: skip
        return "Coefficients:\n{" + ", ".join(pairs) + "}"
    if kind == 4:  # junk and duplicate keys
        names = [rng.choice(CHANNELS + tuple(_JUNK_KEYS)) for _ in range(rng.randrange(1, 90))]
        return "{" + ", ".join(f'"{n}": {round(rng.uniform(-2, 2), 3)}' for n in names) + "}"
    if kind == 5:  # character-level mutations
        chars = list(base)
        for _ in range(rng.randrange(1, 30)):
            i = rng.randrange(len(chars))
            op = rng.randrange(3)
            if op == 0:
                del chars[i]
            elif op == 1:
                chars.insert(i, rng.choice("{}[]\",:'\\0123456789.-eE \n`"))
            else:
                chars[i] = rng.choice('{}":,')
        return "".join(chars)
    if kind == 6:  # wrong types at top level
        return rng.choice(["[" + ", ".join("0.1" for _ in range(52)) + "]", '"just a string"', "42", "null",
                           '{"coefficients": [0.1, 0.2]}', '{"jawOpen": {"value": 0.5}}'])  # fmt: skip
    if kind == 7:  # deep nesting
        depth = rng.randrange(10, 3000)
        return rng.choice("[{") * depth + base[-300:] + rng.choice("]}") * rng.randrange(depth + 1)
    if kind == 8:  # many blocks and braces
        return " ".join(rng.choice(["{", "}", base[-80:], '{"jawOpen": 0.3}', "{}"]) for _ in range(rng.randrange(50)))
    if kind == 9:  # huge and tiny numbers
        return base.replace(
            "0.", rng.choice(["1e308", "-1e308", "1e-320", "99999999999999999999."]), rng.randrange(60)
        )
    if kind == 10:  # two concatenated outputs, one broken
        return base[: rng.randrange(len(base))] + rng.choice(good)
    return base.replace('"', rng.choice(["'", "", "\u201c", "`"]))


def test_fuzz_ten_thousand_malformed_outputs_never_crash() -> None:
    rng = random.Random(1234)
    np_rng = np.random.default_rng(1234)
    configs_ = [
        TargetConfig(),
        TargetConfig(target_format="coefficients"),
        TargetConfig(include_pose=True, key_dialect="llf"),
    ]
    good = [render_target(random_face(np_rng), rng.choice(configs_)) for _ in range(40)]
    outcomes = {"error": 0, "issues": 0, "clean": 0}
    for _ in range(10_000):
        text = _malformed(rng, good)
        try:
            parsed = parse_output(text)
        except OutputParseError:
            outcomes["error"] += 1
            continue
        assert isinstance(parsed.coefficients, FaceCoefficients)
        assert np.all(np.isnan(parsed.coefficients.values) | (np.abs(parsed.coefficients.values) <= 1))
        outcomes["issues" if parsed.issues else "clean"] += 1
        if not parsed.issues:  # a clean parse must come from an intact block
            assert not parsed.coefficients.missing - set(POSE_CHANNELS)
    assert sum(outcomes.values()) == 10_000
    assert outcomes["error"] > 1000 and outcomes["issues"] > 1000, outcomes
