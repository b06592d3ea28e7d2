"""View quality of the synthetic home: the clear/poor rule, VC moments, apparent size, measures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vicokd.synthetic import SynthOptions, plan_dataset
from vicokd.synthetic.generate import _renderers, clip_visibility
from vicokd.synthetic.render import grid_visibility
from vicokd.synthetic.scene import Camera
from vicokd.synthetic.view_quality import (
    BODY_HEIGHT,
    FIELDS,
    MomentCounts,
    apparent_height,
    clip_view_measures,
    quality_stats,
    read_view_quality,
    vc_moments,
    view_states,
    visible_shares,
    write_view_quality,
)

# Views (rows) × frames (columns), worked out by hand with the thresholds of the module:
# visible share >= 0.25; clear: share >= 0.75 and height >= 0.5; poor: share < 0.5 (hidden)
# or height < 0.4 (far).
SHARE = np.array([
    # f0    f1    f2    f3    f4    f5    f6    f7
    [1.00, 0.90, 0.90, 0.90, 0.60, 0.75, 0.25, 0.90],
    [0.40, 0.90, 0.30, 0.20, 0.40, 0.50, 1.00, 0.30],
    [0.10, 0.00, 0.90, 0.00, 0.00, 0.00, 0.00, 0.00],
])
HEIGHT = np.array([
    [0.60, 0.60, 0.60, 0.60, 0.45, 0.50, 0.60, 0.60],
    [0.60, 0.30, 0.60, 0.30, 0.60, 0.40, 0.50, 0.35],
    [0.60, 0.90, 0.35, 0.90, 0.90, 0.90, 0.90, 0.90],
])
# f0: clear + hidden (+ one view not seeing): VC, hidden.   f1: clear + far: VC, far.
# f2: clear + hidden + far in two views: VC, both.          f3: one view sees: not multi.
# f4: in between + hidden, no clear view: multi, no VC.     f5: clear exactly at 0.75/0.5 and
# in between exactly at 0.5/0.4 (not poor): multi, no VC.   f6: seen exactly at 0.25 and
# hidden, + clear exactly at height 0.5: VC, hidden.        f7: one view poor by both: VC, both.


def test_clear_and_poor_views_by_hand() -> None:
    states = view_states(SHARE, HEIGHT)
    assert states.visible.tolist() == [[True] * 8,
                                       [True, True, True, False, True, True, True, True],
                                       [False, False, True, False, False, False, False, False]]
    assert states.clear.tolist()[0] == [True, True, True, True, False, True, False, True]
    assert states.clear.tolist()[1] == [False, False, False, False, False, False, True, False]
    assert states.far.tolist() == [[False] * 8,
                                   [False, True, False, False, False, False, False, True],
                                   [False, False, True, False, False, False, False, False]]
    assert states.hidden.tolist() == [[False] * 6 + [True, False],
                                      [True, False, True, False, True, False, False, True],
                                      [False] * 8]
    assert not (states.clear & states.poor).any()


def test_vc_moments_and_reasons_by_hand() -> None:
    multi, vc, reason = vc_moments(SHARE, HEIGHT)
    assert multi.tolist() == [True, True, True, False, True, True, True, True]
    assert vc.tolist() == [True, True, True, False, False, False, True, True]
    assert reason.tolist() == [1, 0, 2, -1, -1, -1, 1, 2]  # REASONS = far, hidden, both


def test_stats_count_labelled_frames_by_class() -> None:
    body = np.full((3, 8), 100.0)
    inside = body.copy()  # all of the body inside the image: what is not seen is hidden ...
    inside[1, 2] = 30.0  # ... but in view 2 at f2, where the unseen 70 % are out of the image
    measures = np.stack([SHARE * body, inside, body, HEIGHT]).astype(np.float32)
    assert np.allclose(visible_shares(measures), SHARE)
    labels = np.zeros((8, 2), dtype=np.float32)
    labels[[0, 1, 2, 3], 0] = 1  # class A on f0-f3
    labels[[3, 4, 5, 6], 1] = 1  # class B on f3-f6; f7 unlabelled
    stats = quality_stats([measures], [labels], ("A", "B"))
    assert stats.overall == MomentCounts(labelled=7, multi=6, vc=4, far=1, hidden=2, both=1)
    assert stats.by_class["A"] == MomentCounts(labelled=4, multi=3, vc=3, far=1, hidden=1, both=1)
    assert stats.by_class["B"] == MomentCounts(labelled=4, multi=3, vc=1, far=0, hidden=1, both=0)
    assert stats.overall.multi_share == pytest.approx(6 / 7) and stats.overall.vc_share == pytest.approx(4 / 6)
    assert stats.overall.reason_shares() == pytest.approx({"far": 0.25, "hidden": 0.5, "both": 0.25})
    # (view, labelled frame) pairs that see the actor over f0-f6: 7 + 6 + 1 = 14
    assert stats.view_frames == {"clear": 6, "between": 2, "far": 2, "hidden": 4, "both": 0, "hidden_edge": 1}


def test_apparent_height_by_hand() -> None:
    camera = Camera("c", (0.0, 0.0, 1.0), (1.0, 0.0, 1.0), hfov=90.0)  # looks along +x, level
    size = (80, 60)  # tan(45°) = 1 across, 0.75 up
    torso = np.array([[2.0, 0.0, 1.0], [4.0, 1.0, 0.5], [-1.0, 0.0, 1.0]])
    expected = [BODY_HEIGHT / (2 * 2.0 * 0.75), BODY_HEIGHT / (2 * 4.0 * 0.75), 0.0]  # behind: 0
    assert apparent_height(camera, size, torso) == pytest.approx(expected)
    assert math.isclose(BODY_HEIGHT / (2 * 2.0 * 0.75), 0.56)


def test_measures_match_the_visibility_and_round_trip(tmp_path) -> None:
    options = SynthOptions(clips=2, views=3, seed=3, size=(64, 48), duration=(8.0, 8.0))
    home, jobs = plan_dataset(options)
    renderers = _renderers(home, options.size, options.supersample)
    for job in jobs:
        measures = clip_view_measures(renderers, job.script, options.fps)
        length = clip_visibility(home, job.script, options).shape[1]
        assert measures.shape == (len(FIELDS), options.views, length) and measures.dtype == np.float32
        seen, inside, body, height = measures
        assert np.all((seen <= inside) & (inside <= body)) and np.all(seen == np.round(seen))
        shares = np.stack([grid_visibility(r, job.script, options.fps) for r in renderers])
        assert np.array_equal(visible_shares(measures), shares)  # the very shares of visibility.npz
        assert np.all(height[body > 0] > 0.2)
        write_view_quality(tmp_path / "q.npz", {str(job.index): measures})
    stored = read_view_quality(tmp_path / "q.npz")
    assert sorted(stored) == ["0", "1"] and stored["1"].shape[0] == len(FIELDS)
    assert read_view_quality(tmp_path / "missing.npz") == {}
