"""number_token_weight: the loss weight of coefficient-value tokens reaches DistillTrainer's loss (tiny model)."""

from __future__ import annotations

import re

import pytest

from semanticface.contract import TargetConfig
from semanticface.errors import ConfigError
from semanticface.testing.faces import face_dataset, random_faces


@pytest.fixture(scope="module")
def trainer_and_batch(tiny_model_dir, tmp_path_factory):
    import torch
    from trl import SFTConfig

    from semanticface.modeling import load_model_and_processor
    from semanticface.training.formatting import format_dataset
    from semanticface.training.trainer import DistillTrainer

    faces = random_faces(3, high=0.7, active=0.3)
    train = format_dataset(face_dataset(faces, size=56, vary_identity=True), TargetConfig(target_format="semantic"))
    model, processor = load_model_and_processor(tiny_model_dir, dtype="float32")
    args = SFTConfig(
        output_dir=str(tmp_path_factory.mktemp("ntw")), report_to="none", per_device_train_batch_size=3,
        max_length=None, bf16=False, use_cpu=True,
    )  # fmt: skip
    trainer = DistillTrainer(model=model, args=args, train_dataset=train, processing_class=processor)
    batch = next(iter(trainer.get_train_dataloader()))
    torch.manual_seed(0)
    return trainer, batch, processor


def _loss(trainer, batch, weight):
    trainer.number_token_weight = weight
    return trainer.compute_loss(trainer.model, dict(batch))


def test_weight_one_is_trls_loss_exactly(trainer_and_batch):
    from trl import SFTTrainer

    trainer, batch, _ = trainer_and_batch
    plain = SFTTrainer.compute_loss(trainer, trainer.model, dict(batch))
    assert _loss(trainer, batch, 1.0).item() == plain.item()
    trainer.number_token_weight = 1.0  # the weighted path itself reproduces TRL's loss at weight 1
    assert trainer.weighted_loss(trainer.model, dict(batch)).item() == pytest.approx(plain.item(), rel=1e-6)


def test_weights_reach_the_loss_on_digit_tokens_only(trainer_and_batch):
    import torch

    trainer, batch, processor = trainer_and_batch
    tokenizer = processor.tokenizer
    # Independently of the trainer: per-token cross-entropy from the full logits, digit tokens found by decoding.
    with torch.no_grad():
        logits = trainer.model(**{k: v for k, v in batch.items() if k != "labels"}).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    valid = labels != -100
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
    digit = torch.tensor(
        [
            [bool(re.search("[0-9]", tokenizer.decode([t]))) if t != -100 else False for t in row]
            for row in labels.tolist()
        ]
    )
    assert digit.any() and (valid & ~digit).any()  # both kinds are in a semantic completion
    expected_gap = 2.0 * (nll * digit).sum() / valid.sum()
    with torch.no_grad():
        one, three = _loss(trainer, batch, 1.0), _loss(trainer, batch, 3.0)
    assert (three - one).item() == pytest.approx(expected_gap.item(), rel=1e-4)
    # the gradient follows: weight 3 makes the number tokens pull harder on the output layer
    grads = []
    for weight in (1.0, 3.0):
        trainer.model.zero_grad()
        _loss(trainer, batch, weight).backward()
        grads.append(trainer.model.get_output_embeddings().weight.grad.norm().item())
    trainer.model.zero_grad()
    assert grads[1] != pytest.approx(grads[0], rel=1e-3)
    trainer.number_token_weight = 1.0


def test_number_token_weight_is_a_config_field():
    from semanticface.training.config import DistillScriptArguments
    from semanticface.training.trainer import DistillTrainer

    assert DistillScriptArguments(synthetic=True).number_token_weight == 1.0
    with pytest.raises(ConfigError, match="number_token_weight"):
        DistillScriptArguments(synthetic=True, number_token_weight=0.0)
    with pytest.raises(ConfigError, match="number_token_weight"):
        DistillTrainer(number_token_weight=-1.0)
