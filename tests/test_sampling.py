"""The 2.5-FPS grid and T-frame sampling, against hand-computed cases (docs/reference/REFERENCE-CODE.md)."""

import math

import numpy as np
import pytest

from vicokd.data import grid_interval, grid_length, sample_indices


def test_grid_interval_and_length():
    assert grid_interval(30.0) == 12
    assert grid_interval(25.0) == 10
    assert grid_interval(10.0) == 4
    assert grid_interval(29.97) == 12
    assert grid_interval(2.0) == 1  # never 0
    assert grid_length(300, 30.0) == 25  # 300 / 12
    assert grid_length(301, 30.0) == 26  # ceil
    assert grid_length(1, 30.0) == 1


def test_uniform_hand_computed():
    # floor(i * 10 / 4) for i = 0..3
    assert sample_indices(10, 4, "uniform").tolist() == [0, 2, 5, 7]
    assert sample_indices(7, 7, "uniform").tolist() == list(range(7))
    # L < T repeats frames: floor(i * 3 / 5)
    assert sample_indices(3, 5, "uniform").tolist() == [0, 0, 1, 1, 2]
    # exact for large numbers (no float rounding): floor(i * 175 / 70)
    expected = [math.floor(i * 175 / 70) for i in range(70)]
    assert sample_indices(175, 70, "uniform").tolist() == expected


def test_jitter_ranges_hand_computed():
    # L=10, T=4: anchors a = [0, 2, 5, 7]; ranges [0,2], [2,5], [5,7], [7,9]
    rng = np.random.default_rng(0)
    draws = np.stack([sample_indices(10, 4, "jitter", rng) for _ in range(4000)])
    for i, (low, high) in enumerate([(0, 2), (2, 5), (5, 7), (7, 9)]):
        assert set(draws[:, i].tolist()) == set(range(low, high + 1)), i
    assert (np.diff(draws, axis=1) >= 0).all()


def test_jitter_equal_anchors_and_short_clips():
    rng = np.random.default_rng(1)
    # L=3, T=5: anchors [0,0,1,1,2]; i=0 fixed at 0 (a0 == a1), i=2 fixed at 1, last in [2, 2]
    draws = np.stack([sample_indices(3, 5, "jitter", rng) for _ in range(500)])
    assert (draws[:, 0] == 0).all()
    assert set(draws[:, 1].tolist()) == {0, 1}
    assert (draws[:, 2] == 1).all()
    assert set(draws[:, 3].tolist()) == {1, 2}
    assert (draws[:, 4] == 2).all()
    assert sample_indices(1, 4, "jitter", rng).tolist() == [0, 0, 0, 0]


def test_jitter_deterministic_with_seed_and_within_bounds():
    a = sample_indices(200, 70, "jitter", np.random.default_rng(5))
    b = sample_indices(200, 70, "jitter", np.random.default_rng(5))
    assert a.tolist() == b.tolist()
    assert a.min() >= 0 and a.max() <= 199 and len(a) == 70


@pytest.mark.parametrize("args", [(0, 4, "uniform"), (5, 0, "uniform"), (5, 4, "random")])
def test_bad_arguments(args):
    with pytest.raises(ValueError):
        sample_indices(*args)
