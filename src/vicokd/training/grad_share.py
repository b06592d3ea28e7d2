"""Gradient shares: how much each weighted loss term actually trains each part of the model.

A term can be present in the loss yet inert (its gradient is negligible next to the others).
Every ``train.grad_share_every`` steps the training module takes, for each weighted term
``w_k · L_k``, the norm of its gradient on each group of trainable parameters::

    g_{k,G} = ‖ ∂(w_k L_k) / ∂θ_G ‖₂            θ_G: the parameters of group G
    g_k     = sqrt(Σ_G g_{k,G}²)                 the term's norm on all trainable parameters
    share_k = g_k / Σ_j g_j                      its share of the summed term norms

Groups (:func:`parameter_groups`): ``visual`` (visual encoder), ``audio`` (audio encoder, the
teacher only), ``cross_modal`` (adapter + cross-modal attention), ``backbone`` (temporal / view
fusion) and ``heads`` (the backbone's output heads, ``head_modules`` of its class). The norms are
logged as ``grad/<term>/<group>`` (metrics.csv, TensorBoard); :func:`summarize` turns those rows into
each term's mean share over the run, and per group ``share_{k,G} = g_{k,G} / Σ_j g_{j,G}``.
A measurement costs one extra backward pass per term.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

INERT_SHARE = 0.01  # a term under 1 % of the summed term gradient norms is called inert
_PREFIX_GROUPS = (("visual_encoder.", "visual"), ("audio_encoder.", "audio"), ("adapter.", "cross_modal"),
                  ("cross_attention.", "cross_modal"), ("attention_gate", "cross_modal"))


def parameter_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The trainable parameters of a :class:`~vicokd.models.MultiViewActionModel`, by group.

    Groups with no trainable parameter (a frozen encoder) are left out.
    """
    heads = tuple(f"backbone.{name}." for name in getattr(getattr(model, "backbone", None), "head_modules", ()))
    groups: dict[str, list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        group = next((g for prefix, g in _PREFIX_GROUPS if name.startswith(prefix)), None)
        if group is None:
            group = "heads" if name.startswith(heads) else "backbone"
        groups.setdefault(group, []).append(parameter)
    return groups


def term_gradient_norms(weighted_terms: Mapping[str, Tensor], groups: Mapping[str, list[nn.Parameter]]
                        ) -> dict[str, dict[str, float]]:
    """``{term: {group: g_{k,G}}}`` for each weighted term (the graph is kept for the real backward)."""
    params = [p for members in groups.values() for p in members]
    norms: dict[str, dict[str, float]] = {}
    for term, value in weighted_terms.items():
        if not value.requires_grad:
            norms[term] = dict.fromkeys(groups, 0.0)
            continue
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        squares = iter([0.0 if g is None else float(g.detach().float().square().sum()) for g in grads])
        norms[term] = {group: math.sqrt(sum(next(squares) for _ in members)) for group, members in groups.items()}
    return norms


def _shares(values: Mapping[str, float]) -> dict[str, float]:
    total = sum(values.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in values.items()}


def summarize(metrics_csv: str | Path) -> dict[str, Any]:
    """Mean gradient shares over the measured steps of a run's ``metrics.csv``.

    Returns ``{"steps": n, "share": {term: mean share_k}, "share_by_group": {group: {term: mean
    share_{k,G}}}}``; empty shares when nothing was measured.
    """
    path = Path(metrics_csv)
    rows = []
    if path.is_file():
        with path.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if any(k.startswith("grad/") and row[k] for k in row)]
    share_sums: dict[str, float] = {}
    group_sums: dict[str, dict[str, float]] = {}
    for row in rows:
        norms: dict[str, dict[str, float]] = {}
        for key, text in row.items():
            if key.startswith("grad/") and text:
                _, term, group = key.split("/")
                norms.setdefault(term, {})[group] = float(text)
        totals = {term: math.sqrt(sum(v * v for v in by_group.values())) for term, by_group in norms.items()}
        for term, share in _shares(totals).items():
            share_sums[term] = share_sums.get(term, 0.0) + share
        for group in {g for by_group in norms.values() for g in by_group}:
            per_term = _shares({term: by_group.get(group, 0.0) for term, by_group in norms.items()})
            for term, share in per_term.items():
                group_sums.setdefault(group, {})
                group_sums[group][term] = group_sums[group].get(term, 0.0) + share
    n = max(len(rows), 1)
    return {"steps": len(rows),
            "share": {term: total / n for term, total in share_sums.items()},
            "share_by_group": {g: {t: v / n for t, v in terms.items()} for g, terms in group_sums.items()}}


def format_shares(summary: Mapping[str, Any]) -> list[str]:
    """One line with every term's share, then one line per inert term (under :data:`INERT_SHARE`)."""
    shares = summary.get("share") or {}
    if not shares:
        return []
    ordered = sorted(shares.items(), key=lambda item: -item[1])
    lines = ["gradient share: " + ", ".join(f"{term} {100 * share:.1f} %" for term, share in ordered)
             + f" (mean of {summary.get('steps', 0)} measured steps)"]
    lines += [f"{term}: {100 * share:.2g} % of the gradient: inert" for term, share in ordered if share < INERT_SHARE]
    return lines
