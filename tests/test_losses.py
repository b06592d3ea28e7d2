"""Losses against loop-based transcriptions of their equations (float64) and their properties.

The reference functions below follow docs/reference/PAPER.md / docs/reference/REFERENCE-CODE.md
literally, one scalar at a time with the ``math`` module, independently of the vectorised
implementations.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from vicokd.losses import (
    feature_distillation_loss,
    generalized_cross_entropy,
    generalized_cross_entropy_with_logits,
    human_presence_loss,
    logit_distillation_loss,
    modal_distillation_loss,
    two_way_loss,
    view_consistency_loss,
)

DTYPE = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _close(value: torch.Tensor, expected: float) -> None:
    assert value.ndim == 0
    assert value.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------- references (loops, math only)


def _softplus(v: float) -> float:
    return v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v))


def _ref_two_way(x: list[list[float]], y: list[list[int]], tp: float, tn: float) -> float:
    def group(values: list[float], labels: list[int]) -> float:
        pos = [v for v, label in zip(values, labels) if label == 1]
        neg = [v for v, label in zip(values, labels) if label == 0]
        p = tp * math.log(sum(math.exp(-v / tp) for v in pos))
        if not neg:  # log of an empty sum is -inf; softplus(-inf) = 0
            return 0.0
        n = tn * math.log(sum(math.exp(v / tn) for v in neg))
        return _softplus(p + n)

    rows, cols = len(x), len(x[0])
    class_terms = [
        group([x[n][c] for n in range(rows)], [y[n][c] for n in range(rows)])
        for c in range(cols)
        if any(y[n][c] == 1 for n in range(rows))
    ]
    sample_terms = [group(x[n], y[n]) for n in range(rows) if any(label == 1 for label in y[n])]
    class_mean = sum(class_terms) / len(class_terms) if class_terms else 0.0
    sample_mean = sum(sample_terms) / len(sample_terms) if sample_terms else 0.0
    return class_mean + sample_mean


def _ref_feature(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> float:
    total = 0.0
    for s, t in zip(student, teacher):
        b_count, v_count, t_count, d_count = s.shape
        per_b = []
        for b in range(b_count):
            per_v = []
            for v in range(v_count):
                dist = [
                    sum((t[b, v, f, d].item() - s[b, v, f, d].item()) ** 2 for d in range(d_count))
                    for f in range(t_count)
                ]
                per_v.append(sum(dist) / t_count)
            per_b.append(sum(per_v) / v_count)
        total += sum(per_b) / b_count
    return total


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def _kl(p: list[float], q: list[float]) -> float:
    return sum(pc * math.log(pc / qc) for pc, qc in zip(p, q) if pc > 0)


def _js(p: list[float], q: list[float]) -> float:
    m = [(a + b) / 2 for a, b in zip(p, q)]
    return 0.5 * _kl(p, m) + 0.5 * _kl(q, m)


def _ref_logit(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> float:
    kls = []
    for idx in itertools.product(*(range(n) for n in student.shape[:-1])):
        p_t = _softmax([v / tau for v in teacher[idx].tolist()])
        p_s = _softmax([v / tau for v in student[idx].tolist()])
        kls.append(_kl(p_t, p_s))
    return tau**2 * sum(kls) / len(kls)


def _ref_vc(probs: torch.Tensor, mask: torch.Tensor, divergence="js", confw=True, use_mask=True) -> float:
    b_count, v_count, t_count, _ = probs.shape
    pairs = [(i, j) for i in range(v_count) for j in range(i + 1, v_count)]
    per_b = []
    for b in range(b_count):
        total = 0.0
        for i, j in pairs:
            for t in range(t_count):
                p_i, p_j = probs[b, i, t].tolist(), probs[b, j, t].tolist()
                w = max(p_i) * max(p_j) if confw else 1.0
                m = mask[b, i, t].item() * mask[b, j, t].item() if use_mask else 1.0
                div = _js(p_i, p_j) if divergence == "js" else _kl(p_i, p_j)
                total += w * m * div
        per_b.append(total / (len(pairs) * t_count))
    return sum(per_b) / b_count


def _ref_gce(p: torch.Tensor, y: torch.Tensor, q: float) -> float:
    values = []
    for pv, yv in zip(p.flatten().tolist(), y.flatten().tolist()):
        p_y = pv if yv == 1 else 1 - pv
        values.append((1 - p_y**q) / q)
    return sum(values) / len(values)


def _ref_human(z: torch.Tensor, s: torch.Tensor) -> float:
    losses = []
    for idx in itertools.product(*(range(n) for n in z.shape[:-1])):
        scores = s[idx].tolist()
        total = sum(scores)
        if total == 0:
            continue
        log_norm = math.log(sum(math.exp(v) for v in z[idx].tolist()))
        losses.append(-sum(sc / total * (v - log_norm) for sc, v in zip(scores, z[idx].tolist())))
    return sum(losses) / len(losses) if losses else 0.0


# ---------------------------------------------------------------- two-way


def _labels(rows: int, cols: int, seed: int, pattern: str) -> torch.Tensor:
    """Random 0/1 labels with empty groups.

    ``"gaps"``: an all-negative row and an all-negative class (groups to skip);
    ``"full"``: an all-positive class and an all-positive row (groups without negatives, N = −inf).
    """
    y = (torch.rand(rows, cols, generator=_gen(seed)) < 0.3).to(DTYPE)
    if pattern == "gaps":
        y[1] = 0
        y[:, 2] = 0
    else:
        y[:, 0] = 1
        y[3] = 1
    return y


@pytest.mark.parametrize("pattern", ["gaps", "full"])
@pytest.mark.parametrize(("rows", "cols", "tp", "tn"), [(13, 7, 4.0, 1.0), (6, 3, 2.0, 0.5), (9, 20, 4.0, 1.0)])
def test_two_way_matches_equation(rows: int, cols: int, tp: float, tn: float, pattern: str) -> None:
    x = torch.randn(rows, cols, generator=_gen(rows), dtype=DTYPE) * 2
    y = _labels(rows, cols, cols, pattern)
    _close(two_way_loss(x, y, tp=tp, tn=tn), _ref_two_way(x.tolist(), y.int().tolist(), tp, tn))


def test_two_way_single_positive_class_is_its_own_mean() -> None:
    # Only class 1 has positives: the class-wise mean must not be divided by C, nor the sample-wise
    # one by N.
    x = torch.randn(5, 4, generator=_gen(1), dtype=DTYPE)
    y = torch.zeros(5, 4, dtype=DTYPE)
    y[[0, 3], 1] = 1
    class_term = _softplus(
        4 * math.log(sum(math.exp(-x[n, 1].item() / 4) for n in (0, 3)))
        + math.log(sum(math.exp(x[n, 1].item()) for n in (1, 2, 4)))
    )
    row_terms = [
        _softplus(-x[n, 1].item() + math.log(sum(math.exp(x[n, c].item()) for c in (0, 2, 3)))) for n in (0, 3)
    ]
    _close(two_way_loss(x, y), class_term + sum(row_terms) / 2)


def test_two_way_all_negative_is_a_differentiable_zero() -> None:
    x = (torch.randn(8, 5, generator=_gen(2), dtype=DTYPE) * 10).requires_grad_()
    loss = two_way_loss(x, torch.zeros(8, 5))
    assert loss.item() == 0.0
    loss.backward()
    assert x.grad is not None and torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("pattern", ["gaps", "full"])
@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_two_way_gradients_finite_with_empty_groups(scale: float, pattern: str) -> None:
    x = (torch.randn(10, 6, generator=_gen(3)) * scale).requires_grad_()
    y = _labels(10, 6, 4, pattern).float()
    loss = two_way_loss(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_two_way_low_precision_is_computed_in_float32() -> None:
    x = torch.randn(12, 5, generator=_gen(5), dtype=DTYPE)
    y = _labels(12, 5, 6, "gaps")
    loss = two_way_loss(x.to(torch.bfloat16), y.to(torch.bfloat16))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(two_way_loss(x.to(torch.bfloat16).double(), y).item(), rel=1e-5)


def test_two_way_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        two_way_loss(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        two_way_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))


# ---------------------------------------------------------------- feature / logit / modal distillation


def _feats(seed: int, shape=(2, 3, 4, 5), stages: int = 2) -> list[torch.Tensor]:
    return [torch.randn(*shape, generator=_gen(seed + k), dtype=DTYPE) for k in range(stages)]


def test_feature_distillation_matches_eq7() -> None:
    student, teacher = _feats(10), _feats(20)
    _close(feature_distillation_loss(student, teacher), _ref_feature(student, teacher))


def test_feature_distillation_zero_when_equal_and_teacher_detached() -> None:
    student = [f.requires_grad_() for f in _feats(11)]
    teacher = [f.detach().clone().requires_grad_() for f in student]
    loss = feature_distillation_loss(student, teacher)
    assert loss.item() == 0.0
    loss = feature_distillation_loss(student, [t + 1 for t in teacher])
    loss.backward()
    assert all(t.grad is None for t in teacher)
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)


def test_feature_distillation_rejects_mismatch() -> None:
    with pytest.raises(ValueError, match="stages"):
        feature_distillation_loss(_feats(1), _feats(2, stages=1))
    with pytest.raises(ValueError, match="same shape"):
        feature_distillation_loss(_feats(1), _feats(2, shape=(2, 3, 4, 6)))
    with pytest.raises(ValueError, match="at least one"):
        feature_distillation_loss([], [])


@pytest.mark.parametrize("tau", [1.0, 2.0, 0.5])
def test_logit_distillation_matches_eq8(tau: float) -> None:
    student = torch.randn(2, 3, 4, 6, generator=_gen(30), dtype=DTYPE) * 2
    teacher = torch.randn(2, 3, 4, 6, generator=_gen(31), dtype=DTYPE) * 2
    _close(logit_distillation_loss(student, teacher, tau), _ref_logit(student, teacher, tau))


def test_logit_distillation_tau_squared_and_zero_when_equal() -> None:
    student = torch.randn(3, 5, 7, generator=_gen(32), dtype=DTYPE)
    teacher = torch.randn(3, 5, 7, generator=_gen(33), dtype=DTYPE)
    tau = 3.0
    unscaled = logit_distillation_loss(student / tau, teacher / tau, 1.0)
    assert logit_distillation_loss(student, teacher, tau).item() == pytest.approx(tau**2 * unscaled.item(), rel=1e-12)
    assert logit_distillation_loss(teacher, teacher.clone(), tau).abs().item() < 1e-12


def test_logit_distillation_teacher_detached() -> None:
    student = torch.randn(4, 5, generator=_gen(34), requires_grad=True)
    teacher = torch.randn(4, 5, generator=_gen(35), requires_grad=True)
    logit_distillation_loss(student, teacher, 2.0).backward()
    assert teacher.grad is None and student.grad is not None
    with pytest.raises(ValueError, match="tau"):
        logit_distillation_loss(student, teacher, 0.0)


def test_modal_distillation_is_visual_plus_pseudo_audio() -> None:
    sv, spa, tv, ta = _feats(40, stages=4)
    expected = _ref_feature([sv, spa], [tv, ta])
    _close(
        modal_distillation_loss(student_visual=sv, student_pseudo_audio=spa, teacher_visual=tv, teacher_audio=ta),
        expected,
    )
    zero = modal_distillation_loss(student_visual=tv, student_pseudo_audio=ta, teacher_visual=tv, teacher_audio=ta)
    assert zero.item() == 0.0


# ---------------------------------------------------------------- view consistency


def _probs(shape=(2, 4, 5, 6), seed: int = 50, sharp: float = 2.0) -> torch.Tensor:
    return torch.softmax(torch.randn(*shape, generator=_gen(seed), dtype=DTYPE) * sharp, dim=-1)


def _mask(shape=(2, 4, 5), seed: int = 51) -> torch.Tensor:
    return (torch.rand(*shape, generator=_gen(seed)) < 0.6).to(DTYPE)


@pytest.mark.parametrize(
    ("divergence", "confw", "use_mask"),
    [("js", True, True), ("kl", True, True), ("js", False, True), ("js", True, False), ("kl", False, False)],
)
def test_view_consistency_matches_eq10(divergence: str, confw: bool, use_mask: bool) -> None:
    probs, mask = _probs(), _mask()
    loss = view_consistency_loss(probs, mask, divergence=divergence, confidence_weighting=confw, use_mask=use_mask)
    _close(loss, _ref_vc(probs, mask, divergence, confw, use_mask))


def test_view_consistency_one_hot_probs_are_finite() -> None:
    logits = torch.randn(2, 3, 4, 5, generator=_gen(52), dtype=DTYPE)
    probs = F.one_hot(logits.argmax(-1), 5).to(DTYPE)
    probs[0, 0, 0] = torch.tensor([0.5, 0.5, 0, 0, 0])
    mask = torch.ones(2, 3, 4, dtype=DTYPE)
    _close(view_consistency_loss(probs, mask), _ref_vc(probs, mask))
    soft = torch.randn(2, 3, 4, 5, dtype=DTYPE, generator=_gen(53)).mul(60).requires_grad_()
    loss = view_consistency_loss(torch.softmax(soft, -1), mask, detach_weights=False)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(soft.grad).all()


def test_view_consistency_view_order_invariant_and_js_symmetric() -> None:
    probs, mask = _probs(), _mask()
    perm = torch.tensor([2, 0, 3, 1])
    base = view_consistency_loss(probs, mask)
    assert view_consistency_loss(probs[:, perm], mask[:, perm]).item() == pytest.approx(base.item(), rel=1e-12)
    pair, pair_mask = probs[:, :2], mask[:, :2]
    swapped = view_consistency_loss(pair.flip(1), pair_mask.flip(1))
    assert swapped.item() == pytest.approx(view_consistency_loss(pair, pair_mask).item(), rel=1e-12)
    # KL is asymmetric: the same check must see a difference (so the one above can fail).
    kl = view_consistency_loss(pair, pair_mask, divergence="kl")
    assert view_consistency_loss(pair.flip(1), pair_mask.flip(1), divergence="kl").item() != pytest.approx(kl.item())


def test_view_consistency_masked_frames_do_not_count() -> None:
    probs, mask = _probs(), _mask()
    assert view_consistency_loss(probs, torch.zeros_like(mask)).item() == 0.0
    other = _probs(seed=99)
    changed = torch.where(mask.bool().unsqueeze(-1), probs, other)  # differs only where mask = 0
    assert not torch.allclose(changed, probs)
    assert view_consistency_loss(changed, mask).item() == pytest.approx(view_consistency_loss(probs, mask).item())
    assert view_consistency_loss(changed, mask, use_mask=False).item() != pytest.approx(
        view_consistency_loss(probs, mask, use_mask=False).item()
    )


def test_view_consistency_single_view_is_zero() -> None:
    logits = torch.randn(3, 1, 5, 4, generator=_gen(54), requires_grad=True)
    loss = view_consistency_loss(torch.softmax(logits, -1), torch.ones(3, 1, 5))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_view_consistency_detached_weights_change_the_gradient_only() -> None:
    logits = torch.randn(2, 3, 4, 5, generator=_gen(55), dtype=DTYPE)
    mask = torch.ones(2, 3, 4, dtype=torch.bool)
    grads, values = [], []
    for detach in (True, False):
        x = logits.clone().requires_grad_()
        loss = view_consistency_loss(torch.softmax(x, -1), mask, detach_weights=detach)
        loss.backward()
        grads.append(x.grad)
        values.append(loss.item())
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    assert not torch.allclose(grads[0], grads[1])
    # Detached weights: the gradient is exactly that of the JS terms times constant weights.
    x = logits.clone().requires_grad_()
    p = torch.softmax(x, -1)
    w = torch.stack([p[:, i].amax(-1) * p[:, j].amax(-1) for i, j in ((0, 1), (0, 2), (1, 2))], 1).detach()
    js = torch.stack(
        [
            0.5 * (p[:, i] * (p[:, i] / m).log()).sum(-1) + 0.5 * (p[:, j] * (p[:, j] / m).log()).sum(-1)
            for i, j in ((0, 1), (0, 2), (1, 2))
            for m in [(p[:, i] + p[:, j]) / 2]
        ],
        1,
    )
    (w * js).mean().backward()
    assert torch.allclose(grads[0], x.grad, rtol=1e-10, atol=1e-14)


def test_view_consistency_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="mask"):
        view_consistency_loss(_probs(), torch.ones(2, 4))
    with pytest.raises(ValueError, match="divergence"):
        view_consistency_loss(_probs(), _mask(), divergence="l2")  # type: ignore[arg-type]


# ---------------------------------------------------------------- generalized CE and human presence


@pytest.mark.parametrize("q", [0.7, 0.3, 1.0])
def test_gce_matches_definition(q: float) -> None:
    logits = torch.randn(4, 9, generator=_gen(60), dtype=DTYPE) * 2
    y = (torch.rand(4, 9, generator=_gen(61)) < 0.4).to(DTYPE)
    expected = _ref_gce(torch.sigmoid(logits), y, q)
    _close(generalized_cross_entropy(torch.sigmoid(logits), y, q), expected)
    _close(generalized_cross_entropy_with_logits(logits, y, q), expected)


def test_gce_limits_and_boundaries() -> None:
    logits = torch.randn(50, generator=_gen(62), dtype=DTYPE)
    y = (torch.rand(50, generator=_gen(63)) < 0.5).to(DTYPE)
    bce = F.binary_cross_entropy_with_logits(logits, y)
    assert generalized_cross_entropy_with_logits(logits, y, q=1e-6).item() == pytest.approx(bce.item(), rel=1e-4)
    p = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=DTYPE, requires_grad=True)
    loss = generalized_cross_entropy(p, torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=DTYPE))
    loss.backward()
    assert loss.item() == pytest.approx((1 / 0.7) / 2, rel=1e-6)
    assert torch.isfinite(p.grad).all()
    big = torch.tensor([-200.0, 200.0], requires_grad=True)
    generalized_cross_entropy_with_logits(big, torch.tensor([1.0, 0.0])).backward()
    assert torch.isfinite(big.grad).all()
    with pytest.raises(ValueError, match="q"):
        generalized_cross_entropy(p, p.detach(), q=0.0)


def test_human_presence_matches_definition_and_skips_empty_rows() -> None:
    z = torch.randn(2, 3, 6, generator=_gen(70), dtype=DTYPE)
    s = torch.rand(2, 3, 6, generator=_gen(71), dtype=DTYPE)
    s[s < 0.3] = 0
    s[0, 1] = 0
    s[1, 2] = 0
    _close(human_presence_loss(z, s), _ref_human(z, s))
    # An empty row must not enter the mean: the loss equals that of the other rows alone.
    rows = [(0, 0), (0, 2), (1, 0), (1, 1)]
    alone = torch.stack([z[r] for r in rows]), torch.stack([s[r] for r in rows])
    assert human_presence_loss(z, s).item() == pytest.approx(human_presence_loss(*alone).item(), rel=1e-12)


def test_human_presence_all_zero_scores_is_zero() -> None:
    z = torch.randn(2, 3, 6, generator=_gen(72), requires_grad=True)
    loss = human_presence_loss(z, torch.zeros(2, 3, 6))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))


# ---------------------------------------------------------------- multi-label (Bernoulli) readings


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _bern_kl(p: float, q: float) -> float:
    return _kl([p, 1.0 - p], [q, 1.0 - q])


def _bern_js(p: float, q: float) -> float:
    return _js([p, 1.0 - p], [q, 1.0 - q])


def _ref_logit_bernoulli(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> float:
    kls = []
    for idx in itertools.product(*(range(n) for n in student.shape[:-1])):
        per_class = [_bern_kl(_sigmoid(t / tau), _sigmoid(s / tau))
                     for s, t in zip(student[idx].tolist(), teacher[idx].tolist())]
        kls.append(sum(per_class) / len(per_class))
    return tau**2 * sum(kls) / len(kls)


def _ref_vc_bernoulli(probs: torch.Tensor, mask: torch.Tensor, divergence: str = "js") -> float:
    b_count, v_count, t_count, _ = probs.shape
    pairs = [(i, j) for i in range(v_count) for j in range(i + 1, v_count)]
    per_b = []
    for b in range(b_count):
        total = 0.0
        for i, j in pairs:
            for t in range(t_count):
                p_i, p_j = probs[b, i, t].tolist(), probs[b, j, t].tolist()
                div = _bern_js if divergence == "js" else _bern_kl
                mean_div = sum(div(a, c) for a, c in zip(p_i, p_j)) / len(p_i)
                total += max(p_i) * max(p_j) * mask[b, i, t].item() * mask[b, j, t].item() * mean_div
        per_b.append(total / (len(pairs) * t_count))
    return sum(per_b) / b_count


@pytest.mark.parametrize("tau", [1.0, 0.5, 3.0])
def test_logit_distillation_bernoulli_matches_loop(tau: float) -> None:
    student = torch.randn(2, 3, 4, 6, generator=_gen(70), dtype=DTYPE) * 3
    teacher = torch.randn(2, 3, 4, 6, generator=_gen(71), dtype=DTYPE) * 3
    _close(logit_distillation_loss(student, teacher, tau, multilabel=True), _ref_logit_bernoulli(student, teacher, tau))
    assert logit_distillation_loss(teacher, teacher.clone(), tau, multilabel=True).abs().item() < 1e-12


@pytest.mark.parametrize("divergence", ["js", "kl"])
def test_view_consistency_bernoulli_matches_loop(divergence: str) -> None:
    probs = torch.sigmoid(torch.randn(2, 4, 5, 6, generator=_gen(72), dtype=DTYPE) * 2)
    mask = _mask()
    loss = view_consistency_loss(probs, mask, divergence=divergence, multilabel=True)
    _close(loss, _ref_vc_bernoulli(probs, mask, divergence))
    # the same probabilities read as softmax rows give another value (the keyword changes the reading)
    assert loss.item() != pytest.approx(view_consistency_loss(probs, mask, divergence=divergence).item())


def test_bernoulli_readings_stay_finite_at_saturated_probabilities() -> None:
    logits = (torch.randn(2, 3, 4, 5, generator=_gen(73), dtype=DTYPE) * 80).requires_grad_()
    loss = view_consistency_loss(torch.sigmoid(logits), torch.ones(2, 3, 4), multilabel=True, detach_weights=False)
    loss = loss + logit_distillation_loss(logits, logits.detach().flip(1), 1.0, multilabel=True)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
