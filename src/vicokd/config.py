"""Typed run configuration: frozen dataclasses loaded from YAML, with dotted overrides.

A config file is data only: a mapping whose keys are the fields below. Unknown keys and values
of the wrong type are rejected with one line naming the key and the file::

    configs/demo/teacher.yaml: model.visual.nmae: unknown key (did you mean 'name'?)

A file may start with ``base: other.yaml`` or ``base: [a.yaml, b.yaml]`` (relative to itself)
to inherit and override other files, merged in order. Command-line overrides use dotted keys, values parsed as YAML:
``--set optim.lr=3e-4 --set data.num_frames=16``.

The presets ship inside the package (``vicokd/configs/<preset>/``, :func:`preset_root`; the
checkout's ``configs/`` points there): a path that is not a file but names one, such as
``demo/teacher.yaml`` or ``configs/paper/student.yaml``, reads the shipped preset, so an installed
``vicokd`` runs them from any directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import importlib.resources
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from vicokd.backbone_registry import BACKBONES
from vicokd.errors import ConfigError


def ranged(default: Any, interval: str) -> Any:
    """A field whose values must lie in `interval` (``"[0, 1)"``, ``"(0, inf)"``; "inf" = unbounded),
    checked by :func:`check_ranges` when a config is built; None is always allowed where the type
    allows it, and every element of a tuple is checked."""
    return field(default=default, metadata={"range": interval})


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """Where the data lives and how clips become tensors (docs/reference/REFERENCE-CODE.md §Frame grid)."""

    root: str = "data/synthetic-home"  # dataset root holding videos + annotation JSON
    cache: str = "cache/synthetic-home"  # output of `vicokd prepare`
    classes: tuple[str, ...] | None = None  # fixed class list; None = sorted union of labels
    fps: float = ranged(2.5, "(0, inf)")  # frame grid rate
    # Which decoded frame is grid frame j (vicokd.data.frame_grid): "timestamps" = the frame whose
    # presentation time is nearest to j / fps (right at every frame rate, variable rates and
    # timestamp resets included); "interval" = source frame j·round(video_fps / fps), the reference
    # code's rule (the same frames on constant-rate files at multiples of 2.5 fps; the paper preset).
    grid: Literal["timestamps", "interval"] = "timestamps"
    num_frames: int = ranged(70, "[1, inf)")  # T, frames sampled per clip
    image_size: tuple[int, int] = ranged((224, 224), "[1, inf)")  # (H, W) of cached frames, aspect ignored
    sample_rate: int = ranged(16000, "[1, inf)")
    num_mel_bins: int = ranged(128, "[1, inf)")
    frame_length_ms: float = ranged(25.0, "(0, inf)")
    frame_shift_ms: float = ranged(10.0, "(0, inf)")
    val_fraction: float = ranged(0.1, "[0, 1)")  # share of train carved out for model selection
    split_seed: int = 0
    person_scores: str | None = None  # scores file from `vicokd detect`; None = <cache>/person_scores.npz
    person_threshold: float = ranged(0.5, "[0, 1]")  # mask m = score > threshold
    features: str | None = None  # cached frozen-encoder features (`vicokd prepare --features DIR`)
    num_workers: int = ranged(2, "[0, inf)")
    # Video paths in the annotation JSON that are absolute or leave `root` (``../x.mp4``) are an
    # error unless this is true (for videos kept elsewhere). Checked on the path as written:
    # symbolic links inside the root are followed either way.
    allow_outside_root: bool = False


@dataclass(frozen=True)
class VisualEncoderConfig:
    """A timm image model, applied to every frame of every view (weights shared).

    The pooled features (timm ``num_classes=0``) are projected to ``model.dim`` when widths differ.
    ``pretrained`` is read from local disk only: a .safetensors/.bin/.pth file, a directory
    holding ``model.safetensors``/``pytorch_model.bin``, or a Hugging Face cache folder
    (``models--timm--<name>``); None = random init. A missing path is an error, never a
    silent random init.
    """

    name: str = "vit_small_patch32_224.augreg_in21k_ft_in1k"
    pretrained: str | None = None  # local weights file / directory / HF cache folder; None = random init
    timm_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. tiny: embed_dim, depth, img_size
    chunk_size: int = 256  # frames per encoder call (memory bound)
    checkpointing: bool = False  # recompute each chunk in backward instead of storing activations
    freeze: bool = False  # encoder weights fixed and in eval mode; the projection to D still trains
    # K top transformer blocks that train (ViT-style timm models): 0 = frozen (as `freeze`), K >= 1 =
    # blocks L-K .. L-1 and the final norm train, the patch embedding and blocks below stay fixed; -1 =
    # all. With data.features, the cache holds the tokens after block L-K (K >= 1) or the pooled
    # features (K = 0) and a run trains from them; its checkpoints still run on raw video.
    # None = follow `freeze` (data.features then freezes the encoder).
    trainable_blocks: int | None = ranged(None, "[-1, inf)")
    # per-channel normalisation of the uint8 frames, (x / 255 − mean) / std: the encoder's own, as timm
    # keeps it in a model's pretrained config; saved with the weights (the model's pixel_mean / pixel_std)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet
    std: tuple[float, float, float] = ranged((0.229, 0.224, 0.225), "(0, inf)")


@dataclass(frozen=True)
class AudioEncoderConfig:
    """Audio encoder over the per-frame log-mel chunks: a real AST or the old fbank MLP.

    Each chunk (R rows × ``num_mel_bins``) is padded with ``pad_value`` or cropped to
    ``max_rows`` rows. AST: ``pretrained`` is a local checkpoint (directory with config.json
    + weights, a weights file, or an HF cache folder); its time position embeddings are
    centre-cropped / interpolated to ``max_rows``. ``ast_kwargs`` override ASTConfig fields
    (tiny configs); ``max_length`` always comes from ``max_rows``.
    """

    kind: Literal["ast", "mlp"] = "ast"
    pretrained: str | None = None  # local ASTModel checkpoint (dir, file or HF cache folder); None = random
    ast_kwargs: dict[str, Any] = field(default_factory=dict)  # ASTConfig overrides (tiny configs)
    max_rows: int = 48  # fbank rows per chunk fed to the encoder (pad/crop); ~38 real rows at 2.5 FPS
    num_mel_bins: int = 128  # must equal data.num_mel_bins
    # Normalised value of an all-zero fbank row, (0 + 4.2677393) / (2 · 4.5689974): what AST's
    # own feature extractor pads with.
    pad_value: float = 0.46703
    mlp_hidden: tuple[int, ...] = (512, 256, 128)  # kind "mlp": ReLU layers, then a Linear to D
    chunk_size: int = 256
    checkpointing: bool = False
    freeze: bool = False


@dataclass(frozen=True)
class FusionConfig:
    """Cross-modal attention (Q = visual, K = V = audio) and the student's adapter."""

    num_heads: int = ranged(8, "[1, inf)")
    dropout: float = ranged(0.0, "[0, 1)")
    # Paper: "positional encodings added to both" (sinusoidal; silent on the kind). Added to the
    # attention inputs only; the residual F^AV = F^V + F^attn uses the encoder output as is.
    positional: bool = True
    adapter_hidden: int | None = None  # None = D (the paper's Linear(D→D) → ReLU → Linear(D→D))
    # Paper silent; beyond Eq. 6. True: the student adds its pseudo-audio attention through a
    # per-channel gate g initialised at 0, F^AV = F^V + g ⊙ F^attn, so that a student started from the
    # teacher (distill.student_init: teacher) is at step 0 exactly the teacher without audio, instead of
    # the teacher's attention applied to a random adapter's output. False: Eq. 3 as written.
    student_gate: bool = False


@dataclass(frozen=True)
class MultiTSFConfig:
    temporal_layers: int = 2
    temporal_heads: int = 12
    mlp_ratio: float = 4.0
    drop_path: float = 0.1  # stochastic depth, linear from 0 to this over the temporal blocks
    dropout: float = 0.0  # attention / FFN dropout of every block (paper silent)
    view_layers: int = 1
    view_heads: int = 4
    view_ffn: int = 256  # hidden width of the view Transformer's FFN
    human_head: bool = True  # auxiliary Conv1d(D→1) over time → extras["human_logits"]
    human_kernel: int = 1  # temporal kernel of the human head (odd; paper silent)


@dataclass(frozen=True)
class MultiASLConfig:
    temporal_layers: int = 1
    temporal_heads: int = 4
    head_dim: int = 128  # attention width = heads · head_dim, independent of D
    mlp_ratio: float = 4.0  # paper / reference silent
    dropout: float = 0.0
    topk_divisor: int = 8  # k = max(1, T // topk_divisor) frames per class for cas_top
    gce_q: float = 0.7  # generalized CE exponent of the actionness losses (used by the loss)


@dataclass(frozen=True)
class MultiTransConfig:
    layers: int = 2  # blocks in which the V tokens of one frame attend to each other
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    # Temporal blocks after the view fusion (sinusoidal PE). Yasuda et al. get temporal context
    # from their per-sensor extractors; ours are per frame, so a temporal encoder (Eq. 4) follows.
    temporal_layers: int = 1
    max_views: int = 8  # learned sensor embeddings exist for this many views
    view_pooling: Literal["max", "mean"] = "max"  # per-view frame logits → frame_logits
    pooling: Literal["mean", "max", "attention"] = "mean"  # frame logits → seq logits over time


@dataclass(frozen=True)
class ModelConfig:
    """The whole network. `mode` picks teacher (audio encoder) or student (adapter)."""

    mode: Literal["teacher", "student"] = "teacher"
    backbone: str = "multitsf"  # a name of vicokd.backbone_registry.BACKBONES (plugins register more)
    dim: int = ranged(384, "[1, inf)")  # D, width of every per-view feature
    visual: VisualEncoderConfig = field(default_factory=VisualEncoderConfig)
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    multitsf: MultiTSFConfig = field(default_factory=MultiTSFConfig)
    multiasl: MultiASLConfig = field(default_factory=MultiASLConfig)
    multitrans: MultiTransConfig = field(default_factory=MultiTransConfig)
    # Paper: "temporal average pooling followed by classification", silent on how that meets each
    # backbone's released sequence head. "backbone": each backbone's own head (MultiTSF: view
    # Transformer; MultiASL: token). "frame_pool": seq_logits = mean over time of the view-fused
    # frame logits, for every backbone, so that L_S also trains the per-view frame heads that
    # LD and VC act on (under V_S the backbone heads leave them without any gradient).
    sequence_head: Literal["backbone", "frame_pool"] = "backbone"


@dataclass(frozen=True)
class OptimConfig:
    lr: float = ranged(1e-4, "(0, inf)")
    weight_decay: float = ranged(5e-4, "[0, inf)")  # Adam with L2 weight decay, as the reference code
    min_lr: float = ranged(1e-5, "[0, inf)")  # cosine annealing floor
    batch_size: int = ranged(12, "[1, inf)")
    epochs: int = ranged(100, "[1, inf)")
    accumulate_grad_batches: int = ranged(1, "[1, inf)")
    grad_clip: float | None = ranged(None, "(0, inf)")


@dataclass(frozen=True)
class TrainConfig:
    """The run: where it goes and how the loop runs (Lightning options)."""

    name: str = "run"
    out_dir: str = "runs"
    seed: int = 0
    deterministic: bool = True
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = ranged(1, "[1, inf)")
    monitor: Literal["seq_map", "frame_map"] = "seq_map"  # validation metric for the best ckpt
    select_on_test: bool = False  # reproduce the old test-set model selection (clearly labelled)
    log_every_n_steps: int = ranged(10, "[1, inf)")
    # Every K optimizer steps, the norm of each weighted loss term's gradient on the trainable
    # parameter groups is logged (grad/<term>/<group>); 0 = never. Each measurement costs about
    # one extra backward pass per term (see vicokd.training.grad_share).
    grad_share_every: int = ranged(60, "[0, inf)")
    # Also evaluate the test split after every epoch and log test_curve/seq_map, test_curve/frame_map
    # (the paper's Fig. 3 draws test mAP per epoch). Logged only: selection stays on `monitor`.
    test_curve: bool = False


@dataclass(frozen=True)
class DistillConfig:
    """Distillation recipe. The method names the active terms (vicokd.methods)."""

    method: str = "teacher"
    supervision: Literal["frame", "sequence"] = "frame"  # V_F or V_S for the student
    tau: float = ranged(1.0, "(0, inf)")  # paper silent; softmax temperature of Eq. 8
    lambda_seq: float = ranged(1.0, "[0, inf)")  # λ in L_F + λ L_S
    weight_fd: float = ranged(1.0, "[0, inf)")
    weight_ld: float = ranged(1.0, "[0, inf)")
    weight_vc: float = ranged(1.0, "[0, inf)")
    detach_confidence: bool = True  # paper silent; w_t is a weight, not a target to push
    student_init: Literal["scratch", "teacher"] = "scratch"  # paper silent
    # Eq. 8 writes p_t with no view index: "view" = LD on every view's frame logits (B, V, T, C);
    # "fused" = LD on the view-fused frame logits (B, T, C), the evaluated frame output.
    ld_logits: Literal["view", "fused"] = "view"
    # How LD and VC turn logits into distributions. "softmax" over classes (the paper's notation);
    # "sigmoid": each class an independent Bernoulli (multi-label), KL/JS averaged over classes.
    distribution: Literal["softmax", "sigmoid"] = "softmax"
    vc_tau: float = ranged(1.0, "(0, inf)")  # paper silent; temperature of the logits VC turns into probabilities
    # Eq. 7's squared L2 "sum"s over D (to the letter); "mean" divides by D (element-wise MSE).
    fd_reduction: Literal["sum", "mean"] = "sum"


@dataclass(frozen=True)
class DetectConfig:
    """`vicokd detect`: the person detector behind the view-consistency masks (vicokd.detect).

    Score per frame = mean confidence of the person detections kept at the detector's own
    threshold, 0 when none (docs/reference/REFERENCE-CODE.md §Person detection); mask = score > data.person_threshold.
    """

    # mediapipe | yolo | groundtruth | a name given to vicokd.detect.register_detector (checked there)
    detector: str = "mediapipe"
    weights: str | None = None  # YOLO weights file on local disk (e.g. yolov10b.pt); never downloaded
    batch_size: int = 32  # frames per detector call
    confidence: float | None = None  # detector's own detection threshold; None = its default (YOLO 0.25, MediaPipe 0.5)
    # MediaPipe: landmark-model presence that must confirm a pose detection. Its default 0.5 kept two more
    # false positives on bikes.mp4 than 0.7, which lost no true person there (tests/test_detect.py).
    min_pose_presence: float = 0.7
    device: str | None = None  # YOLO device ("cpu", "cuda:0"); None = ultralytics' choice
    yolo_image_size: int = 640  # YOLO inference size (imgsz)
    # Cached frames are resized to data.image_size with the aspect ignored; detectors see people better at the
    # true aspect, so frames are resized back to W/H = source_aspect first (MultiSensor-Home: 4/3). None = as cached.
    source_aspect: float | None = None
    save_every: int = 10  # clips between resumable saves of the score file


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)


# --------------------------------------------------------------------------------------------
# Loading, validation, overrides
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Return `value` checked (and minimally converted) against the annotation `tp`."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for section, got {value!r}")
        return _build(tp, value, where)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {_type_name(tp)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            with contextlib.suppress(ConfigError):  # the next type of the union may fit
                return _coerce(value, arg, where)
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list ({_type_name(tp)}), got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {tp}")  # pragma: no cover


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        key_where = f"{where}.{key}" if where else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{key_where}: unknown key{hint}")
        kwargs[key] = _coerce(value, hints[key], key_where)
    return cls(**kwargs)




def _in_interval(value: float, interval: str) -> bool:
    low_text, high_text = (part.strip() for part in interval[1:-1].split(","))
    low, high = float(low_text), float(high_text)
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below


def _describe(interval: str) -> str:
    if interval.endswith("inf)"):
        low = interval[1:].split(",")[0].strip()
        return f"at least {low}" if interval[0] == "[" else f"greater than {low}"
    return f"in {interval}"


def check_ranges(config: Config) -> None:
    """Refuse a value outside its field's range (:func:`ranged`) or an unknown backbone, naming the key (one line)."""
    if config.model.backbone not in BACKBONES:
        raise ConfigError(f"model.backbone: {config.model.backbone!r} is not one of {', '.join(BACKBONES)} "
                          "(others: vicokd.backbone_registry.register_backbone)")
    for key, value, interval in _ranged_values(config, ""):
        for item in value if isinstance(value, tuple) else (value,):
            if item is not None and not _in_interval(float(item), interval):
                raise ConfigError(f"{key}: must be {_describe(interval)}, got {value!r}")


def _ranged_values(section: Any, prefix: str) -> typing.Iterator[tuple[str, Any, str]]:
    """(dotted key, value, interval) of every :func:`ranged` field of `section` and its sub-sections."""
    for item in dataclasses.fields(section):
        value = getattr(section, item.name)
        if "range" in item.metadata:
            yield f"{prefix}{item.name}", value, item.metadata["range"]
        elif dataclasses.is_dataclass(value):
            yield from _ranged_values(value, f"{prefix}{item.name}.")


def upgrade_config_values(values: dict[str, Any]) -> dict[str, Any]:
    """A config mapping of an earlier vicokd in today's layout: the frames' normalisation, once
    ``data.mean`` / ``data.std``, is ``model.visual.mean`` / ``.std`` (a value set there wins).
    Configs, checkpoint sidecars and run requests written before read the same."""
    data = values.get("data")
    if not isinstance(data, dict) or not {"mean", "std"} & set(data):
        return values
    moved = {key: data[key] for key in ("mean", "std") if key in data}
    model = values.get("model") if isinstance(values.get("model"), dict) else {}
    visual = model.get("visual") if isinstance(model.get("visual"), dict) else {}
    return {**values, "data": {k: v for k, v in data.items() if k not in moved},
            "model": {**model, "visual": {**moved, **visual}}}


def config_from_dict(values: dict[str, Any], source: str = "<dict>") -> Config:
    """Build a :class:`Config` from a nested mapping (:func:`upgrade_config_values` first); errors are
    prefixed with `source`."""
    try:
        config = _build(Config, upgrade_config_values(values), "")
        check_ranges(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def preset_root() -> Path:
    """The folder of the presets shipped inside the package (``vicokd/configs``: one folder per
    preset, each with teacher.yaml, student.yaml, base.yaml and model.yaml)."""
    return Path(str(importlib.resources.files("vicokd") / "configs"))


def shipped_presets() -> list[str]:
    """Every shipped preset file as ``<preset>/<file>.yaml``, sorted."""
    root = preset_root()
    return sorted(str(path.relative_to(root)) for path in root.glob("*/*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """`path` when it is a file, else the shipped preset it names (``demo/teacher.yaml``, with or without
    a leading ``configs/``); one line listing the presets when it is neither."""
    path = Path(path)
    if path.is_file():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    shipped = preset_root().joinpath(*parts) if parts else None
    if shipped is not None and not path.is_absolute() and shipped.is_file():
        return shipped
    raise ConfigError(f"{path}: config file not found (shipped presets: {', '.join(shipped_presets())})")


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{at}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    bases = values.pop("base", None)
    if bases is None:
        return values
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        base_path = (path.parent / str(base)).resolve()
        if base_path in seen:
            raise ConfigError(f"{path}: base: circular reference to {base_path}")
        merged = merge_dicts(merged, _read_yaml(base_path, (*seen, base_path)))
    return merge_dicts(merged, values)


def merge_dicts(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge key by key, everything else replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_dicts(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ``["optim.lr=3e-4", "model.dim=64"]`` into a nested mapping (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=3e-4")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is set twice")
        node[parts[-1]] = value
    return nested


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config (or the defaults when `path` is None) and apply dotted overrides."""
    values: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        values = _read_yaml(resolve_config_path(path))
    if overrides:
        values = merge_dicts(values, parse_overrides(overrides))
        source += " (with --set)"
    return config_from_dict(values, source)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested mapping (tuples as lists) suitable for YAML/JSON."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def config_hash(config: Config | ModelConfig) -> str:
    """Short stable hash of a config (or one section), for checkpoint sidecars."""
    text = json.dumps(config_to_dict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def replace(config: Any, **changes: Any) -> Any:
    """`dataclasses.replace` with dotted keys: ``replace(cfg, **{"optim.lr": 1e-3})``."""
    nested: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        direct[head] = replace(getattr(config, head), **sub)
    return dataclasses.replace(config, **direct)
