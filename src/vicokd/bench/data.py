"""Data benchmark: clips per second delivered to the model, old decode-every-access vs the cache.

Both paths serve the same clips with the same T, V and image size through the same
``DataLoader`` (same batch size, same number of spawned worker processes, same collate), and
the timing starts after the first batch (worker start-up excluded from both):

(a) **old pipeline** (:class:`DecodeEveryAccess`), as docs/reference/REFERENCE-CODE.md describes the authors'
    code: every access decodes every view's whole video at the 2.5-FPS grid (resized to H×W)
    and its whole audio track, computes the log-mel fbank of every grid chunk, pads each chunk
    to 1024 rows (zeros before normalisation, as AST's recipe), normalises frames and fbank to
    float32 in the worker, then keeps the T sampled frames;
(b) **prepared cache** (:class:`vicokd.data.dataset.MultiViewClips`): memory-mapped uint8 frames
    and float16 fbank chunks with their real rows; the main process normalises the video to
    float32 as the model needs it (the training module does this on the training device).

The dataset is synthetic and made here: V mp4 views per clip (H.264 + AAC, textured background,
a moving figure, sensor noise), MultiSensor-Home layout (``test.json``), so nothing is downloaded.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from vicokd.bench.common import OLD_FBANK_ROWS, BenchResult, Target, machine_info, resolve_size, stopwatch, use_threads
from vicokd.config import DataConfig, VisualEncoderConfig
from vicokd.data.annotations import Clip, frame_labels, load_annotations, sequence_labels
from vicokd.data.dataset import MultiViewClips, collate
from vicokd.data.media import audio_chunks, log_mel_fbank, normalize_fbank, probe_video, read_audio, read_grid_frames
from vicokd.data.prepare import prepare
from vicokd.data.sampling import sample_indices
from vicokd.data.video_io import write_mp4
from vicokd.models.model import normalize_video

SPLIT = "test"  # the synthetic clips are written as one split; sampling is the training jitter
CLASSES = ("Drink", "Sitdown", "Standup", "UsePhone")
PIXELS = VisualEncoderConfig()  # the visual encoder's default normalisation of uint8 frames (ImageNet)


@dataclass(frozen=True)
class DataBenchSize:
    """Dataset and loader settings of one benchmark size."""

    clips: int
    views: int
    seconds: float  # clip duration
    source_fps: float  # frame rate of the mp4 files
    source_size: tuple[int, int]  # (H, W) of the mp4 files (MultiSensor-Home: 240×320)
    frames: int  # T
    image_size: tuple[int, int]  # (H, W) delivered to the model
    batch_size: int
    workers: int
    min_seconds: float  # each path is timed for at least this long (and at least one epoch)
    sample_rate: int = 16000


DATA_SIZES = {
    # 30 s clips (75 grid frames ≥ T = 70) at 30 FPS, 320×240, 5 views, 224×224 as the paper.
    "full": DataBenchSize(clips=12, views=5, seconds=30.0, source_fps=30.0, source_size=(240, 320), frames=70,
                          image_size=(224, 224), batch_size=2, workers=2, min_seconds=40.0),
    "small": DataBenchSize(clips=4, views=5, seconds=6.0, source_fps=30.0, source_size=(240, 320), frames=12,
                           image_size=(224, 224), batch_size=2, workers=2, min_seconds=5.0),
}


# ----------------------------------------------------------------------------- synthetic videos


def _texture(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """A smooth random RGB texture (H, W, 3) float32 in [0, 255]: coarse noise, bilinear upsampled."""
    coarse = torch.from_numpy(rng.uniform(0, 255, (1, 3, cells, cells * width // height)).astype(np.float32))
    fine = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    return fine[0].permute(1, 2, 0).numpy()


def _view_frames(rng: np.random.Generator, count: int, size: tuple[int, int], fps: float) -> np.ndarray:
    """uint8 (N, H, W, 3): a fixed textured room, a textured figure walking across, sensor noise."""
    height, width = size
    room = _texture(rng, height, width, 12).astype(np.int16)
    figure = _texture(rng, height // 2, width // 8, 4).astype(np.int16)
    noise = rng.normal(0.0, 2.0, (8, height, width, 3)).round().astype(np.int16)  # cycled sensor noise
    fh, fw = figure.shape[:2]
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    phase = rng.uniform(0, 2 * np.pi)
    for i in range(count):
        image = room + noise[i % len(noise)]
        x = int((width - fw) * (0.5 + 0.5 * np.sin(phase + 0.4 * i / fps)))
        image[height // 3:height // 3 + fh, x:x + fw] = figure
        np.clip(image, 0, 255, out=image)
        frames[i] = image
    return frames


def _view_audio(rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """Mono float32: background noise with a few tone bursts."""
    count = int(seconds * sample_rate)
    wave = rng.normal(0.0, 0.02, count)
    t = np.arange(count) / sample_rate
    for start in rng.uniform(0, max(seconds - 1.0, 0.1), 4):
        inside = (t >= start) & (t < start + 0.8)
        wave[inside] += 0.3 * np.sin(2 * np.pi * rng.uniform(300, 2000) * t[inside])
    return wave.astype(np.float32)


def write_synthetic_dataset(root: str | Path, size: DataBenchSize, seed: int = 0) -> None:
    """Write ``size.clips`` clips of ``size.views`` mp4 views and ``test.json`` under `root`."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    count = round(size.seconds * size.source_fps)
    records = []
    for clip in range(size.clips):
        record: dict[str, Any] = {}
        for view in range(1, size.views + 1):
            name = f"{clip // 4 + 1:02d}/{clip % 4:02d}-View{view}-Part1.mp4"
            write_mp4(root / name, _view_frames(rng, count, size.source_size, size.source_fps), size.source_fps,
                      _view_audio(rng, size.seconds, size.sample_rate), size.sample_rate)
            record[f"video_url_{view}"] = name
        start = float(rng.uniform(0, size.seconds / 2))
        record["tricks"] = [{"start": round(start, 2), "end": round(start + size.seconds / 4, 2),
                             "labels": [CLASSES[clip % len(CLASSES)]]}]
        records.append(record)
    (root / "test.json").write_text(json.dumps(records, indent=1))


# ----------------------------------------------------------------------------- (a) the old path


class DecodeEveryAccess(Dataset):
    """The old data path: decode every view's video and audio on every access (module docstring).

    Items have the keys of :class:`~vicokd.data.dataset.MultiViewClips` items, with ``video``
    already float32 normalised (V, T, 3, H, W) and ``audio`` float32 (V, T, 1024, M).
    """

    def __init__(self, clips: list[Clip], classes: list[str], num_frames: int, config: DataConfig,
                 seed: int = 0) -> None:
        self.clips = clips
        self.classes = classes
        self.num_frames = num_frames
        self.config = config
        self.seed = seed

    def __len__(self) -> int:
        return len(self.clips)

    def _fbank(self, path: Path, length: int) -> torch.Tensor:
        """Padded, normalised fbank of every grid chunk of one view (L, 1024, M)."""
        c = self.config
        wave = read_audio(path, c.sample_rate)
        fbank = log_mel_fbank(audio_chunks(wave, length), c.sample_rate, c.num_mel_bins, c.frame_length_ms,
                              c.frame_shift_ms)
        return normalize_fbank(F.pad(fbank, (0, 0, 0, OLD_FBANK_ROWS - fbank.shape[1])))

    def __getitem__(self, index: int) -> dict[str, Any]:
        c = self.config
        clip = self.clips[index]
        length = min(probe_video(path).grid_length(c.fps, c.grid) for path in clip.videos)
        frames_at = sample_indices(length, self.num_frames, "jitter", np.random.default_rng([self.seed, 0, index]))
        grid = np.stack([read_grid_frames(path, c.image_size, c.fps, length=length, rule=c.grid)
                         for path in clip.videos])
        video = torch.from_numpy(grid).permute(0, 1, 4, 2, 3)  # (V, L, 3, H, W)
        audio = torch.stack([self._fbank(path, length) for path in clip.videos])  # (V, L, 1024, M)
        return {
            "video": normalize_video(video, PIXELS.mean, PIXELS.std)[:, frames_at],
            "audio": audio[:, frames_at],
            "audio_present": torch.ones(len(clip.videos), dtype=torch.bool),
            "frame_labels": torch.from_numpy(frame_labels(clip.segments, length, self.classes, c.fps)[frames_at]),
            "labels": torch.from_numpy(sequence_labels(clip.segments, self.classes)),
            "frame_index": torch.from_numpy(frames_at),
            "index": index,
            "key": clip.key,
        }


# ----------------------------------------------------------------------------- measuring


class _Repeat(Sampler[int]):
    """Indices 0..n-1 over and over until :meth:`stop`: one loader iterator serves many epochs.

    The sampler runs in the main process, so stopping it lets the workers finish the batches
    already asked for and exit cleanly.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.running = True

    def stop(self) -> None:
        self.running = False

    def __iter__(self) -> Iterator[int]:
        index = 0
        while self.running:
            yield index % self.count
            index += 1


def clips_per_second(dataset: Dataset, size: DataBenchSize,
                     consume: Callable[[dict[str, Any]], object] | None = None) -> dict[str, float]:
    """Serve `dataset` through a DataLoader with spawned workers; clips per second after the first batch.

    Serves the clips in order, over and over, until at least ``size.min_seconds`` and one
    epoch's worth of clips have been timed. `consume` is applied to each batch in the main
    process (timed, and its share reported as ``consume_ms_per_clip``).
    """
    sampler = _Repeat(len(dataset))
    batches = iter(DataLoader(dataset, batch_size=size.batch_size, sampler=sampler,
                              num_workers=size.workers, collate_fn=collate,
                              multiprocessing_context="spawn" if size.workers else None))
    first = next(batches)  # carries the worker start-up: not timed
    if consume is not None:
        consume(first)
    clips, consuming, start = 0, 0.0, time.perf_counter()
    while clips < len(dataset) or time.perf_counter() - start < size.min_seconds:
        batch = next(batches)
        if consume is not None:
            with stopwatch() as timing:
                consume(batch)
            consuming += timing.wall
        clips += len(batch["index"])
    seconds = time.perf_counter() - start
    sampler.stop()
    for _ in batches:  # the batches already asked for; then the workers exit
        pass
    return {"clips": clips, "seconds": seconds, "clips_per_s": clips / seconds,
            "consume_ms_per_clip": 1e3 * consuming / clips}


def run_data_benchmark(size: str | DataBenchSize = "small", *, threads: int | None = None,
                       frames: int | None = None, work_dir: str | Path | None = None) -> BenchResult:
    """Measure (a) and (b) on a synthetic dataset made in `work_dir` (a temporary folder by default).

    `size`: "small", "full" or a custom :class:`DataBenchSize`; `threads`: torch threads of the
    main process (each DataLoader worker runs one); `frames` overrides T.
    """
    bench = resolve_size(size, DATA_SIZES)
    bench = bench if frames is None else replace(bench, frames=frames)
    use_threads(threads)
    machine = machine_info()
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="vicokd-bench-data-") as tmp:
        root, cache = Path(tmp) / "data", Path(tmp) / "cache"
        with stopwatch() as made:
            write_synthetic_dataset(root, bench)
        config = DataConfig(root=str(root), cache=str(cache), num_frames=bench.frames, image_size=bench.image_size,
                            sample_rate=bench.sample_rate)
        with stopwatch() as prepared:
            prepare(root, cache, config, workers=bench.workers, progress=False)
        clips, classes = load_annotations(root, SPLIT)
        old = clips_per_second(DecodeEveryAccess(clips, classes, bench.frames, config), bench)
        cached = MultiViewClips(cache, SPLIT, bench.frames, "jitter")
        loader_only = clips_per_second(cached, bench)
        to_float = clips_per_second(cached, bench, lambda b: normalize_video(b["video"], PIXELS.mean, PIXELS.std))
        cache_bytes = sum(f.stat().st_size for f in cache.rglob("*.npy"))
        video_bytes = sum(f.stat().st_size for f in root.rglob("*.mp4"))
    old_rate = old["clips_per_s"]
    rows = [
        {"path": "(a) decode every access (old), float32", **old, "speedup": 1.0},
        {"path": "(b) cache: MultiViewClips, uint8 video", **loader_only,
         "speedup": loader_only["clips_per_s"] / old_rate},
        {"path": "(b) + float32 normalisation on this CPU", **to_float,
         "speedup": to_float["clips_per_s"] / old_rate},
    ]
    ratio, float_ratio = rows[1]["speedup"], rows[2]["speedup"]
    h, w = bench.image_size
    return BenchResult(
        name="data", size=size if isinstance(size, str) else "custom", machine=machine,
        settings={**asdict(bench), "old_fbank_rows": OLD_FBANK_ROWS, "synthesis_s": made.wall,
                  "prepare_s": prepared.wall, "mp4_mib": video_bytes / 2**20, "cache_mib": cache_bytes / 2**20},
        columns=[("path", "path"), ("clips", "clips"), ("seconds", "seconds"), ("clips_per_s", "clips/s"),
                 ("speedup", "× (a)")],
        rows=rows,
        targets=[Target("(b) >= 20x (a), clips/s out of the DataLoader", f"{ratio:.1f}x", ratio >= 20.0)],
        notes=[
            f"{bench.clips} clips × {bench.views} views, {bench.seconds:g} s at {bench.source_fps:g} FPS "
            f"{bench.source_size[1]}x{bench.source_size[0]} "
            f"({video_bytes * 8 / 1e3 / (bench.clips * bench.views * bench.seconds):.0f} kbit/s per view); "
            f"T={bench.frames}, {w}x{h}; DataLoader batch {bench.batch_size}, {bench.workers} spawned workers "
            "for both paths; first batch not timed",
            "(a) delivers float32 video and 1024-row fbank as the old code; (b) delivers uint8 video that the "
            "training module normalises on the training device. Normalising on this CPU in the main process costs "
            f"{to_float['consume_ms_per_clip']:.0f} ms per clip and leaves (b) at {float_ratio:.1f}x (a)",
            f"`vicokd prepare` (once): {prepared.wall:.1f} s for these clips = the old path's cost of "
            f"{prepared.wall * old_rate:.1f} clip reads; cache {cache_bytes / 2**20:.0f} MiB "
            f"(mp4 {video_bytes / 2**20:.0f} MiB)",
            "the cache files were just written, so they are in the page cache (as after the first epoch)",
        ],
    )
