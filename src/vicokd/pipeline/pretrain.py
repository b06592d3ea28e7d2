"""`vicokd pretrain`: an encoder pretrained without action labels on a separate synthetic home.

The demo's encoders start from scratch; the paper's start from ImageNet (visual) and AudioSet
(audio). This is the CPU-scale analogue: a second synthetic home, never the demo's, supervises
the encoder per frame with what the simulator knows (:mod:`vicokd.synthetic.targets`).
``modality = "visual"``: where the actor is on the patch grid, whether a camera sees them, their
posture, the prop in hand, the scene's lamp, curtains and air conditioner. ``modality =
"audio"``: which kinds of sound play in each 0.4-s chunk (vacuum, gulp, chew, ring, footstep,
door, ...: AudioSet-style event labels), the AST of ``model.audio`` on the chunk's fbank.
Action labels are never read.

Steps (each reused when finished, see :mod:`vicokd.pipeline.steps`):

1. synthesise the pretraining home into ``HOME/data`` (default ``HOME = OUT/home``): the demo's
   generator options (:func:`vicokd.pipeline.home.demo_synth_options`) with the
   generator seed :func:`pretrain_seed` of the data seed, so its clips are never the demo's, its
   clips filmed by every camera layout in turn (``--layout``, default ``home1+home2``) and two clips
   to a session (each session its own clothes and daylight);
2. decode every view's grid frames at ``data.image_size`` (audio: every view's fbank chunks, as
   ``prepare`` computes them) and compute the per-frame targets, one file per clip in
   ``HOME/frames-<W>x<H>-grid<gh>x<gw>/`` (audio: ``HOME/fbank-<rows>x<mels>/``);
3. train the encoder of ``model.visual`` or ``model.audio`` (:mod:`vicokd.training.pretrain_encoder`),
   resumable per epoch (``OUT/train-state.safetensors``);
4. write ``OUT/encoder.safetensors`` (the timm model's or ``ASTModel``'s state dict: set
   ``model.visual.pretrained`` or ``model.audio.pretrained`` to it) and ``OUT/pretrain.json``
   (request, targets, losses, times).

Several pretraining runs can share one home (``--home``): only steps 3-4 depend on the
training options.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from vicokd.config import Config, config_to_dict, load_config
from vicokd.data.annotations import parse_record
from vicokd.data.media import fbank_rows, grid_fbank, probe_video, read_audio, read_grid_frames
from vicokd.data.person_scores import read_person_scores
from vicokd.data.workers import run_in_workers
from vicokd.errors import VicokdError
from vicokd.io import atomic_path, write_json_atomic
from vicokd.pipeline.home import ALL_LAYOUTS, demo_synth_options, synthesise_or_reuse
from vicokd.pipeline.steps import StepLog, request_difference
from vicokd.synthetic import SynthOptions, plan_dataset
from vicokd.synthetic.actor import PROPS
from vicokd.synthetic.generate import VISIBILITY
from vicokd.synthetic.options import MAX_SESSIONS
from vicokd.synthetic.scene import STATE_CHANNELS
from vicokd.synthetic.targets import POSE_TARGETS, SOUND_KINDS, clip_targets, sound_targets
from vicokd.training.pretrain_encoder import (
    PretrainData,
    PretrainSettings,
    TargetGroup,
    build_encoder_net,
    patch_grid,
    pretrain_encoder,
    save_encoder,
)

PRETRAIN_SEED_OFFSET = 1_000_000  # generator seed of the pretraining home = data seed + this
TARGETS = ("visible", "mask", "pose", "hand_mouth", "props", "state", "foreground")
DEFAULT_TARGETS = ("visible", "mask", "pose", "hand_mouth", "props", "state")
AUDIO_TARGETS = ("sounds",)  # the kinds of sound playing in each chunk (SOUND_KINDS)
MODALITIES = ("visual", "audio")
DEFAULT_CLIPS = 60
# two clips per session: every session has its own clothes and daylight, so the encoder sees 30 people-looks,
# not the demo homes' 8 (with 8 it fitted the 8 looks: docs/experiments/world.md)
CLIPS_PER_SESSION = 2
DEFAULT_EPOCHS = 10  # validation mAP above 6 epochs on three demo-like homes (docs/experiments/pretrain.md)
ENCODER_FILE = "encoder.safetensors"
REPORT_FILE = "pretrain.json"
STATE_FILE = "train-state.safetensors"
VAL_EVERY = 10  # clips i with i % VAL_EVERY == VAL_EVERY - 1 are held out (pretraining losses only)
FRAMES_VERSION = 1


def pretrain_seed(data_seed: int) -> int:
    """The generator seed of the pretraining home made for a demo home of seed `data_seed`."""
    return data_seed + PRETRAIN_SEED_OFFSET


@dataclass(frozen=True)
class PretrainOptions:
    """What `vicokd pretrain` makes."""

    out: Path = Path("pretrain")
    home: Path | None = None  # default OUT/home
    data_seed: int = 0
    clips: int = DEFAULT_CLIPS
    epochs: int = DEFAULT_EPOCHS
    views: int = 5
    layout: str = ALL_LAYOUTS  # camera layouts of the pretraining home (clips alternate): every one the demo films
    duration: tuple[float, float] = (20.0, 40.0)
    targets: tuple[str, ...] | None = None  # None: DEFAULT_TARGETS (visual), AUDIO_TARGETS (audio)
    modality: str = "visual"
    mask_head: str = "tokens"
    batch_size: int = 128
    lr: float = 2e-3
    config: Path | None = None  # default configs/demo/student.yaml of the source tree
    overrides: tuple[str, ...] = field(default_factory=tuple)
    workers: int = 2

    @property
    def home_dir(self) -> Path:
        return self.home if self.home is not None else self.out / "home"

    @property
    def target_names(self) -> tuple[str, ...]:
        if self.targets is not None:
            return self.targets
        return AUDIO_TARGETS if self.modality == "audio" else DEFAULT_TARGETS

    def validate(self) -> None:
        if self.modality not in MODALITIES:
            raise VicokdError(f"--modality {self.modality!r}: choose {' or '.join(MODALITIES)}")
        known = AUDIO_TARGETS if self.modality == "audio" else TARGETS
        targets = self.target_names
        unknown = [t for t in targets if t not in known]
        if unknown or not targets:
            raise VicokdError(f"--targets: unknown {self.modality} target {unknown[0]!r} (known: {', '.join(known)})"
                              if unknown else f"--targets: name at least one of {', '.join(known)}")
        if len(set(targets)) != len(targets):
            raise VicokdError(f"--targets: a target is listed twice ({','.join(targets)})")
        if self.data_seed < 0:
            raise VicokdError(f"--data-seed {self.data_seed}: must be >= 0")
        if self.clips < 2:
            raise VicokdError(f"--clips {self.clips}: need at least 2 clips (one is held out)")
        if self.epochs < 1:
            raise VicokdError(f"--epochs {self.epochs}: need at least 1")
        if self.workers < 1:
            raise VicokdError(f"--workers {self.workers}: need at least 1")
        self.synth_options().validate()

    def synth_options(self) -> SynthOptions:
        """The demo's generator options with the pretraining seed, clip count, views, layouts, duration
        and :data:`CLIPS_PER_SESSION` clips to a session."""
        demo = demo_synth_options(self.clips, self.views, pretrain_seed(self.data_seed), layout=self.layout)
        return SynthOptions(**{**demo.__dict__, "duration": self.duration,
                               "sessions": max(1, min(self.clips // CLIPS_PER_SESSION, MAX_SESSIONS))})

    def load_config(self) -> Config:
        path = self.config
        if path is None:
            from vicokd.pipeline.grid import preset_dir

            path = preset_dir("demo") / "student.yaml"
        return load_config(path, list(self.overrides))


# ------------------------------------------------------------------------ home, frames, targets


def synthesise_home(options: PretrainOptions, log: StepLog, progress: bool = True) -> None:
    """Step: the pretraining home in ``HOME/data`` (reused when finished with the same options)."""
    synth = options.synth_options()
    data = options.home_dir / "data"
    with log.step(f"synthesise the pretraining home ({synth.clips} clips, {synth.views} views, "
                  f"generator seed {synth.seed})") as step:
        summary = synthesise_or_reuse(data, synth, step, retry_hint="choose another OUT or --home, or delete it",
                                      workers=options.workers, progress=progress)
        if summary is None:
            return
        step.detail = f"{summary.clips} clips, {summary.seconds / 60:.1f} min of video per view"




def frames_dir(home: Path, image_size: tuple[int, int], grid: tuple[int, int]) -> Path:
    height, width = image_size
    return home / f"frames-{width}x{height}-grid{grid[0]}x{grid[1]}"


def _clip_frames_and_targets(synth: SynthOptions, index: int, data: Path, image_size: tuple[int, int],
                             fps: float, grid: tuple[int, int], target: Path) -> str:
    """Decode one clip's grid frames and compute its targets into `target` (.npz, atomic)."""
    _, jobs = _planned(synth)
    job = jobs[index]
    frames = np.stack([read_grid_frames(data / video, image_size, fps).transpose(0, 3, 1, 2)
                       for video in job.videos])  # (V, L, 3, H, W)
    targets = clip_targets(job.home, job.script, synth.size, synth.fps, grid)
    length = min(frames.shape[1], targets["mask"].shape[1])
    arrays = {"frames": frames[:, :length]}
    for name, value in targets.items():
        arrays[name] = value[:, :length] if name == "mask" else value[:length]
    with atomic_path(target) as tmp:
        np.savez(tmp, **arrays)
    return target.name


_PLANS: dict[str, tuple[Any, list[Any]]] = {}


def _planned(synth: SynthOptions) -> tuple[Any, list[Any]]:
    """The home and clip scripts of `synth`, planned once per process."""
    key = json.dumps(synth.to_json(), sort_keys=True)
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = plan_dataset(synth)
    return _PLANS[key]


def clip_keys(synth: SynthOptions, data: Path) -> list[str]:
    """The clip keys of the home, in clip order (as in ``visibility.npz`` and the cache)."""
    _, jobs = _planned(synth)
    return [parse_record(job.record(), data, f"clip {job.index}").key for job in jobs]


def _per_clip_files(options: PretrainOptions, directory: Path, manifest_name: str, settings: dict[str, Any],
                    title: str, desc: str, work: Callable[..., str], extra: tuple[Any, ...], log: StepLog,
                    progress: bool) -> Path:
    """Step `title`: ``work(synth, index, data, *extra, target)`` writes one ``<key>.npz`` per clip into
    `directory` (in worker processes); clips already there are kept. `settings` are recorded in
    `manifest_name`: a directory made with others is refused."""
    synth = options.synth_options()
    data = options.home_dir / "data"
    with log.step(title) as step:
        manifest = directory / manifest_name
        if manifest.is_file() and json.loads(manifest.read_text()) != settings:
            raise VicokdError(f"{directory}: made from another home or with other settings; delete it or choose "
                              "another --home")
        directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(manifest, settings)
        keys = clip_keys(synth, data)
        todo = [(i, directory / f"{key}.npz") for i, key in enumerate(keys) if not (directory / f"{key}.npz").is_file()]
        if not todo:
            step.status = "reused"
            return directory
        started = time.perf_counter()
        jobs = [(synth, index, data, *extra, target) for index, target in todo]
        with tqdm(total=len(keys), initial=len(keys) - len(todo), desc=desc, unit="clip",
                  disable=not progress, file=sys.stderr) as bar:
            for _, future in run_in_workers(work, jobs, options.workers):
                future.result()
                bar.update()
        step.detail = f"{len(todo)} clips in {time.perf_counter() - started:.1f} s"
    return directory


def make_frames(options: PretrainOptions, config: Config, grid: tuple[int, int], log: StepLog,
                progress: bool = True) -> Path:
    """Step: every clip's frames and targets in ``HOME/frames-…`` (clips already there are kept)."""
    size = config.data.image_size
    settings = {"version": FRAMES_VERSION, "synth": options.synth_options().to_json(), "image_size": list(size),
                "fps": config.data.fps, "grid": list(grid)}
    return _per_clip_files(options, frames_dir(options.home_dir, size, grid), "frames.json", settings,
                           f"frames and targets ({options.clips} clips, {size[1]}x{size[0]}, patch grid "
                           f"{grid[0]}x{grid[1]})", "frames+targets", _clip_frames_and_targets,
                           (size, config.data.fps, grid), log, progress)


FOREGROUND_THRESHOLD = 12  # uint8 levels (max over RGB) from the clip's median frame that count as foreground


def _cell_matrix(pixels: int, cells: int) -> np.ndarray:
    """(cells, pixels) averaging matrix: pixel p belongs to cell ⌊p · cells / pixels⌋."""
    owner = np.arange(pixels) * cells // pixels
    matrix = (owner[None] == np.arange(cells)[:, None]).astype(np.float32)
    return matrix / matrix.sum(axis=1, keepdims=True)


def foreground_cells(frames: np.ndarray, grid: tuple[int, int], threshold: int = FOREGROUND_THRESHOLD
                     ) -> np.ndarray:
    """Self-supervised stand-in for the actor mask, from pixels alone: (V, L, 3, H, W) uint8 →
    (V, L, gh, gw), the share of each cell's pixels that differ from the view's median frame over
    the clip by more than `threshold` in some channel (what moves or appears, i.e. the actor)."""
    signed = frames.astype(np.int16)
    background = np.median(signed, axis=1, keepdims=True).astype(np.int16)
    moving = (np.abs(signed - background).max(axis=2) > threshold).astype(np.float32)  # (V, L, H, W)
    rows, cols = _cell_matrix(moving.shape[2], grid[0]), _cell_matrix(moving.shape[3], grid[1])
    return np.einsum("ah,vlhw,bw->vlab", rows, moving, cols)


def _flat(values: np.ndarray, views: int) -> np.ndarray:
    """(L, k) per clip → (V·L, k) per frame, view-major like the frames."""
    return np.broadcast_to(values[None], (views, *values.shape)).reshape(-1, *values.shape[1:])


def load_pretrain_data(options: PretrainOptions, directory: Path) -> tuple[PretrainData, dict[str, Any]]:
    """All frames of the home with the chosen target groups; constant columns are dropped."""
    synth = options.synth_options()
    data = options.home_dir / "data"
    keys = clip_keys(synth, data)
    visibility, _ = read_person_scores(data / VISIBILITY)
    frames, val, columns = [], [], {name: [] for name in options.target_names}
    for i, key in enumerate(keys):
        with np.load(directory / f"{key}.npz", allow_pickle=False) as clip:
            arrays = {name: clip[name] for name in clip.files}
        views, length = arrays["frames"].shape[:2]
        frames.append(arrays["frames"].reshape(views * length, *arrays["frames"].shape[2:]))
        val.append(np.full(views * length, i % VAL_EVERY == VAL_EVERY - 1))
        visible = visibility[key][:, :length].reshape(-1, 1).astype(np.float32)
        per_frame = {
            "foreground": foreground_cells(arrays["frames"], arrays["mask"].shape[2:]).reshape(views * length, -1)
            if "foreground" in options.target_names else None,
            "visible": visible,
            "mask": arrays["mask"].reshape(views * length, -1),
            "pose": _flat(arrays["pose"], views),
            "hand_mouth": _flat(arrays["hand_mouth"][:, None], views),
            "props": _flat(arrays["props"], views),
            "state": _flat(arrays["state"], views),
        }
        for name in options.target_names:
            columns[name].append((per_frame[name], visible[:, 0]))
    names = {"visible": ("visible",), "pose": POSE_TARGETS, "hand_mouth": ("hand_mouth",), "props": PROPS,
             "state": STATE_CHANNELS}
    groups, dropped = [], {}
    is_val = np.concatenate(val)
    for name in options.target_names:
        values = np.concatenate([v for v, _ in columns[name]]).astype(np.float32)
        seen = np.concatenate([w for _, w in columns[name]]).astype(np.float32)
        # what a camera cannot see it cannot be asked about: pose and props count where the actor is visible
        weight = seen if name in ("pose", "hand_mouth", "props") else np.ones(len(values), np.float32)
        labels = names.get(name) or tuple(f"cell{k}" for k in range(values.shape[1]))
        train = (~is_val) & (weight > 0)
        keep = values[train].std(axis=0) > 0 if train.any() else np.zeros(values.shape[1], bool)
        if name in ("mask", "foreground"):
            keep[:] = True  # the head is per patch: keep every cell
        dropped.update({f"{name}.{c}": "constant in the training frames" for c, k in zip(labels, keep) if not k})
        if not keep.any():
            continue
        groups.append(TargetGroup(name, np.ascontiguousarray(values[:, keep]), weight,
                                  tuple(c for c, k in zip(labels, keep) if k)))
    if not groups:
        raise VicokdError(f"--targets {','.join(options.target_names)}: every target is constant in this home")
    all_frames = np.concatenate(frames)
    info = {"frames": len(all_frames), "val_frames": int(is_val.sum()), "clips": len(keys),
            "val_clips": sum(1 for i in range(len(keys)) if i % VAL_EVERY == VAL_EVERY - 1),
            "targets": {g.name: list(g.columns) for g in groups}, "dropped": dropped,
            "positive_share": {g.name: [round(float(x), 4) for x in
                                        (g.values[(~is_val) & (g.weight > 0)] > 0.5).mean(axis=0)] for g in groups}}
    return PretrainData(all_frames, tuple(groups), is_val), info


# ------------------------------------------------------------------------------ audio: fbank, sounds


def fbank_dir(home: Path, config: Config) -> Path:
    data = config.data
    return home / f"fbank-{data.num_mel_bins}mel-{data.frame_length_ms:g}x{data.frame_shift_ms:g}ms-{data.grid}"


def _clip_fbank_and_sounds(synth: SynthOptions, index: int, data: Path, config: Config, target: Path) -> str:
    """One clip's fbank chunks (V, L, R, M) float16, as ``prepare`` computes them, and its sound targets (L, K)."""
    _, jobs = _planned(synth)
    job = jobs[index]
    c = config.data
    paths = [data / video for video in job.videos]
    infos = [probe_video(path) for path in paths]
    length = min(info.grid_length(c.fps, c.grid) for info in infos)
    samples = [round(info.covered_seconds(length, c.fps, c.grid) * c.sample_rate) for info in infos]
    rows = min(fbank_rows(n // length, c.sample_rate, c.frame_length_ms, c.frame_shift_ms) for n in samples)
    views = []
    for path, n in zip(paths, samples):
        wave = read_audio(path, c.sample_rate)
        wave = np.zeros(n, np.float32) if wave is None else np.pad(wave[:n], (0, max(0, n - len(wave))))
        fbank = grid_fbank(wave, length, c.sample_rate, c.num_mel_bins, c.frame_length_ms, c.frame_shift_ms)
        views.append(fbank[:, :rows].astype(np.float16))
    with atomic_path(target) as tmp:
        np.savez(tmp, fbank=np.stack(views), sounds=sound_targets(job.script, length, c.fps),
                 videos=np.array([str(p) for p in paths]))
    return target.name


def make_fbank(options: PretrainOptions, config: Config, log: StepLog, progress: bool = True) -> Path:
    """Step: every clip's fbank chunks and sound targets in ``HOME/fbank-…`` (clips already there are kept)."""
    c = config.data
    settings = {"version": FRAMES_VERSION, "synth": options.synth_options().to_json(), "fps": c.fps, "grid": c.grid,
                "sample_rate": c.sample_rate, "num_mel_bins": c.num_mel_bins,
                "frame_length_ms": c.frame_length_ms, "frame_shift_ms": c.frame_shift_ms, "kinds": list(SOUND_KINDS)}
    return _per_clip_files(options, fbank_dir(options.home_dir, config), "fbank.json", settings,
                           f"fbank and sound targets ({options.clips} clips, {len(SOUND_KINDS)} kinds of sound)",
                           "fbank+sounds", _clip_fbank_and_sounds, (config,), log, progress)


def load_audio_pretrain_data(options: PretrainOptions, directory: Path) -> tuple[PretrainData, dict[str, Any]]:
    """Every view's fbank chunks of the home (N = Σ V·L, R, M) with the ``sounds`` group (kinds that vary)."""
    keys = clip_keys(options.synth_options(), options.home_dir / "data")
    chunks, sounds, val, videos = [], [], [], []
    for i, key in enumerate(keys):
        with np.load(directory / f"{key}.npz", allow_pickle=False) as clip:
            fbank, per_chunk = clip["fbank"], clip["sounds"]
            videos += [str(v) for v in clip["videos"]]
        views, length = fbank.shape[:2]
        chunks.append(fbank.reshape(views * length, *fbank.shape[2:]))
        sounds.append(_flat(per_chunk, views))
        val.append(np.full(views * length, i % VAL_EVERY == VAL_EVERY - 1))
    rows = min(chunk.shape[1] for chunk in chunks)  # clips may differ by a row: cut to the shortest
    inputs = np.concatenate([chunk[:, :rows] for chunk in chunks])
    values = np.concatenate(sounds).astype(np.float32)
    is_val = np.concatenate(val)
    keep = values[~is_val].std(axis=0) > 0
    if not keep.any():
        raise VicokdError("--targets sounds: no kind of sound varies in this home")
    group = TargetGroup("sounds", np.ascontiguousarray(values[:, keep]), np.ones(len(values), np.float32),
                        tuple(k for k, kept in zip(SOUND_KINDS, keep) if kept))
    info = {"frames": len(inputs), "val_frames": int(is_val.sum()), "clips": len(keys),
            "val_clips": sum(1 for i in range(len(keys)) if i % VAL_EVERY == VAL_EVERY - 1),
            "targets": {"sounds": list(group.columns)},
            "dropped": {f"sounds.{k}": "constant in the training chunks" for k, kept in zip(SOUND_KINDS, keep)
                        if not kept},
            "positive_share": {"sounds": [round(float(x), 4) for x in (group.values[~is_val] > 0.5).mean(axis=0)]},
            "videos": videos}
    return PretrainData(inputs, (group,), is_val), info


# ------------------------------------------------------------------------------------- run


def request(options: PretrainOptions, config: Config) -> dict[str, Any]:
    """What decides the encoder's weights (compared on re-runs)."""
    model = config_to_dict(config.model)
    common = {"synth": options.synth_options().to_json(), "targets": list(options.target_names),
              "epochs": options.epochs, "batch_size": options.batch_size, "lr": options.lr, "seed": config.train.seed}
    if options.modality == "audio":
        data = config_to_dict(config.data)
        return {**common, "modality": "audio", "audio": model["audio"],
                "fbank": {k: data[k] for k in ("fps", "grid", "sample_rate", "num_mel_bins", "frame_length_ms",
                                                "frame_shift_ms")}}
    # the normalisation stays beside the encoder's section, as requests recorded it before it moved into it
    visual = {key: value for key, value in model["visual"].items() if key not in ("mean", "std")}
    return {**common, "mask_head": options.mask_head, "visual": visual, "image_size": list(config.data.image_size),
            "mean": model["visual"]["mean"], "std": model["visual"]["std"]}


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first key where two pretraining requests differ (encoder fields added since at their defaults)."""
    model = config_to_dict(Config()).get("model", {})
    defaults = {f"{section}.{key}": value for section in ("visual", "audio")
                for key, value in model[section].items()}
    return request_difference(old, new, defaults)


def run_pretrain(options: PretrainOptions, progress: bool = True) -> dict[str, Any]:
    """Every step (see the module docstring); returns the report written to ``OUT/pretrain.json``."""
    options.validate()
    config = options.load_config()
    wanted = request(options, config)
    report_path = options.out / REPORT_FILE
    encoder_path = options.out / ENCODER_FILE
    if report_path.is_file():
        difference = _difference(json.loads(report_path.read_text()).get("request", {}), wanted)
        if difference:
            raise VicokdError(f"{options.out}: pretrained with other options ({difference}); choose another OUT, "
                              "or delete it")
    options.out.mkdir(parents=True, exist_ok=True)
    log = StepLog(options.out / "steps.json", 4)
    synthesise_home(options, log, progress)
    audio = options.modality == "audio"
    encoder_config = config.model.audio if audio else config.model.visual
    grid = None if audio else patch_grid(build_encoder_net(config.model.visual), config.data.image_size)
    directory = make_fbank(options, config, log, progress) if audio else make_frames(options, config, grid, log,
                                                                                       progress)
    with log.step(f"pretrain the {options.modality} encoder ({options.epochs} epochs, targets "
                  f"{','.join(options.target_names)})") as step:
        if report_path.is_file() and encoder_path.is_file():
            report = json.loads(report_path.read_text())
            step.status, step.seconds = "reused", report["train_seconds"]
            net = None
        else:
            data, info = (load_audio_pretrain_data if audio else load_pretrain_data)(options, directory)
            settings = PretrainSettings(epochs=options.epochs, batch_size=options.batch_size, lr=options.lr,
                                        seed=config.train.seed, mask_head=options.mask_head,
                                        mean=config.model.visual.mean, std=config.model.visual.std)
            net, history = pretrain_encoder(encoder_config, data, settings, options.out / STATE_FILE,
                                            progress=progress, echo=log.echo)
            step.detail = f"{info['frames']} frames, final train loss {history['epochs'][-1]['train']['loss']:.3f}"
    with log.step("write the encoder and the report") as step:
        if net is None:
            step.status = "reused"
            print(f"encoder: {encoder_path} (reused)")
            return report
        save_encoder(net, encoder_path)
        steps = {name: rec.get("seconds") for name, rec in log.records.items()}
        usage = f"--set model.{options.modality}.pretrained={encoder_path}"
        report = {"request": wanted, "encoder": str(encoder_path), "generator_seed": pretrain_seed(options.data_seed),
                  "data_seed": options.data_seed, "home": str(options.home_dir),
                  "patch_grid": None if grid is None else list(grid),
                  **info, "epochs": history["epochs"], "train_seconds": history["seconds"],
                  "step_seconds": steps, "usage": usage}
        write_json_atomic(report_path, report)
        step.detail = str(encoder_path)
    print(f"encoder: {encoder_path}; use it with {usage}")
    return report
