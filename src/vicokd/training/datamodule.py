"""Data loaders for training (:mod:`vicokd.training`): seeded epoch-aware shuffling and the Lightning data module.

Training order and jitter depend only on (seed, epoch, index): :class:`EpochSampler` yields
``(epoch, index)`` pairs that :class:`~vicokd.data.dataset.MultiViewClips` understands, so a run
resumed from a checkpoint sees exactly the batches an uninterrupted run would have seen, and
DataLoader workers need no shared state.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler

from vicokd.config import Config
from vicokd.data.dataset import MultiViewClips, collate
from vicokd.data.person_scores import person_scores_path


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, index)``; a fresh permutation per epoch from ``seed + epoch`` when shuffling."""

    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(range(self.num_samples))
        return iter((self.epoch, i) for i in order)


class ClipsDataModule(L.LightningDataModule):
    """Train (jittered, shuffled), validation and test (uniform) loaders over the prepared cache.

    `load_audio` is False for a student without a teacher (no audio needed); `person` loads the
    person scores (needed by the VC masks and the MultiTSF human head). Each (split, sampling)
    dataset is built once and reused by every loader of the run (a run evaluates the test split
    up to three times).
    """

    def __init__(self, config: Config, *, load_audio: bool, person: bool, eval_split: str = "val",
                 test_split: str = "test") -> None:
        super().__init__()
        self.config = config
        self.load_audio = load_audio
        self.person = person
        self.eval_split = eval_split
        self.test_split = test_split
        self._datasets: dict[tuple[str, str], MultiViewClips] = {}

    def dataset(self, split: str, mode: str) -> MultiViewClips:
        built = self._datasets.get((split, mode))
        if built is not None:
            return built
        data = self.config.data
        built = self._datasets[(split, mode)] = MultiViewClips(
            data.cache, split, data.num_frames, mode,  # type: ignore[arg-type]
            person_scores=person_scores_path(self.config.data) if self.person else None,
            val_fraction=data.val_fraction, split_seed=data.split_seed, seed=self.config.train.seed,
            load_audio=self.load_audio, features=data.features,
        )
        return built

    def _loader(self, dataset: MultiViewClips, sampler: Sampler | None = None,
                generator: torch.Generator | None = None) -> DataLoader:
        workers = self.config.data.num_workers
        return DataLoader(dataset, batch_size=self.config.optim.batch_size, sampler=sampler, shuffle=False,
                          num_workers=workers, collate_fn=collate, pin_memory=torch.cuda.is_available(),
                          persistent_workers=False, multiprocessing_context="spawn" if workers else None,
                          generator=generator)

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train", "jitter")
        return self._loader(dataset, EpochSampler(len(dataset), self.config.train.seed, shuffle=True))

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        """The validation split; with ``train.test_curve`` also the test split (second loader, logged only)."""
        val = self._loader(self.dataset(self.eval_split, "uniform"))
        if not self.config.train.test_curve:
            return val
        # its own generator: starting a loader draws a seed from the global RNG, which would change training
        curve = self._loader(self.dataset(self.test_split, "uniform"), generator=torch.Generator().manual_seed(0))
        return [val, curve]

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.test_split, "uniform"))
