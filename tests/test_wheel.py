"""The package runs outside its checkout (issue 33): a wheel installed into a fresh virtual environment
runs `vicokd demo --fast` and `vicokd reproduce --dry-run` from a directory that is not the checkout,
reading the presets shipped inside the package."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel installed (no network: the wheel is built here, and the dependencies
    are this interpreter's, reached through a .pth line, which does not run this venv's own .pth files,
    so the checkout's editable install is not on the path)."""
    base = tmp_path_factory.mktemp("wheel")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HF_HUB_OFFLINE"] = "1"
    run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "-w", str(base / "dist")], base, env)
    (wheel,) = (base / "dist").glob("vicokd-*.whl")
    venv.create(base / "venv", with_pip=True)
    python = base / "venv" / "bin" / "python"
    run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)], base, env)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(run([str(python), "-c", purelib], base, env).strip())
    (site / "vicokd_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = base / "elsewhere"
    work.mkdir()
    return base / "venv" / "bin", work, env


@pytest.mark.slow
def test_the_wheel_runs_the_demo_and_reproduce_outside_the_checkout(installed):
    bin_dir, work, env = installed
    where = run([str(bin_dir / "python"), "-c", "import vicokd; print(vicokd.__file__)"], work, env)
    assert Path(where.strip()).is_relative_to(bin_dir.parent) and not Path(where.strip()).is_relative_to(ROOT)
    shown = run([str(bin_dir / "vicokd"), "config", "show", "--config", "demo/teacher.yaml"], work, env)
    assert "mode: teacher" in shown  # a shipped preset by name, from a directory without configs/
    run([str(bin_dir / "vicokd"), "demo", "--out", "demo", "--fast", "--clips", "8", "--epochs", "1", "--seeds", "1",
         "--backbones", "multitsf", "--homes", "home1", "--only", "baselines", "--quiet",
         "--set", "data.num_frames=4", "--set", "data.val_fraction=0.3", "--set", "optim.batch_size=2"], work, env)
    report = (work / "demo" / "report.md").read_text()
    assert "## Is the world the paper's?" in report and (work / "demo" / "runs").is_dir()
    plan = run([str(bin_dir / "vicokd"), "reproduce", "--grid", "table1", "--data", f"home1={work / 'demo' / 'home1'}",
                "--out", "reproduce", "--dry-run"], work, env)
    assert "runs; tables" in plan and "[todo]" in plan
