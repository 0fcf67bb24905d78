"""The compact coefficient block: exact round trips, a skeleton the forced decoder can fill, recorded leniencies,
and a parser that raises nothing but OutputParseError."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import (
    LiteralPiece,
    NumberPiece,
    TargetConfig,
    fill_skeleton,
    parse_target,
    render_target,
    system_prompt,
    target_skeleton,
    user_prompt,
)
from semanticface.decoding import NumberGrammar, number_strings
from semanticface.errors import ConfigError, OutputParseError
from semanticface.schema import BLENDSHAPES, CHANNELS, POSE_CHANNELS
from semanticface.semantics import describe

coefficients_strategy = st.builds(
    lambda b, p, gone: FaceCoefficients(np.array(b + p), frozenset(gone)),
    st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=52, max_size=52),
    st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=9, max_size=9),
    st.sets(st.sampled_from(CHANNELS), max_size=3),
)
compact_configs = st.builds(
    TargetConfig,
    target_format=st.sampled_from(["semantic", "coefficients"]),
    decimals=st.integers(0, 4),
    include_pose=st.booleans(),
    key_dialect=st.sampled_from(["arkit", "llf", "suffix"]),
    block_style=st.just("compact"),
)


def _expected(c: FaceCoefficients, config: TargetConfig) -> FaceCoefficients:
    quantized = c.quantized(config.decimals)
    missing = quantized.missing | (frozenset() if config.include_pose else frozenset(POSE_CHANNELS))
    return FaceCoefficients(quantized.values * np.array([n not in missing for n in CHANNELS]), missing)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=coefficients_strategy, config=compact_configs)
def test_parse_of_a_compact_render_is_the_quantised_coefficients(c: FaceCoefficients, config: TargetConfig) -> None:
    parsed = parse_target(render_target(c, config), config)
    assert parsed.coefficients == _expected(c, config)
    gone = [n for n in config.channels() if n in c.missing]
    if gone:  # an empty item: reported missing, like a key left out of the JSON block
        assert len(parsed.issues) == 1 and "missing channel" in parsed.issues[0] and gone[0] in parsed.issues[0]
    else:
        assert parsed.issues == []


@settings(max_examples=100, deadline=None)
@given(c=coefficients_strategy, config=compact_configs)
def test_filling_the_compact_skeleton_reproduces_render_target(c: FaceCoefficients, config: TargetConfig) -> None:
    c = FaceCoefficients(np.nan_to_num(c.values))  # the skeleton has a slot for every channel
    sections = describe(c.quantized(config.decimals)).sections()
    assert fill_skeleton(target_skeleton(config), sections, c) == render_target(c, config)


def test_compact_block_layout_and_prompts() -> None:
    c = FaceCoefficients.neutral().replace(jawOpen=0.374, mouthSmileLeft=1.0, HeadYaw=-0.255)
    config = TargetConfig(target_format="coefficients", block_style="compact", include_pose=True)
    lines = render_target(c, config).split("\n")
    assert lines[0] == "Coefficients:" and len(lines) == 2
    values = lines[1][1:-1].split(",")
    assert lines[1][0] == "[" and lines[1][-1] == "]" and len(values) == 61
    assert values[CHANNELS.index("jawOpen")] == "37" and values[CHANNELS.index("mouthSmileLeft")] == "100"
    assert values[CHANNELS.index("HeadYaw")] == "-26" and set(values) <= {"0", "37", "100", "-26"}
    assert "square brackets" in user_prompt(config) and "61 values" in user_prompt(config)
    assert "integer count of 0.01" in system_prompt(config) and "-100 to 100" in system_prompt(config)
    assert "JSON" not in system_prompt(config) + user_prompt(config)
    assert "JSON" in user_prompt(TargetConfig())  # the default stays the JSON block
    with pytest.raises(ConfigError, match="block_style"):
        TargetConfig(block_style="csv")


def test_compact_skeleton_slots_own_their_terminators() -> None:
    skeleton = target_skeleton(TargetConfig(block_style="compact"))
    numbers = [s for s in skeleton if isinstance(s, NumberPiece)]
    assert [n.channel for n in numbers] == list(BLENDSHAPES)
    assert all(n.integer for n in numbers) and [n.end for n in numbers] == [","] * 51 + ["]"]
    assert isinstance(skeleton[-53], LiteralPiece) and skeleton[-53].text.endswith("Coefficients:\n[")
    assert numbers[0].format(0.37) == "37," and numbers[-1].format(1.0) == "100]"
    assert number_strings(0.0, 1.0, 2, integer=True, end=",")[:3] == ["0,", "1,", "2,"]
    assert number_strings(-1.0, 1.0, 1, integer=True, end="]")[0] == "-10]"
    with pytest.raises(ConfigError, match="terminator"):
        number_strings(0.0, 1.0, 2, integer=True)


@pytest.mark.parametrize(
    ("low", "high", "decimals", "end"), [(0.0, 1.0, 2, ","), (-1.0, 1.0, 2, "]"), (0.0, 1.0, 0, ",")]
)
def test_random_walks_through_an_integer_grammar_give_only_valid_values(tiny_model_dir, low, high, decimals, end):
    from semanticface.decoding import token_table
    from semanticface.modeling import load_processor

    table = token_table(load_processor(tiny_model_dir).tokenizer)
    grammar = NumberGrammar(low, high, decimals, table, integer=True, end=end)
    valid = set(number_strings(low, high, decimals, integer=True, end=end))
    rng = random.Random(0)
    seen = set()
    for _ in range(300):
        forced, node = grammar.forced(grammar.root)
        text = "".join(grammar.tokens[t] for t in forced)
        while not node.is_leaf:
            ids, ends = grammar.allowed(node)
            i = rng.randrange(len(ids))
            forced, node = grammar.forced(ends[i])
            text += grammar.tokens[ids[i]] + "".join(grammar.tokens[t] for t in forced)
        assert text in valid
        seen.add(text)
    assert len(seen) > min(10, len(valid) - 1)  # the walk really branches (and stops at 1 before 10)


# --- leniencies --------------------------------------------------------------------------------------------------

CONFIG = TargetConfig(target_format="coefficients", block_style="compact")


def _block(values: list[str]) -> str:
    return "Coefficients:\n[" + ",".join(values) + "]"


def test_each_leniency_is_recorded_and_the_value_kept() -> None:
    base = ["0"] * 52
    cases = {
        "trailing comma": ("Coefficients:\n[" + ",".join(base) + ",]", {}),
        "is a string": (_block(['"37"', *base[1:]]), {"eyeBlinkLeft": 0.37}),
        "written as a decimal": (_block(["0.37", *base[1:]]), {"eyeBlinkLeft": 0.37}),
        "clamped": (_block(["137", *base[1:]]), {"eyeBlinkLeft": 1.0}),
        "extra ignored": (_block([*base, "5", "6"]), {}),
        "not closed": ("Coefficients:\n[" + ",".join(["12", *base[1:40]]), {"eyeBlinkLeft": 0.12}),
        "text after": (_block(base) + "\nDone.", {}),
    }
    for issue, (text, values) in cases.items():
        parsed = parse_target(text, CONFIG)
        assert any(issue in i for i in parsed.issues), (issue, parsed.issues)
        for name, value in values.items():
            assert parsed.coefficients[name] == pytest.approx(value)
    truncated = parse_target(cases["not closed"][0], CONFIG)
    assert (
        truncated.coefficients.missing >= set(BLENDSHAPES[40:])
        and "mouthRollLower" not in truncated.coefficients.missing
    )
    spaced = parse_target("Coefficients:\n[ " + ", ".join(["5"] * 52) + " ]", CONFIG)
    assert spaced.issues == [] and spaced.coefficients["tongueOut"] == pytest.approx(0.05)


def test_unreadable_items_are_missing_never_zero() -> None:
    parsed = parse_target(_block(["abc", "null", *["3"] * 50]), CONFIG)
    assert {"eyeBlinkLeft", "eyeLookDownLeft"} <= parsed.coefficients.missing
    assert sum("is not a number" in i for i in parsed.issues) == 2
    assert parsed.coefficients["jawOpen"] == pytest.approx(0.03)


def test_description_and_last_block_are_read() -> None:
    config = TargetConfig(block_style="compact")
    c = FaceCoefficients.neutral().replace(jawOpen=0.6)
    text = "Sure! [draft 1,2]\n" + render_target(c, config)
    parsed = parse_target(text, config)
    assert parsed.coefficients["jawOpen"] == pytest.approx(0.6)
    assert parsed.description.startswith("Sure!") and parsed.description.endswith(describe(c).sections()["symmetry"])


@pytest.mark.parametrize(
    "text", ["", "Coefficients:", "no block here", "[]", "[,,,]", "[a,b]", "Coefficients:\n[x", None, 42, b"\xff["]
)
def test_unrecoverable_outputs_raise_only_output_parse_error(text) -> None:
    with pytest.raises(OutputParseError):
        parse_target(text, CONFIG)


def test_fuzzed_outputs_never_crash() -> None:
    rng = random.Random(0)
    good = render_target(FaceCoefficients.neutral().replace(jawOpen=0.5), TargetConfig(block_style="compact"))
    alphabet = "[],-.0123456789 \"'\nabc{}:"
    for _ in range(2000):
        text = list(good)
        for _ in range(rng.randrange(1, 8)):
            pos = rng.randrange(len(text) + 1)
            if rng.random() < 0.5 and text:
                del text[min(pos, len(text) - 1)]
            else:
                text.insert(pos, rng.choice(alphabet))
        try:
            parsed = parse_target("".join(text), CONFIG)
        except OutputParseError:
            continue
        assert all(0.0 <= parsed.coefficients[n] <= 1.0 for n in BLENDSHAPES if n not in parsed.coefficients.missing)


def test_describe_cli_prints_a_compact_target(tmp_path, capsys) -> None:
    from semanticface.cli import main
    from semanticface.llf import write_llf

    smile = FaceCoefficients.neutral().replace(mouthSmileLeft=0.8, mouthSmileRight=0.8)
    path = write_llf(tmp_path / "take.csv", [FaceCoefficients.neutral(), smile])
    assert main(["describe", str(path), "--frame", "1", "--block-style", "compact"]) == 0
    target = capsys.readouterr().out.split("## Training target\n", 1)[1]
    assert target.startswith("Expression: happiness") and "\nCoefficients:\n[" in target
    parsed = parse_target(target, TargetConfig(block_style="compact"))
    assert parsed.issues == [] and parsed.coefficients["mouthSmileRight"] == pytest.approx(0.8)
