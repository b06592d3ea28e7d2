"""Worker processes that end with their parent: the pools of ``prepare``, ``synth`` and ``pretrain``.

A spawned worker must never outlive the command that started it, whatever ends that command:

- **Ctrl-C** is the parent's. A terminal sends SIGINT to the whole foreground group; a worker
  that got it while still importing torch would print a ``KeyboardInterrupt`` traceback. So the
  workers are started with SIGINT blocked (the signal mask survives ``fork``/``exec``, a Python
  handler would not) and ignore it once they run; the parent stops them.
- **SIGKILL/SIGTERM of the parent**: each worker asks the kernel for SIGKILL when its parent dies
  (``PR_SET_PDEATHSIG``, Linux) and also watches its parent id once a second (everywhere).
- **An exception or a closed generator** in the parent: the workers are terminated before the
  exception goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_CHECK_S = 1.0  # how often a worker checks that its parent is alive (where prctl is missing)


def die_with_parent(parent: int) -> None:
    """End this process when `parent` dies: PR_SET_PDEATHSIG (Linux) and a watch thread (everywhere).

    The kernel sends the signal when the parent *thread* that started this process ends; the
    pools below are started by the caller's thread, which outlives them.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no prctl: the watch thread below still works
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="vicokd-parent-watch", daemon=True).start()


def _worker_init(parent: int) -> None:
    import torch  # the workers import it for their jobs anyway

    torch.set_num_threads(1)  # `workers` processes share the cores
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a pending one is dropped: ignored
    die_with_parent(parent)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread, so that processes started meanwhile inherit it blocked.

    A Ctrl-C that arrives meanwhile is kept pending and raised once the block ends.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop(pool: ProcessPoolExecutor, processes: list[multiprocessing.process.BaseProcess]) -> None:
    """Cancel what has not started and end the workers now."""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


def run_in_workers(function: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], workers: int
                   ) -> Iterator[tuple[int, Future]]:
    """Run ``function(*job)`` for every job; yield ``(job index, finished future)`` as each ends.

    With ``workers <= 1`` (or one job) the jobs run here, one by one, in order. Otherwise in
    ``min(workers, len(jobs))`` spawned processes with one torch thread each, which end with
    this process (see the module docstring). ``future.result()`` returns the job's value or
    raises its exception (``BrokenProcessPool`` if a worker died, e.g. out of memory).

    Close the generator (or let an exception through it) to stop: the remaining jobs are
    cancelled and the workers terminated before it returns.
    """
    if workers <= 1 or len(jobs) <= 1:
        for index, job in enumerate(jobs):
            future: Future = Future()
            try:
                future.set_result(function(*job))
            except Exception as exc:  # handed to the caller through the future, as a pool would
                future.set_exception(exc)
            yield index, future
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                               initializer=_worker_init, initargs=(os.getpid(),))
    processes: list[multiprocessing.process.BaseProcess] = []
    try:
        futures: dict[Future, int] = {}
        with _sigint_blocked():
            for index, job in enumerate(jobs):
                futures[pool.submit(function, *job)] = index
                # CPython's executor keeps its workers in `_processes`; kept here to end them on the way out
                processes.extend(p for p in getattr(pool, "_processes", {}).values() if p not in processes)
        for future in as_completed(futures):
            yield futures[future], future
    except BaseException:
        _stop(pool, processes)
        raise
    pool.shutdown(wait=True)
