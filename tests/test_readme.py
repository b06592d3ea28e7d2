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
    (tmp_path / "configs").symlink_to(ROOT / "configs")
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


def test_readme_layout_names_every_package_and_module():
    """The Layout section lists every package (``name/``) and every module of src/vicokd, so it
    matches the tree; private helpers (``_name.py``) are left out."""
    text = (ROOT / "README.md").read_text()
    start = text.index("## Layout")
    block = text[text.index("```", start) + 3:]
    block = block[: block.index("```")]
    words = set(re.findall(r"[A-Za-z_][\w]*(?:\.py|/)?", block))
    src = ROOT / "src" / "vicokd"
    missing = []
    for path in sorted(src.rglob("*.py")):
        relative = path.relative_to(src)
        if path.name == "__init__.py":
            if relative.parent.parts and f"{relative.parent.name}/" not in words:
                missing.append(f"{relative.parent}/")
            continue
        if path.name in ("__main__.py",) or (path.name.startswith("_") and path.stem != "_blocks"):
            continue
        name = path.name if len(relative.parts) == 1 else path.stem
        if name not in words:
            missing.append(str(relative))
    assert not missing, f"README Layout does not name: {', '.join(missing)}"
