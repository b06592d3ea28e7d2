"""One process per run folder: an advisory lock that the kernel drops when its holder ends.

Two ``vicokd train`` runs with the same ``train.name`` would interleave their config,
checkpoints and metrics. :func:`run_folder_lock` takes an exclusive ``flock`` on
``<run>/.lock`` for the whole run and writes its holder (process id, host, command) into it;
a second process fails at once with one line naming the folder and the holder. The kernel
releases the lock when the holder exits or is killed, so a stale ``.lock`` file never blocks
``--resume``. Under ``torchrun`` only rank 0 takes it (the ranks of one run share the folder).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only

from vicokd.errors import VicokdError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, runs are not guarded
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "run_folder_lock"]

LOCK_NAME = ".lock"


def _holder() -> str:
    command = " ".join(Path(sys.argv[0]).name if i == 0 else arg for i, arg in enumerate(sys.argv))
    return f"process {os.getpid()} on {socket.gethostname()} ({command[:200]})"


@contextlib.contextmanager
def run_folder_lock(directory: str | Path) -> Iterator[None]:
    """Hold ``directory/.lock`` (created with the folder) until the block ends; refuse if taken."""
    directory = Path(directory)
    if fcntl is None or rank_zero_only.rank != 0:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8").strip() or "another process"
            raise VicokdError(f"{directory}: in use by {holder}; wait for it to end or choose another "
                              "train.name") from None
        handle.seek(0)
        handle.truncate()
        handle.write(_holder() + "\n")
        handle.flush()
        yield  # closing the file releases the lock; the file stays (removing it would race a waiter)
