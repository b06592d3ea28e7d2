"""`vicokd synth`: write the synthetic home as a dataset in the MultiSensor-Home layout.

Layout of the output directory::

    OUT/01/00-View1-Part1.mp4 …  session folders; per clip one mp4 per view: H.264 video and the
                                 track of that camera's microphone (16 kHz mono, FLAC: lossless,
                                 and a tenth of AAC's encoding time, which was a fifth of the
                                 synthesis; the loaders decode any codec PyAV reads)
    OUT/all_labels.json          every clip record {"video_url_1": …, "tricks": [{start, end, labels}]}
    OUT/train.json, test.json    7:3 split by iterative stratification (vicokd.data.split)
    OUT/visibility.npz           ground truth per clip (V, L): 1 where the actor is visible at grid
                                 frame j (time j / 2.5 s), in the person-score format
    OUT/view_quality.npz         per clip (4, V, L): how much of the body each view sees and how
                                 large it appears (:mod:`.view_quality`, the README's VC moments)
    OUT/floorplan.png, README.md the room, the cameras' fields of view, classes and coverage
    OUT/synth.json               the options; re-running with the same options resumes

Everything follows from the options: the same options give the same JSON bytes and the same
decoded frames, whatever the number of worker processes. Clip i draws from the random stream
``(seed, i)``, session s's lighting and clothes from ``(seed, 7919, s)``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vicokd.data.annotations import frame_labels, parse_record, sequence_labels
from vicokd.data.person_scores import read_person_scores, write_person_scores
from vicokd.data.split import stratified_split
from vicokd.data.video_io import write_mp4
from vicokd.data.workers import run_in_workers
from vicokd.errors import ConfigError, DataError
from vicokd.io import write_json_atomic
from vicokd.synthetic.actor import random_outfit
from vicokd.synthetic.audio import SAMPLE_RATE, microphone_audio
from vicokd.synthetic.options import SynthOptions, SynthSummary
from vicokd.synthetic.render import GRID_FPS, VISIBLE_SHARE, ViewRenderer, render_view
from vicokd.synthetic.report import draw_floor_plan, write_readme
from vicokd.synthetic.scene import (
    Home,
    build_home,
    floor_coverage,
    floor_visibility,
    layout_names,
    pairwise_disparity,
)
from vicokd.synthetic.script import ClipScript, plan_clip
from vicokd.synthetic.view_quality import (
    QUALITY_FILE,
    clip_view_measures,
    quality_stats,
    read_view_quality,
    visible_shares,
    write_view_quality,
)

MANIFEST = "synth.json"
VISIBILITY = "visibility.npz"
QUALITY_SAVE_SECONDS = 60.0  # view_quality.npz is saved at most this often while clips are made
FORMAT_VERSION = 2  # 2: FLAC audio tracks (1: AAC)
AUDIO_CODEC = "flac"


@dataclass(frozen=True)
class ClipJob:
    """One clip to make: its index, session folder, id, view files (relative), script, and the
    home (its camera layout) that films it."""

    index: int
    session: str
    clip_id: str
    videos: tuple[str, ...]
    script: ClipScript
    audio_seed: int
    home: Home

    def record(self) -> dict[str, Any]:
        """The annotation record of the clip (MultiSensor-Home format)."""
        urls: dict[str, Any] = {f"video_url_{k + 1}": url for k, url in enumerate(self.videos)}
        return {**urls, "tricks": self.script.tricks()}


def plan_dataset(options: SynthOptions) -> tuple[Home, list[ClipJob]]:
    """The home of the first layout and every clip's script, session, file names and home (no rendering).

    With several layouts (``home1+home2``) clip i is filmed by the (i mod n)-th; the actor's
    stations and furniture are the same in every layout, so the scripts do not depend on it.
    """
    homes = [build_home(options.views, name) for name in layout_names(options.layout)]
    home = homes[0]
    sessions = []
    for s in range(options.sessions):
        rng = np.random.default_rng([options.seed, 7919, s])
        sessions.append((random_outfit(rng), float(rng.uniform(0.35, 1.0))))
    jobs = []
    per_session = -(-options.clips // options.sessions)
    for i in range(options.clips):
        rng = np.random.default_rng([options.seed, i])
        session = i // per_session
        outfit, daylight = sessions[session]
        frames = round(float(rng.uniform(*options.duration)) * options.fps)
        script = plan_clip(home, rng, frames / options.fps, options.classes, outfit, daylight)
        folder, clip_id = f"{session + 1:02d}", f"{i % per_session:02d}"
        videos = tuple(f"{folder}/{clip_id}-View{k + 1}-Part1.mp4" for k in range(options.views))
        jobs.append(ClipJob(i, folder, clip_id, videos, script, int(rng.integers(2**31)), homes[i % len(homes)]))
    return home, jobs


@functools.lru_cache(maxsize=2)
def _renderers(home: Home, size: tuple[int, int], supersample: int) -> tuple[ViewRenderer, ...]:
    """The views' renderers, kept per process (their static scene is cast once)."""
    return tuple(ViewRenderer(home, camera, size, supersample) for camera in home.cameras)


def clip_measures(home: Home, script: ClipScript, options: SynthOptions) -> np.ndarray:
    """View-quality measures (4, V, L) float32 of one clip (:func:`.view_quality.clip_view_measures`)."""
    return clip_view_measures(_renderers(home, options.size, options.supersample), script, options.fps)


def visibility_from_measures(measures: np.ndarray) -> np.ndarray:
    """Ground-truth visibility (V, L) float32 from measures (4, V, L): 1 where at least
    VISIBLE_SHARE of the body is seen (the same shares as :func:`.render.grid_visibility`)."""
    return (visible_shares(measures) >= VISIBLE_SHARE).astype(np.float32)


def clip_visibility(home: Home, script: ClipScript, options: SynthOptions) -> np.ndarray:
    """Ground-truth visibility (V, L) float32: 1 where at least VISIBLE_SHARE of the body is seen."""
    return visibility_from_measures(clip_measures(home, script, options))


def make_clip(options: SynthOptions, job: ClipJob, out: Path) -> tuple[int, np.ndarray, np.ndarray]:
    """Render and write every view of one clip (filmed by ``job.home``); returns (clip index,
    visibility (V, L), view-quality measures (4, V, L)), both from one pass over the visibility grid."""
    audio = microphone_audio(job.home, job.script, job.audio_seed, SAMPLE_RATE)
    for renderer, video, track in zip(_renderers(job.home, options.size, options.supersample), job.videos, audio):
        frames = render_view(renderer, job.script, options.fps)
        write_mp4(out / video, frames, options.fps, track, SAMPLE_RATE, audio_codec=AUDIO_CODEC)
    measures = clip_measures(job.home, job.script, options)
    return job.index, visibility_from_measures(measures), measures


def _make_clips(options: SynthOptions, jobs: list[ClipJob], out: Path, workers: int
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Make clips in this process or in `workers` processes, yielding each as it finishes."""
    for _, future in run_in_workers(make_clip, [(options, job, out) for job in jobs], workers):
        yield future.result()


def _check_out(out: Path, options: SynthOptions, force: bool) -> bool:
    """Whether `out` holds an interrupted or finished run with the same options (then resume).

    A non-empty directory made otherwise is refused unless `force`.
    """
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            previous = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous == {"version": FORMAT_VERSION, "options": options.to_json()}:
            return True
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DataError(f"{out}: not empty and not made by `vicokd synth` with these options "
                        "(pass --force to write into it anyway)")
    return False


def generate_home(out: str | Path, options: SynthOptions = SynthOptions(), *, workers: int = 1,
                  force: bool = False, progress: bool = True) -> SynthSummary:
    """Generate the dataset into `out` (see the module docstring); returns a summary.

    `workers` processes render clips in parallel (the output does not depend on it). An
    interrupted run resumes when called again with the same options; a finished one is only
    checked. `progress` shows a progress bar on stderr.
    """

    options.validate()
    if workers < 1:
        raise ConfigError(f"--workers {workers}: need at least 1")
    out = Path(out)
    home, jobs = plan_dataset(options)
    resume = _check_out(out, options, force)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / MANIFEST, {"version": FORMAT_VERSION, "options": options.to_json()})
    scores_path, quality_path = out / VISIBILITY, out / QUALITY_FILE
    visibility: dict[str, np.ndarray] = {}
    quality: dict[str, np.ndarray] = {}
    keys = [parse_record(job.record(), out, f"clip {job.index}").key for job in jobs]
    if resume and scores_path.is_file():
        stored, _ = read_person_scores(scores_path)
        visibility = {k: v for k, v in stored.items() if k in set(keys)}
        quality = {k: v for k, v in read_view_quality(quality_path).items() if k in visibility}
    else:
        scores_path.unlink(missing_ok=True)
        quality_path.unlink(missing_ok=True)
    todo = [job for job, key in zip(jobs, keys)
            if key not in visibility or not all((out / v).is_file() for v in job.videos)]
    meta = {"detector": "groundtruth", "threshold": VISIBLE_SHARE}
    saved = time.monotonic()
    with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="synth", unit="clip",
              disable=not progress) as bar:
        for index, vis, measures in _make_clips(options, todo, out, workers):
            visibility[keys[index]] = vis
            quality[keys[index]] = measures
            write_person_scores(scores_path, {keys[index]: vis}, **meta)  # kept if interrupted
            if time.monotonic() - saved > QUALITY_SAVE_SECONDS:  # each save rewrites the file: not per clip
                write_view_quality(quality_path, quality, merge=False, compress=False)
                saved = time.monotonic()
            bar.update()
    missing = [(job, key) for job, key in zip(jobs, keys) if key not in quality]
    for job, key in tqdm(missing, desc="view quality", unit="clip", disable=not progress or not missing):
        quality[key] = clip_measures(job.home, job.script, options)  # unsaved before an interruption, or an older home

    records = [job.record() for job in jobs]
    labels = np.stack([sequence_labels(r["tricks"], options.classes) for r in records])
    train, test = stratified_split(labels, options.test_fraction, options.seed)
    write_json_atomic(out / "all_labels.json", records)
    write_json_atomic(out / "train.json", [records[i] for i in train])
    write_json_atomic(out / "test.json", [records[i] for i in test])
    scores_path.unlink(missing_ok=True)  # rewrite in clip order
    write_person_scores(scores_path, {k: visibility[k] for k in keys}, **meta)
    write_view_quality(quality_path, {k: quality[k] for k in keys}, merge=False)  # clip order, this home only

    summary = _summarise(out, home, options, jobs, [visibility[k] for k in keys], len(train), len(test),
                         len(todo), [quality[k] for k in keys])
    draw_floor_plan(out / "floorplan.png", home, options.size)
    write_readme(out / "README.md", home, options, summary)
    return summary


def _summarise(out: Path, home: Home, options: SynthOptions, jobs: list[ClipJob], visibility: list[np.ndarray],
               train: int, test: int, rendered: int, measures: list[np.ndarray]) -> SynthSummary:
    seen = np.zeros(options.views)
    counts = np.zeros(options.views + 1)
    labelled_total = 0
    segments = {c: 0 for c in options.classes}
    labels = []
    labelled_seen = []
    for job, vis in zip(jobs, visibility):
        labels.append(frame_labels(job.script.tricks(), vis.shape[1], options.classes, GRID_FPS))
        labelled = labels[-1].any(axis=1)
        labelled_seen.append(vis[:, labelled] > 0)
        seen += vis[:, labelled].sum(axis=1)
        counts += np.bincount(vis[:, labelled].sum(axis=0).astype(int), minlength=options.views + 1)
        labelled_total += int(labelled.sum())
        for _, _, name in job.script.segments:
            segments[name] += 1
    total = max(labelled_total, 1)
    return SynthSummary(
        out=out, clips=len(jobs), train=train, test=test, rendered=rendered,
        seconds=sum(job.script.duration for job in jobs),
        floor_coverage=tuple(float(c) for c in floor_coverage(home, options.size)),
        action_visibility=tuple(float(s) for s in seen / total),
        seen_by=tuple(float(c) for c in counts / total),
        segments=segments,
        view_quality=quality_stats(measures, labels, options.classes),
        view_disparity=pairwise_disparity(np.concatenate(labelled_seen, axis=1)) if labelled_seen else 0.0,
        floor_disparity=pairwise_disparity(floor_visibility(home, options.size)[0]),
    )
