"""Shared machinery of the benchmarks: the machine, timing, peak memory in a fresh process, results.

Peak resident memory is read in a process started for the measurement alone (``spawn``), from
the kernel's high-water mark of that process's address space (``VmHWM`` in
``/proc/self/status``). ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used: Linux carries the
parent's peak across ``exec``, so a spawned child would report at least its parent's peak.

Timings record wall time and the process's CPU time (user + system): on a shared machine the
ratio CPU / wall shows how much of the cores the measurement really had.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import platform
import resource
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from vicokd.errors import VicokdError

GIB = 2**30
OLD_FBANK_ROWS = 1024  # the old code padded every 0.4 s fbank chunk (~38 rows) to this many rows
SizeT = TypeVar("SizeT")


# ----------------------------------------------------------------------------- the machine


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _meminfo_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, memory, library versions, torch threads, load average and the date (UTC)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "memory_gib": round((_meminfo_bytes("MemTotal") or 0) / GIB, 1),
        "memory_available_gib": round((_meminfo_bytes("MemAvailable") or 0) / GIB, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Wall and process CPU seconds of a measured block (filled when the block ends)."""

    wall: float = 0.0
    cpu: float = 0.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def stopwatch() -> Iterator[Timing]:
    """``with stopwatch() as t: ...`` → ``t.wall``, ``t.cpu`` seconds."""
    timing = Timing()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    try:
        yield timing
    finally:
        timing.wall = time.perf_counter() - wall
        timing.cpu = _cpu_seconds() - cpu


def use_threads(threads: int | None) -> int:
    """Set torch's thread count when `threads` is given; the count this process then uses."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def matmul_rate(size: int = 2048, seconds: float = 1.0) -> tuple[float, float]:
    """fp32 GFLOP/s of ``size``×``size`` matrix products with the current torch thread count.

    One product warms up; then products run for at least `seconds`. Returns (GFLOP per wall
    second, GFLOP per CPU second of this process): the first sees the same sharing of the
    cores as the measurement around it, the second depends on it less.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    count = 0
    with stopwatch() as timing:
        deadline = time.perf_counter() + seconds
        while count < 2 or time.perf_counter() < deadline:
            torch.mm(a, b, out=out)
            count += 1
    flops = 2.0 * size**3 * count / 1e9
    return flops / timing.wall, flops / max(timing.cpu, 1e-9)


def time_against_matmul(fn: Callable[[], object], repeats: int = 1) -> dict[str, float]:
    """Time `repeats` calls of `fn` between two matmul-rate measurements (same process, same threads).

    Returns wall and CPU seconds per call and the mean matmul rates (per wall and per CPU second).
    """
    wall_before, cpu_before = matmul_rate()
    with stopwatch() as timing:
        for _ in range(repeats):
            fn()
    wall_after, cpu_after = matmul_rate()
    return {"wall_s": timing.wall / repeats, "cpu_s": timing.cpu / repeats,
            "matmul_gflops": (wall_before + wall_after) / 2, "matmul_gflops_cpu": (cpu_before + cpu_after) / 2,
            "matmul_gflops_before": wall_before, "matmul_gflops_after": wall_after}


def against_floor(flops: float, measured: dict[str, float]) -> dict[str, float]:
    """How far a measurement of :func:`time_against_matmul` is from its FLOP floor.

    ``floor_s`` = FLOPs ÷ matmul rate; ``vs_floor`` = wall / floor; ``vs_floor_cpu`` = CPU
    seconds / (FLOPs ÷ matmul GFLOP per CPU second), the same ratio counted in CPU time, less
    sensitive to other processes on the machine.
    """
    floor = flops / (measured["matmul_gflops"] * 1e9)
    return {"floor_s": floor, "vs_floor": measured["wall_s"] / floor,
            "vs_floor_cpu": measured["cpu_s"] / (flops / (measured["matmul_gflops_cpu"] * 1e9)),
            "achieved_gflops": flops / measured["wall_s"] / 1e9, "cpu_share": measured["cpu_s"] / measured["wall_s"]}


# ----------------------------------------------------------------------------- memory


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise VicokdError(f"/proc/self/status has no {key} (peak memory needs Linux)")


def current_rss() -> int:
    """Resident memory of this process now, bytes."""
    return _status_bytes("VmRSS")


def peak_rss() -> int:
    """Peak resident memory of this process's address space so far, bytes (``VmHWM``)."""
    return _status_bytes("VmHWM")


def _isolated_call(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...], threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    result = fn(*args)
    result["peak_rss_bytes"] = peak_rss()
    return result


def run_isolated(fn: Callable[..., dict[str, Any]], *args: Any, threads: int) -> dict[str, Any]:
    """``fn(*args)`` in a fresh spawned process with `threads` torch threads.

    Returns fn's result (a dict) with ``peak_rss_bytes``, the peak resident memory of that
    process. `fn` must be importable (module level). A child killed by the system (out of
    memory) is reported as a :class:`VicokdError`.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        try:
            return pool.submit(_isolated_call, fn, args, threads).result()
        except BrokenProcessPool:
            raise VicokdError(f"benchmark process for {fn.__name__}{args!r} died (out of memory?)") from None


def linear_extrapolation(xs: list[float], ys: list[float], x: float) -> tuple[float, float, float]:
    """Least-squares line through (xs, ys) evaluated at `x`: (value, slope, largest |residual|)."""
    if len(xs) < 2 or len(set(xs)) < 2:
        raise ValueError("linear extrapolation needs two distinct points")
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    residual = max(abs(slope * a + intercept - b) for a, b in zip(xs, ys))
    return float(slope * x + intercept), float(slope), float(residual)


# ----------------------------------------------------------------------------- results


@dataclass
class Target:
    """A goal of the issue, the measured value and whether it is met."""

    goal: str
    measured: str
    met: bool


@dataclass
class BenchResult:
    """What a benchmark measured: settings, table rows, targets and notes (JSON-ready)."""

    name: str
    size: str
    settings: dict[str, Any]
    columns: list[tuple[str, str]]  # (row key, header)
    rows: list[dict[str, Any]]
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=machine_info)

    def table(self) -> str:
        """The rows as an aligned text table, then targets and notes."""
        headers = [header for _, header in self.columns]
        cells = [[_cell(row.get(key)) for key, _ in self.columns] for row in self.rows]
        widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
        lines = [f"== {self.name} ({self.size}) on {self.machine['cpu']}, {self.machine['cores']} cores, "
                 f"torch {self.machine['torch']}, {self.machine['torch_threads']} threads, "
                 f"load {self.machine['load_average'][0]}",
                 "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
        for row in cells:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        for target in self.targets:
            lines.append(f"target {'MET' if target.met else 'MISSED'}: {target.goal}: {target.measured}")
        if self.size != "full":
            lines.append(f"note: {self.size} size: fewer frames, so fixed per-call costs weigh more; the targets "
                         "are judged at --size full (benchmarks/README.md)")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def markdown(self) -> str:
        """The rows as a Markdown table, then the machine, targets and notes as a list."""
        m = self.machine
        lines = ["| " + " | ".join(header for _, header in self.columns) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns))) + "|"]
        lines += ["| " + " | ".join(_cell(row.get(key)) for key, _ in self.columns) + " |" for row in self.rows]
        lines += ["", f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']} "
                  f"({m['torch_threads']} threads), {m['date']}, load average {m['load_average'][0]} at the start, "
                  f"{m.get('load_average_end', ['?'])[0]} at the end"]
        lines += [f"- target **{'met' if t.met else 'missed'}**: {t.goal}: {t.measured}" for t in self.targets]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["columns"] = [list(c) for c in self.columns]
        return data

    def write(self, out_dir: str | Path) -> Path:
        """``<out_dir>/<name>.json`` and ``.md`` for the full size (``<name>-<size>.*`` otherwise).

        Returns the JSON path.
        """
        from vicokd.io import write_json_atomic, write_text

        suffix = "" if self.size == "full" else f"-{self.size}"
        path = Path(out_dir) / f"{self.name}{suffix}.json"
        self.machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        write_json_atomic(path, self.to_json())
        write_text(path.with_suffix(".md"), self.markdown())
        return path

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchResult:
        """The inverse of :meth:`to_json` (e.g. to render a stored result again)."""
        return cls(**{**data, "columns": [tuple(c) for c in data["columns"]],
                      "targets": [Target(**t) for t in data["targets"]]})


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def resolve_size(size: str | SizeT, sizes: dict[str, SizeT]) -> SizeT:
    """A named size ("small", "full") from `sizes`, or a custom size object as given."""
    if not isinstance(size, str):
        return size
    if size not in sizes:
        raise VicokdError(f"--size {size!r}: expected one of {', '.join(sizes)}")
    return sizes[size]
