"""Template-forced decoding: always-valid outputs, exact cached positions, any tokenizer, fewer forward passes."""

from __future__ import annotations

import json
import random
import re
from decimal import Decimal

import pytest
import torch
from PIL import Image

from semanticface.coefficients import FaceCoefficients
from semanticface.contract import NumberPiece, TargetConfig, parse_output, render_target, target_skeleton
from semanticface.decoding import NumberGrammar, forced_generate, number_strings, token_table
from semanticface.decoding.cached import CachedBatch
from semanticface.schema import POSE_CHANNELS

PROMPT = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the face."}]}]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models decode step by step: on a shared 2-core machine, two intra-op threads spin against other
    # processes and run ~9x slower than one (measured 18.7 s vs 2.1 s for the same decode).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images(n: int) -> list[Image.Image]:
    # Different sizes give different image-token counts, hence left padding inside the batch.
    return [Image.new("RGB", (56 + 28 * (i % 3), 56 + 14 * (i % 2)), (40 * i % 255, 120, 200)) for i in range(n)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from semanticface.modeling import load_model_and_processor

    model, processor = load_model_and_processor(tiny_model_dir)
    return model.eval(), processor


def _inputs(processor, images, padding_side="left"):
    processor.tokenizer.padding_side = padding_side
    text = processor.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    return processor(text=[text] * len(images), images=[[im] for im in images], padding=True, return_tensors="pt")


def _numbers(text: str, skeleton) -> list[tuple[NumberPiece, str]]:
    """Read every number slot's text back by matching the filled skeleton as one regular expression."""
    from semanticface.contract import FreeText, LiteralPiece

    parts, numbers = [], []
    for segment in skeleton:
        if isinstance(segment, LiteralPiece):
            parts.append(re.escape(segment.text))
        elif isinstance(segment, FreeText):
            parts.append(r"[^\n{}]*")
        else:
            parts.append(f"({segment.pattern})")
            numbers.append(segment)
    match = re.fullmatch("".join(parts), text)
    assert match, f"output does not follow the skeleton: {text[:200]!r}"
    return list(zip(numbers, match.groups()))


# --- number grammar --------------------------------------------------------------------------------------------


def test_number_strings_are_the_contract_renderings():
    assert number_strings(0.0, 1.0, 2)[:3] == ["0.00", "0.01", "0.02"]
    assert number_strings(0.0, 1.0, 2)[-1] == "1.00" and len(number_strings(0.0, 1.0, 2)) == 101
    pose = number_strings(-1.0, 1.0, 1)
    assert pose[0] == "-1.0" and pose[-1] == "1.0" and "-0.0" not in pose and len(pose) == 21
    assert number_strings(0.0, 1.0, 0) == ["0", "1"]


@pytest.mark.parametrize(("low", "high", "decimals"), [(0.0, 1.0, 2), (-1.0, 1.0, 2), (-1.0, 1.0, 3), (0.0, 1.0, 1)])
def test_random_walks_through_the_grammar_give_only_valid_numbers(tiny, low, high, decimals):
    table = token_table(tiny[1].tokenizer)
    grammar = NumberGrammar(low, high, decimals, table)
    valid = set(number_strings(low, high, decimals))
    rng = random.Random(0)
    seen = set()
    for _ in range(300):
        forced, node = grammar.forced(grammar.root)
        text = "".join(table.number_tokens[t] for t in forced)
        while not node.is_leaf:
            ids, ends = grammar.allowed(node)
            i = rng.randrange(len(ids))
            text += table.number_tokens[ids[i]]
            forced, node = grammar.forced(ends[i])
            text += "".join(table.number_tokens[t] for t in forced)
        assert text in valid
        assert low <= float(text) <= high and -Decimal(text).as_tuple().exponent == decimals
        seen.add(text)
    assert len(seen) > 10  # the walk really branches


# --- cached chunks == one full forward -------------------------------------------------------------------------


def _full_logits(model, processor, image, appended: list[int]) -> torch.Tensor:
    single = _inputs(processor, [image])
    extra = torch.tensor([appended], dtype=torch.long)
    ids = torch.cat([single["input_ids"], extra], dim=1)
    full = {**single, "input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "mm_token_type_ids" in single:  # appended text is text
        full["mm_token_type_ids"] = torch.cat([single["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
    with torch.inference_mode():
        return model(**full).logits[0, -1].float()


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("model_fixture", ["tiny_model_dir", "tiny_qwen3_dir"])
def test_incremental_chunks_with_holes_match_a_full_forward(request, model_fixture, padding_side):
    """Prefill a padded batch, append chunks of different lengths per row (holes in between), and compare
    every row's next-token logits with one uncached forward of that row's whole sequence (mRoPE positions)."""
    from semanticface.modeling import load_model_and_processor

    model, processor = load_model_and_processor(request.getfixturevalue(model_fixture))
    model.eval()
    images = _images(2)
    inputs = _inputs(processor, images, padding_side)
    assert not inputs["attention_mask"].all()  # the batch really is padded
    literal = processor.tokenizer.encode('\n- Eyes: ", "eyeBlinkLeft": ', add_special_tokens=False)
    feeds = [[literal, literal[:2]], [[], literal[2:5]], [[7], [8, 9, 10]], [literal, []]]
    with torch.inference_mode():
        batch = CachedBatch(model, inputs, processor.tokenizer.pad_token_id)
        appended: list[list[int]] = [[], []]
        for row in range(2):
            torch.testing.assert_close(batch.last_logits[row], _full_logits(model, processor, images[row], []))
        for step in feeds:
            batch.extend(step)
            for row in range(2):
                appended[row] += step[row]
                expected = _full_logits(model, processor, images[row], appended[row])
                torch.testing.assert_close(batch.last_logits[row], expected, atol=1e-4, rtol=1e-4)
    assert batch.forward_passes == 1 + len(feeds)


# --- always-valid outputs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [TargetConfig(), TargetConfig(target_format="coefficients", include_pose=True), TargetConfig(decimals=3)],
    ids=["semantic", "coefficients+pose", "semantic-3dp"],
)
def test_untrained_model_outputs_always_parse_with_no_issue(tiny, config):
    model, processor = tiny
    skeleton = target_skeleton(config)
    result = forced_generate(model, processor, _inputs(processor, _images(3)), skeleton, max_text_tokens=12)
    assert len(result.texts) == 3
    for text in result.texts:
        parsed = parse_output(text)
        assert parsed.issues == []
        assert parsed.coefficients.missing == (frozenset() if config.include_pose else frozenset(POSE_CHANNELS))
        for number, value in _numbers(text, skeleton):
            assert number.minimum <= float(value) <= number.maximum
            assert len(value.split(".")[1]) == config.decimals
            assert parsed.coefficients[number.channel] == pytest.approx(float(value))
        if config.target_format == "semantic":
            assert parsed.description.startswith("Expression: ") and "- Tongue: " in parsed.description
            # Description fields are single printable lines with no braces, however wild the model.
            assert all(line.isprintable() and not set(line) & set("{}") for line in parsed.description.splitlines())
        else:
            assert text.startswith("Coefficients:\n{")


def test_reported_forward_passes_are_the_model_calls(tiny):
    model, processor = tiny
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        result = forced_generate(
            model, processor, _inputs(processor, _images(2)), target_skeleton(), max_text_tokens=4
        )
    finally:
        handle.remove()
    assert result.forward_passes == len(calls)
    assert result.forward_passes == 1 + result.forward_passes_coefficients + result.forward_passes_text


def test_sampling_is_seeded_and_gives_several_candidates(tiny):
    model, processor = tiny
    inputs = _inputs(processor, _images(2))
    skeleton = target_skeleton(TargetConfig(target_format="coefficients"))
    kwargs = dict(do_sample=True, temperature=1.5, top_p=0.95, num_return_sequences=3)
    first = forced_generate(model, processor, inputs, skeleton, generator=torch.Generator().manual_seed(1), **kwargs)
    again = forced_generate(model, processor, inputs, skeleton, generator=torch.Generator().manual_seed(1), **kwargs)
    assert first.texts == again.texts and len(first.texts) == 6
    assert len(set(first.texts[:3])) > 1  # candidates of one image differ
    assert all(parse_output(t).issues == [] for t in first.texts)


# --- fewer forward passes than plain generation ----------------------------------------------------------------


def test_coefficient_block_needs_at_least_3x_fewer_forward_passes(tiny):
    """Plain generation needs one pass per token of the block; forced decoding one per number (or fewer)."""
    model, processor = tiny
    config = TargetConfig()
    target = render_target(FaceCoefficients.from_array([random.Random(i).random() for i in range(61)]), config)
    block = target[target.index("Coefficients:") :]
    plain_passes = len(processor.tokenizer.encode(block, add_special_tokens=False))
    result = forced_generate(
        model, processor, _inputs(processor, _images(2)), target_skeleton(config), max_text_tokens=4
    )
    assert result.forward_passes_coefficients * 3 <= plain_passes, (plain_passes, result.forward_passes_coefficients)


# --- any tokenizer: single-digit and multi-digit number tokens -------------------------------------------------


def _text_model_and_tokenizer(split_digits: bool):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    rng = random.Random(0)
    corpus = [
        render_target(FaceCoefficients.from_array([rng.random() for _ in range(52)] + [0.0] * 9), TargetConfig())
        for _ in range(20)
    ]
    corpus += [" ".join(f"{rng.random():.2f}" for _ in range(200)) for _ in range(20)]
    tokenizer = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    digits = pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated")
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([digits, byte_level]) if split_digits else byte_level
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=4096, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    return Qwen2ForCausalLM(config).eval(), fast


@pytest.mark.parametrize("split_digits", [True, False], ids=["single-digit-tokens", "multi-digit-tokens"])
def test_any_tokenizer_spells_valid_numbers(split_digits):
    model, tokenizer = _text_model_and_tokenizer(split_digits)
    numeric = token_table(tokenizer).number_tokens.values()
    longest_digit_run = max(len(re.sub(r"[^0-9]", "", s)) for s in numeric)
    assert (longest_digit_run == 1) if split_digits else (longest_digit_run >= 2)
    tokenizer.padding_side = "left"
    inputs = tokenizer(["Describe:", "Describe this face, please:"], padding=True, return_tensors="pt")
    skeleton = target_skeleton(TargetConfig(include_pose=True))
    result = forced_generate(model, tokenizer, inputs, skeleton, max_text_tokens=8)
    for text in result.texts:
        assert parse_output(text).issues == []
        for number, value in _numbers(text, skeleton):
            assert number.minimum <= float(value) <= number.maximum and len(value.split(".")[1]) == 2
    # Single-digit tokenizers pay one pass per sampled digit; forced characters ('.', '.00') cost none.
    passes_per_number = result.forward_passes_coefficients / sum(isinstance(s, NumberPiece) for s in skeleton)
    assert passes_per_number <= (3 if split_digits else 2)


def test_result_reports_json_serialisable_stats(tiny):
    model, processor = tiny
    result = forced_generate(model, processor, _inputs(processor, _images(1)), target_skeleton(), max_text_tokens=3)
    stats = {"num_tokens": result.num_tokens, "passes": result.forward_passes, "rows": [vars(r) for r in result.rows]}
    assert json.loads(json.dumps(stats))["rows"][0]["sampled_tokens"] == result.num_tokens[0]
    # Every description field hit the 3-token bound on an untrained model and is reported as truncated.
    assert len(result.rows[0].truncated_fields) >= 1


# --- the predictor's decoding option ---------------------------------------------------------------------------


def test_predictor_forced_decoding_gives_parsed_predictions(tiny_model_dir):
    from semanticface.inference import SemanticFacePredictor

    predictor = SemanticFacePredictor.from_pretrained(tiny_model_dir, decoding="forced")
    predictions = predictor.predict(_images(3), batch_size=2, max_new_tokens=27)
    assert [p.parse_ok for p in predictions] == [True, True, True]
    assert all(p.coefficients is not None and p.issues == [] for p in predictions)
    # max_new_tokens bounds the description tokens (3 per field here); the 52 values are always written.
    assert all(52 < p.num_tokens <= 52 + 27 for p in predictions)
    candidates = predictor.predict(_images(1), do_sample=True, seed=3, num_return_sequences=2, max_new_tokens=18)
    assert len(candidates) == 2 and all(c.parse_ok for c in candidates)
    again = predictor.predict(_images(1), do_sample=True, seed=3, num_return_sequences=2, max_new_tokens=18)
    assert [c.raw_text for c in candidates] == [c.raw_text for c in again]


def test_whitespace_before_a_description_is_healed_into_its_first_word(tiny):
    """BPE merges the space after 'Expression:' into the next word; the decoder must not feed it alone."""
    from semanticface.contract import FreeText, LiteralPiece
    from semanticface.decoding.forced import heal_literal, literal_token_ids
    from semanticface.decoding.slots import FreeTextSlot

    tokenizer = tiny[1].tokenizer
    table = token_table(tokenizer)
    literal = LiteralPiece("Expression: ")
    ids = literal_token_ids(tokenizer, literal.text)
    fed, heal = heal_literal(ids, literal.text, table, FreeText("expression", 80, "\nMuscle movements:\n- Brows: "))
    assert heal == " " and fed == ids[:-1]
    assert tokenizer.decode(fed) + heal == literal.text
    # Before a number nothing is held back (numbers are never merged with a space by these tokenizers).
    assert heal_literal(ids, literal.text, table, NumberPiece("jawOpen", "jawOpen", 2, 0.0, 1.0)) == (ids, "")
    slot = FreeTextSlot(tokenizer, table, "\n", 80, 10, heal)
    first = slot.allowed()
    assert first and all(table.strings[i].startswith(" ") and table.strings[i].strip() for i in first)
    slot.advance(tokenizer.encode(" smiling", add_special_tokens=False)[0])
    assert slot.allowed() is None and slot.text.startswith("smil")


# --- median numbers: the point estimate with the least expected absolute error ---------------------------------


def _leaves(node, prefix: str = "") -> list[str]:
    if node.is_leaf:
        return [prefix]
    return [text for char, child in node.children.items() for text in _leaves(child, prefix + char)]


def _weighted_median(masses: dict[str, float]) -> float:
    total, below = sum(masses.values()), 0.0
    for text in sorted(masses, key=float):
        below += masses[text]
        if below >= total / 2:
            return float(text)
    raise AssertionError("unreachable")


def _walk_median(grammar: NumberGrammar, masses: dict[str, float], whole_numbers: bool) -> float:
    """Decode the median with the token probabilities a model whose value distribution is ``masses`` gives."""
    from semanticface.decoding.slots import NumberSlot

    table = grammar.table
    slot = NumberSlot(grammar, quantile=0.5)
    while not slot.done:
        ids, ends = grammar.allowed(slot.node)
        under = {}
        for token, end in zip(ids, ends):
            spelled = slot.text + table.number_tokens[token]
            forced, leaf = grammar.forced(end)
            spelled += "".join(table.number_tokens[t] for t in forced)
            if whole_numbers:  # the model spells every value as one token: partial tokens get no mass
                under[token] = masses[spelled] if end.is_leaf else 0.0
            else:  # one digit per token: a token carries the mass of every value it leads to
                under[token] = sum(masses[spelled + rest] for rest in _leaves(leaf))
        slot.advance(slot.choose(under))
    return float(slot.text)


@pytest.mark.parametrize(
    ("tokenizer_kind", "low", "high"),
    [("single-digit", 0.0, 1.0), ("single-digit", -1.0, 1.0), ("whole-number", 0.0, 1.0)],
)
def test_quantile_walk_finds_the_median_of_any_value_distribution(tiny, tokenizer_kind, low, high):
    # Qwen's tokenizers spell numbers digit by digit; the tiny test tokenizer has one token per 2-decimal value
    # (and partial ones such as "0." whose value ranges overlap those).
    tokenizer = _text_model_and_tokenizer(True)[1] if tokenizer_kind == "single-digit" else tiny[1].tokenizer
    grammar = NumberGrammar(low, high, 2, token_table(tokenizer))
    rng = random.Random(1)
    medians = set()
    for trial in range(20):
        # Skewed distributions (most mass near one value, as a channel at rest) and spread ones.
        peak = rng.uniform(low, high)
        masses = {
            text: rng.random() * (50.0 if trial % 2 and abs(float(text) - peak) < 0.05 else 1.0)
            for text in number_strings(low, high, 2)
        }
        median = _walk_median(grammar, masses, whole_numbers=tokenizer_kind == "whole-number")
        assert median == _weighted_median(masses), trial
        medians.add(median)
    assert len(medians) > 5


def test_median_numbers_are_the_median_of_the_model_distribution():
    """End to end on a random text model with single-digit tokens: the first coefficient that forced decoding
    writes with number_estimate='median' is the median of the model's own (masked) distribution over its 101
    values, computed here by scoring every value."""
    from semanticface.contract import LiteralPiece
    from semanticface.decoding.forced import literal_token_ids

    model, tokenizer = _text_model_and_tokenizer(split_digits=True)
    table = token_table(tokenizer)
    zero, one = (next(i for i, text in table.number_tokens.items() if text == digit) for digit in "01")
    with torch.no_grad():  # this random model favours a leading "1" (then only 1.00 is left): make it "0"
        model.lm_head.weight[[zero, one]] = model.lm_head.weight[[one, zero]].clone()
    skeleton = target_skeleton(TargetConfig(target_format="coefficients"))
    assert isinstance(skeleton[0], LiteralPiece) and isinstance(skeleton[1], NumberPiece)
    prompt = tokenizer.encode("Describe:", add_special_tokens=False) + literal_token_ids(tokenizer, skeleton[0].text)
    grammar = NumberGrammar(skeleton[1].minimum, skeleton[1].maximum, skeleton[1].decimals, table)

    def probability(text: str) -> float:
        from semanticface.decoding.slots import NumberSlot

        slot, ids, p = NumberSlot(grammar), list(prompt), 1.0
        ids += slot.start_tokens
        while not slot.done:
            with torch.inference_mode():
                logits = model(torch.tensor([ids])).logits[0, -1]
            allowed = slot.allowed()
            probs = torch.softmax(logits[allowed], -1)
            token = next(t for t in allowed if text[len(slot.text) :].startswith(table.number_tokens[t]))
            p *= float(probs[allowed.index(token)])
            ids += slot.advance(token)
        assert slot.text == text
        return p

    masses = {text: probability(text) for text in number_strings(0.0, 1.0, 2)}
    assert sum(masses.values()) == pytest.approx(1.0, abs=1e-4)
    inputs = tokenizer(["Describe:"], return_tensors="pt")
    median = forced_generate(model, tokenizer, inputs, skeleton, number_estimate="median").texts[0]
    mode = forced_generate(model, tokenizer, inputs, skeleton).texts[0]
    first = lambda text: float(_numbers(text, skeleton)[0][1])  # noqa: E731
    assert first(median) == _weighted_median(masses)
    assert 0.0 < first(median) < 1.0  # an interior value: the walk really went down the digits
    assert parse_output(median).issues == [] and parse_output(mode).issues == []


def test_median_numbers_refuse_sampling_and_plain_generate(tiny, tiny_model_dir):
    from semanticface.errors import ConfigError
    from semanticface.inference import GenerationOptions, SemanticFacePredictor

    model, processor = tiny
    with pytest.raises(ConfigError, match="do_sample"):
        forced_generate(
            model,
            processor,
            _inputs(processor, _images(1)),
            target_skeleton(),
            do_sample=True,
            number_estimate="median",
        )
    with pytest.raises(ConfigError, match="number_estimate"):
        forced_generate(model, processor, _inputs(processor, _images(1)), target_skeleton(), number_estimate="mean")
    with pytest.raises(ConfigError, match="decoding='forced'"):
        SemanticFacePredictor.from_pretrained(tiny_model_dir).predict(
            _images(1), options=GenerationOptions(number_estimate="median")
        )
    with pytest.raises(ConfigError, match="do_sample"):
        GenerationOptions(do_sample=True, number_estimate="median")
