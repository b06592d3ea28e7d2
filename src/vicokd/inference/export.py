"""`vicokd export`: a student checkpoint as deployable files, with an ONNX graph checked against PyTorch.

``export_student(checkpoint, out_dir)`` writes::

    DIR/model.safetensors   state dict of the student's MultiViewActionModel only (visual encoder,
                            adapter, cross-modal attention, backbone; no optimizer, no teacher)
    DIR/config.yaml         the resolved config (model.mode: student): rebuild with
                            :func:`vicokd.inference.student.load_exported`
    DIR/classes.json        class names, in output order
    DIR/model.onnx          the visual-only student, pre-processing included (below)
    DIR/encoder.onnx        the part `stream` runs per grid frame: uint8 images (N, 3, H, W) →
                            visual features (N, W) (normalisation included)
    DIR/window.onnx         the part `stream` runs per window: features (B, V, T, W) → frame_logits
                            (B, T, C), view_frame_logits (B, V, T, C), seq_logits (B, C)
    DIR/decisions.json      the checkpoint's calibration (per-class scaling and thresholds) or null
    DIR/README.md           inputs, outputs, dynamic axes, the numerical checks

ONNX graph (exported by ``torch.onnx.export(dynamo=True)``, i.e. via torch.export, opset
`opset`, weights inside the one file):

- input ``video`` uint8 (B, V, T, 3, H, W), RGB, H × W = ``data.image_size`` of the config;
  the graph normalises ``(x / 255 − mean) / std`` itself (the model's ``pixel_mean`` /
  ``pixel_std``, which are ``model.visual.mean`` / ``.std`` of the training config).
- outputs (probabilities, not logits): ``frame_probs`` (B, T, C), ``view_frame_probs``
  (B, V, T, C), ``seq_probs`` (B, C): σ(a_c·z + b_c) with the checkpoint's calibration (the
  probabilities `predict` reports; ``decisions.json`` holds the thresholds they are cut at), σ(z)
  for a checkpoint without one.
- dynamic axes: B, V and T (V at most ``model.multitrans.max_views`` for MultiTrans); H and W
  are fixed. The graph encodes all B·V·T frames in one call: the training-time chunking of the
  visual encoder (``model.visual.chunk_size``) would make the number of chunks depend on the
  input shape.

Export traces a seeded random video of shape (2, `views`, `frames`, 3, H, W). The check runs
onnxruntime (CPU) and PyTorch on two other seeded random videos, (3, V, T) and
(1, V − 1, T // 2 + 1): the maximum absolute difference of every output must be at most
`tolerance` (1e-4), else a :class:`~vicokd.errors.VicokdError` and nothing is written. All files
are made in a temporary directory inside DIR and moved into place only after the check passed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vicokd.backbone_registry import backbone_spec
from vicokd.config import Config, config_to_yaml
from vicokd.errors import VicokdError
from vicokd.inference.decisions import Decisions
from vicokd.inference.student import load_student
from vicokd.io import write_safetensors
from vicokd.models import MultiViewActionModel

__all__ = ["DEFAULT_OPSET", "OUTPUT_NAMES", "ExportResult", "OnnxStudent", "export_student"]

DEFAULT_OPSET = 18
OUTPUT_NAMES = ("frame_probs", "view_frame_probs", "seq_probs")
FILES = ("model.safetensors", "config.yaml", "classes.json", "model.onnx", "encoder.onnx", "window.onnx",
         "decisions.json", "README.md")
STREAM_OUTPUTS = ("frame_logits", "view_frame_logits", "seq_logits")  # window.onnx
_ONE_CHUNK = 2**62  # visual encoder chunk size that keeps every frame in one call


class OnnxStudent(nn.Module):
    """uint8 video (B, V, T, 3, H, W) → (frame_probs, view_frame_probs, seq_probs); the model
    normalises. The probabilities are those `predict` reports and thresholds
    (:meth:`Decisions.probabilities <vicokd.inference.decisions.Decisions.probabilities>`):
    calibrated with the checkpoint's per-class scaling when it has one."""

    def __init__(self, model: MultiViewActionModel, decisions: Decisions) -> None:
        super().__init__()
        self.model = model
        self.decisions = decisions

    def forward(self, video: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.model({"video": video})
        return tuple(self.decisions.probabilities(logits)  # type: ignore[return-value]
                     for logits in (out.frame_logits, out.view_frame_logits, out.seq_logits))


class OnnxEncoder(nn.Module):
    """The part `stream` runs per grid frame: uint8 images (N, 3, H, W) → visual features (N, W)."""

    def __init__(self, model: MultiViewActionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.visual_features(images)


class OnnxWindow(nn.Module):
    """The part `stream` runs per window: features (B, V, T, W) → frame, per-view frame and sequence logits."""

    def __init__(self, model: MultiViewActionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.model({"visual_features": features})
        return out.frame_logits, out.view_frame_logits, out.seq_logits


@dataclass
class ExportResult:
    """Where the files went and how the ONNX graph compared with PyTorch."""

    directory: Path
    files: list[Path]
    opset: int
    sample_shape: tuple[int, ...]  # the traced input's shape
    checks: list[dict[str, Any]]  # per check input: shape and max abs difference of each output
    max_abs_diff: float
    tolerance: float
    seconds: float

    def format(self) -> str:
        """The check of every input, the worst difference and the files written, one per line."""
        lines = [f"onnxruntime vs PyTorch, {check['graph']} on input {tuple(check['shape'])}: max abs diff "
                 + ", ".join(f"{name} {diff:.2e}" for name, diff in check["max_abs_diff"].items())
                 for check in self.checks]
        lines.append(f"max abs diff {self.max_abs_diff:.2e} (tolerance {self.tolerance:g}), opset {self.opset}, "
                     f"{self.seconds:.1f} s")
        lines.append(f"wrote {', '.join(str(path) for path in self.files)}")
        return "\n".join(lines)


def _video(shape: tuple[int, ...], seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)


def _check(graph: Path, wrapper: nn.Module, inputs: list[Tensor], input_name: str = "video",
           outputs: tuple[str, ...] = OUTPUT_NAMES) -> list[dict[str, Any]]:
    """Max abs difference of every output between onnxruntime and PyTorch on the given inputs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    checks = []
    for value in inputs:
        with torch.inference_mode():
            expected = wrapper(value)
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(list(outputs), {input_name: value.numpy()})
        diffs = {name: float(np.abs(ref.numpy() - out).max()) for name, ref, out in zip(outputs, expected, got)}
        checks.append({"graph": graph.name, "shape": list(value.shape), "max_abs_diff": diffs})
    return checks


def export_graph(wrapper: nn.Module, sample: Tensor, path: Path, input_name: str, outputs: tuple[str, ...],
                 dynamic: dict[int, Any], opset: int, checkpoint: Path | str) -> None:
    """`wrapper` as one ONNX file (torch.onnx dynamo export, weights inside, `dynamic` axes of its input)."""
    try:
        torch.onnx.export(wrapper, (sample,), str(path), dynamo=True, external_data=False, input_names=[input_name],
                          output_names=list(outputs), opset_version=opset, verbose=False,
                          dynamic_shapes={input_name: dynamic})
    except Exception as exc:  # torch.export / onnxscript failures: one line, the chain under --debug
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise VicokdError(f"{checkpoint}: ONNX export of {path.name} failed ({type(exc).__name__}: "
                          f"{first[:300]})") from exc


def _readme(config: Config, classes: list[str], result: ExportResult, source: Path, max_views: int | None,
            calibrated: bool) -> str:
    h, w = config.data.image_size
    probabilities = ("Calibrated as `vicokd predict` reports them: σ(a_c·z + b_c) with the per-class scaling "
                     "chosen on validation; an action is on where a probability reaches its class threshold in "
                     "`decisions.json` (`calibration.thresholds`)." if calibrated else
                     "σ(z) of the logits (the checkpoint has no calibration: it was trained without a validation "
                     "split); `vicokd predict` cuts them at 0.5.")
    views = f"1 … {max_views}" if max_views else "any ≥ 1"
    checks = "\n".join(f"- {c['graph']}, input {tuple(c['shape'])}: "
                       + ", ".join(f"{name} {diff:.2e}" for name, diff in c["max_abs_diff"].items())
                       for c in result.checks)
    return f"""# Exported ViCoKD student

Source checkpoint: `{source}` ({config.model.backbone} backbone, D = {config.model.dim},
visual encoder `{config.model.visual.name}`), {len(classes)} classes.

| file | content |
|---|---|
| `model.safetensors` | state dict of `vicokd.models.MultiViewActionModel` (the student) |
| `config.yaml` | the resolved training config (`model.mode: student`) |
| `classes.json` | class names, in the order of the last output axis |
| `model.onnx` | the visual-only student with its pre-processing, ONNX opset {result.opset} |
| `encoder.onnx`, `window.onnx` | the same student in the two parts `vicokd stream --onnx DIR` runs |
| `decisions.json` | the calibration chosen on validation (per-class scaling, thresholds), or null |

## ONNX input

`video`: uint8 (B, V, T, 3, H, W), RGB, H × W = {h} × {w}. Frames are the 2.5-FPS grid of V
synchronised cameras (views in the training order), resized to {h} × {w} with the aspect
ignored. Normalisation `(x / 255 − mean) / std`, mean = {list(config.model.visual.mean)},
std = {list(config.model.visual.std)}, happens inside the graph.

Dynamic axes: B (batch), V (views: {views}), T (frames; trained with T = {config.data.num_frames}).
H and W are fixed.

## ONNX outputs (probabilities in [0, 1], not logits)

{probabilities}

- `frame_probs` (B, T, C): per frame, fused over views;
- `view_frame_probs` (B, V, T, C): per view and frame;
- `seq_probs` (B, C): per clip.

## Check

onnxruntime (CPU) against PyTorch on seeded random videos (traced with {tuple(result.sample_shape)}),
maximum absolute difference per output (tolerance {result.tolerance:g}):

{checks}

## Use

```python
import json, numpy as np, onnxruntime
session = onnxruntime.InferenceSession("model.onnx")
classes = json.load(open("classes.json"))
video = np.zeros((1, 3, {config.data.num_frames}, 3, {h}, {w}), dtype=np.uint8)  # B, V, T, 3, H, W
frame_probs, view_frame_probs, seq_probs = session.run(None, {{"video": video}})
```

In Python with vicokd installed: `vicokd.inference.student.load_exported(DIR)` returns the PyTorch
student (its `.model`, and its `.meta`: config, classes, calibration); `vicokd predict` runs a
checkpoint on raw recordings.
"""


def export_student(checkpoint: str | Path, out_dir: str | Path, *, opset: int = DEFAULT_OPSET,
                   frames: int | None = None, views: int = 5, tolerance: float = 1e-4) -> ExportResult:
    """Export a student checkpoint to `out_dir` (files and rules in the module docstring).

    `frames` (default ``data.num_frames``) and `views` set the traced sample's T and V; both must
    be at least 2 so that those axes stay dynamic (the graph then takes any size ≥ 1).
    """
    started = time.perf_counter()
    missing = [name for name in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise VicokdError(f"export needs {', '.join(missing)}: pip install 'vicokd[export]'")
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise VicokdError(f"--out {out_dir}: exists and is not a directory")
    student = load_student(checkpoint)
    model, meta, decisions = student.model, student.meta, student.decisions
    config = meta.config
    classes = list(meta.classes)
    frames = config.data.num_frames if frames is None else frames
    if frames < 2 or views < 2:
        raise VicokdError(f"--frames {frames} --views {views}: the traced sample needs T >= 2 and V >= 2 "
                          f"(the exported graph then accepts any T and V >= 1)")
    max_views = backbone_spec(config.model.backbone).max_views(config.model)
    if max_views is not None and views > max_views:
        raise VicokdError(f"--views {views}: this MultiTrans student has sensor embeddings for "
                          f"model.multitrans.max_views = {max_views} views")
    h, w = config.data.image_size
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    model.visual_encoder.chunk_size = _ONE_CHUNK
    calibration = decisions.calibration
    wrapper = OnnxStudent(model, decisions).eval()
    sample = (2, views, frames, 3, h, w)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=".export-"))
    try:
        dynamic = {0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("views", min=1, max=max_views),
                   2: torch.export.Dim("frames", min=1)}
        export_graph(wrapper, _video(sample, 0), work / "model.onnx", "video", OUTPUT_NAMES, dynamic, opset, checkpoint)
        checks = _check(work / "model.onnx", wrapper, [_video((3, views, frames, 3, h, w), 1),
                                                        _video((1, views - 1, frames // 2 + 1, 3, h, w), 2)])
        # the two parts `stream --onnx` runs: the per-frame encoder and the window model
        encoder, window = OnnxEncoder(model).eval(), OnnxWindow(model).eval()
        export_graph(encoder, _video((2, 3, h, w), 0), work / "encoder.onnx", "images", ("features",),
                {0: torch.export.Dim("count", min=1, max=65536)}, opset, checkpoint)
        checks += _check(work / "encoder.onnx", encoder, [_video((3, 3, h, w), 3), _video((1, 3, h, w), 4)],
                         "images", ("features",))
        with torch.inference_mode():
            width = encoder(_video((1, 3, h, w), 0)).shape[-1]
        generator = torch.Generator().manual_seed(5)
        export_graph(window, torch.randn(2, views, frames, width, generator=generator), work / "window.onnx",
                "features", STREAM_OUTPUTS, dynamic, opset, checkpoint)
        checks += _check(work / "window.onnx", window,
                         [torch.randn(1, views, frames, width, generator=generator),
                          torch.randn(2, views - 1, frames // 2 + 1, width, generator=generator)],
                         "features", STREAM_OUTPUTS)
        worst = max(v for c in checks for v in c["max_abs_diff"].values())
        if not worst <= tolerance:
            raise VicokdError(f"{checkpoint}: onnxruntime differs from PyTorch by {worst:.3e} > {tolerance:g} "
                              f"(per check: {checks}); nothing written")
        write_safetensors(state, work / "model.safetensors")
        (work / "config.yaml").write_text(config_to_yaml(config))
        (work / "classes.json").write_text(json.dumps(classes, indent=1) + "\n")
        # the decisions `predict` / `stream` make: the calibration chosen on validation (or none)
        (work / "decisions.json").write_text(json.dumps({"calibration": meta.calibration}, indent=1) + "\n")
        result = ExportResult(out_dir, [out_dir / name for name in FILES], opset, sample, checks, worst, tolerance,
                              time.perf_counter() - started)
        calibrated = calibration is not None
        (work / "README.md").write_text(_readme(config, classes, result, checkpoint, max_views, calibrated))
        for name in FILES:
            (work / name).chmod(0o644)  # deployable files; safetensors writes its file owner-only
            (work / name).replace(out_dir / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result
