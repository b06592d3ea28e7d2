"""Distillation losses between a frozen teacher and a student: features (Eq. 7), logits (Eq. 8)
and the ModalKD baseline's encoder-feature loss.

Shapes: B batch, V views, T frames, C classes, D feature width. Every teacher tensor is detached
here, so a teacher never receives a gradient through these losses even if it was not frozen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vicokd.losses._common import check_same_shape, promote


def feature_distillation_loss(student_feats: Sequence[Tensor], teacher_feats: Sequence[Tensor], *,
                              reduction: Literal["sum", "mean"] = "sum") -> Tensor:
    """Feature distillation, Eq. 7, summed over the listed feature stages → scalar.

    For each stage k with student ``S`` and teacher ``T`` features of shape (B, V, T, D):

        L_k = 1/(B·V) Σ_{b,n} 1/T Σ_t ‖T_{b,n,t} − S_{b,n,t}‖²₂        (squared L2 over D)

    i.e. the squared distance over D averaged over every leading axis, and ``L_FD = Σ_k L_k``.
    ViCoKD lists two stages, ``[F^attn, F^AV]``, which gives the two terms of Eq. 7. Any leading
    shape is accepted (the mean runs over all axes but the last); stage k of both lists must have the
    same shape. Teacher features are detached.

    ``reduction``: how the squared distance reduces over D. ``"sum"`` is Eq. 7 to the letter
    (‖·‖²₂); ``"mean"`` divides it by D (the element-wise MSE), which the paper leaves open: with
    D = 64-384 the sum is ~D times larger than every other term at equal weights.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    if len(student_feats) != len(teacher_feats):
        raise ValueError(f"got {len(student_feats)} student and {len(teacher_feats)} teacher feature stages")
    if not student_feats:
        raise ValueError("feature_distillation_loss needs at least one feature stage")
    terms = []
    for k, (student, teacher) in enumerate(zip(student_feats, teacher_feats)):
        check_same_shape(f"student_feats[{k}]", student, f"teacher_feats[{k}]", teacher)
        if student.ndim < 2:
            raise ValueError(f"features must be (..., D), got shape {tuple(student.shape)} at stage {k}")
        diff = promote(student) - promote(teacher.detach())
        squared = diff.square()
        terms.append((squared.sum(dim=-1) if reduction == "sum" else squared.mean(dim=-1)).mean())
    return torch.stack(terms).sum()


def logit_distillation_loss(student_logits: Tensor, teacher_logits: Tensor, tau: float, *,
                            multilabel: bool = False) -> Tensor:
    """Logit distillation, Eq. 8, on logits (..., C), e.g. per-view frame logits (B, V, T, C) → scalar.

    With ``p^T = softmax(z^T / τ)`` and ``p^S = softmax(z^S / τ)`` over the last axis (classes):

        L_LD = τ² · mean_{all leading axes} KL(p^T ‖ p^S),   KL(p ‖ q) = Σ_c p_c (log p_c − log q_c)

    For (B, V, T, C) inputs this is Eq. 8's ``(τ²/T) Σ_t KL`` averaged over views and batch. The
    teacher logits are detached; `tau` must be > 0.

    ``multilabel=True`` (beyond the paper, which writes a softmax): each class is an independent
    Bernoulli, ``p_c = σ(z_c / τ)``, and the divergence of a row is the mean over classes of
    ``KL(Bern(p^T_c) ‖ Bern(p^S_c)) = p^T_c log(p^T_c/p^S_c) + (1−p^T_c) log((1−p^T_c)/(1−p^S_c))``.
    A softmax over the classes of two-way-loss logits is nearly flat (that loss ranks positives
    against negatives and never asks one class to dominate a row), so its KL is ≈ 0; the
    Bernoulli reading distils each class's own decision.
    """
    check_same_shape("student_logits", student_logits, "teacher_logits", teacher_logits)
    if student_logits.ndim < 1:
        raise ValueError("logits must have a class axis (..., C)")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    student, teacher = promote(student_logits) / tau, promote(teacher_logits.detach()) / tau
    if multilabel:  # log p and log(1 − p) of each class's Bernoulli on a new last axis: (..., C, 2)
        log_p_student = torch.stack([F.logsigmoid(student), F.logsigmoid(-student)], dim=-1)
        log_p_teacher = torch.stack([F.logsigmoid(teacher), F.logsigmoid(-teacher)], dim=-1)
    else:
        log_p_student = F.log_softmax(student, dim=-1)
        log_p_teacher = F.log_softmax(teacher, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)  # (...) or (..., C)
    return tau**2 * kl.mean()


def modal_distillation_loss(
    *,
    student_visual: Tensor,
    student_pseudo_audio: Tensor,
    teacher_visual: Tensor,
    teacher_audio: Tensor,
) -> Tensor:
    """The ModalKD baseline: feature KD on the encoder outputs → scalar.

    The student's visual features ``F^V_S`` are pulled to the teacher's ``F^V_T`` and its
    pseudo-audio ``F̂^A = A_ψ(F^V_S)`` to the teacher's audio features ``F^A_T``, all (B, V, T, D):

        L_MKD = mean_{b,n,t} ‖F^V_T − F^V_S‖²₂ + mean_{b,n,t} ‖F^A_T − F̂^A‖²₂

    The paper only says "feature KD"; for consistency with Eq. 7 the squared L2 distance is summed
    over D and averaged over the other axes (D times the element-wise MSE), i.e. this is
    :func:`feature_distillation_loss` over the stages ``[F^V, F^A]``. Teacher features are detached.
    """
    return feature_distillation_loss([student_visual, student_pseudo_audio], [teacher_visual, teacher_audio])
