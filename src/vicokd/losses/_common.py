"""Shared tensor helpers of the loss functions (private)."""

from __future__ import annotations

import torch
from torch import Tensor


def promote(tensor: Tensor) -> Tensor:
    """Return `tensor` in float32 when it is a lower-precision float (or an integer/bool), else as is.

    Losses are computed in at least float32 so that bf16/fp16 activations under mixed precision do
    not lose the small differences (logsumexp margins, JS of close distributions) they measure.
    """
    if tensor.dtype in (torch.float32, torch.float64):
        return tensor
    return tensor.float()


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ``ValueError`` naming both tensors when their shapes differ."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} must have the same shape")


def masked_mean(values: Tensor, keep: Tensor) -> Tensor:
    """Mean of `values` over the entries where `keep` is true; 0 (still in the graph) when none is.

    Computed as ``Σ where(keep, values, 0) / max(Σ keep, 1)``: no host synchronisation, and the
    dropped entries receive an exact zero gradient.
    """
    total = torch.where(keep, values, torch.zeros_like(values)).sum()
    return total / keep.sum().clamp(min=1).to(values.dtype)
