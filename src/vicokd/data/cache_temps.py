"""Unfinished clip folders of the cache: named ``.<key>.<pid>.<random>`` while a process writes
them, removed by the next `prepare` once that process is gone (:func:`remove_stale_temps`)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["TEMP_DIR", "remove_stale_temps", "temp_dir"]

# temporary clip folders: ".<key>.<pid of the process writing it>.<random>"
TEMP_DIR = re.compile(r"^\.(?P<key>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+$")


def temp_dir(final: Path) -> Path:
    """A new unfinished folder beside `final`, named for this process."""
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{os.getpid()}."))


def _alive(pid: int, since: float) -> bool:
    """Whether process `pid` runs and started before `since` (epoch seconds; later: the pid was reused).

    A zombie (ended, not yet reaped: killed workers of a killed parent in a container whose
    first process does not reap) counts as ended. Start times come from /proc where there is one.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return True
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return fields[0] != "Z" and started <= since + 1.0


def remove_stale_temps(cache_dir: str | Path) -> list[Path]:
    """Remove unfinished clip folders left by processes that are gone (a killed `prepare`); returns them."""
    removed = []
    clips = Path(cache_dir) / "clips"
    if not clips.is_dir():
        return removed
    for path in clips.iterdir():
        match = TEMP_DIR.match(path.name)
        if match and path.is_dir() and not _alive(int(match["pid"]), path.stat().st_mtime):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
