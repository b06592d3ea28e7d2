"""Typed YAML configs: defaults, overrides, inheritance and one-line errors."""

import re

import pytest

from vicokd.cli import main
from vicokd.config import Config, config_to_yaml, load_config, parse_overrides
from vicokd.errors import ConfigError


def test_defaults_are_the_paper_recipe():
    config = load_config()
    assert isinstance(config, Config)
    assert (config.optim.lr, config.optim.weight_decay, config.optim.batch_size, config.optim.epochs) == (
        1e-4, 5e-4, 12, 100)
    assert config.data.num_frames == 70 and config.data.fps == 2.5


def test_yaml_base_and_overrides(tmp_path):
    (tmp_path / "a.yaml").write_text("optim:\n  lr: 0.001\n  epochs: 3\ndata:\n  image_size: [64, 96]\n")
    (tmp_path / "b.yaml").write_text("optim:\n  epochs: 5\n")
    (tmp_path / "run.yaml").write_text("base: [a.yaml, b.yaml]\nmodel:\n  dim: 32\n")
    config = load_config(tmp_path / "run.yaml", ["optim.lr=3e-4", "model.visual.freeze=true"])
    assert config.optim.lr == 3e-4 and config.optim.epochs == 5
    assert config.data.image_size == (64, 96) and config.model.dim == 32
    assert config.model.visual.freeze is True
    # round trip through YAML
    (tmp_path / "saved.yaml").write_text(config_to_yaml(config))
    assert load_config(tmp_path / "saved.yaml") == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("optim:\n  lrr: 1\n", r"run.yaml: optim.lrr: unknown key \(did you mean 'lr'\?\)"),
        ("optim:\n  epochs: many\n", r"run.yaml: optim.epochs: expected an integer, got 'many'"),
        ("model:\n  backbone: resnet\n", r"model.backbone: 'resnet' is not one of"),
        ("data:\n  image_size: [1, 2, 3]\n", r"data.image_size: expected 2 values"),
        ("optim: [1]\n", r"optim: expected a mapping"),
        ("optim:\n  lr: [\n", r"invalid YAML \(line \d+, column \d+\)"),
    ],
)
def test_bad_config_one_line(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_bad_override():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["optim.lr"])
    with pytest.raises(ConfigError, match="optim.lr: expected a number"):
        load_config(None, ["optim.lr=fast"])


def test_cli_config_show_and_validate(tmp_path, capsys):
    assert main(["config", "show", "--set", "optim.lr=0.5"]) == 0
    assert "lr: 0.5" in capsys.readouterr().out
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  nmae: x\n")
    assert main(["config", "validate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train.nmae: unknown key (did you mean 'name'?)" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("override", "message"), [
    ("optim.batch_size=0", "optim.batch_size: must be at least 1, got 0"),
    ("optim.epochs=0", "optim.epochs: must be at least 1, got 0"),
    ("optim.lr=0", "optim.lr: must be greater than 0, got 0.0"),
    ("data.num_frames=0", "data.num_frames: must be at least 1, got 0"),
    ("data.val_fraction=1.5", "data.val_fraction: must be in [0, 1), got 1.5"),
    ("data.val_fraction=1", "data.val_fraction: must be in [0, 1), got 1.0"),
    ("data.image_size=[48,0]", "data.image_size: must be at least 1, got (48, 0)"),
    ("data.person_threshold=-0.1", "data.person_threshold: must be in [0, 1], got -0.1"),
    ("distill.tau=0", "distill.tau: must be greater than 0, got 0.0"),
    ("distill.vc_tau=-1", "distill.vc_tau: must be greater than 0, got -1.0"),
    ("distill.weight_vc=-1", "distill.weight_vc: must be at least 0, got -1.0"),
    ("train.grad_share_every=-1", "train.grad_share_every: must be at least 0, got -1"),
])
def test_out_of_range_values_name_the_key(override, message, capsys):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])
    assert main(["config", "validate", "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_edges_of_the_ranges_are_allowed():
    config = load_config(None, ["data.val_fraction=0", "data.person_threshold=1", "distill.weight_vc=0",
                                "train.grad_share_every=0", "optim.grad_clip=null", "optim.epochs=1"])
    assert config.data.val_fraction == 0 and config.optim.grad_clip is None


def test_a_zero_frame_size_is_refused(tmp_path, capsys):
    assert main(["prepare", str(tmp_path), "--out", str(tmp_path / "c"), "--size", "0x0"]) == 2
    assert "--size '0x0': width and height must be at least 1 pixel" in capsys.readouterr().err


def test_a_shipped_preset_is_read_by_name_from_any_directory(tmp_path, monkeypatch):
    """The presets ship inside the package: `demo/teacher.yaml` (or `configs/demo/teacher.yaml`, as the
    README writes it) reads them where no such file exists; a file on disk comes first (issue 33)."""
    from vicokd.config import preset_root, shipped_presets

    monkeypatch.chdir(tmp_path)
    assert "demo/teacher.yaml" in shipped_presets() and "paper/model.yaml" in shipped_presets()
    teacher = load_config("demo/teacher.yaml")
    assert teacher == load_config("configs/demo/teacher.yaml") == load_config(preset_root() / "demo/teacher.yaml")
    assert teacher.model.mode == "teacher" and load_config("paper/student.yaml").model.mode == "student"
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "teacher.yaml").write_text("optim:\n  lr: 0.5\n")
    assert load_config("demo/teacher.yaml").optim.lr == 0.5  # a local file is read, not the preset
    with pytest.raises(ConfigError, match=r"^nope/teacher.yaml: config file not found \(shipped presets: demo/base"):
        load_config("nope/teacher.yaml")


def test_a_config_of_an_earlier_vicokd_reads_with_the_normalisation_moved():
    """data.mean / data.std (where earlier configs, sidecars and run requests kept the frames'
    normalisation) read as model.visual.mean / .std; a value already set there wins (issue 33)."""
    from vicokd.config import upgrade_config_values

    old = load_config(None, ["data.mean=[0.5, 0.5, 0.5]", "data.std=[0.25, 0.25, 0.25]"])
    assert old.model.visual.mean == (0.5, 0.5, 0.5) and old.model.visual.std == (0.25, 0.25, 0.25)
    assert not hasattr(old.data, "mean")
    both = upgrade_config_values({"data": {"mean": [0.1, 0.1, 0.1]}, "model": {"visual": {"mean": [0.2, 0.2, 0.2]}}})
    assert both == {"data": {}, "model": {"visual": {"mean": [0.2, 0.2, 0.2]}}}
    assert upgrade_config_values({"optim": {"lr": 1.0}}) == {"optim": {"lr": 1.0}}
