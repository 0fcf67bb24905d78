"""The model card written beside a trained adapter or model: how it was trained (full configuration) and what it
scored. (The settings the predictor needs are in the checkpoint config: :mod:`semanticface.checkpoint`.)"""

from __future__ import annotations

import json
import math
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from semanticface.checkpoint import json_safe
from semanticface.contract import TargetConfig


def config_dict(config: Any) -> dict[str, Any]:
    """A dataclass (or object with ``to_dict``) as a JSON-safe dict; tokens and secrets left out."""
    if hasattr(config, "to_dict"):
        raw = config.to_dict()
    elif is_dataclass(config):
        raw = {f.name: getattr(config, f.name) for f in fields(config)}
    else:
        raw = dict(vars(config))
    return {k: json_safe(v) for k, v in raw.items() if "token" not in k.lower() or k.endswith("_id")}


def _metrics_table(metrics: dict[str, float]) -> str:
    if not metrics:
        return "No evaluation was run."
    rows = ["| metric | value |", "|---|---|"]
    for key, value in sorted(metrics.items()):
        shown = f"{value:.4f}" if isinstance(value, float) and not math.isnan(value) else str(value)
        rows.append(f"| {key} | {shown} |")
    return "\n".join(rows)


def build_model_card(
    *,
    base_model: str,
    target_config: TargetConfig,
    configs: dict[str, Any],
    metrics: dict[str, float],
    is_adapter: bool,
    dataset_name: str | None = None,
) -> Any:
    """A ``huggingface_hub.ModelCard`` with the training configuration and evaluation metrics."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        base_model=None if base_model.startswith("/") else base_model,
        library_name="peft" if is_adapter else "transformers",
        pipeline_tag="image-text-to-text",
        tags=["semanticface", "arkit", "blendshapes", "facial-expression", "trl", "sft"],
        datasets=[dataset_name] if dataset_name and not Path(dataset_name).exists() else None,
    )
    sections = {name: config_dict(value) for name, value in configs.items()}
    body = f"""---
{data.to_yaml()}
---

# SemanticFace distilled model

Reads a face image as Apple ARKit blendshape coefficients, trained with `recipes/distill.py` (TRL SFT) from
`{base_model}`{" as a LoRA adapter" if is_adapter else ""}. Target format: **{target_config.target_format}**
({target_config.decimals} decimals, pose channels {"included" if target_config.include_pose else "left out"},
{target_config.key_dialect} key names).

## Usage

```python
from semanticface.inference import SemanticFacePredictor

predictor = SemanticFacePredictor.from_pretrained("path/or/repo-id")
prediction = predictor.predict(["face.png"])[0]
print(prediction.description)
print(prediction.coefficients.to_dict())
```

## Evaluation

Predicted on held-out faces by `SemanticFacePredictor` (the decoding the run's `eval_decoding`/`eval_numbers`
name) and scored as `semanticface eval` scores them: `eval_gen_mae` is the mean absolute error over the 52
blendshapes, with every cell an output did not give (parse failure, missing or unreadable channel) scored as the
training split's per-channel median; `eval_gen_median_mae`, `eval_gen_mean_mae` and `eval_gen_neutral_mae` are
the per-channel-median, constant-mean and neutral baselines on the same faces; `eval_gen_mae_own_cells` and
`eval_gen_coverage` the error on the cells the outputs gave and their share; `eval_gen_spread_ratio` how much the
predictions vary across images relative to the truth (near 0: the model ignores the image);
`eval_gen_parse_failure_rate` the share of outputs with no readable coefficient block.

{_metrics_table(metrics)}

## Training configuration

```json
{json.dumps(sections, indent=2, sort_keys=True)}
```
"""
    return ModelCard(body)


def save_model_card(out_dir: str | Path, **kwargs: Any) -> Path:
    """Build the card (see :func:`build_model_card`) and save it as ``README.md`` in ``out_dir``."""
    path = Path(out_dir) / "README.md"
    build_model_card(**kwargs).save(path)
    return path
