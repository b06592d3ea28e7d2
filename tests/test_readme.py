"""Every `vicokd` (and `torchrun ... -m vicokd`) command in the README runs as written.

Commands are taken from the README's fenced code blocks, in order. Those that need assets a
test machine does not have (MultiSensor-Home, YOLO weights) must fail with one clear line and
exit code 2; every other command must succeed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from vicokd.cli import build_parser

ROOT = Path(__file__).parent.parent
EXTERNAL = ("data/home1", "weights/yolov10b.pt")  # assets users bring themselves


def readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().replace("\\\n", " ").splitlines()
    commands, fenced = [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
            continue
        line = line.split("  #")[0].strip()
        if fenced and re.match(r"^(vicokd|torchrun)\s", line):
            commands.append(line)
    return commands


def vicokd_args(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "torchrun":
        return words[words.index("vicokd") + 1:]
    return words[1:]


def test_readme_has_the_pipeline_commands():
    names = {vicokd_args(c)[0] for c in readme_commands()}
    assert {"synth", "prepare", "detect", "train", "distill", "evaluate", "predict", "export"} <= names


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command):
    """Fast drift check: every README command is accepted by the argument parser."""
    build_parser().parse_args(vicokd_args(command))


@pytest.mark.slow
def test_readme_commands_run_in_order(tmp_path):
    # no configs/ in tmp_path: `--config configs/demo/...` reads the presets shipped inside the package
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for command in readme_commands():
        words = shlex.split(command)
        if words[0] == "torchrun":
            argv = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
        else:
            argv = [sys.executable, "-m", "vicokd", *words[1:]]
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
        if any(asset in command for asset in EXTERNAL):
            assert done.returncode == 2, (command, done.stdout[-1000:], done.stderr[-1000:])
            assert done.stderr.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in done.stderr
        else:
            assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-3000:])


def readme_blocks(section: str) -> list[str]:
    """The fenced blocks of the README section headed `section`."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```\n(.*?)```", text[start: None if end < 0 else end], flags=re.S)


def layout_entries(block: str) -> tuple[dict[str, list[str]], list[str]]:
    """The Layout block as {package: listed names} (package "" = src/vicokd's own modules; "models/backbones"
    a nested one) and the top-level folders it names. An entry starts at column 2 (under src/vicokd/) or
    0 (a top-level folder); its names are the words before the first ": ", or on its first line only."""
    packages: dict[str, list[str]] = {}
    folders: list[str] = []
    current: str | None = None
    listing = True
    for line in block.splitlines():
        if not line.strip():
            continue
        if line.strip() == "src/vicokd/":
            folders.append("src")
            continue
        indent = len(line) - len(line.lstrip())
        words = line.split()
        if indent == 0:
            folders.append(words[0].rstrip("/"))
            current = None
            continue
        if indent == 2:
            listing = True
            first = words[0]
            current = first.rstrip("/") if first.endswith("/") else ""
            names = words[1:] if first.endswith("/") else words
            packages.setdefault(current, [])
        else:
            names = words
        if current is None or not listing:
            continue
        for word in names:
            done = word.endswith(":")
            packages[current].append(word.rstrip(":"))
            if done:
                listing = False
                break
    return packages, folders


def check_layout(block: str, src: Path, tracked: set[str]) -> list[str]:
    """What the Layout `block` gets wrong about the package at `src` and the top-level `tracked` folders."""
    packages, folders = layout_entries(block)
    wrong = []
    actual_packages = {str(p.parent.relative_to(src)) for p in src.rglob("__init__.py") if p.parent != src}
    data_folders = {str(p.relative_to(src)) for p in src.iterdir() if p.is_dir() and not (p / "__init__.py").exists()
                    and p.name != "__pycache__"}
    for package in sorted(actual_packages | data_folders):
        if package not in packages:
            wrong.append(f"{package}/ is not listed")
    for package, names in packages.items():
        folder = src / package
        if not folder.is_dir():
            wrong.append(f"{package}/ is listed but does not exist")
            continue
        if package in data_folders:
            present = {p.name for p in folder.iterdir() if p.is_dir()}
            listed = {name.rstrip("/") for name in names}
        else:
            present = {p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "__main__")}
            listed = {name.removesuffix(".py") for name in names if not name.endswith("/")}
        for name in sorted(listed - present):
            wrong.append(f"{package or 'src/vicokd'}: {name} is listed but is not a module there")
        for name in sorted(present - listed):
            wrong.append(f"{package or 'src/vicokd'}: {name} is not listed")
    for folder in sorted(tracked - set(folders)):
        wrong.append(f"top-level {folder}/ is not listed")
    for folder in sorted(set(folders) - tracked):
        wrong.append(f"top-level {folder}/ is listed but is not in the tree")
    return wrong


def tracked_folders() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {name.split("/")[0] for name in files if "/" in name and not name.startswith(".")} | {
        name for name in files if (ROOT / name).is_symlink() and (ROOT / name).is_dir()}


def test_readme_layout_matches_the_tree():
    (block, _) = readme_blocks("Layout")
    assert check_layout(block, ROOT / "src" / "vicokd", tracked_folders()) == []


def test_the_layout_check_catches_each_kind_of_drift():
    """The check above can fail: a module under the wrong package, a listed module that does not exist,
    a top-level folder left out (each made by editing the README's own block)."""
    (block, _) = readme_blocks("Layout")
    src, tracked = ROOT / "src" / "vicokd", tracked_folders()
    moved = block.replace("  data/         annotations sampling", "  data/         annotations predict sampling")
    assert "data: predict is listed but is not a module there" in check_layout(moved, src, tracked)
    gone = block.replace("decisions student predict", "decisions student onnx_parts predict")
    assert check_layout(gone, src, tracked) == ["inference: onnx_parts is listed but is not a module there"]
    dropped = block.replace("experiments/    the scripts", "experimental/   the scripts")
    assert "top-level experiments/ is not listed" in check_layout(dropped, src, tracked)
    unlisted = block.replace(" regime curves", " curves")
    assert check_layout(unlisted, src, tracked) == ["report: regime is not listed"]


def test_readme_layer_table_is_the_layer_test_s():
    from test_layers import ALLOWED, BASE

    (_, block) = readme_blocks("Layout")
    table = {}
    for line in block.strip().splitlines():
        layer, *imports = line.split()
        table[layer] = set() if imports == ["-"] else set(imports)
    assert table == {layer: allowed - BASE for layer, allowed in ALLOWED.items() if layer not in BASE}
