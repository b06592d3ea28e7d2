"""The synthetic home: layout, determinism, coverage, rendering vs visibility, audio."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

import vicokd.synthetic.generate as generator
from vicokd.cli import main
from vicokd.config import DataConfig
from vicokd.data.annotations import frame_labels, load_annotations, read_clips
from vicokd.data.cache import load_frames
from vicokd.data.person_scores import read_person_scores
from vicokd.data.prepare import prepare
from vicokd.data.sampling import grid_interval, grid_length
from vicokd.errors import ConfigError, DataError
from vicokd.synthetic import CLASSES, SynthOptions, build_home, generate_home, plan_dataset
from vicokd.synthetic.actor import pose_capsules, random_outfit
from vicokd.synthetic.audio import SAMPLE_RATE, event_signals, microphone_audio, room_noise
from vicokd.synthetic.generate import clip_visibility
from vicokd.synthetic.render import ViewRenderer, render_view
from vicokd.synthetic.scene import floor_coverage, pairwise_disparity, route
from vicokd.synthetic.script import plan_clip
from vicokd.synthetic.view_quality import QUALITY_FILE, read_view_quality, visible_shares

TINY = SynthOptions(clips=3, views=3, seed=0, size=(64, 48), duration=(8.0, 12.0), sessions=2)
JSON_FILES = ("all_labels.json", "train.json", "test.json")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "home"
    generate_home(out, TINY, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def planned() -> tuple[SynthOptions, list, list[np.ndarray]]:
    """A moderate scene without rendering: 8 clips of 30 s, 5 views, visibility only."""
    options = SynthOptions(clips=8, views=5, seed=0, size=(64, 48), duration=(30.0, 30.0))
    home, jobs = plan_dataset(options)
    return options, jobs, [clip_visibility(home, job.script, options) for job in jobs]


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])


# ----------------------------------------------------------------------------------- layout


def test_output_loads_without_special_cases(tiny: Path, tmp_path: Path) -> None:
    train, classes = load_annotations(tiny, "train")
    test, _ = load_annotations(tiny, "test")
    assert len(train) + len(test) == TINY.clips and len(train) >= len(test) >= 1
    assert set(classes) <= set(CLASSES)
    records = json.loads((tiny / "all_labels.json").read_text())
    assert len(records) == TINY.clips and list(records[0])[:3] == ["video_url_1", "video_url_2", "video_url_3"]
    scores, meta = read_person_scores(tiny / "visibility.npz")
    assert meta["detector"] == "groundtruth"
    for clip in train + test:
        assert clip.num_views == TINY.views and clip.session in ("01", "02")
        assert [p.name for p in clip.videos] == [f"{clip.clip_id}-View{k}-Part1.mp4" for k in (1, 2, 3)]
        frames = _decode(clip.videos[0])
        assert frames.shape[1:] == (48, 64, 3)
        length = grid_length(len(frames), TINY.fps)
        assert scores[clip.key].shape == (TINY.views, length)
        assert set(np.unique(scores[clip.key])) <= {0.0, 1.0}
        assert len(_audio(clip.videos[0])) >= len(frames) / TINY.fps * SAMPLE_RATE
        assert 8.0 <= len(frames) / TINY.fps <= 12.0
    assert (tiny / "floorplan.png").stat().st_size > 10_000
    readme = (tiny / "README.md").read_text()
    assert "--seed 0" in readme and "View3" in readme and "CleanVacuum" in readme

    index = prepare(tiny, tmp_path / "cache", DataConfig(image_size=(48, 64)), workers=1, progress=False)
    key = sorted(index.clips)[0]
    assert load_frames(tmp_path / "cache", key).shape[:2] == (TINY.views, index.clips[key].length)


def test_readme_reports_vc_moments_from_view_quality(tiny: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (tiny / "README.md").read_text()
    assert "## Views that see the action well or poorly (VC moments)" in readme
    header = ("| class | labelled time | seen by ≥ 2 views | VC moments (of the ≥ 2-view time) | far/small | "
              "partly hidden | both |")
    assert header in readme and "\n| all | " in readme
    rows = [line for line in readme.splitlines() if line.startswith("| all | ")]
    assert len(rows) == 1 and len(rows[0].split("|")) == 9
    scores, _ = read_person_scores(tiny / "visibility.npz")
    quality = read_view_quality(tiny / QUALITY_FILE)
    assert quality.keys() == scores.keys()
    for key, vis in scores.items():
        assert quality[key].shape == (4, *vis.shape)
        assert np.array_equal(visible_shares(quality[key]) >= 0.25, vis > 0.5)

    # a home made before view_quality.npz existed, with one video lost: a re-run renders that clip
    # (its measures saved as it goes) and measures the others without rendering
    copy = tmp_path / "old"
    shutil.copytree(tiny, copy)
    (copy / QUALITY_FILE).unlink()
    next(copy.glob("*/*-View2-Part1.mp4")).unlink()
    monkeypatch.setattr(generator, "QUALITY_SAVE_SECONDS", -1.0)
    summary = generate_home(copy, TINY, workers=1, progress=False)
    assert summary.rendered == 1 and summary.view_quality is not None
    assert (copy / "README.md").read_text() == readme
    again = read_view_quality(copy / QUALITY_FILE)
    assert all(np.array_equal(again[k], quality[k]) for k in quality)
    counts = summary.view_quality.overall
    assert counts.labelled >= counts.multi >= counts.vc == counts.far + counts.hidden + counts.both
    assert "VC moments" in summary.describe()


def test_same_seed_same_bytes_and_frames_any_workers(tiny: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    generate_home(other, TINY, workers=2, progress=False)
    for name in JSON_FILES:
        assert (tiny / name).read_bytes() == (other / name).read_bytes()
    first, _ = read_person_scores(tiny / "visibility.npz")
    second, _ = read_person_scores(other / "visibility.npz")
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    for clip in read_clips(tiny / "all_labels.json", tiny):
        for video in clip.videos:
            twin = other / video.relative_to(tiny)
            assert np.array_equal(_decode(video), _decode(twin))
            assert video.read_bytes() == twin.read_bytes()  # audio track included


def test_rerun_resumes_and_foreign_folder_is_refused(tiny: Path, tmp_path: Path) -> None:
    before = {name: (tiny / name).read_bytes() for name in JSON_FILES}
    summary = generate_home(tiny, TINY, workers=1, progress=False)
    assert summary.rendered == 0
    assert {name: (tiny / name).read_bytes() for name in JSON_FILES} == before
    with pytest.raises(DataError, match="--force"):
        generate_home(tiny, SynthOptions(clips=1, views=2, size=(32, 24), duration=(6.0, 6.0)), progress=False)


@pytest.mark.parametrize(("changes", "message"), [
    ({"size": (63, 48)}, "--size"), ({"fps": 4.0}, "--fps"), ({"views": 9}, "--views"),
    ({"classes": ("Dance",)}, "unknown class 'Dance'"), ({"duration": (30.0, 20.0)}, "--duration"),
    ({"layout": "home3"}, "--layout 'home3'"),
])
def test_bad_options_are_one_line_errors(tmp_path: Path, changes: dict, message: str) -> None:
    options = dataclasses.replace(TINY, **changes)
    with pytest.raises(ConfigError, match=message):
        generate_home(tmp_path / "x", options, progress=False)
    assert not (tmp_path / "x").exists()


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["synth", str(tmp_path / "cli"), "--clips", "1", "--views", "2", "--size", "32x24", "--duration", "6",
            "--classes", "Drink,UsePhone", "--workers", "1", "--quiet"]
    assert main(argv) == 0
    assert "View2" in capsys.readouterr().out
    assert json.loads((tmp_path / "cli" / "synth.json").read_text())["options"]["size"] == [32, 24]
    assert main(["synth", str(tmp_path / "bad"), "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --size") and err.count("\n") == 1


# ------------------------------------------------------------------------ scene and scripts


def test_walking_routes_exist_between_all_places() -> None:
    home = build_home(8)
    for a in home.stations:
        for b in home.stations:
            path = route(home, a.stand, b.stand)
            assert path[0] == a.stand and path[-1] == b.stand


def test_scripts_use_only_chosen_classes_and_overlap_sometimes() -> None:
    home = build_home(3)
    counts, overlapping = [], 0
    for i in range(40):
        rng = np.random.default_rng([1, i])
        classes = CLASSES if i % 2 else ("Drink", "Eat", "ReadBook", "UsePhone", "Sitdown", "Standup")
        script = plan_clip(home, rng, 40.0, classes, random_outfit(rng), 0.7)
        assert {c for _, _, c in script.segments} <= set(classes)
        assert all(0 <= s < e <= 40.0 for s, e, _ in script.segments)
        counts.append(len(script.segments))
        overlapping += bool((frame_labels(script.tricks(), 100, CLASSES).sum(axis=1) > 1).any())
    assert min(counts) >= 2 and max(counts) <= 5
    assert overlapping >= 4  # multi-label frames happen


# ------------------------------------------------------------------------------- coverage


def test_coverage_is_partial_in_every_view(planned: tuple) -> None:
    options, jobs, visibility = planned
    floor = floor_coverage(build_home(options.views), options.size)
    assert np.all((floor > 0.25) & (floor < 0.85)), floor
    seen, labelled = np.zeros(options.views), 0
    for job, vis in zip(jobs, visibility):
        active = frame_labels(job.script.tricks(), vis.shape[1], options.classes).any(axis=1)
        seen += vis[:, active].sum(axis=1)
        labelled += active.sum()
    share = seen / labelled
    assert np.all((share > 0.25) & (share < 0.85)), share


def test_pairwise_disparity_by_hand() -> None:
    # views 0 and 1 share 1 of 3 frames (1 - 1/3); 0 and 2 share none (1); 1 and 2 share 1 of 2 (1 - 1/2)
    seen = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0]], bool)
    assert pairwise_disparity(seen) == pytest.approx(((1 - 1 / 3) + 1 + (1 - 1 / 2)) / 3)
    assert pairwise_disparity(np.ones((3, 5), bool)) == 0.0
    assert pairwise_disparity(np.array([[1, 0], [0, 0]], bool)) == 1.0  # the empty pair-union is skipped: none


def test_home2_views_overlap_more_than_home1(planned: tuple) -> None:
    """The two camera layouts on the same scripts: home2's views see the actor together more often
    (co-visibility) and share more of what they see (lower disparity), as the paper's Home-2 does."""
    options, jobs, home1_visibility = planned
    home2_options = dataclasses.replace(options, layout="home2")
    home2 = build_home(options.views, "home2")
    home2_visibility = [clip_visibility(home2, job.script, home2_options) for job in jobs]
    measures = {}
    for layout, visibility in (("home1", home1_visibility), ("home2", home2_visibility)):
        labelled = np.concatenate([vis[:, frame_labels(job.script.tricks(), vis.shape[1], options.classes).any(axis=1)]
                                   for job, vis in zip(jobs, visibility)], axis=1) > 0
        measures[layout] = ((labelled.sum(axis=0) >= 2).mean(), pairwise_disparity(labelled))
    assert measures["home2"][0] >= measures["home1"][0] and measures["home2"][1] < measures["home1"][1] - 0.05, measures


def test_home2_sees_every_seat_from_the_front_or_side() -> None:
    """Where the actor sits (sofa, dining chairs, desk chair), some home2 camera sees them from the front or
    the side: the angle between where the seated actor faces and the direction to the camera is under 75
    degrees (the sofa's seats, which face north, under 45: the layout before saw them from behind only)."""
    home = build_home(5, "home2")
    for station in home.stations:
        if station.seat is None:
            continue
        angles = []
        for camera in home.cameras:
            towards = math.atan2(camera.position[1] - station.seat[1], camera.position[0] - station.seat[0])
            angles.append(abs((towards - station.heading + math.pi) % (2 * math.pi) - math.pi))
        limit = 45 if station.name.startswith("sofa") else 75
        assert math.degrees(min(angles)) < limit, (station.name, [round(math.degrees(a)) for a in angles])


def test_a_class_is_heard_where_it_is_not_seen(planned: tuple) -> None:
    options, jobs, visibility = planned
    home = build_home(options.views)
    mics = np.array([c.position for c in home.cameras])
    found = []
    for job, vis in zip(jobs, visibility):
        samples = round(job.script.duration * SAMPLE_RATE)
        noise = room_noise(np.random.default_rng(job.audio_seed), options.views, samples)
        for start, end, name in job.script.segments:
            frames = slice(round(start * 2.5), round(end * 2.5) + 1)
            unseen = [v for v in range(options.views) if vis[v, frames].max() == 0]
            events = [e for e in job.script.sounds
                      if e.label == name and e.start < end and e.start + e.duration > start]
            if not unseen or not events:
                continue
            heard = event_signals(job.script, mics, events)
            window = slice(round(start * SAMPLE_RATE), round(end * SAMPLE_RATE))
            for v in unseen:
                if np.sqrt(np.mean(heard[v, window] ** 2)) > 2 * np.sqrt(np.mean(noise[v, window] ** 2)):
                    found.append((name, v))
    assert len(found) >= 3, found


def test_room_noise_is_pink_with_hum_and_reproducible() -> None:
    noise = room_noise(np.random.default_rng(3), 2, 10 * SAMPLE_RATE)
    assert noise.dtype == np.float32 and noise.shape == (2, 10 * SAMPLE_RATE)
    assert np.array_equal(noise, room_noise(np.random.default_rng(3), 2, 10 * SAMPLE_RATE))
    # level in [0.7, 1.3] × sqrt(0.0025² + 0.0006² + 0.0008²/2) (pink, hiss and hum powers add)
    floor = np.sqrt(0.0025**2 + 0.0006**2 + 0.0008**2 / 2)
    assert np.all((noise.std(axis=1) > 0.65 * floor) & (noise.std(axis=1) < 1.35 * floor))
    power = np.abs(np.fft.rfft(noise[0])) ** 2
    freqs = np.fft.rfftfreq(noise.shape[1], 1 / SAMPLE_RATE)

    def band(low: float, high: float) -> float:
        return float(power[(freqs >= low) & (freqs < high)].mean())

    assert 6 < band(100, 200) / band(1000, 2000) < 13  # pink: power ∝ 1/f, ten times lower a decade up
    assert band(49.8, 50.2) > 20 * band(60, 100)  # the mains hum stands out


def test_loud_action_is_loudest_at_the_nearest_microphone() -> None:
    home = build_home(5)
    mics = np.array([c.position for c in home.cameras])
    checked = 0
    for seed in range(6):
        rng = np.random.default_rng([2, seed])
        script = plan_clip(home, rng, 30.0, ("CleanVacuum",), random_outfit(rng), 0.7)
        audio = microphone_audio(home, script, seed)
        for start, end, _ in script.segments:
            times = np.linspace(start, end, 50)
            position = script.sample(("x", "y"), times)
            actor = np.stack([position["x"], position["y"], np.full(50, 0.15)], axis=1)
            distance = np.linalg.norm(actor[None] - mics[:, None], axis=2).mean(axis=1)
            first, second = np.sort(distance)[:2]
            if second < 1.15 * first:
                continue  # two microphones about as near
            energy = (audio[:, round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)] ** 2).mean(axis=1)
            assert np.argmax(energy) == np.argmin(distance), (energy, distance)
            checked += 1
    assert checked >= 3


# ------------------------------------------------------------------------------- rendering


def _outside_image(renderer: ViewRenderer, start: np.ndarray, end: np.ndarray, radius: np.ndarray) -> bool:
    """Whether the body (capsules of one frame) lies wholly on one side outside the image."""
    width, height = renderer.size
    keep = radius > 0
    points = np.concatenate([start[keep], end[keep]])
    rows, cols, depth = renderer.camera.project(points, renderer.size)
    if np.all(depth <= 0):
        return True
    if np.any(depth <= 0.05):
        return False
    focal = width / 2 / renderer.camera.half_extent(renderer.size)[0]
    pad = np.concatenate([radius[keep]] * 2) * focal / depth + 1
    return bool(np.all(rows + pad < 0) or np.all(rows - pad > height) or np.all(cols + pad < 0)
                or np.all(cols - pad > width))


def test_actor_drawn_only_where_visible(tiny: Path) -> None:
    home, jobs = plan_dataset(TINY)
    scores, _ = read_person_scores(tiny / "visibility.npz")
    interval = grid_interval(TINY.fps)
    counts = {"seen": 0, "unseen": 0, "outside": 0}
    for job, clip in zip(jobs, read_clips(tiny / "all_labels.json", tiny)):
        times = np.arange(scores[clip.key].shape[1]) / 2.5
        caps = pose_capsules(job.script.pose(times), job.script.outfit)
        for v, camera in enumerate(home.cameras):
            renderer = ViewRenderer(home, camera, TINY.size, TINY.supersample)
            person = render_view(renderer, job.script, TINY.fps)[::interval]
            empty = render_view(renderer, job.script, TINY.fps, actor=False)[::interval]
            decoded = _decode(tiny / job.videos[v])[::interval]
            assert np.abs(decoded.astype(int) - person).mean() < 4  # the video shows the rendered scene
            changed = (person != empty).any(axis=-1).sum(axis=(1, 2))  # actor pixels per grid frame
            visible = scores[clip.key][v] > 0.5
            assert np.all(changed[visible] > 0)
            for j in range(len(times)):
                if _outside_image(renderer, caps.start[j], caps.end[j], caps.radius[j]):
                    assert changed[j] == 0 and not visible[j]
                    counts["outside"] += 1
            counts["seen"] += int(visible.sum())
            counts["unseen"] += int((~visible).sum())
            if visible.any() and (~visible).any():  # the actor shows up in the video where visible
                moved = np.abs(decoded.astype(int) - empty).mean(axis=(1, 2, 3))
                assert moved[visible].mean() > moved[~visible].mean()
    assert counts["seen"] >= 10 and counts["unseen"] >= 10 and counts["outside"] >= 1, counts


def test_joined_layouts_film_clips_in_turn() -> None:
    """``home1+home2`` (the pretraining home): clip i is filmed by the (i mod 2)-th layout, with the
    scripts a one-layout home of the same seed plans (they do not depend on the cameras)."""
    options = dataclasses.replace(TINY, clips=4)
    _, one = plan_dataset(options)
    first, both = plan_dataset(dataclasses.replace(options, layout="home1+home2"))
    assert first == build_home(options.views, "home1")
    assert [job.home for job in both] == [build_home(options.views, name) for name in ("home1", "home2") * 2]
    assert [job.script.tricks() for job in both] == [job.script.tricks() for job in one]
    with pytest.raises(ConfigError, match="--layout 'home1\\+home3'"):
        dataclasses.replace(options, layout="home1+home3").validate()
