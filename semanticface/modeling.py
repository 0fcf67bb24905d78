"""Load any image-text-to-text VLM and its processor, with or without torchvision, optionally quantized.

One code path for Hub ids and local checkpoint directories: everything goes through ``from_pretrained``.
Qwen-VL processors cannot be built or loaded without torchvision as shipped (transformers issue #48558: the
stock ``__init__`` demands a video processor, which needs torchvision). For those we use an image-only subclass,
and only when the stock class fails for that reason.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semanticface.errors import ConfigError

if TYPE_CHECKING:
    from peft import PeftConfig
    from transformers import ProcessorMixin
    from trl import ModelConfig

QUANTIZATION_MODES = (None, "8bit", "4bit")
DTYPES = ("auto", "float32", "bfloat16", "float16")

# Modules kept in full precision when quantizing: bitsandbytes' 4-bit kernels break in narrow layers on CPU and
# quantizing the vision tower costs accuracy for little memory. Prefix/suffix matched by transformers
# (plain "visual" would not match "model.visual.blocks...").
DEFAULT_SKIP_MODULES = (
    "lm_head",
    "model.visual",
    "model.vision_tower",
    "model.vision_model",
    "model.multi_modal_projector",
    "model.connector",
)

# model_type -> stock processor class name, for the processors that need the image-only variant.
_QWEN_VL_PROCESSORS = {
    "qwen2_vl": "Qwen2VLProcessor",
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
    "qwen3_vl": "Qwen3VLProcessor",
}


def _stock_processor_class(model_type: str) -> type[ProcessorMixin]:
    import transformers

    if model_type not in _QWEN_VL_PROCESSORS:
        raise ConfigError(f"no image-only processor for model type {model_type!r}")
    return getattr(transformers, _QWEN_VL_PROCESSORS[model_type])


def image_only_processor_class(model_type: str) -> type[ProcessorMixin]:
    """The Qwen-VL processor class for ``model_type`` with the video processor removed from its signature.

    ProcessorMixin reads its sub-processors from ``__init__``'s signature, so dropping ``video_processor`` there is
    enough. The class carries the *stock* name: ``save_pretrained`` writes ``processor_class`` from the class name,
    and a checkpoint naming an unknown class makes ``AutoProcessor`` silently return only the tokenizer.
    """
    stock: Any = _stock_processor_class(model_type)  # a transformers class picked by name

    def __init__(
        self: Any, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs: Any
    ):
        stock.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return type(stock.__name__, (stock,), {"__init__": __init__, "__module__": __name__, "image_only": True})


def _torchvision_available() -> bool:
    from transformers.utils import is_torchvision_available

    return bool(is_torchvision_available())


def _model_type(name_or_path: str, *, revision: str | None, trust_remote_code: bool) -> str:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name_or_path, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot load a model config from {name_or_path!r}: {error}") from error
    return str(config.model_type)


def set_pixel_bounds(processor: Any, *, min_pixels: int | None = None, max_pixels: int | None = None) -> None:
    """Bound the number of pixels an image is resized to (Qwen-VL style dynamic resolution)."""
    if min_pixels is None and max_pixels is None:
        return
    for name, value in (("min_pixels", min_pixels), ("max_pixels", max_pixels)):
        if value is not None and (not isinstance(value, int) or value <= 0):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if min_pixels is not None and max_pixels is not None and min_pixels > max_pixels:
        raise ConfigError(f"min_pixels ({min_pixels}) exceeds max_pixels ({max_pixels})")
    image_processor: Any = getattr(processor, "image_processor", None)
    size: Any = getattr(image_processor, "size", None)
    if not dataclasses.is_dataclass(size) or isinstance(size, type) or getattr(size, "longest_edge", None) is None:
        raise ConfigError(
            f"{type(image_processor).__name__} has no pixel-count bound; min_pixels/max_pixels apply to "
            "Qwen-VL style image processors only"
        )
    changes: dict[str, int] = {}
    if min_pixels is not None:
        changes["shortest_edge"] = min_pixels
    if max_pixels is not None:
        changes["longest_edge"] = max_pixels
    image_processor.size = dataclasses.replace(size, **changes)


def load_processor(
    name_or_path: str | Path,
    *,
    trust_remote_code: bool = False,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    revision: str | None = None,
) -> Any:
    """``AutoProcessor.from_pretrained``, falling back to the image-only Qwen-VL processor without torchvision."""
    from transformers import AutoProcessor, ProcessorMixin

    name = str(name_or_path)
    try:
        processor = AutoProcessor.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    except (ImportError, ValueError, OSError, AttributeError) as error:
        model_type = _model_type(name, revision=revision, trust_remote_code=trust_remote_code)
        if _torchvision_available() or model_type not in _QWEN_VL_PROCESSORS:
            raise ConfigError(f"cannot load the processor of {name!r}: {error}") from error
        processor = image_only_processor_class(model_type).from_pretrained(name, revision=revision or "main")
    if not isinstance(processor, ProcessorMixin) or getattr(processor, "image_processor", None) is None:
        raise ConfigError(
            f"{name!r} has no multimodal processor (AutoProcessor returned {type(processor).__name__}); "
            "is processor_config.json missing or does it name an unknown processor_class?"
        )
    set_pixel_bounds(processor, min_pixels=min_pixels, max_pixels=max_pixels)
    return processor


def quantization_config(
    quantization: str | None, *, skip_modules: tuple[str, ...] | list[str] | None = None, compute_dtype: Any = None
) -> Any:
    """A ``BitsAndBytesConfig`` for ``"8bit"`` or ``"4bit"`` (nf4, double quantization, QLoRA style), or None."""
    if quantization not in QUANTIZATION_MODES:
        raise ConfigError(f"quantization must be one of None, '8bit', '4bit'; got {quantization!r}")
    if quantization is None:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    skip = list(DEFAULT_SKIP_MODULES if skip_modules is None else skip_modules)
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    if compute_dtype is None:
        cuda_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        compute_dtype = torch.bfloat16 if cuda_bf16 else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=skip,
    )


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return "auto" if dtype is None else dtype
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return getattr(torch, dtype)


def load_model(
    name_or_path: str | Path,
    *,
    dtype: Any = "auto",
    device_map: Any = None,
    quantization: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    revision: str | None = None,
    skip_modules: tuple[str, ...] | list[str] | None = None,
) -> Any:
    """``AutoModelForImageTextToText.from_pretrained`` with safetensors only and optional bitsandbytes."""
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {
        "dtype": _torch_dtype(dtype),
        "trust_remote_code": trust_remote_code,
        "revision": revision,
        "use_safetensors": True,  # never unpickle weights
    }
    if device_map is not None:
        kwargs["device_map"] = device_map
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    bnb = quantization_config(quantization, skip_modules=skip_modules)
    if bnb is not None:
        kwargs["quantization_config"] = bnb
    try:
        return AutoModelForImageTextToText.from_pretrained(str(name_or_path), **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"cannot load an image-text-to-text model from {str(name_or_path)!r}: {error}") from error
    except Exception as error:
        if is_safetensors_error(error):
            raise safetensors_error(name_or_path, error) from error
        raise


def is_safetensors_error(error: BaseException) -> bool:
    """Whether ``error`` is safetensors' own (a truncated or corrupt ``.safetensors`` file)."""
    return type(error).__name__ == "SafetensorError"


def safetensors_error(source: str | Path, error: BaseException) -> ConfigError:
    """A :class:`ConfigError` naming the unreadable ``.safetensors`` file of a local checkpoint (or the source)."""
    from safetensors import safe_open

    path = Path(str(source))
    if path.is_dir():
        for file in sorted(path.glob("*.safetensors")):
            try:
                with safe_open(str(file), framework="pt") as handle:
                    handle.keys()
            except Exception as bad:  # SafetensorError, OSError
                return ConfigError(
                    f"{file}: not a readable safetensors file ({bad}); it may be truncated: copy or download it again"
                )
    return ConfigError(
        f"{source}: a weights file is not a readable safetensors file ({error}); it may be truncated: "
        "copy or download it again"
    )


def load_model_and_processor(
    name_or_path: str | Path,
    *,
    dtype: Any = "auto",
    device_map: Any = None,
    quantization: str | None = None,
    trust_remote_code: bool = False,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    attn_implementation: str | None = None,
    revision: str | None = None,
    skip_modules: tuple[str, ...] | list[str] | None = None,
    trainable_adapter: bool = False,
) -> tuple[Any, Any]:
    """Load ``(model, processor)`` of any ``AutoModelForImageTextToText`` checkpoint (Hub id or directory), or of
    a LoRA adapter: its base model first (quantized if asked), then the adapter on top (``trainable_adapter``: to
    train it further, as DPO does). The one loader distillation, DPO and the predictor call.

    ``quantization`` is None, ``"8bit"`` or ``"4bit"`` (nf4 for QLoRA); ``skip_modules`` overrides the modules
    kept unquantized. ``min_pixels``/``max_pixels`` bound Qwen-VL image resolution (and so the image token count).
    An adapter's processor is the one saved with it (training saves it), else its base model's.
    """
    from semanticface.checkpoint import adapter_base_model, is_adapter

    source = str(name_or_path)
    adapter = is_adapter(source, revision=revision)
    base = adapter_base_model(source, revision=revision) if adapter else source
    try:
        processor = load_processor(
            source,
            trust_remote_code=trust_remote_code,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            revision=revision,
        )
    except ConfigError:
        if not adapter:
            raise
        processor = load_processor(
            base, trust_remote_code=trust_remote_code, min_pixels=min_pixels, max_pixels=max_pixels
        )
    model = load_model(
        base,
        dtype=dtype,
        device_map=device_map,
        quantization=quantization,
        trust_remote_code=trust_remote_code,
        attn_implementation=attn_implementation,
        revision=None if adapter else revision,
        skip_modules=skip_modules,
    )
    if adapter:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, source, revision=revision, is_trainable=trainable_adapter)
        except Exception as error:
            if is_safetensors_error(error):
                raise safetensors_error(source, error) from error
            raise
    return model, processor


def quantization_mode(model_args: ModelConfig) -> str | None:
    """``"4bit"``, ``"8bit"`` or None from TRL's ``ModelConfig`` (``load_in_4bit``/``load_in_8bit``)."""
    if getattr(model_args, "load_in_4bit", False) and getattr(model_args, "load_in_8bit", False):
        raise ConfigError("choose one of load_in_4bit and load_in_8bit")
    if getattr(model_args, "load_in_4bit", False):
        return "4bit"
    return "8bit" if getattr(model_args, "load_in_8bit", False) else None


def quantized_device_map(quantization: str | None) -> Any:
    """Where quantized weights go: each DDP rank's own GPU (None: not quantized, or no GPU)."""
    import torch

    if quantization is None or not torch.cuda.is_available():
        return None
    from accelerate import PartialState

    return {"": PartialState().local_process_index}  # each DDP rank holds its own quantized copy


def load_for_training(
    name_or_path: str | Path,
    model_args: ModelConfig,
    *,
    freeze_vision_tower: bool = True,
    trust_remote_code: bool = False,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> tuple[Any, Any, PeftConfig | None]:
    """``(model, processor, peft_config)`` for a TRL trainer, from TRL's ``ModelConfig``: quantized when
    ``load_in_4bit``/``load_in_8bit`` (which needs LoRA), ``dtype``, ``attn_implementation`` and
    ``model_revision`` honoured, the vision tower frozen and kept out of LoRA. An adapter checkpoint is loaded
    trainable and needs no new ``peft_config``; otherwise ``use_peft`` gives one from ``trl.get_peft_config``."""
    from peft import LoraConfig
    from trl import get_peft_config

    from semanticface.checkpoint import is_adapter

    quantization = quantization_mode(model_args)
    adapter = is_adapter(str(name_or_path), revision=model_args.model_revision)
    if quantization is not None and not (model_args.use_peft or adapter):
        raise ConfigError(f"load_in_{quantization} needs use_peft: true (quantized weights cannot be fully trained)")
    model, processor = load_model_and_processor(
        name_or_path,
        dtype=model_args.dtype or "auto",
        device_map=quantized_device_map(quantization),
        quantization=quantization,
        trust_remote_code=trust_remote_code,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        attn_implementation=model_args.attn_implementation,
        revision=model_args.model_revision,
        trainable_adapter=True,
    )
    peft_config = None if adapter else get_peft_config(model_args)
    if freeze_vision_tower:
        for name in vision_module_names(model):
            model.get_submodule(name).requires_grad_(False)
        if peft_config is not None:
            if not isinstance(peft_config, LoraConfig):
                raise ConfigError(f"freeze_vision_tower needs a LoRA config, got {type(peft_config).__name__}")
            peft_config.exclude_modules = vision_exclude_pattern(model)
    return model, processor, peft_config


def vision_exclude_pattern(model: Any) -> str | None:
    """A peft ``exclude_modules`` regex (full match) covering the vision tower and projector."""
    names = vision_module_names(model)
    if not names:
        return None
    return "(" + "|".join(re.escape(n) for n in names) + r")(\..*)?"


def vision_module_names(model: Any) -> list[str]:
    """Top-level names of the vision tower and projector submodules (to freeze them or leave them out of LoRA)."""
    names: list[str] = []
    for name, _ in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("visual", "vision_tower", "vision_model", "multi_modal_projector", "connector") and not any(
            name.startswith(prefix + ".") for prefix in names
        ):
            names.append(name)
    return names


def read_processor_class(checkpoint_dir: str | Path) -> str | None:
    """The ``processor_class`` a saved checkpoint names (None when it has no processor config)."""
    path = Path(checkpoint_dir) / "processor_config.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("processor_class")
