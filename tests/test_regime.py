"""The regime block: baseline statistics against their targets, on hand-computed cases."""

import pytest

from vicokd.report.regime import regime_counts, regime_markdown, regime_rows
from vicokd.report.tables import CellKey, RunResult


def run(env: str, method: str, sup: str, seed: int, seq: float, backbone: str = "multiasl") -> RunResult:
    return RunResult(CellKey(env, backbone, sup, method), seed, seq, 0.0)


def by_statistic(rows, statistic, env):
    return next(r for r in rows if r.statistic == statistic and r.env == env)


def test_rows_by_hand():
    results = []
    for seed, (teacher, vf, vs, vf2) in enumerate([(70.0, 64.0, 60.0, 80.0), (72.0, 63.0, 61.0, 82.0)]):
        results += [run("home1", "teacher", "frame", seed, teacher), run("home1", "student", "frame", seed, vf),
                    run("home1", "student", "sequence", seed, vs), run("home2", "student", "frame", seed, vf2)]
    audio = {("home1", "multiasl"): ({0: 70.0, 1: 72.0}, {0: 66.0, 1: 67.0})}
    rows = regime_rows(results, ["home1", "home2"], ["multiasl"], audio)
    lead = by_statistic(rows, "Teacher − Student V_F", "home1")
    # per-seed differences 6 and 9: mean 7.5, sample std 2.1213; paper Home-1 MultiASL 73.81 - 63.24
    assert lead.ours.mean == pytest.approx(7.5) and lead.ours.std == pytest.approx(2.12132, abs=1e-5)
    assert lead.paper == pytest.approx(10.57) and lead.state == "met"
    labels = by_statistic(rows, "Student V_F − Student V_S", "home1")
    assert labels.ours.mean == pytest.approx(3.0) and labels.state == "met"
    assert by_statistic(rows, "Student V_F − Student V_S, mean over the backbones", "home1").state == "met"
    # with audio 71 ± 1.41 vs audio-missing 66.5 ± 0.71: +4.5 > the larger std 1.41
    assert by_statistic(rows, "Teacher − Teacher audio-missing", "home1").state == "met"
    # home2 has no teacher, no V_S student and no audio evaluation: not run, not missed
    assert by_statistic(rows, "Teacher − Student V_F", "home2").state == "not run"
    assert by_statistic(rows, "Teacher − Teacher audio-missing", "home2").state == "not run"
    gain = by_statistic(rows, "Student V_F: home2 − home1", "both")  # 16 and 19
    assert gain.ours.mean == pytest.approx(17.5) and gain.state == "met"
    assert gain.paper == pytest.approx(82.25 - 63.24)
    assert regime_counts(rows) == "5 of 5 targets met (0 missed, 4 not run)"
    assert "**met**" in regime_markdown(rows) and "+7.50 ± 2.12" in regime_markdown(rows)


def test_missed_outside_the_range_and_audio_within_noise():
    results = [run("home1", "teacher", "frame", s, t) for s, t in enumerate((90.0, 91.0))]
    results += [run("home1", "student", "frame", s, v) for s, v in enumerate((70.0, 72.0))]
    results += [run("home1", "student", "sequence", s, v) for s, v in enumerate((70.5, 71.8))]
    audio = {("home1", "multiasl"): ({0: 90.0, 1: 91.0}, {0: 89.0, 1: 91.5})}
    rows = regime_rows(results, ["home1"], ["multiasl"], audio)
    assert by_statistic(rows, "Teacher − Student V_F", "home1").state == "missed"  # +19.5 > +11
    assert by_statistic(rows, "Student V_F − Student V_S", "home1").state == "missed"  # -0.15 < +0.5
    assert by_statistic(rows, "Teacher − Teacher audio-missing", "home1").state == "missed"  # +0.25 < 1.77
    assert not any(r.statistic.endswith("home2 − home1") for r in rows)  # one home: nothing to compare
