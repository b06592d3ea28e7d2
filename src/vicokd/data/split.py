"""Train/test/val splits by iterative stratification (Sechidis et al., 2011).

Multi-label clips are split so that every class keeps about the same share of its positives on
each side, via the `iterative-stratification` package. Used by `vicokd split` (a dataset with no
split files), by the synthetic generator (7:3), and to carve the validation set from train.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

from vicokd.data.annotations import collect_classes, read_json, sequence_labels
from vicokd.errors import DataError
from vicokd.io import write_json_atomic


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split rows of a multi-hot matrix `labels` (N, C) into (train indices, test indices).

    Both index arrays are sorted. With N ≥ 2 and 0 < `test_fraction` < 1 each side gets at least
    one row; the same `seed` gives the same split.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (N, C), got shape {labels.shape}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    count = labels.shape[0]
    if count < 2 or test_fraction == 0.0:
        return np.arange(count), np.arange(0)
    num_test = min(count - 1, max(1, round(test_fraction * count)))
    # Two columns of ones keep the stratifier defined (a "multilabel-indicator" target) for
    # clips or data sets without labels.
    matrix = np.concatenate([labels.astype(int), np.ones((count, 2), dtype=int)], axis=1)
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=num_test, random_state=seed)
    train, test = next(splitter.split(np.zeros((count, 1)), matrix))
    if len(test) == 0 or len(train) == 0:  # the iterative algorithm can leave a side empty on tiny inputs
        order = np.random.default_rng(seed).permutation(count)
        test, train = order[:num_test], order[num_test:]
    return np.sort(train), np.sort(test)


def split_annotation_file(path: Path, out: Path, *, test: float = 0.3, val: float = 0.1, seed: int = 0
                          ) -> dict[str, int]:
    """Split a JSON list of clip records into ``train.json``/``val.json``/``test.json`` in `out`.

    The records are copied verbatim (paths stay relative to the dataset root). Returns the counts.
    """
    from vicokd.data.annotations import parse_record

    records = read_json(path)
    if not isinstance(records, list) or not records:
        raise DataError(f"{path}: expected a non-empty JSON list of clip records")
    clips = [parse_record(r, path.parent, f"{path.name}[{i}]") for i, r in enumerate(records)]
    classes = collect_classes(clips)
    labels = np.stack([sequence_labels(c.segments, classes) for c in clips])
    train_idx, test_idx = stratified_split(labels, test, seed)
    fit_idx, val_sub = stratified_split(labels[train_idx], val, seed)
    parts = {"train": train_idx[fit_idx], "val": train_idx[val_sub], "test": test_idx}
    for name, idx in parts.items():
        if name == "val" and len(idx) == 0:
            continue
        write_json_atomic(out / f"{name}.json", [records[i] for i in idx])
    return {name: len(idx) for name, idx in parts.items()}
