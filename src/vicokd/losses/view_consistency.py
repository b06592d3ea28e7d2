"""View-aware consistency (Eq. 9-10): agreement of the class distributions of views that both see
a person at the same frame, weighted by how confident both views are.

For probabilities ``p`` (B, V, T, C) (each row over C sums to 1) and person masks ``m`` (B, V, T) in
{0, 1}, over the ``N_pairs = V(V−1)/2`` view pairs i < j:

    JS(p, q)    = ½ KL(p ‖ μ) + ½ KL(q ‖ μ),   μ = ½ (p + q),   KL(p ‖ q) = Σ_c p_c (log p_c − log q_c)
    w_t^{(i,j)} = max_c p_{i,t,c} · max_c p_{j,t,c}                                          (Eq. 9)
    L_VC        = 1/(N_pairs·T) Σ_{i<j} Σ_t w_t^{(i,j)} m_{i,t} m_{j,t} JS(p_{i,t}, p_{j,t})   (Eq. 10)

computed per sample and averaged over B. The normaliser is ``N_pairs·T`` whatever the masks are,
exactly as Eq. 10. Options (the paper's ablations and one choice it does not state):

* ``divergence="kl"`` replaces JS by ``KL(p_i ‖ p_j)`` for i < j (asymmetric: then the loss depends
  on the view order);
* ``confidence_weighting=False`` sets ``w = 1``;
* ``use_mask=False`` sets ``m = 1``;
* ``detach_weights`` (the paper is silent): when true, ``w`` is a constant for the gradient, so the
  loss only pulls the distributions together and cannot be lowered by making views less confident;
* ``multilabel=True`` (beyond the paper): ``p`` holds per-class probabilities (each class an
  independent Bernoulli, rows need not sum to 1), and the divergence of a pair at frame t is the
  mean over classes of JS (or KL) between ``Bern(p_{i,t,c})`` and ``Bern(p_{j,t,c})``; ``w`` keeps
  Eq. 9's form, ``max_c p_{i,t,c} · max_c p_{j,t,c}``, on these probabilities.

What the paper leaves open, and the caller decides: how ``p_{n,t}`` is formed from the logits (a
softmax over classes, or a sigmoid per class) and at which temperature (``distill.vc_tau``).
A softmax of two-way-loss logits is nearly flat, so JS ≈ 0 and ``w`` ≈ 1/C²; see
:mod:`vicokd.methods`.

Logarithms use probabilities clamped at 1e-12, so zeros in ``p`` give finite values and gradients.
V = 1 has no pair and gives 0 (in the graph).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from vicokd.losses._common import promote

_EPS = 1e-12


def _kl(p: Tensor, q: Tensor) -> Tensor:
    """``KL(p ‖ q)`` over the last axis, with log arguments clamped at ``_EPS``."""
    return (p * (p.clamp(min=_EPS).log() - q.clamp(min=_EPS).log())).sum(dim=-1)


def _js(p: Tensor, q: Tensor) -> Tensor:
    """Jensen-Shannon divergence over the last axis (natural log, so at most log 2)."""
    mid = 0.5 * (p + q)
    return 0.5 * _kl(p, mid) + 0.5 * _kl(q, mid)


def _bernoulli(p: Tensor) -> Tensor:
    """Per-class probabilities (..., C) → the two-outcome distributions (..., C, 2) = (p, 1 − p)."""
    return torch.stack([p, 1.0 - p], dim=-1)


def pair_divergences(probs: Tensor, divergence: Literal["js", "kl"] = "js", multilabel: bool = False
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """Divergence of every view pair i < j at every frame: (B, N_pairs, T), and the pairs' view indices.

    `probs` (B, V, T, C) as in :func:`view_consistency_loss`; JS (or ``KL(p_i ‖ p_j)``) over classes,
    or with `multilabel` the mean over classes of the Bernoulli divergences. Returns
    ``(divergences, first, second)`` with ``first[k] < second[k]`` the views of pair k.
    """
    if divergence not in ("js", "kl"):
        raise ValueError(f"divergence must be 'js' or 'kl', got {divergence!r}")
    p = promote(probs)
    first, second = torch.triu_indices(p.shape[1], p.shape[1], offset=1, device=p.device)
    p_i, p_j = p[:, first], p[:, second]  # (B, N_pairs, T, C)
    divergence_of = _js if divergence == "js" else _kl
    # multilabel: the Bernoulli (p, 1 − p) of every class on a new last axis, then the mean over classes
    terms = (divergence_of(_bernoulli(p_i), _bernoulli(p_j)).mean(dim=-1) if multilabel
             else divergence_of(p_i, p_j))
    return terms, first, second


def pair_confidence(probs: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """The confidence weight of Eq. 10 for view pairs (`first`, `second`): ``w = max_c p_i · max_c p_j``,
    (B, V, T, C) → (B, N_pairs, T)."""
    return probs[:, first].amax(dim=-1) * probs[:, second].amax(dim=-1)


def view_consistency_loss(
    probs: Tensor,
    mask: Tensor,
    *,
    divergence: Literal["js", "kl"] = "js",
    confidence_weighting: bool = True,
    detach_weights: bool = True,
    use_mask: bool = True,
    multilabel: bool = False,
) -> Tensor:
    """View-aware consistency loss of `probs` (B, V, T, C) under person `mask` (B, V, T) → scalar.

    `mask` may be bool or float in {0, 1}. See the module docstring for the equation and options.
    """
    if probs.ndim != 4:
        raise ValueError(f"probs must be (B, V, T, C), got shape {tuple(probs.shape)}")
    batch, views, frames, _ = probs.shape
    if tuple(mask.shape) != (batch, views, frames):
        raise ValueError(f"mask must be (B, V, T) = {(batch, views, frames)}, got {tuple(mask.shape)}")
    p = promote(probs)
    terms, first, second = pair_divergences(p, divergence, multilabel)  # (B, N_pairs, T)
    if confidence_weighting:
        weight = pair_confidence(p, first, second)
        terms = terms * (weight.detach() if detach_weights else weight)
    if use_mask:
        m = mask.to(p.dtype)
        terms = terms * m[:, first] * m[:, second]
    return terms.sum() / max(batch * first.numel() * frames, 1)
