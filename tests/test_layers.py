"""Layers import downward only (docs/reference/DESIGN.md §3): every `vicokd` import in src/ is checked.

The allowed imports of each package are listed here once; a new upward import fails this test
with the file, the line and the layer it reached.
"""

import ast
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "vicokd"
BASE = {"backbone_registry", "batch", "config", "errors", "io", "memo"}  # used by every layer
SCORING = {"metrics", "calibration"}
ALLOWED: dict[str, set[str]] = {
    "batch": set(), "errors": set(), "io": set(), "memo": set(), "backbone_registry": {"errors"},
    "config": {"errors", "backbone_registry"},
    "metrics": BASE, "calibration": BASE | {"metrics"},
    "data": BASE, "detect": BASE | {"data"}, "synthetic": BASE | {"data"},
    "losses": BASE, "models": BASE,
    "methods": BASE | {"data", "losses", "models", "metrics"},
    "inference": BASE | SCORING | {"data", "models"},
    "training": BASE | SCORING | {"data", "models", "losses", "methods", "inference"},
    "report": BASE | SCORING | {"methods", "models"},
    "pipeline": BASE | SCORING | {"data", "detect", "synthetic", "models", "losses", "methods", "training",
                                  "report"},
    "bench": BASE | SCORING | {"data", "detect", "synthetic", "models", "losses", "methods", "inference",
                               "training", "report", "pipeline"},
}


def _layer(path: Path) -> str:
    part = path.relative_to(SRC).parts[0]
    return part.removesuffix(".py")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "vicokd" and len(parts) > 1:
                yield node.lineno, parts[1]
                break


def test_every_layer_imports_downward_only():
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        layer = _layer(path)
        if layer in ("cli", "__init__", "__main__"):
            continue
        assert layer in ALLOWED, f"{path}: layer {layer!r} is not in ALLOWED; place it in the layer order"
        for line, target in _imports(path):
            if target != layer and target not in ALLOWED[layer]:
                upward.append(f"{path.relative_to(SRC)}:{line} ({layer}) imports vicokd.{target}")
    assert not upward, "\n".join(upward)
