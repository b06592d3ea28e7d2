"""`vicokd export`: files, ONNX vs PyTorch through onnxruntime on other B / V / T, safetensors reload, errors."""

import contextlib
import io
import json
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from safetensors.torch import load_file

from run_helpers import IMAGE_SIZE, NUM_FRAMES, fake_teacher
from vicokd.calibration import Calibration
from vicokd.cli import main
from vicokd.config import load_config
from vicokd.errors import VicokdError
from vicokd.inference import export as export_lib
from vicokd.inference.export import OUTPUT_NAMES
from vicokd.inference.student import load_exported
from vicokd.models import MultiViewActionModel
from vicokd.models.checkpoint import model_from_checkpoint


@pytest.fixture(scope="module")
def exported(tiny_student, tmp_path_factory):
    checkpoint = tiny_student[1]
    base = tmp_path_factory.mktemp("export")
    out = base / "export"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["export", "--ckpt", str(checkpoint), "--out", str(out), "--views", "3"])
    assert code == 0
    return SimpleNamespace(base=base, checkpoint=checkpoint, out=out, printed=printed.getvalue())


def _video(shape, seed):
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_files_and_printed_check(exported):
    names = sorted(p.name for p in exported.out.iterdir())
    assert names == ["README.md", "classes.json", "config.yaml", "decisions.json", "encoder.onnx", "model.onnx",
                     "model.safetensors", "window.onnx"]  # encoder + window: the parts `stream --onnx` runs
    h, w = IMAGE_SIZE
    assert f"input (3, 3, {NUM_FRAMES}, 3, {h}, {w}): max abs diff frame_probs" in exported.printed
    assert f"input (1, 2, {NUM_FRAMES // 2 + 1}, 3, {h}, {w})" in exported.printed
    worst = float(exported.printed.split("max abs diff ")[-1].split()[0])
    assert worst <= 1e-4
    readme = (exported.out / "README.md").read_text()
    assert "`video`: uint8 (B, V, T, 3, H, W)" in readme and all(f"`{name}`" in readme for name in OUTPUT_NAMES)
    _, meta = model_from_checkpoint(exported.checkpoint)
    assert json.loads((exported.out / "classes.json").read_text()) == list(meta.classes)
    config = load_config(exported.out / "config.yaml")
    assert config.model.mode == "student" and config.model.dim == meta.config.model.dim


def test_safetensors_hold_the_student_only_and_reload_identically(exported):
    state = load_file(str(exported.out / "model.safetensors"))
    assert not any(name.startswith(("audio_encoder", "model.", "/")) for name in state)
    assert any(name.startswith("adapter.") for name in state)
    original, meta = model_from_checkpoint(exported.checkpoint)
    fresh = MultiViewActionModel(load_config(exported.out / "config.yaml").model, len(meta.classes))
    fresh.load_state_dict(state, strict=True)
    loaded = load_exported(exported.out)
    reloaded = loaded.model
    assert loaded.meta.classes == meta.classes
    video = torch.randn(2, 3, NUM_FRAMES, 3, *IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outputs = [model.eval()({"video": video}) for model in (original, fresh, reloaded)]
    for name in ("frame_logits", "view_frame_logits", "seq_logits"):
        assert all(torch.equal(getattr(outputs[0], name), getattr(out, name)) for out in outputs[1:]), name


@pytest.mark.parametrize("shape", [(1, 3, NUM_FRAMES), (4, 3, NUM_FRAMES), (2, 2, 9), (1, 4, 3)])
def test_onnx_matches_pytorch_on_other_batch_views_and_frames(exported, shape):
    """Exported at (B, V, T) = (2, 3, 6): batch, views and frames are all dynamic. The outputs are
    the probabilities predict reports: calibrated with the checkpoint's per-class scaling."""
    loaded = load_exported(exported.out)
    model, classes = loaded.model, list(loaded.meta.classes)
    stored = json.loads((exported.out / "decisions.json").read_text())["calibration"]
    assert stored is not None  # the tiny student was trained with a validation split
    calibration = Calibration.from_json(stored)
    video = _video((*shape, 3, *IMAGE_SIZE), seed=sum(shape))
    session = onnxruntime.InferenceSession(str(exported.out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUT_NAMES), {"video": video.numpy()})
    with torch.no_grad():
        out = model({"video": video})
    logits = (out.frame_logits, out.view_frame_logits, out.seq_logits)
    b, v, t = shape
    c = len(model.backbone.frame_head.bias)
    assert [g.shape for g in got] == [(b, t, c), (b, v, t, c), (b, c)]
    for name, z, onnx_probs in zip(OUTPUT_NAMES, logits, got):
        assert np.abs(calibration.probabilities(z, classes).numpy() - onnx_probs).max() <= 1e-4, name
    assert np.abs(logits[0].sigmoid().numpy() - got[0]).max() > 1e-3  # not the uncalibrated sigmoid


def test_readme_snippet_runs(exported, monkeypatch):
    readme = (exported.out / "README.md").read_text()
    code = readme.split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(exported.out)
    scope: dict = {}
    exec(code, scope)
    assert scope["frame_probs"].shape == (1, NUM_FRAMES, len(scope["classes"]))


def test_onnx_signature(exported):
    graph = onnx.load(str(exported.out / "model.onnx")).graph
    (video,) = graph.input
    assert video.name == "video" and video.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = video.type.tensor_type.shape.dim
    assert all(d.dim_param for d in dims[:3]) and [d.dim_value for d in dims[3:]] == [3, *IMAGE_SIZE]
    assert [o.name for o in graph.output] == list(OUTPUT_NAMES)


def test_clear_errors(exported, tmp_path, capsys, monkeypatch):
    def fails(args, message):
        assert main(["export", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err

    teacher = fake_teacher(exported.checkpoint, tmp_path / "teacher.safetensors")
    fails(["--ckpt", str(teacher), "--out", str(tmp_path / "t")], "this is a teacher checkpoint")
    fails(["--ckpt", str(exported.checkpoint), "--out", str(tmp_path / "f"), "--frames", "1"],
          "the traced sample needs T >= 2 and V >= 2")
    fails(["--ckpt", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "n")], "checkpoint not found")
    (tmp_path / "file").write_text("")
    fails(["--ckpt", str(exported.checkpoint), "--out", str(tmp_path / "file")], "exists and is not a directory")
    # a graph that disagrees with PyTorch fails loudly and leaves nothing behind
    monkeypatch.setattr(export_lib.torch.onnx, "export", lambda *args, **kwargs: None)
    monkeypatch.setattr(export_lib, "_check", lambda graph, wrapper, inputs, *names: [
        {"graph": graph.name, "shape": list(inputs[0].shape), "max_abs_diff": {name: 0.5 for name in OUTPUT_NAMES}}])
    with pytest.raises(VicokdError, match=r"onnxruntime differs from PyTorch by 5\.000e-01 > 0\.0001"):
        export_lib.export_student(exported.checkpoint, tmp_path / "bad")
    assert list((tmp_path / "bad").iterdir()) == []


def test_stream_on_the_onnx_parts_matches_pytorch(exported, tmp_path):
    from vicokd.inference.sources import stream_sources
    from vicokd.inference.stream import StreamRunner
    from vicokd.inference.student import load_onnx_student, load_student

    from media_helpers import make_video

    videos = []
    for k in (1, 2, 3):  # 12 grid frames: two windows of T
        videos.append(tmp_path / f"view{k}.mp4")
        make_video(videos[-1], 48, k, audio=False)

    def probabilities(loaded):
        out = io.StringIO()
        StreamRunner(loaded, stream_sources(videos, loaded.meta), out, warn=lambda line: None).run()
        items = [json.loads(line) for line in out.getvalue().splitlines()]
        return np.array([[i["probs"][c] for c in loaded.meta.classes] for i in items if i["type"] == "frame"]), items

    onnx = load_onnx_student(exported.out)
    from_onnx, items = probabilities(onnx)
    from_torch, _ = probabilities(load_student(exported.checkpoint))
    assert from_onnx.shape == (12, len(onnx.meta.classes))
    np.testing.assert_allclose(from_onnx, from_torch, atol=1e-4)
    assert items[0]["threshold_source"] == "calibrated on validation"  # decisions.json travels with the export
    out = tmp_path / "events.jsonl"
    assert main(["stream", "--onnx", str(exported.out), *map(str, videos), "--out", str(out)]) == 0
    assert main(["stream", "--onnx", str(tmp_path), *map(str, videos)]) == 2  # not an export directory


def test_a_damaged_export_folder_is_one_line(exported, tmp_path):
    """An export folder whose files disagree (another config, a class short, a truncated decisions.json)
    is refused in one line naming the file, by the PyTorch and the ONNX loader alike (issue 34)."""
    import shutil

    import yaml

    from vicokd.inference.student import load_onnx_student

    def damaged(name, change):
        folder = tmp_path / name
        shutil.copytree(exported.out, folder)
        change(folder)
        return folder

    def truncate(folder):
        text = (folder / "decisions.json").read_text()
        (folder / "decisions.json").write_text(text[: len(text) // 2])

    folder = damaged("truncated", truncate)
    for load in (load_exported, load_onnx_student):
        with pytest.raises(VicokdError, match=r"decisions\.json: damaged \(not valid JSON"):
            load(folder)

    def class_short(folder):
        classes = json.loads((folder / "classes.json").read_text())
        (folder / "classes.json").write_text(json.dumps(classes[:-1]))

    folder = damaged("short", class_short)
    for load in (load_exported, load_onnx_student):
        with pytest.raises(VicokdError, match=r"decisions\.json: damaged export: calibration\.scale names classes "
                                              r"that classes\.json does not"):
            load(folder)
    (folder / "decisions.json").write_text(json.dumps({"calibration": None}))
    with pytest.raises(VicokdError, match=r"window\.onnx: gives \d+ class outputs, but classes\.json lists"):
        load_onnx_student(folder)

    def other_size(folder):
        config = yaml.safe_load((folder / "config.yaml").read_text())
        config["data"]["image_size"] = [s + 16 for s in config["data"]["image_size"]]
        (folder / "config.yaml").write_text(yaml.safe_dump(config))

    with pytest.raises(VicokdError, match=r"encoder\.onnx: traced for \d+x\d+ images, but config\.yaml says"):
        load_onnx_student(damaged("size", other_size))
