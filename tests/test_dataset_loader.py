"""One dataset loader (semanticface.rows.open_dataset) for training, evaluation and the preference rounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from semanticface.errors import DatasetError
from semanticface.rows import dataset_split, open_dataset


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    from datasets import Dataset, DatasetDict

    rows = [{"jawOpen": 0.1 * i} for i in range(4)]
    DatasetDict({"train": Dataset.from_list(rows), "test": Dataset.from_list(rows[:1])}).save_to_disk(tmp_path / "d")
    return tmp_path / "d"


def test_the_three_callers_read_the_same_splits(saved: Path) -> None:
    from semanticface.evaluation.evaluate import load_split
    from semanticface.preferences.rounds import load_rows as round_rows
    from semanticface.training.config import DistillScriptArguments
    from semanticface.training.data import load_rows as training_rows

    train, test = training_rows(DistillScriptArguments(dataset_name=str(saved), dataset_test_split="test"))
    evaluated, evaluation_train = load_split(saved, "test")
    assert len(train) == 4 and len(test) == 1 and len(evaluated) == 1 and len(evaluation_train) == 4
    assert round_rows(str(saved), "train")["jawOpen"] == train["jawOpen"]


def test_errors_name_the_dataset(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="has no split 'validation'"):
        dataset_split(open_dataset(saved), "validation", saved)
    with pytest.raises(DatasetError, match=f"cannot load dataset '{tmp_path / 'absent'}'"):
        open_dataset(tmp_path / "absent")
