"""What `vicokd demo` runs: its options (:class:`DemoOptions`, each None = the preset's value or
the ``--fast`` one) and the plans of runs they make, with the demo's fixed choices (homes, parts,
the paper's backbones and rows of each figure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vicokd.backbone_registry import check_backbones
from vicokd.errors import VicokdError
from vicokd.pipeline.grid import (
    GRID_METHODS,
    PAPER_BACKBONES,
    EnvData,
    GridPlan,
    make_plan,
)
from vicokd.pipeline.home import demo_synth_options
from vicokd.pipeline.pretrain import ENCODER_FILE, PretrainOptions
from vicokd.report.tables import TABLE1_EXTRA_METHODS, TABLE1_METHODS
from vicokd.synthetic import SynthOptions
from vicokd.synthetic.scene import LAYOUTS

DEMO_HOMES = ("home1", "home2")  # camera layouts (vicokd.synthetic.scene.LAYOUTS), one environment each
DEMO_METHODS = TABLE1_METHODS  # the paper's rows of Table 1; --beyond-paper adds TABLE1_EXTRA_METHODS
DEMO_PARTS = ("table1", "table3", "table4", "figures", "baselines")  # what --only can choose
DEFAULT_PARTS = DEMO_PARTS[:4]  # baselines: Table 1's rows without a distillation method (inside table1)
BASELINE_METHODS = ("teacher", "student")  # the rows the world is calibrated on (docs/experiments/world.md)
FIG3_BACKBONE = "multiasl"  # the paper's Fig. 3 (test mAP per epoch) and Table 4 (ablations) are on MultiASL
FIG3_METHODS = ("teacher", "student", "logitkd", "cokd", "vicokd")
TABLE4_BACKBONE = FIG3_BACKBONE
DEFAULT_CLIPS = 300  # 89 test clips: seed-to-seed std of one method 0.5-1.0 points (docs/experiments/demo-regime.md)
DEFAULT_SEEDS = 3
FAST_CLIPS = 16  # --fast: a smoke run through every step; its numbers mean little
FAST_EPOCHS = 2
FAST_SEEDS = 2
FAST_PRETRAIN = {"clips": 6, "epochs": 1}
# --finetune: the top block of the demo's 2-block ViT trains in every run, from the tokens below it
# (the class-token block makes such a run cost 2-3x a frozen one, not 15x; docs/experiments/finetune.md)
FINETUNE_BLOCKS = 1


AUDIO_CONDITIONS = ("av", "audio-missing", "visual")  # what the teacher is evaluated under (vicokd evaluate)


@dataclass(frozen=True)
class DemoOptions:
    """What `vicokd demo` makes; None = the preset's value (or the --fast one)."""

    out: Path = Path("demo")
    clips: int | None = None
    epochs: int | None = None
    seeds: int | None = None  # training seeds 0 .. seeds-1
    backbone: str = "multitsf"  # the backbone of the report's detailed sections
    backbones: tuple[str, ...] = PAPER_BACKBONES  # Tables 1-3
    homes: tuple[str, ...] = DEMO_HOMES
    only: tuple[str, ...] = DEFAULT_PARTS
    fast: bool = False
    finetune: bool = False  # the paper's regime: every run trains the top block(s) of the visual encoder
    beyond_paper: bool = False  # Table 1 also runs the methods beyond the paper (ViCoKD-ML)
    views: int = 5
    data_seed: int = 0  # generator seed of the demo homes (the same scripts in both layouts)
    workers: int = 2  # processes rendering (synth), decoding (prepare) and training (runs)
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for home in self.homes:
            if home not in LAYOUTS:
                raise VicokdError(f"--homes: unknown home {home!r} (known: {', '.join(LAYOUTS)})")
        for part in self.only:
            if part not in DEMO_PARTS:
                raise VicokdError(f"--only: unknown part {part!r} (choose from {', '.join(DEMO_PARTS)})")
        check_backbones((*self.backbones, self.backbone))
        if not self.homes or not self.only or not self.backbones:
            raise VicokdError("--homes, --only and --backbones each need at least one name")

    @property
    def num_clips(self) -> int:
        return self.clips or (FAST_CLIPS if self.fast else DEFAULT_CLIPS)

    @property
    def num_epochs(self) -> int | None:
        return self.epochs or (FAST_EPOCHS if self.fast else None)

    @property
    def num_seeds(self) -> int:
        return self.seeds or (FAST_SEEDS if self.fast else DEFAULT_SEEDS)

    @property
    def detail_backbone(self) -> str:
        """The backbone of the detailed sections: ``backbone`` when Table 1 runs it, else the first."""
        return self.backbone if self.backbone in self.backbones else self.backbones[0]

    @property
    def encoder_path(self) -> Path:
        return self.out / "pretrain" / ENCODER_FILE

    @property
    def audio_encoder_path(self) -> Path:
        return self.out / "pretrain-audio" / ENCODER_FILE

    @property
    def trainable_blocks(self) -> int:
        """``model.visual.trainable_blocks`` of the runs: as set with ``--set``, else
        :data:`FINETUNE_BLOCKS` with ``--finetune``, else 0 (frozen encoders); -1 = every block."""
        chosen = self.pretrain_options().load_config().model.visual.trainable_blocks
        return chosen if chosen is not None else (FINETUNE_BLOCKS if self.finetune else 0)

    @property
    def encoders_change(self) -> bool:
        """Whether the runs train (part of) the visual encoder, so each model looks its own way."""
        return self.trainable_blocks != 0

    def features_dir(self, home: str) -> Path | None:
        """What the runs of `home` train from: frozen features, the tokens below the trained blocks,
        or None (pixels: every block trains)."""
        blocks = self.trainable_blocks
        if blocks == -1:
            return None
        return self.out / home / ("features" if blocks == 0 else f"features-top{blocks}")

    def envs(self) -> list[EnvData]:
        """One environment per home: ``OUT/<home>/data``, ``cache`` and its :meth:`features_dir`."""
        return [EnvData(home, self.out / home / "data", self.out / home / "cache", self.features_dir(home))
                for home in self.homes]

    def synth_options(self, home: str = "home1") -> SynthOptions:
        return demo_synth_options(self.num_clips, self.views, self.data_seed, layout=home)

    def pretrain_options(self, modality: str = "visual") -> PretrainOptions:
        """Options of the visual or audio pretraining; both use the home of ``OUT/pretrain``."""
        sizes = FAST_PRETRAIN if self.fast else {}
        out = self.out / ("pretrain" if modality == "visual" else "pretrain-audio")
        return PretrainOptions(out=out, home=self.out / "pretrain" / "home", data_seed=self.data_seed,
                               views=self.views, modality=modality, workers=self.workers, overrides=self.overrides,
                               **sizes)  # type: ignore[arg-type]

    def _grid(self, grid: str, backbones: Sequence[str], methods: Sequence[str], test_curve: bool = False
              ) -> GridPlan:
        overrides = [f"optim.epochs={self.num_epochs}"] if self.num_epochs else []
        overrides.append(f"model.visual.pretrained={self.encoder_path}")
        overrides.append(f"model.audio.pretrained={self.audio_encoder_path}")
        if self.finetune:  # as set with --set if it was (self.overrides come last)
            overrides.append(f"model.visual.trainable_blocks={self.trainable_blocks}")
        if test_curve:  # Fig. 3: test mAP per epoch (logged only, the weights are the same, tested)
            overrides.append("train.test_curve=true")
        return make_plan(grid, self.envs(), seeds=self.num_seeds, preset="demo", out=self.out,
                         backbones=list(dict.fromkeys(backbones)), methods=methods,
                         overrides=[*overrides, *self.overrides], workers=self.workers,
                         parallel_runs=self.workers)

    def plan(self) -> GridPlan:
        """Table 1: the teacher and the paper's student methods (with ``--beyond-paper`` also ViCoKD-ML)
        under V_F and V_S on every backbone and home; with ``--only baselines`` (and no table1) its rows
        without a distillation method, the teacher and the plain student (what the world is calibrated
        on); with neither, the detailed backbone's teachers only, for the other tables."""
        if "table1" in self.only:
            methods: tuple[str, ...] = (*DEMO_METHODS, *(TABLE1_EXTRA_METHODS if self.beyond_paper else ()))
        else:
            methods = BASELINE_METHODS if "baselines" in self.only else ("teacher",)
        whole = "table1" in self.only or "baselines" in self.only
        return self._grid("table1", self.backbones if whole else [self.detail_backbone], methods)

    def table_plans(self) -> list[GridPlan]:
        """The other parts chosen with ``--only``: Table 2 (ViCoKD's mean ± std, from Table 1's runs),
        Table 3 (the teacher with view consistency) on the backbones, Table 4 (the ablations) and the
        Fig. 3 runs on MultiASL; teachers are shared with Table 1."""
        plans = []
        if "table1" in self.only:
            plans.append(self._grid("table2", self.backbones, GRID_METHODS["table2"]))
        if "table3" in self.only:
            plans.append(self._grid("table3", self.backbones, GRID_METHODS["table3"]))
        if "table4" in self.only:
            plans.append(self._grid("table4", [TABLE4_BACKBONE], GRID_METHODS["table4"]))
        return plans

    def figure_plan(self) -> GridPlan | None:
        """The runs of Fig. 3 (MultiASL: teacher, student, LogitKD, CoKD, ViCoKD) when ``--only`` has
        figures; they are Table 1's cells of MultiASL, so with table1 they are run once. Only they
        evaluate the test split after every epoch (``train.test_curve``: 89 more clips an epoch)."""
        return self._grid("table1", [FIG3_BACKBONE], FIG3_METHODS, test_curve=True) if "figures" in self.only \
            else None

    def all_plans(self) -> list[GridPlan]:
        """Every plan whose cells this demo runs: Fig. 3's first (a cell two plans share runs with
        the first plan's config, here its test curve), then Table 1 and the others."""
        figure = self.figure_plan()
        return [*([figure] if figure else []), self.plan(), *self.table_plans()]
