"""Torch dataset over a prepared cache, and the collate that batches its samples into a
:class:`vicokd.batch.Batch`.

A sample (one multi-view clip, T sampled grid frames) is a dict:

=================  ==========================  =====================================================
key                shape / type                meaning
=================  ==========================  =====================================================
``video``          uint8 (V, T, 3, H, W)       RGB frames; normalise on the device with
                                               :func:`vicokd.models.model.normalize_video`
                                               (4× less to move than float)
``audio``          float32 (V, T, R, M)        normalised log-mel chunk of each sampled frame
                                               (``load_audio``)
``*_features``     float32 (V, T, W)           ``visual_features`` / ``audio_features`` instead
                                               of video / audio when a feature cache is given
``audio_present``  bool (V,)                   False for a view whose file has no audio track
``frame_labels``   float32 (T, C)              multi-hot labels of the sampled grid frames
``labels``         float32 (C,)                multi-hot clip label (every label of every segment)
``person``         float32 (V, T)              person score of each sampled frame (only when a
                                               score file is given)
``frame_index``    int64 (T,)                  the sampled grid indices
``index``          int                         position of the clip in this split (sample id)
``key``            str                         the clip's identity
=================  ==========================  =====================================================

Each clip's pixel and fbank arrays are memory-mapped once per process and kept open (opening a
``.npy`` file costs ~0.35 ms), the :data:`MAX_OPEN_MAPS` most recently used of them per dataset:
every open map holds a file descriptor (the usual limit is 1,024). The maps are not pickled to
DataLoader workers, which open their own. Cached features are read whole and shared by every
dataset of the process (:func:`~vicokd.data.features.resident_features`); a clip's frame and
clip labels are computed once per dataset.

Training samples with jitter, from a generator seeded by (seed, epoch, index), so a run is
reproducible and resumable; evaluation samples uniformly. The validation split is carved from
train by iterative stratification (``val_fraction``, ``split_seed``) unless the dataset defines
one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from vicokd.batch import Batch
from vicokd.data.annotations import frame_labels, sequence_labels
from vicokd.data.cache import CacheIndex, load_fbank, load_frames, read_index
from vicokd.data.cache_freshness import check_sources
from vicokd.data.features import check_feature_freshness, read_feature_index, resident_features
from vicokd.data.person_scores import read_person_scores
from vicokd.data.sampling import sample_indices
from vicokd.data.split import stratified_split
from vicokd.errors import DataError

# open memory maps per dataset and process: each holds a file descriptor, a run has train, validation
# and test datasets in one process (with num_workers 0), and the usual limit is 1,024 descriptors
MAX_OPEN_MAPS = 256


def _where(index: CacheIndex, key: str) -> str:
    """The annotation record of a cached clip, for error messages: ``train.json[3] (clip 01_00_Part1)``."""
    source = index.clips[key].source
    return f"{source} (clip {key})" if source else f"clip {key}"


def split_keys(index: CacheIndex, split: str, val_fraction: float, seed: int) -> list[str]:
    """Clip keys of `split`; "train"/"val" are carved from the train split when no val exists."""
    if split in index.splits and (split != "train" or "val" in index.splits):
        return list(index.splits[split])
    if split not in ("train", "val"):
        raise DataError(f"{index.root}: split {split!r} not in the cache (has {', '.join(index.splits)})")
    train = list(index.splits["train"])
    labels = np.zeros((len(train), len(index.classes)), dtype=np.float32)
    for row, key in enumerate(train):
        labels[row] = sequence_labels(index.clips[key].segments, index.classes, where=_where(index, key))
    fit, val = stratified_split(labels, val_fraction, seed)
    return [train[i] for i in (fit if split == "train" else val)]


class MultiViewClips(Dataset):
    """Multi-view clips of one split of a prepared cache (see the module docstring)."""

    def __init__(
        self,
        cache_dir: str | Path,
        split: str,
        num_frames: int,
        mode: Literal["uniform", "jitter"] = "uniform",
        *,
        person_scores: str | Path | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        seed: int = 0,
        load_audio: bool = True,
        features: str | Path | None = None,
    ) -> None:
        self.index = read_index(cache_dir)
        check_sources(self.index)  # annotations or videos changed after `prepare`: refuse stale labels
        self.cache_dir = Path(cache_dir)
        self.keys = split_keys(self.index, split, val_fraction, split_seed)
        self.split = split
        self.classes: list[str] = list(self.index.classes)
        self.num_frames = num_frames
        self.mode = mode
        self.seed = seed
        self.epoch = 0
        self.load_audio = load_audio
        self.features = Path(features) if features is not None else None
        if self.features is not None:
            read_feature_index(self.features)
            check_feature_freshness(self.features, self.index, self.keys)
        self._arrays: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()  # (key, kind) → memory map
        self._features: dict[tuple[str, str], np.ndarray] = {}  # (key, kind) → resident features
        self._labels: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # key → (frame labels (L, C), clip labels (C,))
        self.scores: dict[str, np.ndarray] | None = None
        if person_scores is not None:
            self.scores, _ = read_person_scores(person_scores)
            for key in self.keys:
                meta = self.index.clips[key]
                if key not in self.scores:
                    raise DataError(f"{person_scores}: no person scores for clip {key!r} "
                                    f"(re-run `vicokd detect` for this dataset)")
                if self.scores[key].shape[0] != meta.num_views or self.scores[key].shape[1] < meta.length:
                    raise DataError(f"{person_scores}: scores of clip {key!r} have shape {self.scores[key].shape}, "
                                    f"expected ({meta.num_views}, {meta.length})")

    def __len__(self) -> int:
        return len(self.keys)

    def set_epoch(self, epoch: int) -> None:
        """Training jitter depends on the epoch (call before each epoch's loader is iterated)."""
        self.epoch = epoch

    def sample(self, index: int, epoch: int | None = None) -> np.ndarray:
        """The T grid indices sampled for clip `index` in `epoch` (default: the current epoch)."""
        length = self.index.clips[self.keys[index]].length
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch, index]) if self.mode == "jitter" else None
        return sample_indices(length, self.num_frames, self.mode, rng)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, Any]:
        """`item` is an index, or ``(epoch, index)`` from an epoch-aware sampler (jitter per epoch)."""
        epoch, index = item if isinstance(item, tuple) else (self.epoch, item)
        key = self.keys[index]
        meta = self.index.clips[key]
        frames_at = self.sample(index, epoch)
        per_frame, per_clip = self._clip_labels(key)
        item: dict[str, Any] = {
            "audio_present": torch.tensor(meta.audio_present, dtype=torch.bool),
            "frame_labels": torch.from_numpy(per_frame[frames_at]),
            "labels": torch.from_numpy(per_clip.copy()),
            "frame_index": torch.from_numpy(frames_at),
            "index": index,
            "key": key,
        }
        if self.features is not None:  # float16 as cached: half the bytes to gather and batch; the model widens them
            item["visual_features"] = torch.from_numpy(self._array(key, "visual")[:, frames_at])
            if self.load_audio:
                item["audio_features"] = torch.from_numpy(self._array(key, "audio")[:, frames_at])
        else:
            # One gather from the channel-first cache, already (V, T, 3, H, W) and contiguous.
            item["video"] = torch.from_numpy(self._array(key, "frames")[:, frames_at])
            if self.load_audio:
                item["audio"] = self._float32(key, "fbank", frames_at)
        if self.scores is not None:
            item["person"] = torch.from_numpy(self.scores[key][:, frames_at].astype(np.float32))
        return item

    def _clip_labels(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Multi-hot labels of every grid frame (L, C) and of the clip (C,), computed once per clip."""
        labels = self._labels.get(key)
        if labels is None:
            meta = self.index.clips[key]
            where = _where(self.index, key)
            labels = (frame_labels(meta.segments, meta.length, self.classes, self.index.fps, where=where),
                      sequence_labels(meta.segments, self.classes, where=where))
            self._labels[key] = labels
        return labels

    def _array(self, key: str, kind: str) -> np.ndarray:
        """One clip's ``frames`` or ``fbank`` (memory map) or ``visual`` / ``audio`` features (resident)."""
        if kind in ("visual", "audio"):
            assert self.features is not None
            features = self._features.get((key, kind))
            if features is None:
                features = self._features[(key, kind)] = resident_features(self.features, key, kind)
            return features
        array = self._arrays.get((key, kind))
        if array is not None:
            self._arrays.move_to_end((key, kind))
        else:
            array = load_frames(self.cache_dir, key) if kind == "frames" else load_fbank(self.cache_dir, key)
            self._arrays[(key, kind)] = array
            if len(self._arrays) > MAX_OPEN_MAPS:
                self._arrays.popitem(last=False)  # the least recently used map closes when unreferenced
        return array

    def _float32(self, key: str, kind: str, frames_at: np.ndarray) -> torch.Tensor:
        """The sampled grid frames (axis 1) of a float16 array, as float32."""
        return torch.from_numpy(self._array(key, kind)[:, frames_at].astype(np.float32))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": OrderedDict(), "_features": {}}  # workers open and read their own


def collate(samples: Sequence[dict[str, Any]]) -> Batch:
    """Stack samples into a batch; fbank rows are zero-padded to the longest; views must agree.

    Tensors are stacked by torch's ``default_collate``, which in a DataLoader worker writes the
    batch straight into shared memory (one copy instead of stacking and then sharing).
    """
    views = {s["audio_present"].shape[0] for s in samples}
    if len(views) > 1:
        keys = [s["key"] for s in samples]
        raise DataError(f"clips {keys} have different numbers of views {sorted(views)}: every clip of a dataset "
                        "needs the same cameras (`vicokd prepare` refuses such annotations: prepare the cache again)")
    batch: dict[str, Any] = {}  # filled key by key, returned as a Batch
    for name in samples[0]:
        values = [s[name] for s in samples]
        if name == "audio":
            rows = max(v.shape[2] for v in values)
            values = [torch.nn.functional.pad(v, (0, 0, 0, rows - v.shape[2])) for v in values]
        if isinstance(values[0], torch.Tensor):
            batch[name] = default_collate(values)
        elif isinstance(values[0], int):
            batch[name] = torch.tensor(values, dtype=torch.long)
        else:
            batch[name] = list(values)
    return batch  # type: ignore[return-value]
