"""Pretrain a visual or audio encoder per frame on what a simulator knows (no action labels).

The encoder is the timm network of ``model.visual`` (the one `build_visual_encoder` makes) on
frames, or the AST of ``model.audio`` (``kind: ast``, the one `build_audio_encoder` makes) on
fbank chunks; small heads on top of it predict per-frame target groups, each a matrix (N, k) of
values in [0, 1] with a weight per frame (0 = the frame does not count for that group):

* a **pooled** group (``visible``, ``pose``, ``props``, ...) is predicted by ``Linear(width → k)``
  from the pooled feature, the feature a frozen encoder hands to the model downstream;
* a **patch** group (``mask``, ``foreground``: k = patches) is predicted per patch token by
  ``Linear(width → 1)`` (``mask_head="tokens"``, ViT-style encoders only) or from the pooled
  feature by ``Linear(width → k)`` (``mask_head="pooled"``).

Loss: per group the weighted mean over frames and columns of the binary cross-entropy with
logits against the (soft) targets; the total is the plain sum over groups. AdamW, linear
warm-up then cosine decay, over shuffled frames; the batch order of epoch e is drawn from
``(seed, e)``, so a run resumed from its last epoch's state ends with the same weights.

A state after every epoch (encoder, heads, optimiser, history) is written with
:func:`vicokd.training.checkpoint_io.save_tree` (safetensors + JSON, no pickle); the encoder alone is
saved as a plain timm (or ``ASTModel``) state dict in a .safetensors file, loadable through
``model.visual.pretrained`` (``model.audio.pretrained``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from vicokd.config import AudioEncoderConfig, VisualEncoderConfig, replace
from vicokd.errors import VicokdError
from vicokd.io import write_safetensors
from vicokd.models.audio_encoder import ASTEncoder, build_audio_encoder
from vicokd.models.checkpoint import load_tree, save_tree
from vicokd.models.model import normalize_video
from vicokd.models.visual_encoder import build_visual_encoder

PATCH_GROUPS = ("mask", "foreground")  # one column per patch, predicted per patch token with mask_head="tokens"
STATE_VERSION = 1


@dataclass(frozen=True)
class TargetGroup:
    """One target group over N frames: values (N, k) in [0, 1], weight (N,) ≥ 0, column names."""

    name: str
    values: np.ndarray
    weight: np.ndarray
    columns: tuple[str, ...]


@dataclass(frozen=True)
class PretrainData:
    """Inputs with their target groups; `val` marks held-out frames.

    `frames` are images (N, 3, H, W) uint8 for a visual encoder, or normalised fbank chunks
    (N, R, M) float16 / float32 for an audio encoder.
    """

    frames: np.ndarray
    groups: tuple[TargetGroup, ...]
    val: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.frames)
        for group in self.groups:
            if group.values.shape[0] != n or group.weight.shape != (n,):
                raise ValueError(f"target group {group.name!r}: {group.values.shape} values / "
                                 f"{group.weight.shape} weights for {n} frames")


@dataclass(frozen=True)
class PretrainSettings:
    """Optimisation of :func:`pretrain_encoder`."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 0.5
    seed: int = 0
    mask_head: str = "tokens"  # tokens | pooled
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    extra: dict[str, Any] = field(default_factory=dict)  # recorded only

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise VicokdError(f"pretraining needs epochs >= 1 and batch size >= 1 (got {self.epochs}, "
                              f"{self.batch_size})")
        if self.mask_head not in ("tokens", "pooled"):
            raise VicokdError(f"mask head {self.mask_head!r}: choose tokens or pooled")


class PretrainHeads(nn.Module):
    """Linear heads on an encoder's pooled feature (and patch tokens for ``mask``)."""

    def __init__(self, width: int, groups: tuple[TargetGroup, ...], mask_head: str) -> None:
        super().__init__()
        self.mask_head = mask_head
        self.heads = nn.ModuleDict()
        for group in groups:
            tokens = group.name in PATCH_GROUPS and mask_head == "tokens"
            self.heads[group.name] = nn.Linear(width, 1 if tokens else group.values.shape[1])

    def forward(self, net: nn.Module, inputs: Tensor) -> dict[str, Tensor]:
        """Logits per group: (N, k)."""
        if isinstance(net, ASTEncoder):
            tokens, pooled = None, net(inputs)
        else:
            tokens = net.forward_features(inputs)
            pooled = net.forward_head(tokens, pre_logits=True)
        out = {}
        for name, head in self.heads.items():
            if name in PATCH_GROUPS and self.mask_head == "tokens":
                out[name] = head(tokens[:, net.num_prefix_tokens:]).squeeze(-1)
            else:
                out[name] = head(pooled)
        return out


def patch_grid(net: nn.Module, image_size: tuple[int, int]) -> tuple[int, int]:
    """The (rows, cols) patch grid of a ViT-style timm model on images of `image_size` (H, W)."""
    embed = getattr(net, "patch_embed", None)
    if embed is None or not hasattr(net, "num_prefix_tokens"):
        raise VicokdError(f"a patch-level target needs a ViT-style timm encoder, not {type(net).__name__}")
    if hasattr(embed, "dynamic_feat_size"):
        return tuple(int(v) for v in embed.dynamic_feat_size(tuple(image_size)))  # type: ignore[return-value]
    return tuple(int(v) for v in embed.grid_size)  # type: ignore[return-value]


def build_encoder_net(config: VisualEncoderConfig | AudioEncoderConfig) -> nn.Module:
    """The timm network (or :class:`ASTEncoder`) of `config`, its pretrained weights if set, every block
    trainable (a run's ``trainable_blocks`` is about fine-tuning, not pretraining)."""
    if isinstance(config, AudioEncoderConfig):
        if config.kind != "ast":
            raise VicokdError(f"model.audio.kind: pretraining needs an AST encoder, not {config.kind!r}")
        return build_audio_encoder(replace(config, freeze=False), dim=1).net
    return build_visual_encoder(replace(config, freeze=False, trainable_blocks=None), dim=1).net


def _width(net: nn.Module) -> int:
    if isinstance(net, ASTEncoder):
        return int(net.model.config.hidden_size)
    return getattr(net, "head_hidden_size", None) or net.num_features


def _group_loss(logits: Tensor, values: Tensor, weight: Tensor) -> Tensor:
    per = F.binary_cross_entropy_with_logits(logits, values, reduction="none").mean(dim=1)
    return (per * weight).sum() / weight.sum().clamp_min(1.0)


def _batches(indices: np.ndarray, size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    order = indices[rng.permutation(len(indices))] if rng is not None else indices
    return [order[i:i + size] for i in range(0, len(order), size)]


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def save_encoder(net: nn.Module, path: str | Path) -> Path:
    """The timm network's (the ``ASTModel``'s) state dict as a .safetensors file (temporary file, then rename)."""
    path = Path(path)
    state = (net.model if isinstance(net, ASTEncoder) else net).state_dict()
    return write_safetensors({k: v.detach().cpu().contiguous() for k, v in state.items()}, path)


class _Evaluator:
    """Weighted BCE per group on the held-out frames, and accuracy of the 0.5 threshold."""

    def __init__(self, data: PretrainData, settings: PretrainSettings) -> None:
        self.data, self.settings = data, settings
        self.indices = np.flatnonzero(data.val)

    @torch.no_grad()
    def __call__(self, net: nn.Module, heads: PretrainHeads) -> dict[str, float]:
        if len(self.indices) == 0:
            return {}
        net.eval()
        sums: dict[str, list[float]] = {}
        for batch in _batches(self.indices, 512, None):
            logits = heads(net, _inputs(self.data, batch, self.settings))
            for group in self.data.groups:
                values = torch.from_numpy(group.values[batch])
                weight = torch.from_numpy(group.weight[batch])
                bce = F.binary_cross_entropy_with_logits(logits[group.name], values, reduction="none").mean(1)
                hit = ((logits[group.name] > 0) == (values > 0.5)).float().mean(1)
                acc = sums.setdefault(group.name, [0.0, 0.0, 0.0])
                acc[0] += float((bce * weight).sum())
                acc[1] += float((hit * weight).sum())
                acc[2] += float(weight.sum())
        net.train()
        out = {}
        for name, (loss, hit, total) in sums.items():
            out[f"{name}_loss"] = loss / max(total, 1e-9)
            out[f"{name}_acc"] = hit / max(total, 1e-9)
        return out


def _inputs(data: PretrainData, batch: np.ndarray, settings: PretrainSettings) -> Tensor:
    """The encoder's input for `batch`: normalised images, or the fbank chunks as float32."""
    rows = torch.from_numpy(data.frames[np.sort(batch)])
    if rows.dtype == torch.uint8:
        return normalize_video(rows, settings.mean, settings.std)
    return rows.float()


def pretrain_encoder(config: VisualEncoderConfig | AudioEncoderConfig, data: PretrainData, settings: PretrainSettings,
                     state_path: str | Path, *, progress: bool = True,
                     echo: Callable[[str], None] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train the encoder of `config` on `data` (see the module docstring).

    Resumes from `state_path` when it holds a state of the same run (its epochs are kept);
    returns the trained network (:func:`build_encoder_net`) and a history ``{"epochs": [...], "seconds": ...}``.
    """
    settings.validate()
    echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
    torch.manual_seed(settings.seed)
    net = build_encoder_net(config)
    heads = PretrainHeads(_width(net), data.groups, settings.mask_head)
    params = [*net.parameters(), *heads.parameters()]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)
    train_idx = np.flatnonzero(~data.val)
    if len(train_idx) == 0:
        raise VicokdError("pretraining: no training frames")
    steps_per_epoch = math.ceil(len(train_idx) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    warmup = max(1, round(settings.warmup_epochs * steps_per_epoch))
    identity = {"version": STATE_VERSION, "groups": [[g.name, list(g.columns)] for g in data.groups],
                "frames": len(data.frames), "val_frames": int(data.val.sum()),
                "settings": {k: list(v) if isinstance(v, tuple) else v
                             for k, v in settings.__dict__.items() if k != "extra"}}
    history: dict[str, Any] = {"epochs": [], "seconds": 0.0}
    start_epoch = 0
    state_path = Path(state_path)
    if state_path.is_file():
        state = load_tree(state_path)
        if state.get("identity") == identity:
            net.load_state_dict(state["net"])
            heads.load_state_dict(state["heads"])
            optimizer.load_state_dict(state["optimizer"])
            history = state["history"]
            start_epoch = len(history["epochs"])
            echo(f"resuming pretraining after epoch {start_epoch} of {settings.epochs} ({state_path})")
        else:
            echo(f"note: {state_path} belongs to another pretraining run; starting afresh")
    evaluate = _Evaluator(data, settings)
    tensors = {g.name: (torch.from_numpy(g.values), torch.from_numpy(g.weight)) for g in data.groups}
    net.train()
    heads.train()
    for epoch in range(start_epoch, settings.epochs):
        started = time.perf_counter()
        rng = np.random.default_rng([settings.seed, epoch])
        sums = {g.name: 0.0 for g in data.groups}
        count = 0
        bar = tqdm(_batches(train_idx, settings.batch_size, rng), desc=f"pretrain {epoch + 1}/{settings.epochs}",
                   unit="batch", disable=not progress, file=sys.stderr, leave=False)
        for i, batch in enumerate(bar):
            batch = np.sort(batch)
            step = epoch * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * _lr_factor(step, total, warmup)
            logits = heads(net, _inputs(data, batch, settings))
            index = torch.from_numpy(batch)
            losses = {name: _group_loss(logits[name], values[index], weight[index])
                      for name, (values, weight) in tensors.items()}
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise VicokdError(f"pretraining: non-finite loss at epoch {epoch + 1}, step {i} "
                                  f"({ {k: float(v) for k, v in losses.items()} }); try a lower lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            for name, value in losses.items():
                sums[name] += float(value.detach()) * len(batch)
            count += len(batch)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        bar.close()
        record = {"epoch": epoch + 1, "train": {k: v / count for k, v in sums.items()},
                  "val": evaluate(net, heads), "seconds": round(time.perf_counter() - started, 2)}
        record["train"]["loss"] = sum(record["train"].values())
        history["epochs"].append(record)
        history["seconds"] = round(history["seconds"] + record["seconds"], 2)
        save_tree({"identity": identity, "net": net.state_dict(), "heads": heads.state_dict(),
                   "optimizer": optimizer.state_dict(), "history": history}, state_path)
        val = record["val"]
        shown = ", ".join(f"{g.name} {val[f'{g.name}_loss']:.3f}" for g in data.groups if f"{g.name}_loss" in val)
        echo(f"pretrain epoch {epoch + 1}/{settings.epochs}: train loss {record['train']['loss']:.3f}"
             + (f"; val {shown}" if shown else "") + f" ({record['seconds']:.1f} s)")
    net.eval()
    return net, history
