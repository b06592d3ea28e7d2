"""The `vicokd` command line: one entry point, each subcommand a thin call into the library.

Every subcommand is declared by an ``_add_<name>(subparsers)`` function listed in
``_SUBCOMMANDS``; it builds its parser (with an example in the epilog) and sets ``func`` to a
handler taking the parsed arguments and returning an exit code. Library imports happen inside
the handlers so that ``vicokd --help`` stays fast.

Errors: a :class:`vicokd.errors.VicokdError` prints ``error: <one line>`` and exits 2; any other
exception is a bug and prints its traceback only with ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path

from vicokd.errors import VicokdError


def _parser(subparsers: argparse._SubParsersAction, name: str, help: str, example: str) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_config_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument("--config", "-c", type=Path, required=required, help="YAML config file")
    _add_set(parser, "dotted override, parsed as YAML (repeatable), e.g. --set optim.lr=3e-4")


def _add_set(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def _add_quiet(parser: argparse.ArgumentParser, help: str = "no progress bars") -> None:
    parser.add_argument("--quiet", action="store_true", help=help)


def _add_workers(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--workers", type=int, default=2, help=help)


# ---------------------------------------------------------------------------------- config


def _add_config(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "config", "show or validate a configuration",
                     "vicokd config show --config configs/demo/teacher.yaml --set optim.lr=3e-4")
    parser.add_argument("action", choices=["show", "validate"])
    _add_config_args(parser)
    parser.set_defaults(func=_run_config)


def _run_config(args: argparse.Namespace) -> int:
    from vicokd.config import config_to_yaml, load_config

    config = load_config(args.config, args.overrides)
    if args.action == "show":
        print(config_to_yaml(config), end="")
    else:
        print(f"{args.config or '<defaults>'}: valid")
    return 0


# --------------------------------------------------------------------------------- prepare


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "prepare", "decode every clip once into the on-disk cache (resumable)",
                     "vicokd prepare demo/data --out demo/cache --size 64x64\n  "
                     "vicokd prepare demo/data --out demo/cache --config configs/demo/teacher.yaml "
                     "--features demo/features --encoders-from demo/runs/teacher/checkpoints/best.safetensors")
    parser.add_argument("root", type=Path, help="dataset root (videos + annotation JSON)")
    parser.add_argument("--out", type=Path, required=True, help="cache directory")
    parser.add_argument("--size", default=None, help="frame size WxH (default: data.image_size, 224x224)")
    _add_workers(parser, "parallel processes over clips")
    parser.add_argument("--features", type=Path, default=None, metavar="DIR",
                        help="also cache frozen-encoder features of the config's encoders in DIR "
                             "(pretrained paths of the config, else random weights seeded by train.seed; "
                             "train with --set data.features=DIR)")
    parser.add_argument("--encoders-from", type=Path, default=None, metavar="CKPT",
                        help="with --features: take the encoder weights from this vicokd checkpoint")
    parser.add_argument("--no-audio", action="store_true", help="with --features: visual features only")
    _add_config_args(parser)
    parser.set_defaults(func=_run_prepare)


def _parse_size(text: str, flag: str) -> tuple[int, int]:
    try:
        first, second = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise VicokdError(f"{flag} {text!r}: expected WIDTHxHEIGHT, e.g. 128x96") from None
    if first < 1 or second < 1:
        raise VicokdError(f"{flag} {text!r}: width and height must be at least 1 pixel")
    return first, second


def _run_prepare(args: argparse.Namespace) -> int:
    from vicokd.config import load_config, replace
    from vicokd.data.prepare import prepare

    config = load_config(args.config, args.overrides)
    data = replace(config.data, cache=str(args.out))
    if args.size:
        width, height = _parse_size(args.size, "--size")
        data = replace(data, image_size=(height, width))
    prepare(args.root, args.out, data, workers=args.workers)
    if args.features is not None:
        from vicokd.training.encoder_features import compute_features

        compute_features(replace(config, data=data), args.features, encoders_from=args.encoders_from,
                         audio=not args.no_audio)
    return 0


# ----------------------------------------------------------------------------------- split


def _add_split(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "split", "make a 7:3 train/test split (iterative stratification) and a val split",
                     "vicokd split data/my-home/all.json --out data/my-home --test 0.3 --val 0.1 --seed 0")
    parser.add_argument("annotations", type=Path, help="JSON list of all clip records")
    parser.add_argument("--out", type=Path, required=True, help="directory for train/val/test JSON")
    parser.add_argument("--test", type=float, default=0.3, help="test share (default 0.3)")
    parser.add_argument("--val", type=float, default=0.1, help="validation share of train (default 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=_run_split)


def _run_split(args: argparse.Namespace) -> int:
    from vicokd.data.split import split_annotation_file

    counts = split_annotation_file(args.annotations, args.out, test=args.test, val=args.val, seed=args.seed)
    print(", ".join(f"{name}: {n} clips" for name, n in counts.items()))
    return 0


# ---------------------------------------------------------------------------------- models


def _add_models(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "models", "list backbones and encoders with parameters and FLOPs per clip",
                     "vicokd models --config configs/paper/model.yaml --views 5")
    parser.add_argument("--views", type=int, default=5, help="views per clip (default 5, MultiSensor-Home)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default data.num_frames)")
    parser.add_argument("--classes", type=int, default=None,
                        help="number of classes (default: data.classes, else 16 as Home-1)")
    _add_config_args(parser)
    parser.set_defaults(func=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from vicokd.config import load_config
    from vicokd.models import model_costs

    config = load_config(args.config, args.overrides)
    frames = args.frames or config.data.num_frames
    classes = args.classes or (len(config.data.classes) if config.data.classes else 16)
    h, w = config.data.image_size
    rows = model_costs(config.model, classes, num_views=args.views, num_frames=frames, image_size=(h, w))
    print(f"{args.config or '<defaults>'}: V={args.views} T={frames} {h}x{w} "
          f"audio {config.model.audio.max_rows}x{config.model.audio.num_mel_bins} C={classes} D={config.model.dim}")
    print(f"{'component':<24}{'parameters':>14}{'GFLOPs/clip':>14}")
    for name, params, flops in rows:
        print(f"{name:<24}{params:>14,}{flops / 1e9:>14.2f}")
    return 0


# ------------------------------------------------------------------- train / distill / evaluate


def _add_train(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "train", "train a teacher or a non-distilled student (the method in the config)",
                     "vicokd train --config configs/demo/teacher.yaml --set optim.epochs=5")
    _add_config_args(parser, required=True)
    parser.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    parser.set_defaults(func=_run_train)


def _add_distill(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "distill", "distill a visual-only student from a frozen audio-visual teacher",
                     "vicokd distill --config configs/demo/student.yaml "
                     "--teacher runs/demo-teacher/checkpoints/best.safetensors --method vicokd")
    _add_config_args(parser, required=True)
    parser.add_argument("--teacher", type=Path, required=True, help="teacher checkpoint (.safetensors)")
    parser.add_argument("--method", default=None, help="method name (see `vicokd methods`); default: config")
    parser.add_argument("--supervision", choices=["frame", "sequence"], default=None,
                        help="student labels: frame (V_F) or sequence only (V_S); default: config")
    parser.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
    parser.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from vicokd.config import load_config
    from vicokd.training.grad_share import format_shares
    from vicokd.training.run import fit

    overrides = list(args.overrides)
    teacher = getattr(args, "teacher", None)
    if getattr(args, "method", None):
        overrides.append(f"distill.method={args.method}")
    if getattr(args, "supervision", None):
        overrides.append(f"distill.supervision={args.supervision}")
    config = load_config(args.config, overrides)
    summary = fit(config, teacher_checkpoint=teacher, resume=args.resume)
    if rank_zero_only.rank != 0:  # under torchrun every rank returns here; rank 0 speaks for the run
        return 0
    print(f"{summary['name']}: {summary['method']} best epoch {summary['best_epoch']}; "
          f"test seq mAP {summary['test']['seq_map']:.2f}, frame mAP {summary['test']['frame_map']:.2f} "
          f"-> {summary['best_checkpoint']}")
    for line in format_shares(summary["grad_share"]):
        print(f"{summary['name']}: {line}")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "evaluate", "sequence and frame mAP of a checkpoint, with per-class AP",
                     "vicokd evaluate --ckpt runs/demo-teacher/checkpoints/best.safetensors --split test "
                     "--condition audio-missing")
    parser.add_argument("--ckpt", type=Path, required=True, help="checkpoint (.safetensors)")
    parser.add_argument("--split", default="test", help="train, val or test (default test)")
    parser.add_argument("--condition", choices=["av", "audio-missing", "visual"], default="av",
                        help="teacher only: audio as recorded, half the microphones dropped, or none")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default: <run>/eval/...)")
    _add_set(parser, "override the checkpoint's config, e.g. --set data.cache=cache/other")
    parser.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from vicokd.config import parse_overrides
    from vicokd.training.evaluate import evaluate, format_evaluation

    report = evaluate(args.ckpt, split=args.split, condition=args.condition,
                      overrides=parse_overrides(args.overrides), out=args.out)
    if "written_to" in report:  # the process that wrote it speaks
        print(format_evaluation(report))
    return 0


def _add_methods(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "methods", "list the training / distillation methods and their loss formulas",
                     "vicokd methods --supervision sequence")
    parser.add_argument("--supervision", choices=["frame", "sequence"], default="frame")
    parser.set_defaults(func=_run_methods)


def _run_methods(args: argparse.Namespace) -> int:
    from vicokd.methods import METHODS, OPTIONS

    for method in METHODS.values():
        print(f"{method.name:<16} {method.role:<8} {method.formula(args.supervision)}")
        print(f"{'':<16} {method.summary} [{method.paper or 'beyond the paper'}]")
    print("\nOptions where the paper is silent (config fields; set with --set FIELD=VALUE):")
    for option in OPTIONS:
        print(f"  {option.field:<26} {option.choices:<20} {option.meaning}")
    return 0


# ---------------------------------------------------------------------------------- detect


def _add_detect(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "detect", "person scores for every grid frame of every view (view-consistency masks)",
                     "vicokd detect data/synthetic-home --cache cache/synthetic-home --detector groundtruth\n"
                     "  vicokd detect data/home1 --cache cache/home1 --detector yolo --weights weights/yolov10b.pt\n"
                     "  vicokd detect --image photo.jpg            # quick look: score + photo.detect.png\n"
                     "  vicokd detect --video clip.mp4 --png look.png")
    parser.add_argument("root", type=Path, nargs="?", help="dataset root (videos + annotation JSON)")
    parser.add_argument("--out", type=Path, default=None,
                        help="score file (default: data.person_scores, else CACHE/person_scores.npz)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="prepared cache to read frames from (default: data.cache if it holds this "
                             "dataset, else decode the videos)")
    parser.add_argument("--detector", default=None, help="mediapipe (default), yolo or groundtruth")
    parser.add_argument("--weights", type=Path, default=None, help="YOLO weights file, e.g. yolov10b.pt")
    parser.add_argument("--threshold", type=float, default=None,
                        help="person if score > X, for the summary (default: data.person_threshold)")
    parser.add_argument("--overwrite", action="store_true", help="replace a score file made by another detector")
    parser.add_argument("--image", type=Path, default=None, help="quick look at one image")
    parser.add_argument("--video", type=Path, default=None, help="quick look at one video (2.5-FPS grid)")
    parser.add_argument("--png", type=Path, default=None, help="quick-look picture (default: beside the input)")
    _add_config_args(parser)
    parser.set_defaults(func=_run_detect)


def _run_detect(args: argparse.Namespace) -> int:
    from vicokd.config import load_config, replace

    config = load_config(args.config, args.overrides)
    changes = {f"detect.{name}": str(value) for name, value in
               (("detector", args.detector), ("weights", args.weights)) if value is not None}
    config = replace(config, **changes) if changes else config
    threshold = config.data.person_threshold if args.threshold is None else args.threshold
    if sum(x is not None for x in (args.root, args.image, args.video)) != 1:
        raise VicokdError("detect: give exactly one of DATA_ROOT, --image FILE, --video FILE")
    if args.root is not None:
        from vicokd.detect import detect_dataset

        summary = detect_dataset(args.root, args.out, args.cache, config=config, threshold=threshold,
                                 overwrite=args.overwrite)
        print(summary.format())
        return 0
    from vicokd.data.person_scores import person_mask
    from vicokd.detect import create_detector, look_image, look_video

    with create_detector(config=config.detect) as detector:
        if args.image is not None:
            look = look_image(args.image, detector, args.png)
            score = float(look.scores[0])
            verdict = "person" if person_mask(score, threshold) else "no person"
            print(f"{args.image}: score {score:.3f} ({verdict} at threshold {threshold:g}; "
                  f"{len(look.detections[0])} detection(s))")
        else:
            look = look_video(args.video, detector, args.png, config.data.fps, threshold)
            print(f"{args.video}: {len(look.scores)} grid frames at {config.data.fps:g} FPS")
            print("grid  time_s  score  persons")
            for j, (t, score, found) in enumerate(zip(look.times, look.scores, look.detections)):
                print(f"{j:4d}  {t:6.1f}  {score:5.3f}  {len(found)}")
            share = 100.0 * float(person_mask(look.scores, threshold).mean()) if len(look.scores) else 0.0
            print(f"person in {share:.1f} % of grid frames (score > {threshold:g})")
    print(f"wrote {look.png}")
    return 0


# ----------------------------------------------------------------------------------- synth


def _add_synth(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "synth", "render the synthetic home: multi-view videos with audio, labels, ground-truth "
                     "visibility, in the MultiSensor-Home layout (re-running resumes)",
                     "vicokd synth data/synthetic-home --clips 60 --views 5 --seed 0 --size 128x96 --fps 5\n"
                     "  vicokd synth data/pairs --clips 20 --duration 30 --classes Clean,CleanVacuum,ReadBook,UsePhone")
    parser.add_argument("out", type=Path, help="output folder (the dataset root)")
    parser.add_argument("--clips", type=int, default=None, help="number of clips (default 60)")
    parser.add_argument("--views", type=int, default=None, help="cameras on the walls, 1..8 (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    parser.add_argument("--size", default=None, help="frame size WxH in pixels, even (default 128x96)")
    parser.add_argument("--fps", type=float, default=None, help="video frame rate, a multiple of 2.5 (default 5)")
    parser.add_argument("--duration", default=None, help="clip length in seconds, MIN-MAX or one value "
                        "(default 20-60)")
    parser.add_argument("--classes", default=None, help="comma list of the classes to act (default: all 16)")
    parser.add_argument("--sessions", type=int, default=None, help="session folders 01, 02, … (default 8)")
    parser.add_argument("--test", type=float, default=None, help="test share of the split (default 0.3)")
    parser.add_argument("--supersample", type=int, default=None,
                        help="anti-aliasing: samples per pixel side, 1..4 (default 2)")
    parser.add_argument("--layout", default=None,
                        help="camera layout: home1 (views overlap little, like Home-1) or home2 (views close in "
                             "what they capture, like Home-2), or both joined by + (home1+home2: clip i filmed by "
                             "the (i mod 2)-th); default home1")
    _add_workers(parser, "parallel processes over clips (default 2)")
    parser.add_argument("--force", action="store_true", help="write into a non-empty folder made otherwise")
    _add_quiet(parser, "no progress bar")
    parser.set_defaults(func=_run_synth)


def _parse_range(text: str, flag: str) -> tuple[float, float]:
    try:
        low, _, high = text.partition("-")
        return float(low), float(high or low)
    except ValueError:
        raise VicokdError(f"{flag} {text!r}: expected seconds like 30 or 20-60") from None


def _run_synth(args: argparse.Namespace) -> int:
    from vicokd.synthetic import SynthOptions, generate_home

    given = {"clips": args.clips, "views": args.views, "seed": args.seed, "fps": args.fps,
             "sessions": args.sessions, "test_fraction": args.test, "supersample": args.supersample,
             "layout": args.layout, "size": args.size and _parse_size(args.size, "--size"),
             "duration": args.duration and _parse_range(args.duration, "--duration"),
             "classes": args.classes and tuple(_comma_list(args.classes) or ())}
    options = SynthOptions(**{k: v for k, v in given.items() if v is not None})
    summary = generate_home(args.out, options, workers=args.workers, force=args.force, progress=not args.quiet)
    print(summary.describe())
    return 0


# ------------------------------------------------------------------------- demo / reproduce


def _passive_openmp_threads() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the user chose a policy).

    Only for `demo` and `reproduce` (many runs on a machine that is usually shared), before torch
    is imported. Measured on 2 cores, demo teacher step (T=16, 48x48, batch 4): with one other
    busy process, 310 ms passive vs 521 ms spinning; on an idle machine 263 ms vs 166 ms. Small
    steps suffer more when idle (from cached features: 32 vs 9 ms), so `train` / `distill` keep
    OpenMP's default; set OMP_WAIT_POLICY=PASSIVE yourself on a busy machine.
    """
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "demo", "the paper's tables on two synthetic homes on the CPU, ending in OUT/report.md "
                     "(re-running reuses finished steps)",
                     "vicokd demo --out demo\n"
                     "  vicokd demo --out demo-fast --fast          # a few minutes, numbers mean little\n"
                     "  vicokd demo --out demo-d1 --data-seed 1     # another synthetic home, same recipe\n"
                     "  vicokd demo --out demo-asl --backbone multiasl --epochs 20 --seeds 5\n"
                     "  vicokd demo --out demo-t4 --only table4 --homes home1   # the ablations on one home\n"
                     "  vicokd demo --out cal --data-seed 7 --only baselines   # the world's baseline rows, no method\n"
                     "  vicokd demo --out demo-finetune --finetune  # encoders that learn (top ViT block), Fig. 4")
    parser.add_argument("--out", type=Path, default=Path("demo"), help="output folder (default: demo)")
    parser.add_argument("--clips", type=int, default=None, help="clips to synthesise (default 300; --fast 16)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of every run (default: configs/demo; --fast 2)")
    parser.add_argument("--seeds", type=int, default=None, help="training seeds per run (default 3; --fast 2)")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="generator seed of the synthetic homes: their scripts, the same in both (default 0)")
    parser.add_argument("--backbone", default="multitsf",
                        help="the backbone of the report's detailed sections (default multitsf)")
    parser.add_argument("--backbones", default=None,
                        help="comma list of the backbones of Tables 1-3 (default multitrans,multiasl,multitsf)")
    parser.add_argument("--homes", default=None,
                        help="comma list of the homes: home1 (views overlap little, like Home-1), home2 (views "
                             "close in what they capture, like Home-2); default both")
    parser.add_argument("--only", default=None,
                        help="comma list of the parts to run: table1 (with Table 2), table3, table4, figures "
                             "(Fig. 3's MultiASL runs), baselines (Table 1's teacher and plain student only: the "
                             "rows the world is calibrated on, and the report's regime block); default the first "
                             "four")
    parser.add_argument("--finetune", action="store_true",
                        help="the paper's regime: every run trains the top block of the visual encoder (from the "
                             "cached tokens below it; a run takes 2-3x a frozen one, the whole demo about an hour "
                             "on 2 cores), and the report draws Fig. 4 (attention maps, attention on the actor per "
                             "method)")
    parser.add_argument("--beyond-paper", action="store_true",
                        help="Table 1 also runs ViCoKD-ML (sigmoid distributions, not in the paper): 36 more "
                             "runs, about 2 min on 2 cores")
    parser.add_argument("--fast", action="store_true", help="a smoke run: few clips, 2 epochs, 2 seeds")
    _add_workers(parser, "processes rendering and decoding clips, and training runs at a time (default 2)")
    _add_quiet(parser, "no progress bars (the step list is still printed)")
    _add_set(parser, "override every run's config, e.g. --set optim.lr=3e-4")
    parser.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    _passive_openmp_threads()
    from vicokd.pipeline.demo import run_demo
    from vicokd.pipeline.demo_options import DemoOptions

    chosen = {"backbones": _comma_list(args.backbones), "homes": _comma_list(args.homes),
              "only": _comma_list(args.only)}
    run_demo(DemoOptions(out=args.out, clips=args.clips, epochs=args.epochs, seeds=args.seeds,
                         backbone=args.backbone, fast=args.fast, finetune=args.finetune,
                         beyond_paper=args.beyond_paper, data_seed=args.data_seed, workers=args.workers,
                         overrides=tuple(args.overrides),
                         **{k: tuple(v) for k, v in chosen.items() if v}),
             progress=not args.quiet)
    return 0


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "pretrain", "pretrain the visual (or audio) encoder without action labels on a separate "
                     "synthetic home (what the simulator knows per frame: actor location, visibility, posture, props, "
                     "scene state; for audio, which kinds of sound play in each chunk); the encoder, frame size and "
                     "normalisation are those of --config (default configs/demo/student.yaml); writes "
                     "OUT/encoder.safetensors for model.visual.pretrained (model.audio.pretrained) "
                     "(re-running reuses finished steps)",
                     "vicokd pretrain pretrain/ --data-seed 0\n"
                     "  vicokd pretrain pretrain-audio/ --modality audio --home pretrain/home\n"
                     "  vicokd demo --out demo --set model.visual.pretrained=pretrain/encoder.safetensors\n"
                     "  vicokd pretrain pt-loc --home pretrain/home --targets visible,mask --epochs 4")
    parser.add_argument("out", type=Path, help="output folder (encoder.safetensors, pretrain.json, home/)")
    parser.add_argument("--data-seed", type=int, default=0,
                        help="seed of the demo home this encoder is for; the pretraining home uses generator seed "
                             "SEED + 1000000, so it never holds the demo's clips (default 0)")
    parser.add_argument("--clips", type=int, default=None, help="clips in the pretraining home (default 60)")
    parser.add_argument("--epochs", type=int, default=None, help="pretraining epochs (default 10)")
    parser.add_argument("--views", type=int, default=5, help="cameras of the pretraining home (default 5)")
    parser.add_argument("--layout", default=None,
                        help="camera layouts of the pretraining home, clips filmed by each in turn (default "
                             "home1+home2: every layout the demo films; one name for one layout)")
    parser.add_argument("--duration", default=None, help="clip length in seconds, MIN-MAX (default 20-40, as the demo)")
    parser.add_argument("--targets", default=None,
                        help="comma list of simulator targets visible, mask, pose, hand_mouth, props, state "
                             "(the default: all six) and the self-supervised foreground (pixels that differ from "
                             "the clip's median frame)")
    parser.add_argument("--modality", choices=["visual", "audio"], default="visual",
                        help="which encoder: visual (model.visual, on frames) or audio (model.audio, an AST on fbank "
                             "chunks, targets: the kinds of sound in each chunk)")
    parser.add_argument("--mask-head", choices=["tokens", "pooled"], default="tokens",
                        help="actor mask predicted per patch token (default) or from the pooled feature")
    parser.add_argument("--home", type=Path, default=None,
                        help="where the pretraining home and its frames live (default OUT/home); share it between runs")
    _add_workers(parser, "processes rendering and decoding clips (default 2)")
    _add_quiet(parser, "no progress bars (the step list is still printed)")
    _add_config_args(parser)
    parser.set_defaults(func=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> int:
    from vicokd.pipeline.pretrain import PretrainOptions, run_pretrain

    given = {"clips": args.clips, "epochs": args.epochs, "config": args.config, "home": args.home,
             "layout": args.layout, "duration": args.duration and _parse_range(args.duration, "--duration"),
             "targets": None if args.targets is None else tuple(_comma_list(args.targets) or ())}
    options = PretrainOptions(out=args.out, data_seed=args.data_seed, views=args.views, mask_head=args.mask_head,
                              modality=args.modality,
                              overrides=tuple(args.overrides), workers=args.workers,
                              **{k: v for k, v in given.items() if v is not None})
    run_pretrain(options, progress=not args.quiet)
    return 0


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "reproduce", "run a grid of the paper's tables (skipping finished runs) and write "
                     "them as Markdown and CSV",
                     "vicokd reproduce --grid table1 --data home1=data/home1 --data home2=data/home2 --seeds 3 "
                     "--preset paper --out runs/paper\n"
                     "  vicokd reproduce --grid table1 --data synthetic-home=demo/data,demo/cache --seeds 2 "
                     "--backbones multitsf --methods teacher,student,vicokd --out runs/demo-grid --dry-run")
    parser.add_argument("--grid", required=True, choices=["table1", "table2", "table3", "table4"],
                        help="which table: 1 methods, 2 ViCoKD mean±std, 3 teacher + VC, 4 ablations")
    parser.add_argument("--data", action="append", required=True, metavar="ENV=DIR[,CACHE]",
                        help="an environment: name, dataset root, optional cache (default OUT/cache/ENV); repeat")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per cell (default 3)")
    parser.add_argument("--preset", choices=["demo", "paper"], default="demo",
                        help="configs/<preset>/teacher.yaml and student.yaml (paper needs a GPU)")
    parser.add_argument("--backbones", default=None, help="comma list (default: the table's)")
    parser.add_argument("--methods", default=None, help="comma list, a subset of the table's rows")
    parser.add_argument("--supervisions", default=None, help="comma list of frame, sequence (default both)")
    parser.add_argument("--out", type=Path, default=Path("runs/reproduce"), help="runs and tables go here")
    _add_workers(parser, "processes decoding clips in prepare (default 2)")
    parser.add_argument("--parallel-runs", type=int, default=1,
                        help="training runs at once, one process each (default 1; on a CPU 2 runs of the demo "
                             "preset at once finish about 1.7x sooner than one after the other)")
    parser.add_argument("--dry-run", action="store_true", help="print the steps and their state, run nothing")
    _add_quiet(parser)
    _add_set(parser, "override every run's config, e.g. --set optim.batch_size=6")
    parser.set_defaults(func=_run_reproduce)


def _comma_list(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def _run_reproduce(args: argparse.Namespace) -> int:
    _passive_openmp_threads()
    from vicokd.pipeline.grid import make_plan, parse_data_arg, reproduce

    plan = make_plan(args.grid, [parse_data_arg(text, args.out) for text in args.data], seeds=args.seeds,
                     preset=args.preset, out=args.out, backbones=_comma_list(args.backbones),
                     methods=_comma_list(args.methods), supervisions=_comma_list(args.supervisions),
                     overrides=args.overrides, workers=args.workers, parallel_runs=args.parallel_runs)
    paths = reproduce(plan, dry_run=args.dry_run, progress=not args.quiet)
    if paths:
        print(f"tables: {paths[0]}, {paths[1]}")
    return 0


# ------------------------------------------------------------------------- predict / export


def _add_predict(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "predict", "per-frame action probabilities and action segments of a student on raw "
                     "recordings (one video per view, any length, no audio needed)",
                     "vicokd predict --ckpt demo/runs/vicokd-frame/checkpoints/best.safetensors "
                     "cam1.mp4 cam2.mp4 cam3.mp4 --json pred.json --png pred.png")
    parser.add_argument("videos", type=Path, nargs="+", metavar="VIDEO",
                        help="one video per view of one recording, in the view order the model was trained with")
    parser.add_argument("--ckpt", type=Path, required=True, help="student checkpoint (.safetensors); not a teacher")
    parser.add_argument("--json", type=Path, default=None, help="write probabilities, segments and settings here")
    parser.add_argument("--png", type=Path, default=None,
                        help="timeline picture (classes × time, segments boxed), with its data as CSV beside it")
    parser.add_argument("--threshold", type=float, default=None,
                        help="a frame is active at p >= X, for every class (default: the checkpoint's per-class "
                             "thresholds chosen on validation; without them a fixed one (default 0.5))")
    parser.add_argument("--min-gap", type=float, default=None, metavar="S",
                        help="merge segments of a class at most S seconds apart (default 0.8)")
    parser.add_argument("--min-duration", type=float, default=None, metavar="S",
                        help="drop merged segments shorter than S seconds, end - start (default 0.4)")
    parser.add_argument("--stride", type=int, default=None, metavar="N",
                        help="grid frames between window starts on clips longer than T (default T // 2)")
    parser.add_argument("--grid", choices=["timestamps", "interval"], default=None,
                        help="which decoded frame is grid frame j: the one nearest to j / 2.5 s by timestamp, or "
                             "every round(fps / 2.5)-th (default: the checkpoint's data.grid)")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per model call (default 4)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    _add_quiet(parser)
    parser.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from vicokd.inference.predict import predict_clip
    from vicokd.inference.student import load_student

    options = {name: value for name, value in (("threshold", args.threshold), ("min_gap", args.min_gap),
                                               ("min_duration", args.min_duration)) if value is not None}
    student = load_student(args.ckpt, device=args.device)
    prediction = predict_clip(student.model, student.meta, args.videos, stride=args.stride, batch_size=args.batch_size,
                              grid=args.grid, progress=not args.quiet, **options)
    for line in prediction.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(prediction.format())
    if args.json:
        print(f"wrote {prediction.write_json(args.json)}")
    if args.png:
        from vicokd.report.timeline import plot_timeline

        png, csv = plot_timeline(prediction.frame_probs, prediction.classes, prediction.fps, prediction.segments,
                                 args.png, title=f"{args.ckpt.name}: {', '.join(p.name for p in args.videos)}")
        print(f"wrote {png} and {csv}")
    return 0


def _add_stream(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "stream", "a student on live sources, one per view (files, growing files, RTSP/HTTP URLs): "
                     "per-frame probabilities and segment start/end events as JSON lines",
                     "vicokd stream --ckpt demo/runs/vicokd-frame/checkpoints/best.safetensors "
                     "cam1.mp4 cam2.mp4 cam3.mp4 --realtime --out events.jsonl\n"
                     "  vicokd stream --ckpt student.safetensors rtsp://cam1/stream rtsp://cam2/stream")
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="one per view: anything PyAV opens")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", type=Path, help="student checkpoint (.safetensors)")
    source.add_argument("--onnx", type=Path, help="a `vicokd export` directory: run its encoder.onnx and "
                        "window.onnx with onnxruntime")
    parser.add_argument("--out", type=Path, default=None, help="JSON lines file (default: stdout)")
    parser.add_argument("--realtime", action="store_true", help="play files at their own rate (live sources are)")
    parser.add_argument("--follow", type=float, default=0.0, metavar="SECONDS",
                        help="files still being written: read them as they grow, until one has not grown for "
                             "SECONDS (default 0: stop at the current end)")
    parser.add_argument("--input-format", default=None,
                        help="FFmpeg demuxer of the sources, for capture devices (e.g. v4l2 for /dev/video0)")
    parser.add_argument("--stride", type=int, default=None,
                        help="run the temporal model every S grid frames over the last T (default T)")
    parser.add_argument("--stall", type=float, default=None,
                        help="seconds to wait for a view's next frame before leaving it out (default 2)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="one threshold for every class (default: the checkpoint's calibrated ones)")
    parser.add_argument("--grid", choices=["timestamps", "interval"], default=None,
                        help="which decoded frame is grid frame j: the one nearest to j / 2.5 s by timestamp, or "
                             "every round(fps / 2.5)-th (default: the checkpoint's data.grid)")
    parser.add_argument("--min-gap", type=float, default=None, metavar="S",
                        help="merge segments of a class at most S seconds apart, as predict does (default 0.8)")
    parser.add_argument("--min-duration", type=float, default=None, metavar="S",
                        help="drop merged segments shorter than S seconds, as predict does (default 0.4); "
                             "a start is written once a segment lasts S, an end once it cannot merge")
    parser.add_argument("--allow-missing", action="store_true",
                        help="run with the other views when a source cannot be opened (default: an error)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.set_defaults(func=_run_stream)


def _run_stream(args: argparse.Namespace) -> int:
    from vicokd.inference.sources import stream_sources
    from vicokd.inference.stream import DEFAULT_STALL_S, StreamRunner
    from vicokd.inference.student import load_onnx_student, load_student

    student = load_onnx_student(args.onnx) if args.onnx else load_student(args.ckpt, device=args.device)
    readers = stream_sources(args.sources, student.meta, realtime=args.realtime, input_format=args.input_format,
                             follow=args.follow, grid=args.grid)
    stall = DEFAULT_STALL_S if args.stall is None else args.stall
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") if args.out is not None else contextlib.nullcontext(sys.stdout) as out:
        segments = {name: value for name, value in (("min_gap", args.min_gap), ("min_duration", args.min_duration))
                    if value is not None}
        runner = StreamRunner(student, readers, out, stride=args.stride, threshold=args.threshold, stall=stall,
                              allow_missing=args.allow_missing, **segments)
        summary = runner.run()
    if summary.frames == 0:
        reasons = "; ".join(summary.warnings) or "no frame from any source"
        raise VicokdError(f"stream: no grid frame was read ({reasons})")
    print(summary.format(), file=sys.stderr)
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "export", "a student as model.safetensors + config.yaml + classes.json and an ONNX graph "
                     "(uint8 video in, probabilities out), checked against PyTorch with onnxruntime",
                     "vicokd export --ckpt demo/runs/vicokd-frame/checkpoints/best.safetensors --out export/vicokd")
    parser.add_argument("--ckpt", type=Path, required=True, help="student checkpoint (.safetensors); not a teacher")
    parser.add_argument("--out", type=Path, required=True, help="output directory (its export files are replaced)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    parser.add_argument("--frames", type=int, default=None,
                        help="T of the traced sample, >= 2 (default data.num_frames; the graph takes any T)")
    parser.add_argument("--views", type=int, default=None,
                        help="V of the traced sample, >= 2 (default 5; the graph takes any V)")
    parser.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from vicokd.inference.export import export_student

    options = {name: value for name, value in (("opset", args.opset), ("views", args.views)) if value is not None}
    print(export_student(args.ckpt, args.out, frames=args.frames, **options).format())
    return 0


# ------------------------------------------------------------------------------- benchmark


def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    parser = _parser(sub, "benchmark", "speed and memory benchmarks: data loading, training step, frozen-encoder "
                     "epochs, whole runs from features, inference",
                     "vicokd benchmark                          # all, small size (minutes on 2 cores)\n"
                     "  vicokd benchmark --only features          # frozen encoders vs end to end, with mAP\n"
                     "  vicokd benchmark --size full --only train --out benchmarks/results")
    parser.add_argument("--size", choices=["small", "full"], default="small",
                        help="small (default, minutes) or full (the paper's shapes, about 1.5 hours on 2 cores)")
    parser.add_argument("--only", default=None, metavar="NAMES",
                        help="comma-separated subset of: data, train, features, runs, predict, prepare_memory, stream "
                             "(default: all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="directory for the JSON results (default: benchmarks/results)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    parser.add_argument("--frames", type=int, default=None, help="override T (faster, not the headline shape)")
    parser.set_defaults(func=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> int:
    from vicokd.bench import parse_only, run_benchmarks

    run_benchmarks(parse_only(args.only), args.size, args.out, args.threads, args.frames)
    return 0


# ------------------------------------------------------------------------------------ main

_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_config,
    _add_prepare,
    _add_split,
    _add_synth,
    _add_models,
    _add_detect,
    _add_train,
    _add_distill,
    _add_evaluate,
    _add_methods,
    _add_demo,
    _add_pretrain,
    _add_reproduce,
    _add_predict,
    _add_stream,
    _add_export,
    _add_benchmark,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vicokd",
        description="View-aware Cross-modal Knowledge Distillation for multi-view action recognition.",
        epilog="example:\n  vicokd demo            # the whole pipeline on a synthetic home, on CPU",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def _os_error_line(exc: OSError) -> str:
    """One line for an error of the operating system: the file(s), the reason, what to do."""
    where = ": ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = ""
    if exc.errno == errno.ENOSPC:
        hint = "; free some space and re-run the same command: finished steps are kept"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "; choose a folder you can write to"
    return f"{where}: {reason}{hint}" if where else f"{reason}{hint}"


def main(argv: list[str] | None = None) -> int:
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # weights come from local disk only
        os.environ.setdefault(variable, "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VicokdError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a permission, a file gone mid-run: the OS names the file
        if args.debug:
            raise
        print(f"error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished steps are kept; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
