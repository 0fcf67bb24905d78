"""Template-forced decoding: the model writes only the values and the description text of the output contract.

The target skeleton (:func:`semanticface.contract.target_skeleton`) fixes every key name, separator and section
header. Those literals are tokenized once and appended to all rows in one forward pass each (together with the
last token of the slot before), using the KV cache; the model samples only

- number slots, masked to the tokens that keep the value a valid fixed-decimal string in its range
  (:mod:`semanticface.decoding.numbers`), characters with a single continuation appended unsampled;
- free-text slots, any ordinary token until one contains the first character of the next literal or the length
  bound is hit (:mod:`semanticface.decoding.slots`).

Batching: rows move through the skeleton in lockstep, slot by slot. Inside a slot each row samples one token per
step while it is unfinished; finished rows wait (they feed nothing, a masked hole per step) until every row has
finished that slot, so a batch pays for its slowest row in each slot. Literal tokens are identical for all rows.
The output text is the skeleton filled with the generated pieces, so it always parses.

Tokenization: a literal is tokenized on its own, not together with the text before it, so the model may see a
different split at a boundary than the tokenizer would give for the whole string (BPE merges across it). The
contract's literals start with a newline, comma or quote and end with ``": "``/``: ``, boundaries where tokenizers
rarely merge, and validity never depends on it: the returned text is built from strings, not decoded ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from semanticface.contract import FreeText, LiteralPiece, NumberPiece, Segment
from semanticface.decoding.cached import CachedBatch
from semanticface.decoding.numbers import NumberGrammar
from semanticface.decoding.slots import FreeTextSlot, NumberSlot, healing_tokens
from semanticface.decoding.vocab import TokenTable, token_table
from semanticface.errors import ConfigError

NUMBER_ESTIMATES = ("mode", "median")


def number_quantile(number_estimate: str, *, do_sample: bool) -> float | None:
    """The quantile a number slot decodes for ``number_estimate`` (None: argmax or sampling); refuses bad values."""
    if number_estimate not in NUMBER_ESTIMATES:
        raise ConfigError(f"number_estimate must be one of {', '.join(NUMBER_ESTIMATES)}; got {number_estimate!r}")
    if number_estimate == "median" and do_sample:
        raise ConfigError("number_estimate='median' is a point estimate: it cannot be combined with do_sample")
    return 0.5 if number_estimate == "median" else None


@dataclass
class RowStats:
    """What one output cost: tokens the model sampled and tokens the decoder appended without sampling."""

    sampled_tokens: int = 0
    forced_tokens: int = 0
    truncated_fields: list[str] = field(default_factory=list)


@dataclass
class ForcedDecodeResult:
    """Texts (one per input row, times ``num_return_sequences``) and what producing them cost."""

    texts: list[str]
    num_tokens: list[int]  # sampled tokens per row (comparable to generate's new tokens)
    forward_passes: int  # model forward calls for the whole batch, prefill included
    forward_passes_coefficients: int  # of which while writing the coefficient block
    forward_passes_text: int  # of which while writing description fields
    seconds: float
    rows: list[RowStats]


class SlotMaskLogitsProcessor(LogitsProcessor):
    """Keeps, per row, only the allowed token ids (or removes the banned ones); rows without a rule pass."""

    def __init__(self) -> None:
        self.allowed: dict[int, torch.Tensor] = {}
        self.banned: dict[int, torch.Tensor] = {}

    def __call__(self, input_ids: torch.LongTensor | None, scores: torch.FloatTensor) -> torch.FloatTensor:
        # Rows sharing a rule (the same tensor: same trie node, same banned set) are masked in one indexing op.
        blocked = torch.zeros_like(scores, dtype=torch.bool)
        for rule, rows in _group(self.allowed).items():
            keep = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            keep[rule] = True
            blocked[rows] = ~keep
        for rule, rows in _group(self.banned).items():
            blocked[torch.tensor(rows, device=scores.device)[:, None], rule[None, :]] = True
        return cast(torch.FloatTensor, scores.masked_fill(blocked, float("-inf")))


def _group(rules: dict[int, torch.Tensor]) -> dict[torch.Tensor, list[int]]:
    groups: dict[int, tuple[torch.Tensor, list[int]]] = {}
    for row, rule in rules.items():
        groups.setdefault(id(rule), (rule, []))[1].append(row)
    return {rule: rows for rule, rows in groups.values()}


class _IndexCache:
    """Token-id lists as tensors, built once per list (grammar nodes and banned sets are shared by all rows)."""

    def __init__(self, vocab: int, device: torch.device) -> None:
        self.vocab = vocab
        self.device = device
        self._cache: dict[int, tuple[Any, torch.Tensor]] = {}
        self._unions: dict[tuple[int, int], tuple[Any, Any, torch.Tensor]] = {}

    def __call__(self, ids: Any) -> torch.Tensor:
        hit = self._cache.get(id(ids))
        if hit is None or hit[0] is not ids:
            tensor = torch.tensor(sorted(i for i in ids if i < self.vocab), dtype=torch.long, device=self.device)
            hit = (ids, tensor)
            self._cache[id(ids)] = hit
        return hit[1]

    def union(self, first: frozenset[int], second: frozenset[int]) -> torch.Tensor:
        key = (id(first), id(second))
        if key not in self._unions:
            self._unions[key] = (first, second, self(first | second))
        return self._unions[key][2]


def _beyond_tokenizer(vocab: int, table: TokenTable) -> frozenset[int]:
    # The model's output layer may be wider than the tokenizer (padded embeddings): never sample those ids.
    return frozenset(range(table.size, vocab))


def forced_generate(
    model: Any,
    processor_or_tokenizer: Any,
    model_inputs: Any,
    skeleton: list[Segment],
    *,
    max_text_tokens: int | None = None,
    max_new_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float | None = 1.0,
    top_p: float | None = 1.0,
    top_k: int | None = None,
    num_return_sequences: int = 1,
    pad_token_id: int | None = None,
    generator: torch.Generator | None = None,
    number_estimate: str = "mode",
) -> ForcedDecodeResult:
    """Decode a batch with the skeleton's literals forced and its slots constrained (see the module docstring).

    Args:
        model: any ``AutoModelForImageTextToText``/``AutoModelForCausalLM`` (or a peft wrapper of one).
        processor_or_tokenizer: the processor (its ``tokenizer`` is used) or a tokenizer.
        model_inputs: the processor's output for the prompts (``input_ids``, ``attention_mask``, pixel inputs),
            left- or right-padded.
        skeleton: :func:`semanticface.contract.target_skeleton` of the target config the model was trained on.
        max_text_tokens: bound on sampled tokens per description field; by default only the field's
            ``max_chars`` (the longest text ``describe`` writes) and ``max_new_tokens`` bound it.
        max_new_tokens: optional bound on all description tokens of one output together; numbers always finish,
            so the text stays valid (accepted so callers can pass their ``generate`` settings unchanged).
        do_sample, temperature, top_p, top_k: as in ``generate``; greedy by default. Sampling uses
            ``generator`` when given, else torch's global RNG (seed it for reproducible candidates).
        num_return_sequences: outputs per input row (for sampling candidates), ordered like ``generate``'s.
        pad_token_id: id fed in masked positions; defaults to the tokenizer's pad or eos token.
        number_estimate: how a number slot's value is chosen without sampling: ``"mode"`` (token by token
            argmax, like greedy ``generate``) or ``"median"``, the median of the model's distribution over the
            slot's values (:meth:`NumberGrammar.quantile_step`). The median minimises the expected absolute error;
            the mode of a skewed distribution (most faces have a channel at 0.00) sits at its peak.

    Returns:
        :class:`ForcedDecodeResult` whose ``texts`` always follow the skeleton exactly.
    """
    tokenizer = getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)
    table = token_table(tokenizer)
    if pad_token_id is None:
        pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_token_id is None:
        raise ConfigError("forced decoding needs a pad or eos token id for masked positions")
    if num_return_sequences < 1:
        raise ConfigError(f"num_return_sequences must be >= 1, got {num_return_sequences}")
    quantile = number_quantile(number_estimate, do_sample=do_sample)
    inputs = _repeat_rows(dict(model_inputs), num_return_sequences)
    processors = LogitsProcessorList()
    masks = SlotMaskLogitsProcessor()
    processors.append(masks)
    if do_sample:
        if temperature is not None and temperature != 1.0:
            processors.append(TemperatureLogitsWarper(temperature))
        if top_k:
            processors.append(TopKLogitsWarper(top_k))
        if top_p is not None and top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p))

    start = time.perf_counter()
    with torch.inference_mode():
        batch = CachedBatch(model, inputs, pad_token_id)
        rows = batch.batch_size
        vocab = batch.last_logits.shape[-1]
        index = _IndexCache(vocab, batch.device)
        beyond = _beyond_tokenizer(vocab, table)
        pending: list[list[int]] = [[] for _ in range(rows)]
        pieces: list[list[str]] = [[] for _ in range(rows)]
        stats = [RowStats() for _ in range(rows)]
        text_budget = [max_new_tokens if max_new_tokens is not None else float("inf")] * rows
        coefficient_passes = text_passes = 0
        heal = ""
        for position, segment in enumerate(skeleton):
            if isinstance(segment, LiteralPiece):
                ids = literal_token_ids(tokenizer, segment.text)
                following = skeleton[position + 1] if position + 1 < len(skeleton) else None
                ids, heal = heal_literal(ids, segment.text, table, following)
                for row in range(rows):
                    pending[row].extend(ids)
                    pieces[row].append(segment.text)
                    stats[row].forced_tokens += len(ids)
                continue
            before = batch.forward_passes
            if isinstance(segment, NumberPiece):
                grammar = number_grammar(table, segment)
                slots: list[Any] = [NumberSlot(grammar, quantile) for _ in range(rows)]
            elif isinstance(segment, FreeText):
                # max_chars tokens: a bound as loose as the field itself (a token rarely spells less than a character).
                field_tokens = segment.max_chars if max_text_tokens is None else max_text_tokens
                slots = [
                    FreeTextSlot(tokenizer, table, segment.stop, segment.max_chars, int(min(field_tokens, b)), heal)
                    for b in text_budget
                ]
                heal = ""
            else:
                raise ConfigError(f"unknown skeleton segment {segment!r}")
            for row, slot in enumerate(slots):
                pending[row].extend(slot.start_tokens)
                stats[row].forced_tokens += len(slot.start_tokens)
            _run_slot(batch, slots, pending, processors, masks, index, beyond, do_sample, generator)
            for row, slot in enumerate(slots):
                pieces[row].append(slot.text)
                stats[row].sampled_tokens += slot.sampled
                if isinstance(segment, FreeText):
                    text_budget[row] -= slot.sampled
                    if slot.sampled >= field_tokens or len(slot.text) >= segment.max_chars:
                        stats[row].truncated_fields.append(segment.name)
            if isinstance(segment, NumberPiece):
                coefficient_passes += batch.forward_passes - before
            else:
                text_passes += batch.forward_passes - before
    return ForcedDecodeResult(
        texts=["".join(p) for p in pieces],
        num_tokens=[s.sampled_tokens for s in stats],
        forward_passes=batch.forward_passes,
        forward_passes_coefficients=coefficient_passes,
        forward_passes_text=text_passes,
        seconds=time.perf_counter() - start,
        rows=stats,
    )


def _run_slot(
    batch: CachedBatch,
    slots: list[Any],
    pending: list[list[int]],
    processors: LogitsProcessorList,
    masks: SlotMaskLogitsProcessor,
    index: _IndexCache,
    beyond: frozenset[int],
    do_sample: bool,
    generator: torch.Generator | None,
) -> None:
    """Step all rows through one slot. Invariant: a row with nothing pending has fresh ``batch.last_logits``."""
    first = [True] * len(slots)
    while True:
        active = [row for row, slot in enumerate(slots) if not slot.done]
        if not active:
            return
        if any(pending[row] for row in active):
            # Rows that wait also flush what they have pending: the same pass, no extra cost.
            batch.extend(pending)
            for feed in pending:
                feed.clear()
        # The processors see the active rows only, so their per-row rules are keyed by position among them.
        masks.allowed, masks.banned = {}, {}
        for position, row in enumerate(active):
            allowed = slots[row].allowed()
            if allowed is not None:
                masks.allowed[position] = index(allowed)
            else:
                masks.banned[position] = index.union(slots[row].banned(first[row]), beyond)
            first[row] = False
        scores = batch.last_logits[torch.tensor(active, device=batch.device)]
        scores = processors(None, scores)  # type: ignore[arg-type]  # warpers and masks here read scores only
        if do_sample:
            probs = torch.softmax(scores, dim=-1)
            chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1).tolist()
        elif getattr(slots[active[0]], "quantile", None) is not None:  # median numbers: all rows of the slot
            probs = torch.softmax(scores, dim=-1)
            chosen = []
            for position, row in enumerate(active):
                ids = slots[row].allowed()
                chosen.append(slots[row].choose(dict(zip(ids, probs[position, ids].tolist()))))
        else:
            chosen = scores.argmax(-1).tolist()
        for row, token in zip(active, chosen):
            pending[row].extend(slots[row].advance(token))


_GRAMMARS: dict[tuple[int, float, float, int, bool, str], NumberGrammar] = {}


def number_grammar(table: TokenTable, slot: NumberPiece) -> NumberGrammar:
    # Kept across calls: each grammar caches the allowed tokens of every trie node it has visited.
    key = (id(table), slot.minimum, slot.maximum, slot.decimals, slot.integer, slot.end)
    if key not in _GRAMMARS or _GRAMMARS[key].table is not table:
        _GRAMMARS[key] = NumberGrammar(
            slot.minimum, slot.maximum, slot.decimals, table, integer=slot.integer, end=slot.end
        )
    return _GRAMMARS[key]


def literal_token_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def heal_literal(ids: list[int], text: str, table: TokenTable, following: Segment | None) -> tuple[list[int], str]:
    """Hold back a literal's trailing whitespace token when a description follows (see ``FreeTextSlot``)."""
    if not isinstance(following, FreeText) or not ids:
        return ids, ""
    last = table.strings[ids[-1]] if ids[-1] < table.size else ""
    if not last or last.strip() or not text.endswith(last):
        return ids, ""
    if not healing_tokens(table, last, following.stop[:1] or "\n"):
        return ids, ""
    return ids[:-1], last


def _repeat_rows(inputs: dict[str, Any], times: int) -> dict[str, Any]:
    """Repeat each prompt ``times`` times (row-major, like ``generate``'s ``num_return_sequences``)."""
    if times == 1:
        return inputs
    rows = inputs["input_ids"].shape[0]
    out = {}
    for key, value in inputs.items():
        if not isinstance(value, torch.Tensor):
            out[key] = value
        elif key == "pixel_values" and "image_grid_thw" in inputs:
            out[key] = _repeat_patches(value, inputs["image_grid_thw"], times)
        elif value.shape[0] == rows:
            out[key] = value.repeat_interleave(times, dim=0)
        else:
            out[key] = value
    return out


def _repeat_patches(value: torch.Tensor, grid: torch.Tensor, times: int) -> torch.Tensor:
    # Qwen-VL flattens every image's patches into one tensor; repeat each image's block of patches.
    sizes = grid.prod(-1).tolist()
    blocks = torch.split(value, sizes)
    return torch.cat([b for b in blocks for _ in range(times)])
