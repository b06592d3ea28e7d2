"""Calibrated decisions: F1-maximising thresholds, per-class scaling, ECE — against hand-computed cases
and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from vicokd.calibration import (
    DEFAULT_THRESHOLD,
    Calibration,
    calibrate,
    expected_calibration_error,
    f1_thresholds,
    fit_scaling,
)


def test_f1_threshold_of_a_hand_computed_case():
    probs = np.array([[0.9], [0.8], [0.7], [0.4], [0.3], [0.1]])
    labels = np.array([[1], [0], [1], [1], [0], [0]])
    # cuts after 1..6 frames: TP 1,1,2,3,3,3; F1 = 2TP/(k+3) = 0.5, 0.4, 0.8, 6/7, 0.75, 2/3
    thresholds, f1 = f1_thresholds(probs, labels)
    assert thresholds[0] == pytest.approx(0.4) and f1[0] == pytest.approx(6 / 7)


def test_f1_thresholds_agree_with_scikit_learn_and_respect_ties():
    rng = np.random.default_rng(0)
    labels = (rng.random((400, 3)) < [0.1, 0.3, 0.0]).astype(float)
    probs = np.round(np.clip(labels * 0.3 + rng.random((400, 3)) * 0.7, 0, 1), 2)  # ties on purpose
    thresholds, f1 = f1_thresholds(probs, labels)
    for c in (0, 1):
        assert f1[c] == pytest.approx(f1_score(labels[:, c], probs[:, c] >= thresholds[c]))
        best = max(f1_score(labels[:, c], probs[:, c] >= t) for t in np.unique(probs[:, c]))
        assert f1[c] == pytest.approx(best)  # no other threshold does better
    assert thresholds[2] == DEFAULT_THRESHOLD and np.isnan(f1[2])  # no positive: the default


def test_expected_calibration_error_of_a_hand_computed_case():
    probs = np.array([0.05, 0.05, 0.95, 0.95, 0.55])
    labels = np.array([0, 1, 1, 1, 0])
    # bins of width 1/15: {0.05, 0.05} acc 0.5, {0.95, 0.95} acc 1, {0.55} acc 0
    expected = 2 / 5 * abs(0.5 - 0.05) + 2 / 5 * abs(1 - 0.95) + 1 / 5 * abs(0 - 0.55)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)


def test_scaling_recovers_the_one_that_made_the_labels():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 4, (20000, 2))
    truth_scale, truth_bias = np.array([0.4, 2.0]), np.array([-2.0, 1.0])
    labels = (rng.random((20000, 2)) < 1 / (1 + np.exp(-(logits * truth_scale + truth_bias)))).astype(float)
    scale, bias = fit_scaling(logits, labels)
    np.testing.assert_allclose(scale, truth_scale, rtol=0.08)
    np.testing.assert_allclose(bias, truth_bias, atol=0.1)


def test_calibration_lowers_the_error_of_overconfident_logits_and_round_trips():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (3000, 2))
    labels = (rng.random((3000, 2)) < 1 / (1 + np.exp(-(logits / 3 - 2)))).astype(float)  # overconfident, shifted
    calibration = calibrate(logits, labels, ["A", "B"])
    assert calibration.ece_after < calibration.ece_before / 2 and calibration.val_frames == 3000
    assert Calibration.from_json(calibration.to_json()) == calibration
    assert list(calibration.threshold_array(["B", "A"])) == [calibration.thresholds["B"], calibration.thresholds["A"]]


def test_f1_at_agrees_with_scikit_learn():
    from vicokd.calibration import f1_at

    rng = np.random.default_rng(3)
    labels = (rng.random((200, 3)) < [0.2, 0.5, 0.0]).astype(float)
    probs = rng.random((200, 3))
    thresholds = np.array([0.3, 0.6, 0.5])
    f1 = f1_at(probs, labels, thresholds)
    for c in (0, 1):
        assert f1[c] == pytest.approx(f1_score(labels[:, c], probs[:, c] >= thresholds[c]))
    assert np.isnan(f1[2])
