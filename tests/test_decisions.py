"""Decisions: one segment rule for a whole clip and a stream, checked against a transcription of it."""

import dataclasses

import numpy as np
import pytest
import torch

from vicokd.calibration import Calibration
from vicokd.config import Config, replace
from vicokd.inference.decisions import Decisions, SegmentTracker, segments_from_probs
from vicokd.models.checkpoint import CheckpointMeta

FPS = 2.5


def reference_segments(probs, thresholds, fps, min_gap, min_duration):
    """The rule, transcribed: runs of consecutive p ≥ θ; runs whose gap (next first − previous last) / fps ≤
    min_gap merge;
    merged runs with (last − first) / fps ≥ min_duration are kept. (first, class, last) sorted."""
    found = []
    for c in range(probs.shape[1]):
        runs = []
        for j in range(probs.shape[0]):
            if probs[j, c] < thresholds[c]:
                continue
            if runs and (j == runs[-1][1] + 1 or (j - runs[-1][1]) / fps <= min_gap + 1e-9):
                runs[-1][1] = j  # the same run, or a run whose gap to the previous one is bridged
            else:
                runs.append([j, j])
        found += [(a, c, b) for a, b in runs if (b - a) / fps >= min_duration - 1e-9]
    return sorted(found)


@pytest.mark.parametrize("min_gap,min_duration", [(0.0, 0.0), (0.8, 0.4), (0.4, 0.0), (1.2, 0.8), (2.0, 2.5)])
def test_segments_follow_the_rule_on_random_probabilities(min_gap, min_duration):
    rng = np.random.default_rng(7)
    classes = ["A", "B", "C"]
    for _ in range(50):
        probs = rng.random((int(rng.integers(1, 30)), 3)) ** 2
        thresholds = np.array([0.3, 0.5, 0.7])
        got = segments_from_probs(probs, classes, FPS, thresholds, min_gap, min_duration)
        expected = reference_segments(probs, thresholds, FPS, min_gap, min_duration)
        assert [(round(s.start * FPS), classes.index(s.label), round(s.end * FPS)) for s in got] == expected
        for segment, (a, c, b) in zip(got, expected):
            assert segment.score == pytest.approx(probs[a : b + 1, c].mean())
            assert segment.peak == probs[a : b + 1, c].max()


def test_two_missed_frames_split_a_segment_in_a_stream_as_in_a_clip():
    """At 2.5 FPS and min_gap 0.8 s one missed frame is bridged, two are not (the stream once merged them)."""
    probs = np.array([[0.9], [0.9], [0.1], [0.1], [0.9], [0.9], [0.1], [0.9], [0.9]])
    tracker = SegmentTracker(["A"], np.array([0.5]), FPS, min_gap=0.8, min_duration=0.4)
    events = [e for j, p in enumerate(probs) for e in tracker.push(j, p)] + tracker.close()
    assert [(e.kind, e.frame) for e in events] == [("start", 0), ("end", 1), ("start", 4), ("end", 8)]
    clip = segments_from_probs(probs, ["A"], FPS, 0.5, 0.8, 0.4)
    assert [(s.start, s.end) for s in clip] == [(0.0, 0.4), (1.6, 3.2)]
    assert [e.segment for e in events if e.kind == "end"] == clip


def test_decisions_from_a_sidecar_entry():
    config = replace(Config(), data=replace(Config().data, fps=FPS))
    meta = CheckpointMeta(role="student", method="student", config=config, classes=("A", "B"))
    plain = Decisions.from_meta(meta)
    assert plain.threshold_source == "default" and list(plain.thresholds) == [0.5, 0.5] and not plain.calibrated
    calibration = Calibration(scale={"A": 2.0, "B": 1.0}, bias={"A": 0.0, "B": -1.0}, thresholds={"A": 0.3, "B": 0.6},
                              val_f1={"A": None, "B": None}, ece_before=0.0, ece_after=0.0, val_frames=0)
    calibrated = Decisions.from_meta(dataclasses.replace(meta, calibration=calibration.to_json()))
    assert calibrated.threshold_source == "calibrated on validation" and list(calibrated.thresholds) == [0.3, 0.6]
    probs = calibrated.probabilities(torch.tensor([[0.0, 1.0]]))
    assert probs[0].tolist() == pytest.approx([0.5, 0.5])  # σ(2·0 + 0), σ(1·1 − 1)
    assert calibrated.active(probs.numpy()).tolist() == [[True, False]]
    assert Decisions.from_meta(meta, 0.7).threshold_source == "--threshold"
    with pytest.raises(Exception, match="--threshold 1.5"):
        Decisions.from_meta(meta, 1.5)
