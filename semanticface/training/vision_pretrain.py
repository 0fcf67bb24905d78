"""Vision-tower pretraining: give a randomly initialised VLM's vision tower eyes before distillation.

Every real checkpoint the recipes fine-tune (Qwen3-VL, Qwen2.5-VL, ...) ships a pretrained vision tower; the
tiny random stand-in of :mod:`semanticface.testing.tiny_model` does not, and through the language-model loss alone it
never learns to see (measured on 2 CPU cores: trained from scratch on 6,800 faces it writes the same coefficients
for every face, while the same model with a seeing vision tower reads them within 1,000 steps). This stage gives
the stand-in what real checkpoints have: its image features (``get_image_features``, mean-pooled per image) regress
the 52 blendshapes of a labelled face dataset (``vision_pretrain_target: blendshapes``) through a throwaway linear
head with L1 loss. Only the vision tower and projector train, and the checkpoint directory is updated in place
(safetensors), so the distillation recipe then loads it like any other checkpoint.

``vision_pretrain_target: landmarks`` regresses instead the exact 2-D keypoints the renderer projects for each face
(:mod:`semanticface.render.keypoints`: the avatar's control points, the ICT mesh's vertices and pupils): the tower
learns face geometry, as a pretrained VLM knows faces, without ever seeing an ARKit coefficient, so the language
model still has to learn the coefficient mapping. Blendshape pretraining hands the language model image features
that already carry the 52 answers, which leaves nothing for a description to help with.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from semanticface.errors import ConfigError, DatasetError
from semanticface.modeling import load_model_and_processor, vision_module_names
from semanticface.rows import dataset_coefficients
from semanticface.schema import BLENDSHAPES, NUM_BLENDSHAPES

RECORD_FILE = "vision_pretraining.json"
logger = logging.getLogger(__name__)


@dataclass
class VisionPretrainConfig:
    """How long and how fast the vision tower trains (field names are prefixed: the recipe parses this dataclass
    beside ``SFTConfig``, whose ``max_steps``/``learning_rate`` are the distillation's own)."""

    vision_pretrain_steps: int = field(
        default=0,
        metadata={
            "help": "Vision-tower pretraining steps before distillation (one batch of training images each); 0 = "
            "off. Only for randomly initialised local models (tiny:ARCH): real checkpoints already see."
        },
    )
    vision_pretrain_batch_size: int = field(default=8, metadata={"help": "Images per vision pretraining step."})
    vision_pretrain_learning_rate: float = field(
        default=2e-3, metadata={"help": "AdamW learning rate of vision pretraining (constant, no decay)."}
    )
    vision_pretrain_loss: str = field(
        default="l1",
        metadata={
            "help": "Regression loss of vision pretraining: l1 (MAE), or mse, whose gradient grows with the error "
            "and so keeps learning on sparse targets where l1 settles at the all-rest median.",
            "choices": ["l1", "mse"],
        },
    )
    vision_pretrain_pooling: str = field(
        default="mean",
        metadata={
            "help": "How the throwaway head sees an image: mean (of its tokens) or tokens (all of them, in order: "
            "keeps where each feature is; needs images of one size).",
            "choices": ["mean", "tokens"],
        },
    )
    vision_pretrain_target: str = field(
        default="blendshapes",
        metadata={
            "help": "What the throwaway head regresses: blendshapes (the 52 coefficients) or landmarks (the exact 2-D "
            "keypoints the renderer projects; needs rendered rows: renderer and identity columns).",
            "choices": ["blendshapes", "landmarks"],
        },
    )
    vision_pretrain_mesh_dir: str | None = field(
        default=None,
        metadata={"help": "Rig of the dataset's mesh rows, for landmark targets (default: $SEMANTICFACE_MESH_DIR)."},
    )
    vision_pretrain_seed: int = field(
        default=0, metadata={"help": "Seed for the throwaway head's initialisation and the batch order."}
    )

    def __post_init__(self) -> None:
        if self.vision_pretrain_steps < 0 or self.vision_pretrain_batch_size < 1:
            raise ConfigError("vision_pretrain_steps must be >= 0 and vision_pretrain_batch_size >= 1")
        if not self.vision_pretrain_learning_rate > 0:
            raise ConfigError("vision_pretrain_learning_rate must be > 0")
        if self.vision_pretrain_pooling not in ("mean", "tokens"):
            raise ConfigError(
                f"vision_pretrain_pooling must be 'mean' or 'tokens', got {self.vision_pretrain_pooling!r}"
            )
        if self.vision_pretrain_target not in ("blendshapes", "landmarks"):
            raise ConfigError(
                f"vision_pretrain_target must be 'blendshapes' or 'landmarks', got {self.vision_pretrain_target!r}"
            )
        if self.vision_pretrain_loss not in ("l1", "mse"):
            raise ConfigError(f"vision_pretrain_loss must be 'l1' or 'mse', got {self.vision_pretrain_loss!r}")


def _targets(dataset: Any, config: VisionPretrainConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Target values and a mask of the known ones (missing channels, other renderers' keypoints carry no loss)."""
    if "images" not in dataset.column_names:
        raise DatasetError("vision pretraining needs an 'images' column (a list holding one image per row)")
    if config is not None and config.vision_pretrain_target == "landmarks":
        from semanticface.render.keypoints import keypoint_targets

        return keypoint_targets(dataset, mesh_dir=config.vision_pretrain_mesh_dir)
    coefficients = dataset_coefficients(dataset)
    # Missing cells are NaN in FaceCoefficients.values: zero them, or NaN * 0 in the masked loss is NaN.
    values = np.nan_to_num(np.stack([c.values[:NUM_BLENDSHAPES] for c in coefficients]).astype(np.float32))
    known = np.array([[name not in c.missing for name in BLENDSHAPES] for c in coefficients], dtype=np.float32)
    if not known.any():
        raise DatasetError("vision pretraining: every blendshape value in the dataset is missing")
    return values, known


def _start(values: np.ndarray, known: np.ndarray, target: str) -> np.ndarray:
    """The head's starting output: the per-target median (over the rows whose renderer has the keypoint)."""
    if target == "blendshapes":
        return np.median(values, axis=0).astype(np.float32)
    counts = known.sum(axis=0)
    medians = [np.median(values[known[:, j] > 0, j]) if counts[j] else 0.0 for j in range(values.shape[1])]
    return np.asarray(medians, dtype=np.float32)


def _pooled_image_features(model: Any, inputs: dict[str, Any], pooling: str = "mean") -> Any:
    """One feature vector per image from the image's embeddings as the language model receives them: their mean,
    or (``pooling="tokens"``) all of them concatenated, which keeps where on the face each feature is (images of
    one size only)."""
    import torch

    output = model.get_image_features(**inputs)
    features = getattr(output, "pooler_output", output)
    per_image = list(features) if isinstance(features, (list, tuple)) else list(features.unbind(0))
    if pooling == "mean":
        return torch.stack([f.mean(0) for f in per_image])
    if len({f.shape for f in per_image}) != 1:
        raise DatasetError("vision_pretrain_pooling: tokens needs images that all give the same number of tokens")
    return torch.stack([f.reshape(-1) for f in per_image])


def pretrain_vision_tower(
    checkpoint_dir: str | Path, dataset: Any, config: VisionPretrainConfig | None = None
) -> dict[str, Any]:
    """Train the vision tower of the local checkpoint ``checkpoint_dir`` on ``dataset`` and save it in place.

    ``dataset`` is a ``datasets.Dataset`` in the toolkit's row layout (``images`` plus coefficient columns, as
    :func:`semanticface.synth.build_dataset` makes). Returns a record (steps, wall time, loss at the start and the
    end) that is also written to ``vision_pretraining.json`` beside the weights.
    """
    import torch

    config = config or VisionPretrainConfig(vision_pretrain_steps=12000)
    if config.vision_pretrain_steps < 1:
        raise ConfigError("vision_pretrain_steps must be >= 1 to pretrain")
    path = Path(checkpoint_dir)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{str(path)!r} is not a local checkpoint directory (no config.json)")
    values, known = _targets(dataset, config)
    model, processor = load_model_and_processor(path, dtype="float32")
    vision = vision_module_names(model)
    if not vision or not hasattr(model, "get_image_features"):
        raise ConfigError(f"{str(path)!r}: no vision tower found to pretrain")
    model.requires_grad_(False)
    parameters = [p for name in vision for p in model.get_submodule(name).parameters()]
    for parameter in parameters:
        parameter.requires_grad_(True)
    model.train()

    # Decode and preprocess every image once: steps then only index and concatenate tensors.
    encoded = [
        processor.image_processor(images=[row[0]], return_tensors="pt")
        for row in dataset.select_columns(["images"])["images"]
    ]
    pooling = config.vision_pretrain_pooling
    with torch.no_grad():
        width = _pooled_image_features(model, dict(encoded[0]), pooling).shape[-1]
    torch.manual_seed(config.vision_pretrain_seed)
    head = torch.nn.Linear(width, values.shape[1])
    with torch.no_grad():  # start at the per-target median of the known values, the best constant under L1
        head.weight.mul_(0.1)
        head.bias.copy_(torch.from_numpy(_start(values, known, config.vision_pretrain_target)))
    optimizer = torch.optim.AdamW(
        [*parameters, *head.parameters()], lr=config.vision_pretrain_learning_rate, weight_decay=0.0
    )
    targets, mask = torch.from_numpy(values), torch.from_numpy(known)
    order = np.random.default_rng(config.vision_pretrain_seed)
    batches = np.array([], dtype=int)
    losses: list[float] = []
    start = time.perf_counter()
    size = config.vision_pretrain_batch_size
    bar = tqdm(range(config.vision_pretrain_steps), desc="vision pretraining", mininterval=2.0)
    for step in bar:
        if len(batches) < size:
            batches = np.concatenate([batches, order.permutation(len(dataset))])
        rows, batches = batches[:size].tolist(), batches[size:]
        inputs = {key: torch.cat([encoded[r][key] for r in rows]) for key in encoded[rows[0]]}
        predictions = head(_pooled_image_features(model, dict(inputs), pooling))
        difference = predictions - targets[rows]
        errors = (difference.abs() if config.vision_pretrain_loss == "l1" else difference.square()) * mask[rows]
        loss = errors.sum() / mask[rows].sum().clamp(min=1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 100 == 99:
            bar.set_postfix({config.vision_pretrain_loss: f"{np.mean(losses[-100:]):.4f}"}, refresh=False)
    model.eval()
    model.save_pretrained(path, safe_serialization=True)
    window = max(1, min(100, len(losses) // 10))
    record = {
        "config": asdict(config),
        "rows": len(dataset),
        "trained_modules": vision,
        "steps": len(losses),
        "wall_s": round(time.perf_counter() - start, 1),
        "loss": config.vision_pretrain_loss,
        "target": config.vision_pretrain_target,
        "target_size": int(values.shape[1]),
        "initial_loss": float(np.mean(losses[:window])),
        "final_loss": float(np.mean(losses[-window:])),
    }
    (path / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def pretrain_before_distillation(
    model_path: str, train_rows: Any, config: VisionPretrainConfig | None, *, resuming_full_model: bool = False
) -> dict[str, Any] | None:
    """The distillation recipe's hook: pretrain when ``config`` asks for steps (main process first; the others
    wait, then load the result). Skipped when a full-model checkpoint is resumed (its weights replace the base)."""
    if config is None or config.vision_pretrain_steps == 0 or resuming_full_model:
        return None
    from accelerate import PartialState

    state = PartialState()
    record = None
    with state.main_process_first():
        if state.is_main_process:
            record = pretrain_vision_tower(model_path, train_rows, config)
            logger.info(
                "vision pretraining: %s %.4f -> %.4f in %.0f s (%d steps on %d training faces)",
                record["loss"], record["initial_loss"], record["final_loss"], record["wall_s"], record["steps"], record["rows"],
            )  # fmt: skip
    return record
