"""Where the training rows come from: a saved dataset directory, a Hub dataset, or faces rendered on the fly."""

from __future__ import annotations

from typing import Any

from semanticface.errors import DatasetError
from semanticface.rows import dataset_split, open_dataset
from semanticface.training.config import DistillScriptArguments


def synthetic_rows(args: DistillScriptArguments) -> tuple[Any, Any | None]:
    """Render faces with known coefficients (``semanticface.synth``): ``(train, validation)``, split by identity
    (and, for recorded expressions, by recording or time block).

    Under DDP the main process renders first; the others then find the result in the datasets cache.
    """
    from accelerate import PartialState

    from semanticface.sampling import SamplingConfig
    from semanticface.synth import SynthConfig, build_dataset

    config = SynthConfig(
        renderer=args.synthetic_renderer,
        n=args.synthetic_samples,
        size=args.synthetic_image_size,
        seed=args.synthetic_seed,
        identities=args.synthetic_identities,
        mesh_dir=args.synthetic_mesh_dir,
        sampling=SamplingConfig(source=args.synthetic_source, recordings=tuple(args.synthetic_recordings)),
    )
    with PartialState().main_process_first():
        splits = build_dataset(config)
    held_out = splits.get("validation", splits.get("test"))
    return splits["train"], held_out


def load_rows(args: DistillScriptArguments) -> tuple[Any, Any | None]:
    """``(train rows, test rows or None)`` in the semanticface row layout."""
    import datasets

    if args.synthetic:
        return synthetic_rows(args)
    name = str(args.dataset_name)
    loaded = open_dataset(name, config=args.dataset_config)
    if isinstance(loaded, datasets.Dataset):
        return loaded, None
    test = None if args.dataset_test_split is None else dataset_split(loaded, args.dataset_test_split, name)
    return dataset_split(loaded, args.dataset_train_split, name), test


def split_rows(train: Any, test: Any | None, args: DistillScriptArguments, *, seed: int) -> tuple[Any, Any | None]:
    """Hold out ``eval_fraction`` of the training rows when there is no test split; cap the training and held-out
    rows."""
    if test is None and args.eval_fraction > 0 and len(train) > 1:
        parts = train.train_test_split(test_size=args.eval_fraction, seed=seed)
        train, test = parts["train"], parts["test"]
    if args.max_train_samples is not None:
        train = train.select(range(min(args.max_train_samples, len(train))))
    if test is not None and args.max_eval_samples is not None:
        test = test.select(range(min(args.max_eval_samples, len(test))))
    if len(train) == 0:
        raise DatasetError("no training rows left")
    return train, test
