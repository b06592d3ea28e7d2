"""AP / mAP against scikit-learn and hand-computed cases; frame/sequence mAP; de-duplication."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from vicokd.errors import DataError
from vicokd.metrics import (
    average_precision,
    deduplicate,
    excluded_classes,
    frame_map,
    mean_average_precision,
    per_class_ap_table,
    sequence_map,
)


def _random_case(n: int = 400, c: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, c)) < rng.uniform(0.05, 0.5, c)).astype(np.int64)
    scores = rng.normal(size=(n, c)) + 1.5 * targets  # informative, untied
    return scores, targets


def test_ap_equals_sklearn_on_untied_scores() -> None:
    scores, targets = _random_case()
    assert len(np.unique(scores)) == scores.size
    expected = [average_precision_score(targets[:, c], scores[:, c]) for c in range(scores.shape[1])]
    np.testing.assert_allclose(average_precision(scores, targets), expected, rtol=1e-12)
    assert mean_average_precision(scores, targets) == pytest.approx(100 * np.mean(expected), rel=1e-12)
    macro = average_precision_score(targets, scores, average="macro")
    assert mean_average_precision(scores, targets) == pytest.approx(100 * macro, rel=1e-12)


def test_ap_equals_sklearn_with_ties_and_is_order_independent() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(300, 5)).astype(np.float64)
    targets = (rng.random((300, 5)) < 0.3).astype(np.int64)
    expected = [average_precision_score(targets[:, c], scores[:, c]) for c in range(5)]
    np.testing.assert_allclose(average_precision(scores, targets), expected, rtol=1e-12)
    perm = rng.permutation(300)
    np.testing.assert_allclose(average_precision(scores[perm], targets[perm]), expected, rtol=1e-12)


def test_ap_hand_computed() -> None:
    # Ranking: +, −, +, −  → precisions at the positives: 1/1 and 2/3.
    scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    assert average_precision(scores, [[1], [0], [1], [0]])[0] == pytest.approx((1 + 2 / 3) / 2)
    # Ranking: −, +, +  → 1/2 and 2/3.
    assert average_precision(scores[:3], [[0], [1], [1]])[0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # A positive tied with a negative at ranks 2-3 gets the precision at the end of the group: 1/3.
    tied = np.array([[0.9], [0.5], [0.5]])
    assert average_precision(tied, [[0], [1], [0]])[0] == pytest.approx(1 / 3)
    assert average_precision(tied[[0, 2, 1]], [[0], [0], [1]])[0] == pytest.approx(1 / 3)


def test_class_without_positive_is_nan_and_excluded() -> None:
    scores, targets = _random_case(seed=2)
    targets[:, 3] = 0
    ap = average_precision(scores, targets)
    assert np.isnan(ap[3]) and not np.isnan(np.delete(ap, 3)).any()
    np.testing.assert_array_equal(excluded_classes(targets), [3])
    assert mean_average_precision(scores, targets) == pytest.approx(100 * np.mean(np.delete(ap, 3)), rel=1e-12)


def test_map_fails_loudly_without_positives() -> None:
    with pytest.raises(DataError, match="none of the 3 classes"):
        mean_average_precision(np.random.default_rng(3).random((5, 3)), np.zeros((5, 3)))


def test_invalid_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="0/1"):
        average_precision([[0.1, 0.2]], [[0.5, 1]])
    with pytest.raises(ValueError, match="NaN"):
        average_precision([[np.nan, 0.2]], [[0, 1]])
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        average_precision([0.1, 0.2], [0, 1])


def test_torch_inputs_equal_numpy() -> None:
    scores, targets = _random_case(seed=4)
    scores = scores.astype(np.float32)
    expected = average_precision(scores, targets)
    np.testing.assert_array_equal(average_precision(torch.from_numpy(scores), torch.from_numpy(targets)), expected)


def test_sequence_and_frame_map_use_sigmoid_scores() -> None:
    logits, labels = _random_case(seed=5)
    assert sequence_map(torch.from_numpy(logits), labels) == pytest.approx(
        mean_average_precision(1 / (1 + np.exp(-logits)), labels), rel=1e-12
    )
    frames, frame_labels = logits.reshape(20, 20, 8), labels.reshape(20, 20, 8)
    assert frame_map(frames, frame_labels) == pytest.approx(mean_average_precision(logits, labels), rel=1e-12)
    assert frame_map(logits, labels) == frame_map(frames, frame_labels)
    with pytest.raises(ValueError, match="frame_logits"):
        frame_map(frames, labels)


def test_per_class_table() -> None:
    scores, targets = _random_case(c=3, seed=6)
    targets[:, 1] = 0
    rows = per_class_ap_table(scores, targets, ["Drink", "Eat", "Enter"])
    assert [r["class"] for r in rows] == ["Drink", "Eat", "Enter"]
    assert [r["excluded"] for r in rows] == [False, True, False]
    assert rows[0]["positives"] == int(targets[:, 0].sum()) and rows[1]["positives"] == 0
    assert rows[2]["ap"] == pytest.approx(100 * average_precision_score(targets[:, 2], scores[:, 2]))
    assert rows[1]["ap"] is None
    with pytest.raises(ValueError, match="class names"):
        per_class_ap_table(scores, targets, ["Drink"])


def test_deduplicate_keeps_first_occurrence_sorted_by_id() -> None:
    ids = np.array([3, 1, 2, 3, 1])
    values = np.array([[30.0], [10.0], [20.0], [31.0], [11.0]])
    names = ["c", "a", "b", "c2", "a2"]
    out_ids, out_values, out_names = deduplicate(ids, values, names)
    np.testing.assert_array_equal(out_ids, [1, 2, 3])
    np.testing.assert_array_equal(out_values, [[10.0], [20.0], [30.0]])
    np.testing.assert_array_equal(out_names, ["a", "b", "c"])
    with pytest.raises(ValueError, match="rows"):
        deduplicate(ids, values[:4])


def test_deduplicate_undoes_distributed_padding() -> None:
    # 7 samples over 2 ranks, sampler-style: padded to 8 by repeating the first index, rank r takes
    # indices r, r+2, …; gathering concatenates the ranks.
    scores, targets = _random_case(n=7, c=3, seed=7)
    padded = [*range(7), 0]
    gathered = [padded[r::2] for r in range(2)]
    order = np.concatenate(gathered)
    ids, s, y = deduplicate(torch.tensor(order), torch.from_numpy(scores[order]), targets[order])
    np.testing.assert_array_equal(ids, np.arange(7))
    np.testing.assert_array_equal(s, scores)
    np.testing.assert_array_equal(y, targets)


def test_temporal_iou_and_greedy_segment_matching_by_hand():
    from vicokd.metrics import matched_segments, temporal_iou

    assert temporal_iou((0.0, 2.0), (1.0, 3.0)) == pytest.approx(1 / 3)
    assert temporal_iou((0.0, 1.0), (2.0, 3.0)) == 0.0 and temporal_iou((1.0, 1.0), (1.0, 1.0)) == 0.0
    truth = [(0.0, 2.0), (5.0, 6.0)]
    # the higher-scored prediction takes (0, 2) first (IoU 0.8); the other overlaps it only: a miss
    predicted = [(0.0, 1.6, 0.9), (0.2, 2.0, 0.5), (5.0, 6.4, 0.7)]  # IoU with (5, 6): 1/1.4 = 0.71
    assert matched_segments(predicted, truth) == 2
    assert matched_segments(predicted, truth, min_iou=0.75) == 1  # only the first: 0.8
    assert matched_segments([], truth) == 0 and matched_segments(predicted, []) == 0
