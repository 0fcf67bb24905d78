"""Vision pretraining on labels with a missing channel (MediaPipe has no tongueOut) stays finite."""

from __future__ import annotations

import json
import shutil

import numpy as np
import torch
from datasets import Dataset

from semanticface.modeling import load_model_and_processor
from semanticface.schema import CHANNEL_INDEX
from semanticface.testing.faces import face_rows, random_faces
from semanticface.training.vision_pretrain import VisionPretrainConfig, pretrain_vision_tower


def test_missing_channels_carry_no_loss_and_no_nan(tiny_model_dir, tmp_path):
    labels = random_faces(8, high=0.8, missing=("tongueOut",))  # as MediaPipe labels are
    assert all(np.isnan(label.values[CHANNEL_INDEX["tongueOut"]]) for label in labels)
    rows = face_rows(labels, size=56, vary_identity=True)
    checkpoint = tmp_path / "model"
    shutil.copytree(tiny_model_dir, checkpoint)
    for loss in ("mse", "l1"):
        config = VisionPretrainConfig(vision_pretrain_steps=3, vision_pretrain_loss=loss)
        record = pretrain_vision_tower(checkpoint, Dataset.from_list(rows), config)
        assert np.isfinite(record["initial_loss"]) and np.isfinite(record["final_loss"]), json.dumps(record)
    model, _ = load_model_and_processor(checkpoint, dtype="float32")
    assert all(torch.isfinite(p).all() for p in model.parameters())
