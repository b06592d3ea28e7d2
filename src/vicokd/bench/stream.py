"""Stream benchmark: does `vicokd stream` keep up with live cameras, and how late is each frame?

In a fresh process, the paper's student (ViT-S/32 at 224, D = 384, MultiTSF, random weights)
runs :class:`vicokd.inference.stream.StreamRunner` on V in-memory sources of L grid frames (random
uint8 images, already decoded: the cost measured is the model's, as a camera's decoder runs on
its own thread):

- **keep-up rate**: every frame available at once; grid frames processed per second, divided by
  the grid rate (2.5 FPS): how many times faster than real time the stream runs;
- **delay**: the sources paced at the real grid rate; for each frame, the time from its
  arrival to its probabilities being written (median, p95), and the same counted from the
  arrival of the newest frame of the window that wrote it ("beyond the stride": what the
  computation adds to the wait for the window);
- **predict on the same recording**, in the same process: the windows of ``predict``
  (:func:`vicokd.inference.predict.window_probabilities`, stride T) over the same frames, as a
  multiple of real time;
- **stream --onnx**: the keep-up rate with the two ONNX parts (``encoder.onnx``, ``window.onnx``
  as ``vicokd export`` writes them) run by onnxruntime.

Targets: keep-up ≥ 3× real time; p95 delay beyond the stride ≤ 1 s.
"""

from __future__ import annotations

import io
import queue
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vicokd.bench.common import GIB, BenchResult, Target, machine_info, resolve_size, run_isolated
from vicokd.bench.paper import build_models, paper_config
from vicokd.config import replace
from vicokd.inference.decisions import Decisions
from vicokd.inference.predict import window_probabilities
from vicokd.inference.sources import SOURCE_ENDED
from vicokd.inference.stream import StreamRunner
from vicokd.inference.student import LoadedStudent
from vicokd.models.checkpoint import CheckpointMeta

GRID_FPS = 2.5


@dataclass(frozen=True)
class StreamBenchSize:
    frames: int  # T
    length: int  # L, grid frames of the recording
    stride: int
    views: int = 5
    image_size: int = 224
    onnx: bool = True  # also the keep-up rate of `stream --onnx` (encoder.onnx + window.onnx, onnxruntime)
    model: dict[str, Any] = field(default_factory=dict)  # dotted model overrides (tests: a tiny model)


STREAM_SIZES = {
    "full": StreamBenchSize(frames=70, length=140, stride=10),
    "small": StreamBenchSize(frames=8, length=24, stride=4, views=3),
}


class _Source:
    """Grid frames from memory, at `period` seconds each (0: all at once); records arrivals."""

    def __init__(self, frames: np.ndarray, period: float) -> None:
        self.frames: queue.Queue = queue.Queue()
        self.error, self.source = None, "memory"
        self.arrived: dict[int, float] = {}
        self._images, self._period = frames, period

    def start(self) -> None:
        def feed() -> None:
            started = time.monotonic()
            for j, image in enumerate(self._images):
                time.sleep(max(0.0, started + j * self._period - time.monotonic()))
                self.arrived[j] = time.monotonic()
                self.frames.put((j, image))
            self.frames.put(SOURCE_ENDED)
        threading.Thread(target=feed, daemon=True).start()


class _TimedOutput(io.StringIO):
    """Records when each frame line is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written: dict[int, float] = {}

    def write(self, text: str) -> int:
        if text.startswith('{"type": "frame"'):
            self.written[int(text.split('"frame": ', 1)[1].split(",", 1)[0])] = time.monotonic()
        return super().write(text)


def _run(student: LoadedStudent, images: np.ndarray, period: float, stride: int
         ) -> tuple[float, list[_Source], _TimedOutput]:
    sources = [_Source(images[v], period) for v in range(images.shape[0])]
    out = _TimedOutput()
    started = time.perf_counter()
    StreamRunner(student, sources, out, stride=stride, stall=30.0, warn=lambda line: None).run()
    return time.perf_counter() - started, sources, out


def measure_stream(bench: StreamBenchSize) -> dict[str, Any]:
    """Run in a fresh process: keep-up rate, paced delays and predict's rate (module docstring)."""
    torch.manual_seed(0)
    config = paper_config("student", model={**bench.model})
    config = replace(config, data=replace(config.data, num_frames=bench.frames,
                                          image_size=(bench.image_size, bench.image_size)))
    model, _ = build_models(config)
    model.eval()
    meta = CheckpointMeta(role="student", method="student", config=config,
                          classes=tuple(f"class{c}" for c in range(model.num_classes)))
    student = LoadedStudent(model, meta, Decisions.from_meta(meta))
    rng = np.random.default_rng(0)
    size = bench.image_size
    images = rng.integers(0, 256, (bench.views, bench.length, size, size, 3), dtype=np.uint8)
    _run(student, images[:, : bench.frames], 0.0, bench.stride)  # warm-up
    seconds, _, _ = _run(student, images, 0.0, bench.stride)
    paced_s, sources, out = _run(student, images, 1 / GRID_FPS, bench.stride)
    arrival = {j: max(source.arrived[j] for source in sources) for j in range(bench.length)}
    delays, beyond = [], []
    for j, written in out.written.items():
        delays.append(written - arrival[j])
        # the window that wrote frame j ends at the first e >= j on the stride grid (or at the last frame)
        window_end = j + (-(j + 1 - bench.frames)) % bench.stride if j + 1 >= bench.frames else bench.frames - 1
        beyond.append(written - arrival[min(window_end, bench.length - 1)])
    onnx_s = None
    if bench.onnx:
        onnx_s = _onnx_keep_up(student, images, bench)
    video = torch.from_numpy(images).permute(0, 1, 4, 2, 3)  # (V, L, 3, H, W)
    started = time.perf_counter()
    window_probabilities(model, video, student.decisions, bench.frames, bench.frames)
    predict_s = time.perf_counter() - started
    real_s = bench.length / GRID_FPS
    return {"stream_s": seconds, "stream_x_realtime": real_s / seconds, "paced_s": paced_s,
            "delay_median_s": float(np.median(delays)), "delay_p95_s": float(np.percentile(delays, 95)),
            "beyond_median_s": float(np.median(beyond)), "beyond_p95_s": float(np.percentile(beyond, 95)),
            "predict_s": predict_s, "predict_x_realtime": real_s / predict_s,
            "onnx_s": onnx_s, "onnx_x_realtime": real_s / onnx_s if onnx_s else None}


def _onnx_keep_up(student: LoadedStudent, images: np.ndarray, bench: StreamBenchSize) -> float:
    """Seconds of the unpaced stream on the model's two ONNX parts (exported here, like `vicokd export`)."""
    from vicokd.inference.export import STREAM_OUTPUTS, OnnxEncoder, OnnxWindow, export_graph
    from vicokd.inference.student import OnnxParts

    model = student.model
    size = bench.image_size
    with tempfile.TemporaryDirectory(prefix="vicokd-bench-stream-") as tmp:
        encoder, window = OnnxEncoder(model).eval(), OnnxWindow(model).eval()
        chunk_size, model.visual_encoder.chunk_size = model.visual_encoder.chunk_size, 2**62  # as export does
        export_graph(encoder, torch.zeros(2, 3, size, size, dtype=torch.uint8), Path(tmp) / "encoder.onnx", "images",
                     ("features",), {0: torch.export.Dim("count", min=1, max=65536)}, 18, "paper student")
        with torch.inference_mode():
            width = encoder(torch.zeros(1, 3, size, size, dtype=torch.uint8)).shape[-1]
        dynamic = {0: torch.export.Dim("batch", min=1), 1: torch.export.Dim("views", min=1),
                   2: torch.export.Dim("frames", min=1)}
        export_graph(window, torch.randn(2, 2, bench.frames, width), Path(tmp) / "window.onnx", "features",
                     STREAM_OUTPUTS, dynamic, 18, "paper student")
        model.visual_encoder.chunk_size = chunk_size
        onnx = LoadedStudent(OnnxParts(tmp), student.meta, student.decisions)
        _run(onnx, images[:, : bench.frames], 0.0, bench.stride)  # warm-up
        seconds, _, _ = _run(onnx, images, 0.0, bench.stride)
    return seconds


def run_stream_benchmark(size: str | StreamBenchSize = "small", *, threads: int | None = None,
                         frames: int | None = None) -> BenchResult:
    """Keep-up rate and delays of `stream` against `predict` (module docstring)."""
    bench = resolve_size(size, STREAM_SIZES)
    if frames is not None:
        bench = StreamBenchSize(**{**asdict(bench), "frames": frames, "stride": min(bench.stride, frames)})
    threads = threads or torch.get_num_threads()
    machine = machine_info()
    measured = run_isolated(measure_stream, bench, threads=threads)
    row = {"run": f"student V={bench.views} T={bench.frames} L={bench.length} stride={bench.stride}", **measured,
           "peak_gib": measured["peak_rss_bytes"] / GIB}
    return BenchResult(
        name="stream", size=size if isinstance(size, str) else "custom", machine=machine,
        settings={**asdict(bench), "threads": threads,
                  "model": "ViT-S/32 + MultiTSF, D=384, random init (the paper student)"},
        columns=[("run", "run"), ("stream_x_realtime", "stream × real time"), ("delay_median_s", "delay median s"),
                 ("delay_p95_s", "delay p95 s"), ("beyond_median_s", "beyond stride median s"),
                 ("beyond_p95_s", "beyond stride p95 s"), ("predict_x_realtime", "predict × real time"),
                 ("onnx_x_realtime", "stream --onnx × real time"),
                 ("peak_gib", "peak GiB")],
        rows=[row],
        targets=[Target("stream keeps up with the cameras at >= 3x real time",
                        f"{measured['stream_x_realtime']:.1f}x", measured["stream_x_realtime"] >= 3.0),
                 Target("p95 delay beyond the stride <= 1 s", f"{measured['beyond_p95_s']:.2f} s",
                        measured["beyond_p95_s"] <= 1.0)],
        notes=[f"{bench.views} sources of {bench.length} grid frames at {bench.image_size}x{bench.image_size}, "
               "already decoded (a camera's decoding runs on its reader thread); the delay run paces them at "
               f"{GRID_FPS} FPS", "predict: the same frames through predict's windows (stride T), model only",
               "stream --onnx: the encoder.onnx and window.onnx that `vicokd export` writes, run by onnxruntime "
               "(exported here from the same random model; keep-up rate only)"],
    )
