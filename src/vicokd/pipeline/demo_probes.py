"""What the demo report measures by running trained models: the share of a visual encoder's attention
on the actor (against the simulator's mask), and how far two views' frame distributions are apart
where view consistency acts. The report (:mod:`vicokd.pipeline.demo_report`) writes them as text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vicokd.data.cache import load_images
from vicokd.data.person_scores import person_mask
from vicokd.methods import vc_probabilities
from vicokd.models import MultiViewActionModel
from vicokd.models.checkpoint import model_from_checkpoint
from vicokd.pipeline.demo_options import DemoOptions
from vicokd.pipeline.pretrain import clip_keys
from vicokd.report.attention import attention_inside
from vicokd.synthetic.generate import plan_dataset
from vicokd.synthetic.targets import clip_targets

__all__ = ["ACTOR_STRIDE", "actor_frames", "attention_grid", "attention_on_actor", "view_pair_divergence"]

ACTOR_STRIDE = 4  # every 4th grid frame of each test clip for the attention-on-the-actor share


def attention_grid(model: MultiViewActionModel, image_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the patch grid of `model`'s visual attention on images of `image_size` (H, W)."""
    model.eval()
    with torch.no_grad():
        return tuple(model.visual_attention(torch.zeros(1, 3, *image_size, dtype=torch.uint8)).shape[-2:])


def attention_on_actor(model: MultiViewActionModel, frames: np.ndarray, coverage: np.ndarray) -> tuple[float, float]:
    """The share of `model`'s last-block CLS attention on uint8 images `frames` (N, H, W, 3) that falls
    on the actor, whose patch coverage is `coverage` (N, h, w); and the share uniform attention would
    give (:func:`vicokd.report.attention.attention_inside`)."""
    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    model.eval()
    with torch.no_grad():
        maps = torch.cat([model.visual_attention(chunk) for chunk in video.split(1024)]).float().numpy()
    return attention_inside(maps, coverage)


def actor_frames(options: DemoOptions, cache: Path, test: set[str], grid: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 test frames (N, H, W, 3) in which the actor is visible, and the actor's patch coverage
    (N, h, w) on `grid`, from the simulator (every :data:`ACTOR_STRIDE`-th grid frame, each view)."""
    env = next(e for e in options.envs() if e.cache == cache)
    synth = options.synth_options(env.name)
    _, jobs = plan_dataset(synth)
    frames, coverage = [], []
    for job, key in zip(jobs, clip_keys(synth, env.root)):
        if key not in test:
            continue
        images = load_images(cache, key)  # (V, L, H, W, 3)
        mask = clip_targets(job.home, job.script, synth.size, synth.fps, grid)["mask"]  # (V, L', h, w)
        for j in range(0, min(images.shape[1], mask.shape[1]), ACTOR_STRIDE):
            for v in np.flatnonzero(mask[:, j].sum(axis=(1, 2)) > 0):
                frames.append(np.asarray(images[v, j]))
                coverage.append(mask[v, j])
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8), np.zeros((0, *grid), np.float32)
    return np.stack(frames), np.stack(coverage)


def view_pair_divergence(config: Any, checkpoint: str, teacher: bool) -> dict[str, float]:
    """Mean JS between two views' frame distributions on the test split (what VC compares), by the pair's
    person masks: both on (co-visible: where VC acts), exactly one on, neither."""
    from vicokd.losses.view_consistency import pair_confidence, pair_divergences
    from vicokd.training.datamodule import ClipsDataModule

    model, _ = model_from_checkpoint(checkpoint)
    model.eval()
    data = ClipsDataModule(config, load_audio=teacher, person=True)
    sums = {"both": [0.0, 0], "one": [0.0, 0], "neither": [0.0, 0], "weight_both": [0.0, 0]}
    with torch.no_grad():
        for batch in data.test_dataloader():
            probs = vc_probabilities(model(batch).view_frame_logits, config.distill)
            js, first, second = pair_divergences(probs, multilabel=config.distill.distribution == "sigmoid")
            mask = person_mask(batch["person"], config.data.person_threshold)
            m_i, m_j = mask[:, first], mask[:, second]
            weight = pair_confidence(probs, first, second)  # Eq. 10's w
            for name, chosen, values in (("both", m_i & m_j, js), ("one", m_i ^ m_j, js),
                                         ("neither", ~(m_i | m_j), js), ("weight_both", m_i & m_j, weight)):
                sums[name][0] += float(values[chosen].sum())
                sums[name][1] += int(chosen.sum())
    return {name: (total / count if count else float("nan")) for name, (total, count) in sums.items()} | {
        f"pairs_{name}": count for name, (_, count) in sums.items() if name != "weight_both"}
