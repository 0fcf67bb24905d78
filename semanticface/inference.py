"""Load a trained SemanticFace model in one line and predict coefficients for face images.

``SemanticFacePredictor.from_pretrained`` accepts a Hub repo id or a local directory holding either a LoRA
adapter (``adapter_config.json``: the base model is resolved from it and the adapter applied with peft) or a
merged/full model. The target format the model was trained to emit is read from the checkpoint config
(:mod:`semanticface.checkpoint`) training writes beside the weights, so outputs are parsed the way they were
rendered.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semanticface.checkpoint import ADAPTER_CONFIG, CheckpointConfig, is_adapter
from semanticface.coefficients import FaceCoefficients
from semanticface.errors import ConfigError, OutputParseError

if TYPE_CHECKING:
    from semanticface.contract import TargetConfig

DECODING_MODES = ("generate", "forced")


@dataclass
class Prediction:
    """One model output: the parsed coefficients (None when no coefficient block could be recovered), the
    description text before the coefficient block, the raw generated text, parse issues, and its cost."""

    coefficients: FaceCoefficients | None
    description: str
    raw_text: str
    issues: list[str] = field(default_factory=list)
    num_tokens: int = 0
    seconds: float = 0.0

    @property
    def parse_ok(self) -> bool:
        return self.coefficients is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: coefficients as ``{ARKit name: value}`` (missing channels left out) or null."""
        return {
            "coefficients": None if self.coefficients is None else self.coefficients.to_dict(),
            "description": self.description,
            "raw_text": self.raw_text,
            "issues": list(self.issues),
            "parse_ok": self.parse_ok,
            "num_tokens": self.num_tokens,
            "seconds": self.seconds,
        }


@dataclass
class GenerationOptions:
    """How outputs are decoded. Greedy by default; sampling is for drawing preference candidates."""

    max_new_tokens: int = field(default=1024, metadata={"help": "Upper bound on generated tokens per output."})
    do_sample: bool = field(default=False, metadata={"help": "Sample instead of greedy decoding."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (only with do_sample)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (only with do_sample)."})
    seed: int | None = field(default=None, metadata={"help": "Seed for sampling, for reproducible candidates."})
    num_return_sequences: int = field(default=1, metadata={"help": "Outputs per image (candidates for ranking)."})
    number_estimate: str = field(
        default="mode",
        metadata={
            "help": "How coefficient values are read from the model with decoding='forced': 'mode' (greedy tokens) "
            "or 'median' (the median of the model's distribution over each value: least expected absolute error)."
        },
    )

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.num_return_sequences < 1:
            raise ConfigError(f"num_return_sequences must be >= 1, got {self.num_return_sequences}")
        if self.num_return_sequences > 1 and not self.do_sample:
            raise ConfigError("num_return_sequences > 1 needs do_sample=True (greedy outputs would be identical)")
        from semanticface.decoding.forced import number_quantile

        number_quantile(self.number_estimate, do_sample=self.do_sample)  # refuses what forced decoding would
        if self.do_sample and (self.temperature <= 0 or not 0 < self.top_p <= 1):
            raise ConfigError(f"need temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")


def load_image(image: Any) -> Any:
    """A PIL RGB image from a PIL image or a file path (upright, 8-bit, pixel-capped: :mod:`semanticface.images`)."""
    from PIL import Image

    from semanticface.images import MAX_PIXELS, cap_pixels, read_image, to_rgb

    if isinstance(image, Image.Image):
        return cap_pixels(to_rgb(image), MAX_PIXELS)
    return read_image(image)


class SemanticFacePredictor:
    """A loaded model + processor that turns face images into :class:`Prediction` objects."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        target_config: TargetConfig | None = None,
        decoding: str = "generate",
        checkpoint: CheckpointConfig | None = None,
    ) -> None:
        if decoding not in DECODING_MODES:
            raise ConfigError(f"decoding must be one of {', '.join(DECODING_MODES)}; got {decoding!r}")
        self.model = model.eval()
        self.processor = processor
        self.checkpoint = checkpoint or CheckpointConfig()
        self.target_config = target_config if target_config is not None else self.checkpoint.target_config()
        self.decoding = decoding
        self.prompt_messages = _prompt_messages(self.target_config)

    # --- loading ----------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        id_or_path: str | Path,
        *,
        dtype: Any = "auto",
        device: str | None = None,
        decoding: str = "generate",
        target_config: TargetConfig | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        quantization: str | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
    ) -> SemanticFacePredictor:
        """Load from a Hub repo id or local directory holding a LoRA adapter or a full model.

        ``device`` is e.g. ``"cpu"``, ``"cuda"`` or ``"auto"`` (accelerate's placement); None picks CUDA when
        available, else the CPU. ``target_config`` overrides the saved target format. Prompt templates that come
        with the model (a ``template_dir`` in its checkpoint config) need ``trust_remote_code=True``.
        """
        from semanticface.modeling import load_model_and_processor

        source = str(id_or_path)
        checkpoint = CheckpointConfig.load(source, revision=revision) or CheckpointConfig()
        if target_config is None:  # before any weights load: a model's own templates need trust_remote_code
            target_config = checkpoint.target_config(trust_remote_code=trust_remote_code, source=source)
        # Image resolution bounds used in training apply at inference too (the image token count must match).
        model, processor = load_model_and_processor(
            source,
            dtype=dtype,
            device_map="auto" if device == "auto" else None,
            quantization=quantization,
            trust_remote_code=trust_remote_code,
            min_pixels=min_pixels if min_pixels is not None else checkpoint.min_pixels,
            max_pixels=max_pixels if max_pixels is not None else checkpoint.max_pixels,
            revision=revision,
        )
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device != "auto" and quantization is None:  # bitsandbytes places quantized weights itself
            model = model.to(device)
        return cls(model, processor, target_config=target_config, decoding=decoding, checkpoint=checkpoint)

    # --- prediction -------------------------------------------------------------------------------------------

    def predict(
        self,
        images: Sequence[Any],
        *,
        batch_size: int = 8,
        options: GenerationOptions | None = None,
        progress: bool = False,
        **option_overrides: Any,
    ) -> list[Prediction]:
        """Predict every image (PIL images or paths), ``batch_size`` at a time.

        Returns one :class:`Prediction` per image, or ``num_return_sequences`` consecutive ones per image when
        sampling candidates. Outputs that cannot be parsed give ``coefficients=None`` and their issues; they never
        raise. Keyword overrides (``temperature=0.8, do_sample=True, seed=0``...) build :class:`GenerationOptions`.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        opts = options or GenerationOptions(**option_overrides)
        if options is not None and option_overrides:
            opts = GenerationOptions(**{**asdict(options), **option_overrides})
        results: list[Prediction] = []
        batches = list(_chunks(list(images), batch_size))
        bar = _progress(len(images), progress)
        for batch in batches:
            results.extend(self._predict_batch([load_image(image) for image in batch], opts))
            bar.update(len(batch))
        bar.close()
        return results

    def sample_candidates(
        self,
        images: Sequence[Any],
        num_candidates: int,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        batch_size: int = 8,
        max_new_tokens: int = 1024,
    ) -> list[list[Prediction]]:
        """``num_candidates`` sampled predictions per image (for preference ranking), grouped by image."""
        flat = self.predict(
            images,
            batch_size=batch_size,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            num_return_sequences=num_candidates,
            max_new_tokens=max_new_tokens,
        )
        return [flat[i : i + num_candidates] for i in range(0, len(flat), num_candidates)]

    def _inputs(self, images: list[Any]) -> Any:
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        tokenizer.padding_side = "left"  # generation continues from the last position of every row
        text = self.processor.apply_chat_template(self.prompt_messages, add_generation_prompt=True, tokenize=False)
        inputs = self.processor(
            text=[text] * len(images), images=[[image] for image in images], padding=True, return_tensors="pt"
        )
        return inputs.to(self.model.device)

    def _predict_batch(self, images: list[Any], opts: GenerationOptions) -> list[Prediction]:
        import torch

        start = time.perf_counter()
        inputs = self._inputs(images)
        if opts.seed is not None:
            torch.manual_seed(opts.seed)
        if self.decoding == "forced":
            texts, token_counts = self._forced(inputs, opts)
        elif opts.number_estimate != "mode":
            raise ConfigError("number_estimate='median' needs decoding='forced' (it walks the number grammar)")
        else:
            texts, token_counts = self._generate(inputs, opts)
        seconds = (time.perf_counter() - start) / len(texts)
        return [self._parse(text, count, seconds) for text, count in zip(texts, token_counts)]

    def _generation_kwargs(self, opts: GenerationOptions) -> dict[str, Any]:
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        kwargs: dict[str, Any] = {
            "max_new_tokens": opts.max_new_tokens,
            "do_sample": opts.do_sample,
            "num_return_sequences": opts.num_return_sequences,
            "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        }
        if opts.do_sample:
            kwargs.update(temperature=opts.temperature, top_p=opts.top_p, top_k=0)
        else:
            # Override sampling defaults a checkpoint's generation_config may carry, so greedy means greedy.
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def _generate(self, inputs: Any, opts: GenerationOptions) -> tuple[list[str], list[int]]:
        import torch

        with torch.inference_mode():
            output = self.model.generate(**inputs, **self._generation_kwargs(opts))
        generated = output[:, inputs["input_ids"].shape[1] :]
        return self._decode(generated)

    def _decode(self, generated: Any) -> tuple[list[str], list[int]]:
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        stop_ids = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
        stop_ids |= set(_as_list(getattr(self.model.generation_config, "eos_token_id", None)))
        texts, counts = [], []
        for row in generated.tolist():
            # Tokens up to and including the first stop token: padding after it was not generated.
            count = next((i + 1 for i, token in enumerate(row) if token in stop_ids), len(row))
            counts.append(count)
            texts.append(tokenizer.decode(row[:count], skip_special_tokens=True).strip())
        return texts, counts

    def _forced(self, inputs: Any, opts: GenerationOptions) -> tuple[list[str], list[int]]:
        try:
            from semanticface.decoding import forced_generate
        except ImportError as error:
            raise ConfigError(f"decoding='forced' needs semanticface.decoding.forced_generate: {error}") from error
        from semanticface.contract import target_skeleton

        result = forced_generate(
            self.model,
            self.processor,
            inputs,
            target_skeleton(self.target_config),
            number_estimate=opts.number_estimate,
            **self._generation_kwargs(opts),
        )
        return list(result.texts), list(result.num_tokens)

    def _parse(self, text: str, num_tokens: int, seconds: float) -> Prediction:
        from semanticface.contract import parse_target

        try:
            parsed = parse_target(text, self.target_config)
        except OutputParseError as error:
            return Prediction(None, _description_part(text), text, [str(error), *error.issues], num_tokens, seconds)
        return Prediction(parsed.coefficients, parsed.description, text, list(parsed.issues), num_tokens, seconds)


def merge_adapter(adapter_path: str | Path, out_dir: str | Path, *, dtype: Any = "auto") -> Path:
    """Merge a LoRA adapter into its base model and save a standalone checkpoint (safetensors + processor + config).

    The result loads with ``SemanticFacePredictor.from_pretrained(out_dir)`` (and plain transformers).
    """
    source = str(adapter_path)
    if not is_adapter(source):
        raise ConfigError(f"{source}: no {ADAPTER_CONFIG}, so there is no adapter to merge")
    from semanticface.contract import TargetConfig

    # Merging renders no prompt: the default target config stands in, so a model's own templates are not needed
    # here (the saved config is copied as it is, and loading the merged model asks for trust again).
    predictor = SemanticFacePredictor.from_pretrained(source, dtype=dtype, target_config=TargetConfig())
    merged = predictor.model.merge_and_unload()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    predictor.processor.save_pretrained(out)
    saved = CheckpointConfig.load(source)
    if saved is not None:
        saved.save(out)
    return out


def _prompt_messages(target_config: TargetConfig) -> list[dict[str, Any]]:
    # The single source of the training prompt: inference and training prompts cannot drift apart.
    from semanticface.contract import build_prompt_messages

    return build_prompt_messages(target_config)


def _description_part(text: str) -> str:
    marker = text.find("Coefficients:")
    return (text[:marker] if marker >= 0 else text).strip()


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="img", desc="predict")
