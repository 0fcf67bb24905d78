"""Dataset rows (``semanticface.rows`` layout) -> TRL conversational prompt/completion rows with images.

TRL computes the loss on the completion only for prompt/completion rows, so the prompt (system text, image,
user text) is context and the rendered target is what the model learns to emit. The prompt comes from
:func:`semanticface.contract.build_prompt_messages`, which the predictor uses too, so training and inference
prompts cannot diverge.
"""

from __future__ import annotations

from typing import Any

from semanticface.contract import TargetConfig, build_prompt_messages, completion_messages, render_target
from semanticface.errors import ConfigError, DatasetError
from semanticface.rows import COEFFICIENT_COLUMNS, row_to_coefficients

IMAGE_COLUMN = "images"


def _image(row: dict[str, Any], where: str) -> Any:
    images = row.get(IMAGE_COLUMN)
    if images is None and "image" in row:
        images = [row["image"]]
    if not images or len(images) != 1 or images[0] is None:
        raise DatasetError(f"{where}: column {IMAGE_COLUMN!r} must hold exactly one image, got {images!r:.80}")
    image = images[0]
    if not hasattr(image, "convert"):
        raise DatasetError(f"{where}: {IMAGE_COLUMN!r} holds {type(image).__name__}, not a PIL image")
    return image.convert("RGB")


def format_row(row: dict[str, Any], target_config: TargetConfig, *, where: str = "row") -> dict[str, Any]:
    """One training row: ``prompt`` and ``completion`` messages plus its ``images`` list."""
    coefficients = row_to_coefficients(row, where=where)
    return {
        "prompt": build_prompt_messages(target_config),
        "completion": completion_messages(render_target(coefficients, target_config)),
        IMAGE_COLUMN: [_image(row, where)],
    }


def format_dataset(dataset: Any, target_config: TargetConfig, *, num_proc: int | None = None) -> Any:
    """Map a ``datasets.Dataset`` of semanticface rows to prompt/completion rows.

    The coefficient columns are kept (the generation eval callback scores against them); TRL only feeds
    ``prompt``, ``completion`` and ``images`` to the model.
    """
    missing = [c for c in (IMAGE_COLUMN, *COEFFICIENT_COLUMNS) if c not in dataset.column_names]
    if missing:
        raise DatasetError(f"dataset lacks column(s) {', '.join(missing[:5])} (expected the semanticface row layout)")
    keep = {IMAGE_COLUMN, *COEFFICIENT_COLUMNS}
    return dataset.map(
        lambda row, index: format_row(row, target_config, where=f"row {index}"),
        with_indices=True,
        remove_columns=[c for c in dataset.column_names if c not in keep],
        num_proc=num_proc,
        desc="rendering targets",
    )


def sequence_length(processor: Any, example: dict[str, Any]) -> int:
    """Tokens of one formatted example as the model sees it (image placeholders expanded)."""
    text = processor.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)
    encoded = processor(text=[text], images=[example[IMAGE_COLUMN]], return_tensors="pt")
    return int(encoded["input_ids"].shape[1])


def required_max_length(processor: Any, dataset: Any, *, sample: int = 16) -> int:
    """Longest sequence among ``sample`` rows with the longest targets (the image token count is fixed by the
    processor's pixel bounds, so the longest targets give the longest sequences)."""
    if len(dataset) == 0:
        raise DatasetError("the dataset is empty")
    tokenizer = getattr(processor, "tokenizer", processor)
    texts = [c[0]["content"][0]["text"] for c in dataset["completion"]]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    longest = sorted(range(len(lengths)), key=lambda i: -lengths[i])[:sample]
    return max(sequence_length(processor, dataset[i]) for i in longest)


def check_max_length(max_length: int | None, processor: Any, dataset: Any) -> int:
    """Refuse a ``max_length`` that would truncate a training sequence (cutting image tokens breaks the model's
    image/feature alignment; cutting the target teaches it to stop early). Returns the needed length."""
    needed = required_max_length(processor, dataset)
    if max_length is not None and max_length < needed:
        raise ConfigError(
            f"max_length={max_length} would truncate training sequences (the longest needs {needed} tokens, image "
            "tokens included); set max_length to at least that, to null, or lower max_pixels"
        )
    return needed
