"""A fourth backbone, defined here, registered with one line: it trains, evaluates and exports."""

import pytest
import torch
from torch import nn

from run_helpers import CONFIGS, set_args
from vicokd.backbone_registry import BackboneSpec, register_backbone, unregister_backbone
from vicokd.cli import main
from vicokd.errors import ConfigError
from vicokd.inference.student import load_exported
from vicokd.models.backbones import BackboneOutput, build_backbone
from vicokd.report.tables import backbone_label


class ToyBackbone(nn.Module):
    """F^AV (B, V, T, D) → one ReLU layer per frame → per-view frame logits; views and time averaged."""

    head_modules = ("head", "seq_head")

    def __init__(self, dim: int, num_classes: int, section: object, *, sequence_head: bool = True) -> None:
        super().__init__()
        assert section is None  # it declares no config section of its own
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, num_classes)
        self.seq_head = nn.Linear(dim, num_classes) if sequence_head else None

    def forward(self, av: torch.Tensor) -> BackboneOutput:
        fusion = torch.relu(self.mix(av))
        view_frame_logits = self.head(fusion)
        seq_logits = self.seq_head(fusion.mean((1, 2))) if self.seq_head is not None else None
        return BackboneOutput(fusion, view_frame_logits, view_frame_logits.mean(1), seq_logits)


@pytest.fixture
def toy():
    register_backbone(BackboneSpec("toy", ToyBackbone, "Toy"))  # the one line a new backbone needs
    yield
    unregister_backbone("toy")


def test_a_registered_backbone_trains_evaluates_and_exports(toy, tiny_workspace, tmp_path, capsys):
    base, overrides = tiny_workspace
    sets = set_args([*overrides, "optim.epochs=1", "model.backbone=toy", "distill.method=student",
                     "train.name=toy-student"])
    assert main(["train", "--config", str(CONFIGS / "student.yaml"), *sets]) == 0
    checkpoint = base / "runs" / "toy-student" / "checkpoints" / "best.safetensors"
    assert "toy-student: student best epoch 0" in capsys.readouterr().out
    assert main(["evaluate", "--ckpt", str(checkpoint)]) == 0
    assert main(["export", "--ckpt", str(checkpoint), "--out", str(tmp_path / "export"), "--views", "3"]) == 0
    loaded = load_exported(tmp_path / "export")
    model, config = loaded.model, loaded.meta.config
    assert config.model.backbone == "toy" and isinstance(model.backbone, ToyBackbone)
    assert backbone_label("toy") == "Toy"


def test_an_unknown_backbone_is_one_line():
    from vicokd.config import load_config, replace

    with pytest.raises(ConfigError, match=r"model.backbone: 'toy' is not one of multitrans, multiasl, multitsf"):
        load_config(None, ["model.backbone=toy"])
    with pytest.raises(ConfigError, match=r"model.backbone: 'toy' is not a registered backbone \(multitrans, "):
        build_backbone(replace(load_config(None).model, backbone="toy"), 4)


def test_a_config_accepts_exactly_the_registered_backbones():
    """A config is checked against the one registry (issue 33: config kept a copy of the names): the paper's
    three are registered by name without importing the models, and a registered backbone is accepted."""
    import subprocess
    import sys

    from vicokd.config import load_config

    code = ("import sys; from vicokd.config import load_config; load_config(None, ['model.backbone=multiasl']); "
            "print(any(name.startswith('vicokd.models') for name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"  # checked without importing the models
    register_backbone(BackboneSpec("toy-check", ToyBackbone, "Toy"))
    try:
        assert load_config(None, ["model.backbone=toy-check"]).model.backbone == "toy-check"
    finally:
        unregister_backbone("toy-check")
    with pytest.raises(ConfigError, match=r"model.backbone: 'toy-check' is not one of"):
        load_config(None, ["model.backbone=toy-check"])
