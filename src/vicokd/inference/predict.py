"""`vicokd predict`: action probabilities and segments of a student on raw multi-view recordings.

Input: the V synchronised videos of one recording, in the view order the model was trained
with (any length; no annotation, no audio track needed), and a student checkpoint. A teacher
checkpoint is refused (:func:`vicokd.inference.student.load_student`): without its audio it is
not the model it was trained to be; distil a student for visual-only use. Any number of views runs (the backbones
take any V; MultiTrans up to ``model.multitrans.max_views``, its views tied to their position),
but a V other than the training one is outside what the model learned. The decoded frames are
held in memory as uint8, V·L·H·W·3 bytes.

Rules (T = the checkpoint's ``data.num_frames``, C classes, fps = ``data.fps``):

1. Frames: every grid frame of each view (:func:`vicokd.data.media.read_grid_frames` at the
   checkpoint's ``data.image_size``, by its ``data.grid`` rule or `grid`); clip length L = max
   over views; the model normalises the uint8 frames itself (its ``pixel_mean`` /
   ``pixel_std``: ``model.visual.mean`` / ``.std`` of its training config).
2. Windows (:func:`window_indices`): L ≤ T gives one window, the uniform sampling of
   evaluation ``idx_i = floor(i·L/T)`` (every grid frame appears at least once, some repeat);
   L > T gives windows of T consecutive grid frames starting at 0, s, 2s, … plus one ending at
   frame L−1, s = `stride` (default ``max(1, T // 2)``: neighbouring windows overlap by at
   least half). A window runs on the views that have all its frames (:func:`window_views`), as
   ``vicokd stream`` runs its windows: a view that ends before the others (a camera that
   stopped) is left out of the windows past its end, with :func:`view_end_warning`.
3. Frame probabilities: the probability of grid frame j is the mean, over every window
   position that shows frame j, of ``sigmoid(frame_logits)`` (B, T, C); per view likewise from
   ``sigmoid(view_frame_logits)`` over the windows the view is in (NaN, JSON null, where it is in
   none). Probabilities are averaged, not logits.
4. Clip probabilities: ``clip_probs[c] = max over windows of sigmoid(seq_logits[c])``, i.e.
   "class c happens somewhere in the recording" (for L ≤ T, the one window's value).
5. Decisions and segments: :class:`vicokd.inference.decisions.Decisions` of the checkpoint on the
   frame probabilities.

Times: grid frame j stands for the instant j / fps seconds, as in the annotations
(:func:`vicokd.data.frame_labels`), so a detected segment [start, end] maps back to exactly the
grid frames it was detected on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from warnings import catch_warnings, filterwarnings

import numpy as np
import torch
from tqdm import tqdm

from vicokd.data.cache import CacheIndex, load_frames
from vicokd.data.frame_grid import GridRule
from vicokd.data.media import probe_video, read_grid_frames
from vicokd.data.sampling import sample_indices
from vicokd.errors import DataError, VicokdError
from vicokd.inference.decisions import DEFAULT_MIN_DURATION, DEFAULT_MIN_GAP, ActionSegment, Decisions
from vicokd.io import write_json_atomic
from vicokd.metrics import matched_segments
from vicokd.models import MultiViewActionModel
from vicokd.models.checkpoint import CheckpointMeta

__all__ = [
    "Prediction",
    "default_stride",
    "predict_clip",
    "view_end_warning",
    "window_indices",
    "window_views",
]


@dataclass
class Prediction:
    """What :func:`predict_clip` measured on one recording (rules in the module docstring).

    Shapes: V views, L grid frames, C classes, T model frames.
    """

    videos: list[str]
    model: dict[str, Any]  # method, role, model_hash, epoch of the checkpoint (from its sidecar)
    classes: list[str]
    fps: float
    num_frames: int  # T of the model's windows
    view_lengths: list[int]  # grid length of each view; L is their maximum
    frame_probs: np.ndarray  # (L, C) float32
    view_frame_probs: np.ndarray  # (V, L, C) float32, NaN where the view is in no window
    clip_probs: np.ndarray  # (C,) float32
    windows: list[np.ndarray]  # the T grid indices of each model window
    window_views: list[list[int]]  # the views (0-based) each window ran on
    segments: list[ActionSegment]
    settings: dict[str, Any]  # thresholds (per class), their source, calibrated, min_gap, min_duration, stride
    seconds: float  # wall time of decoding + inference
    warnings: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        """L, grid frames of the clip."""
        return int(self.frame_probs.shape[0])

    @property
    def times(self) -> np.ndarray:
        """(L,) seconds of each grid frame, j / fps."""
        return np.arange(self.length) / self.fps

    def to_json(self) -> dict[str, Any]:
        """Everything as plain JSON (probabilities rounded to 6 decimals)."""
        def plain(values: np.ndarray) -> Any:
            rounded = np.round(values.astype(np.float64), 6).astype(object)
            rounded[np.isnan(values)] = None  # a view's frames outside every window it ran in
            return rounded.tolist()

        return {
            "videos": self.videos, "model": self.model, "classes": self.classes, "fps": self.fps, "length": self.length,
            "duration_s": round(self.length / self.fps, 6), "view_lengths": self.view_lengths,
            "windows": {"count": len(self.windows), "frames": self.num_frames,
                        "rule": "uniform" if self.length <= self.num_frames else "sliding",
                        "stride": self.settings["stride"], "views": self.window_views},
            "aggregation": {"frame": "mean over the windows showing the frame of p(frame_logits)",
                            "clip": "max over windows of p(seq_logits)",
                            "p": "sigmoid(a_c * z + b_c), the checkpoint's calibration, else sigmoid(z)"},
            "settings": self.settings, "seconds": round(self.seconds, 3), "warnings": self.warnings,
            "clip_probs": plain(self.clip_probs), "segments": [s.to_json() for s in self.segments],
            "times": plain(self.times), "frame_probs": plain(self.frame_probs),
            "view_frame_probs": plain(self.view_frame_probs),
        }

    def format(self) -> str:
        """What the clip holds and, per class, the clip probability, threshold and segments."""
        calibrated = "calibrated on validation" if self.settings["calibrated"] else "uncalibrated (sigmoid)"
        lines = [f"{len(self.videos)} views, {self.length} grid frames ({self.length / self.fps:.1f} s at "
                 f"{self.fps:g} FPS), {len(self.windows)} window(s) of T = {self.num_frames}, {self.seconds:.1f} s",
                 f"probabilities {calibrated}; thresholds: {self.settings['threshold_source']}",
                 f"{'class':<16} {'clip p':>7} {'thresh':>7}  segments (s)"]
        for c, name in enumerate(self.classes):
            spans = ", ".join(f"{s.start:.1f}-{s.end:.1f}" for s in self.segments if s.label == name)
            lines.append(f"{name:<16} {self.clip_probs[c]:7.3f} {self.settings['thresholds'][name]:7.3f}  "
                         f"{spans or '-'}")
        return "\n".join(lines)

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_json` atomically; returns the path."""
        path = Path(path)
        write_json_atomic(path, self.to_json())
        return path


def default_stride(num_frames: int) -> int:
    """Window step when none is given: ``max(1, T // 2)`` grid frames."""
    return max(1, num_frames // 2)


def _checked_stride(stride: int | None, num_frames: int) -> int:
    stride = default_stride(num_frames) if stride is None else stride
    if stride < 1:
        raise VicokdError(f"--stride {stride}: must be at least 1 grid frame")
    return stride


def view_count_warning(given: int, meta: CheckpointMeta) -> list[str]:
    """The warning (a list of one, or none) when `given` views differ from the V the checkpoint was
    trained on; `predict` and `stream` give the same."""
    trained = meta.views
    if not trained or given == trained:
        return []
    return [f"{given} views given; the model was trained on clips of {trained} views "
            f"(it runs on any number, but was not tuned for {given})"]


def window_indices(length: int, num_frames: int, stride: int | None = None) -> list[np.ndarray]:
    """The grid indices (T each, int64) of the model windows covering L = `length` frames (rule 2)."""
    if length < 1 or num_frames < 1:
        raise VicokdError(f"windows need at least one grid frame and T >= 1, got L={length}, T={num_frames}")
    stride = _checked_stride(stride, num_frames)
    if length <= num_frames:
        return [sample_indices(length, num_frames, "uniform")]
    starts = list(range(0, length - num_frames + 1, stride))
    if starts[-1] != length - num_frames:
        starts.append(length - num_frames)
    return [np.arange(start, start + num_frames, dtype=np.int64) for start in starts]


def view_end_warning(view: int, length: int, fps: float) -> str:
    """The warning for view `view` (0-based) ending after `length` grid frames while another view goes
    on; `predict` and `stream` give the same words."""
    return (f"view {view + 1} ends after {length} grid frames ({length / fps:.1f} s), before the other views: "
            "left out of the windows past its end")


def window_views(frames: np.ndarray, view_lengths: Sequence[int]) -> list[int]:
    """The views (0-based) that have every grid frame of a window (its T indices): a view of
    ``view_lengths[v]`` grid frames has frames 0 .. length − 1."""
    last = int(np.max(frames))
    return [v for v, length in enumerate(view_lengths) if length > last]


def _grid_lengths(videos: list[Path], fps: float, rule: GridRule) -> tuple[list[int], list[str]]:
    """Grid length of every view and a warning per view that ends before the longest (L = the maximum)."""
    lengths = [probe_video(path).grid_length(fps, rule) for path in videos]
    if max(lengths) < 1:
        raise DataError(f"{', '.join(map(str, videos))}: " + ("video has no frames" if len(videos) == 1
                                                              else "no view has any frames"))
    return lengths, [view_end_warning(v, n, fps) for v, n in enumerate(lengths) if n < max(lengths)]


@torch.inference_mode()
def window_probabilities(
    model: MultiViewActionModel,
    frames: torch.Tensor,
    decisions: Decisions,
    num_frames: int,
    stride: int,
    batch_size: int = 4,
    progress: bool = False,
    view_lengths: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray], list[list[int]]]:
    """Probabilities of every grid frame of uint8 `frames` (V, L, 3, H, W) from windows of T.

    `view_lengths` (default: L each) are the grid frames each view really has (the rest of its
    rows is padding); a window runs on the views that have all its frames (:func:`window_views`).
    Returns frame (L, C) and per-view (V, L, C) probabilities, each the mean over the windows
    that show the frame (per view: that the view is in; NaN where none), the clip's (C,) (max
    over windows of the sequence output), the windows (:func:`window_indices`) and the views of
    each. Probabilities are those of `decisions` (the calibrated σ(a_c·z + b_c), else σ(z)).
    """
    views, length = frames.shape[:2]
    windows = window_indices(length, num_frames, stride)
    used = [window_views(w, view_lengths or [length] * views) for w in windows]
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()

    probabilities = decisions.probabilities
    classes = decisions.classes
    frame_sum = torch.zeros(length, len(classes), dtype=torch.float64)
    view_sum = torch.zeros(views, length, len(classes), dtype=torch.float64)
    count = torch.zeros(length, dtype=torch.float64)
    view_count = torch.zeros(views, length, dtype=torch.float64)
    clip_probs = torch.zeros(len(classes), dtype=torch.float64)
    batches = []  # up to batch_size windows that run on the same views
    for subset in dict.fromkeys(map(tuple, used)):
        same = [w for w, u in zip(windows, used) if tuple(u) == subset]
        batches += [(list(subset), same[i : i + batch_size]) for i in range(0, len(same), batch_size)]
    for subset, batch in tqdm(batches, desc="predict", unit="batch", disable=not progress, leave=False):
        index = torch.from_numpy(np.stack(batch))  # (B, T)
        chosen = torch.tensor(subset)[:, None]  # (V', 1): one gather of the window's views and frames
        video = torch.stack([frames[chosen, i] for i in index]).to(device)  # (B, V', T, 3, H, W) uint8
        out = model({"video": video})  # the model normalises its uint8 input
        frame_p = probabilities(out.frame_logits).double().cpu()  # (B, T, C)
        view_p = probabilities(out.view_frame_logits).double().cpu()  # (B, V', T, C)
        ones = torch.ones(index.shape[1], dtype=torch.float64)
        for row, idx in enumerate(index):
            frame_sum.index_add_(0, idx, frame_p[row])
            count.index_add_(0, idx, ones)
            for k, v in enumerate(subset):
                view_sum[v].index_add_(0, idx, view_p[row, k])
                view_count[v].index_add_(0, idx, ones)
        clip_probs = torch.maximum(clip_probs, probabilities(out.seq_logits).double().cpu().amax(0))
    view_probs = view_sum / view_count[..., None]  # 0 / 0 = NaN where a view is in no window
    return ((frame_sum / count[:, None]).float().numpy(), view_probs.float().numpy(),
            clip_probs.float().numpy(), windows, used)


def predict_clip(
    model: MultiViewActionModel,
    meta: CheckpointMeta,
    videos: Sequence[str | Path],
    *,
    threshold: float | None = None,
    min_gap: float = DEFAULT_MIN_GAP,
    min_duration: float = DEFAULT_MIN_DURATION,
    stride: int | None = None,
    batch_size: int = 4,
    grid: GridRule | None = None,
    progress: bool = False,
) -> Prediction:
    """Run `model` over one recording of V = ``len(videos)`` views (rules in the module docstring).

    `meta` is the checkpoint's (:class:`~vicokd.models.checkpoint.CheckpointMeta`): its
    ``config`` gives fps, T and image size, its ``classes`` the class names, its
    ``calibration`` (when training had a validation split) the per-class scaling of the reported
    probabilities and the per-class segment thresholds; `threshold` replaces those thresholds
    by one for every class (default without a calibration: :data:`DEFAULT_THRESHOLD`).
    `grid` replaces the checkpoint's ``data.grid`` (which decoded frame is grid frame j).
    The model runs on its own device, in eval mode, `batch_size` windows per call; `progress`
    shows bars for decoding and for the windows when the clip is longer than T.
    """
    started = time.perf_counter()
    if not videos:
        raise VicokdError("predict needs at least one video (one per view)")
    if batch_size < 1:
        raise VicokdError(f"--batch-size {batch_size}: must be at least 1")
    config = meta.config.data
    rule = grid or config.grid
    classes = list(meta.classes)
    decisions = Decisions.from_meta(meta, threshold, min_gap=min_gap, min_duration=min_duration)
    stride = _checked_stride(stride, config.num_frames)
    paths = [Path(v) for v in videos]
    lengths, warnings = _grid_lengths(paths, config.fps, rule)
    warnings += view_count_warning(len(paths), meta)
    length = max(lengths)
    bars = progress and length > config.num_frames
    frames = torch.zeros((len(paths), length, *config.image_size, 3), dtype=torch.uint8)  # past a view's end: unused
    for v, path in enumerate(tqdm(paths, desc="decode", unit="view", disable=not bars, leave=False)):
        if lengths[v]:
            frames[v, : lengths[v]] = torch.from_numpy(read_grid_frames(
                path, config.image_size, config.fps, length=lengths[v], rule=rule, warnings=warnings))
    frames = frames.permute(0, 1, 4, 2, 3)  # (V, L, 3, H, W) uint8
    frame_probs, view_probs, clip_probs, windows, used = window_probabilities(
        model, frames, decisions, config.num_frames, stride, batch_size, bars, lengths)
    settings = {**decisions.settings(), "stride": stride}
    return Prediction(
        videos=[str(p) for p in paths],
        model={key: getattr(meta, key) for key in ("method", "role", "model_hash", "epoch")},
        classes=classes, fps=config.fps, num_frames=config.num_frames,
        view_lengths=lengths, frame_probs=frame_probs, view_frame_probs=view_probs, clip_probs=clip_probs,
        windows=windows, window_views=used,
        segments=decisions.segments(frame_probs),
        settings=settings, seconds=time.perf_counter() - started, warnings=warnings,
    )


SEGMENT_IOU = 0.5  # a predicted segment is a hit at temporal IoU >= 0.5 with a true one of its class


def segment_f1(model: MultiViewActionModel, meta: CheckpointMeta, index: CacheIndex, keys: Sequence[str],
               stride: int | None = None) -> dict[str, float | None]:
    """Segment-level F1 per class of a student on cached clips, at the checkpoint's decisions.

    Each clip runs as ``predict`` runs it (every grid frame, windows of T, the calibrated
    probabilities and per-class thresholds, default merge rules); a predicted segment covers its
    grid frames [a/fps, (b+1)/fps). Per class, over all clips: ``F1 = 2·TP / (predicted + true)``
    with TP from :func:`vicokd.metrics.matched_segments` at IoU ≥ :data:`SEGMENT_IOU`; None for a
    class without true segments.
    """
    data = meta.config.data
    classes = list(meta.classes)
    decisions = Decisions.from_meta(meta)
    stride = _checked_stride(stride, data.num_frames)
    hits = np.zeros(len(classes))
    predicted = np.zeros(len(classes))
    true = np.zeros(len(classes))
    for key in keys:
        clip = index.clips[key]
        with catch_warnings():  # a read-only memory map, only ever read: torch's warning says nothing
            filterwarnings("ignore", message="The given NumPy array is not writable")
            frames = torch.from_numpy(np.asarray(load_frames(index.root, key)))
        frame_probs = window_probabilities(model, frames, decisions, data.num_frames, stride)[0]
        segments = decisions.segments(frame_probs)
        for c, name in enumerate(classes):
            mine = [(s.start, s.end + 1 / data.fps, s.score) for s in segments if s.label == name]
            truth = [(float(t["start"]), float(t["end"])) for t in clip.segments if name in t["labels"]]
            hits[c] += matched_segments(mine, truth, SEGMENT_IOU)
            predicted[c] += len(mine)
            true[c] += len(truth)
    return {name: (float(2 * hits[c] / (predicted[c] + true[c])) if true[c] else None)
            for c, name in enumerate(classes)}
