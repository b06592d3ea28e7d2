"""Smoke tests of the benchmarks at toy sizes: they run and return well-formed results.

No timing assertions here: speed targets live in benchmarks/ (measured, not tested).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vicokd.bench import BENCHMARKS, BenchResult, get_benchmark, parse_only
from vicokd.bench.common import linear_extrapolation, run_isolated
from vicokd.bench.data import DataBenchSize, run_data_benchmark
from vicokd.bench.features import FeatureBenchSize, epoch_seconds, run_features_benchmark, typical_epoch
from vicokd.bench.paper import Shape, encoder_widths, paper_config, synthetic_batch
from vicokd.bench.predict import PredictBenchSize, run_predict_benchmark
from vicokd.bench.train_step import StepSpec, TrainBenchSize, run_train_benchmark
from vicokd.cli import main
from vicokd.config import load_config, replace
from vicokd.errors import VicokdError

# The paper's model families at toy widths (one block each), so a step takes milliseconds.
TINY = {
    "dim": 32,
    "visual.timm_kwargs": {"embed_dim": 32, "depth": 1, "num_heads": 2},
    "audio.ast_kwargs": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64},
    "fusion.num_heads": 4,
    "multitsf.temporal_heads": 4,
    "multitsf.view_ffn": 32,
}


def _allocate(megabytes: int) -> dict:
    block = np.ones(megabytes * 2**20, dtype=np.uint8)  # touched: resident
    return {"sum": int(block[:: 4096].sum())}


def _check(result, name: str, rows: int) -> dict:
    data = json.loads(json.dumps(result.to_json()))  # JSON-clean
    assert data["name"] == name
    assert data["size"] == "custom"
    assert len(data["rows"]) == rows
    assert {"cpu", "cores", "torch", "load_average", "date"} <= set(data["machine"])
    assert data["targets"] and all(isinstance(t["met"], bool) for t in data["targets"])
    table = result.table()
    assert all(header in table for _, header in result.columns)
    assert BenchResult.from_json(data).markdown() == result.markdown()
    return data


def test_run_isolated_reports_the_child_peak_only():
    small = run_isolated(_allocate, 1, threads=1)
    large = run_isolated(_allocate, 200, threads=1)
    assert large["sum"] == 200 * 2**20 // 4096
    assert large["peak_rss_bytes"] - small["peak_rss_bytes"] >= 190 * 2**20


def test_bench_model_is_the_paper_preset():
    preset = load_config(Path(__file__).parents[1] / "configs/paper/model.yaml",
                         ["model.visual.pretrained=null", "model.audio.pretrained=null"]).model
    assert paper_config("teacher").model == preset
    assert paper_config("vicokd").model == replace(preset, mode="student")


def test_linear_extrapolation():
    value, slope, residual = linear_extrapolation([1, 2, 4], [3.0, 5.0, 9.0], 10)
    assert value == pytest.approx(21.0) and slope == pytest.approx(2.0) and residual == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        linear_extrapolation([1, 1], [2.0, 3.0], 5)


def test_data_benchmark(tmp_path):
    size = DataBenchSize(clips=2, views=2, seconds=2.0, source_fps=10.0, source_size=(48, 64), frames=4,
                         image_size=(32, 32), batch_size=1, workers=0, min_seconds=0.2)
    result = run_data_benchmark(size, work_dir=tmp_path)
    data = _check(result, "data", 3)
    assert [row["clips"] >= 2 for row in data["rows"]] == [True] * 3
    assert all(row["clips_per_s"] > 0 for row in data["rows"])
    assert not list(tmp_path.iterdir())  # the synthetic dataset and cache are removed


@pytest.mark.slow  # five spawned processes
def test_train_step_benchmark():
    size = TrainBenchSize(frames=2, ckpt_chunk=2, ckpt_frames=(1, 2), plain_frames=(1, 2), roles=("teacher",),
                          views=1, model=TINY)
    result = run_train_benchmark(size, threads=1)
    data = _check(result, "train_step", 5 + 2)  # timed teacher T=2; T=1, 2 ckpt; T=1, 2 plain; 2 fits
    measured = [row for row in data["rows"] if row["purpose"] != "extrapolated"]
    assert all(row["flops"] > 0 and row["wall_s"] > 0 and row["peak_rss_bytes"] > 0 for row in measured)
    fits = [row for row in data["rows"] if row["purpose"] == "extrapolated"]
    assert [row["run"].endswith("B=12 T=70") for row in fits] == [True, True]
    assert len(data["targets"]) == 2  # the timed teacher, and memory


@pytest.mark.slow  # three spawned processes
def test_predict_benchmark():
    size = PredictBenchSize(frames=2, latency_repeats=1, throughput_batch=2, views=1, model=TINY)
    data = _check(run_predict_benchmark(size, threads=1), "predict", 4)
    student, batched, teacher, old = data["rows"]
    assert batched["batch"] == 2 and batched["clips_per_s"] > 0
    assert teacher["gflops_per_clip"] > student["gflops_per_clip"]
    assert old["gflops_per_clip"] > teacher["gflops_per_clip"]  # the 1024-row AST


def test_feature_batches_and_frozen_step_specs():
    spec = StepSpec("vicokd", 2, 3, views=2, model=TINY, features=True)
    config = spec.config()
    assert config.model.visual.freeze and config.model.audio.freeze
    assert spec.shape.feature_widths == encoder_widths(config) == (32, 32)
    batch = synthetic_batch(spec.shape)
    assert "video" not in batch and "audio" not in batch
    assert batch["visual_features"].shape == (2, 2, 3, 32) and batch["audio_features"].dtype == torch.float32
    assert "video" in synthetic_batch(Shape(1, 1, 1, 32)) and "from features" in spec.label


def test_epoch_seconds_from_metrics_csv(tmp_path):
    # Lightning's CSV rows: step rows without epoch_s, one epoch row each with it; order by epoch
    (tmp_path / "metrics.csv").write_text(
        "epoch,step,train/loss_step,time/train_epoch_s,val/seq_map\n"
        "0,4,0.9,,\n1,9,,2.0,\n0,4,,5.0,\n0,4,,,0.3\n2,14,,4.0,\n")
    assert epoch_seconds(tmp_path) == [5.0, 2.0, 4.0]
    assert typical_epoch([5.0, 2.0, 4.0]) == 3.0  # the first epoch (start-up) left out
    assert typical_epoch([7.0]) == 7.0


@pytest.mark.slow  # a synthetic home, five short training runs, four spawned processes
def test_features_benchmark(tmp_path):
    size = FeatureBenchSize(clips=12, views=2, epochs=2, duration=(8.0, 10.0), paper_frames=1, paper_views=1,
                            model=TINY)
    result = run_features_benchmark(size, threads=1, frames=6, work_dir=tmp_path)
    data = _check(result, "features", 5 + 4)
    demo, paper = data["rows"][:5], data["rows"][5:]
    assert [row["epochs"] for row in demo] == [2] * 5
    assert all(row["epoch_s"] > 0 and 0 <= row["seq_map"] <= 100 for row in demo)
    assert demo[0]["speedup"] == demo[3]["speedup"] == 1.0  # the end-to-end runs are the baselines
    assert set(data["settings"]["features_s"]) == {"features-init", "features-trained"}
    assert all(row["gflops"] > 0 and row["step_s"] > 0 for row in paper)
    assert paper[0]["gflops"] > paper[1]["gflops"]  # from features: no encoder FLOPs
    assert not list(tmp_path.iterdir())  # the work folder is removed


@pytest.mark.slow  # a synthetic home and two short runs in this process
def test_runs_benchmark(tmp_path):
    from vicokd.bench.runs import RunsBenchSize, clip_flops, run_runs_benchmark

    size = RunsBenchSize(clips=12, views=2, seeds=1, epochs=2, duration=(8.0, 10.0))
    result = run_runs_benchmark(size, threads=1, frames=6, work_dir=tmp_path)
    data = _check(result, "runs", 5)
    teacher, student, teacher_k1, student_k1, parallel = data["rows"]
    assert [teacher["run"], student["run"]] == ["teacher-s0", "vicokd-s0"]
    assert [teacher_k1["run"], student_k1["run"], teacher_k1["blocks"]] == ["teacher-s0 K=1", "vicokd-s0 K=1", 1]
    k1 = load_config(Path("configs/demo/teacher.yaml"), ["data.num_frames=6", "optim.epochs=2",
                                                        "model.visual.trainable_blocks=1"])
    assert teacher_k1["gflop"] > teacher["gflop"]  # the top block runs (and trains) in every pass
    k0 = load_config(Path("configs/demo/teacher.yaml"), ["data.num_frames=6"])
    assert clip_flops(k1, 2)[0] > clip_flops(k0, 2)[0]
    clips, settings = data["settings"]["clips"], data["settings"]
    config = load_config(Path("configs/demo/teacher.yaml"), ["data.num_frames=6", "optim.epochs=2"])
    step, forward, _ = clip_flops(config, 2)
    expected = 2 * clips["train"] * step + 3 * clips["val"] * forward + 2 * clips["test"] * forward  # docstring
    assert teacher["gflop"] == pytest.approx(expected / 1e9)
    assert student["gflop"] > 0 and settings["epochs_run"] == 2
    assert teacher["vs_floor"] == pytest.approx(teacher["wall_s"] / teacher["floor_s"])
    # the same two runs in two worker processes: their FLOPs summed, the mean test mAP of one-thread runs
    assert parallel["run"] == "all 2, 2 at a time" and parallel["gflop"] == pytest.approx(teacher["gflop"]
                                                                                         + student["gflop"])
    assert parallel["seq_map"] == pytest.approx((teacher["seq_map"] + student["seq_map"]) / 2)
    assert len(data["targets"]) == 3 and "top ViT block" in data["targets"][2]["goal"]
    assert not list(tmp_path.iterdir())  # the work folder is removed


def test_registry_and_cli_errors(capsys):
    assert parse_only(None) == list(BENCHMARKS)
    assert parse_only("predict, data") == ["predict", "data"]
    assert all(callable(get_benchmark(name)) for name in BENCHMARKS)
    with pytest.raises(VicokdError, match="unknown benchmark 'nope'"):
        parse_only("data,nope")
    assert main(["benchmark", "--only", "nope"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_stream_benchmark():
    from vicokd.bench.stream import StreamBenchSize, run_stream_benchmark

    size = StreamBenchSize(frames=3, length=6, stride=2, views=2, image_size=32,
                           model={**TINY, "visual.timm_kwargs": {**TINY["visual.timm_kwargs"], "img_size": 32}})
    data = _check(run_stream_benchmark(size, threads=1), "stream", 1)
    row = data["rows"][0]
    assert row["stream_x_realtime"] > 0 and row["predict_x_realtime"] > 0 and row["onnx_x_realtime"] > 0
    # paced at 2.5 FPS: frames wait for their window, never less than the computation after its last frame
    assert 0 <= row["beyond_median_s"] <= row["delay_median_s"] and row["delay_p95_s"] >= row["beyond_p95_s"]
    assert row["paced_s"] >= (6 - 1) / 2.5
