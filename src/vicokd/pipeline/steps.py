"""Numbered, timed steps that survive re-runs, and training runs that skip or resume.

:class:`StepLog` prints a step list as it goes (``[3/12] prepare synthetic-home ... 41.2 s``)
and keeps every step's outcome in ``steps.json`` (atomically), so a re-run reports the time a
reused step took when it actually ran. :func:`run_training` is the one rule for a training run
in a grid: a run whose ``summary.json`` exists is reused, a run with a last checkpoint but no
summary resumes, anything else starts; a run directory made from another request is refused.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vicokd.config import Config, config_to_dict, upgrade_config_values
from vicokd.errors import VicokdError
from vicokd.io import write_json_atomic
from vicokd.training.run import fit
from vicokd.training.trainer import run_dir

REQUEST_FILE = "request.json"  # the config a pipeline asked for, beside the run's own files
# Keys that may differ between a request and an existing run without changing its result.
_LOCATION_KEYS = frozenset({"data.root", "data.cache", "data.person_scores", "data.num_workers", "train.out_dir",
                            "train.accelerator", "train.devices", "train.num_nodes", "train.log_every_n_steps",
                            "train.grad_share_every", "train.test_curve"})  # measuring leaves the weights as they are


@dataclass
class Step:
    """A running step: set ``status`` to "reused"/"resumed" and ``detail`` before it ends.

    A reused step may set ``seconds`` to the time it took when it ran (e.g. from a run summary);
    otherwise the time recorded in ``steps.json`` is used.
    """

    index: int
    name: str
    status: str = "done"
    detail: str = ""
    seconds: float | None = None


class StepLog:
    """Prints numbered steps with timings and records them in `path` (``steps.json``)."""

    def __init__(self, path: str | Path, total: int, echo: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.total = total
        self.count = 0
        self.echo = echo or (lambda line: print(line, flush=True))
        self.started = time.perf_counter()
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                self.records = json.loads(self.path.read_text())["steps"]
            except (ValueError, KeyError, TypeError):
                self.echo(f"note: {self.path} is unreadable; step times start afresh")

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time the body as step `name`; on an exception the step is recorded as failed."""
        self.count += 1
        current = Step(self.count, name)
        prefix = f"[{current.index:>{len(str(self.total))}}/{self.total}]"
        self.echo(f"{prefix} {name} ...")
        started = time.perf_counter()
        try:
            yield current
        except BaseException:
            self._record(current, "failed", time.perf_counter() - started)
            self.echo(f"{prefix} {name}: failed after {time.perf_counter() - started:.1f} s")
            raise
        self._finish(current, prefix, time.perf_counter() - started)

    def finished_elsewhere(self, step: Step, seconds: float) -> None:
        """Record and print a step that ran outside :meth:`step` (in a worker process) and took
        `seconds` there; its number is the next one."""
        self.count += 1
        step.index = self.count
        self._finish(step, f"[{step.index:>{len(str(self.total))}}/{self.total}]", seconds)

    def _finish(self, current: Step, prefix: str, seconds: float) -> None:
        previous = self.records.get(current.name, {})
        seconds_taken: float | None
        if current.status == "reused":
            known = previous.get("seconds") if previous.get("status") != "failed" else None
            seconds_taken = current.seconds if current.seconds is not None else known
            note = "reused" + (f" ({seconds_taken:.1f} s when it ran)" if seconds_taken is not None else "")
        else:
            seconds_taken = seconds
            note = f"{current.status} in {seconds:.1f} s"
        self._record(current, current.status, seconds_taken)
        self.echo(f"{prefix} {current.name}: {note}" + (f" — {current.detail}" if current.detail else ""))

    def _record(self, step: Step, status: str, seconds: float | None) -> None:
        self.records[step.name] = {"index": step.index, "status": status,
                                   "seconds": None if seconds is None else round(seconds, 1),
                                   "detail": step.detail}
        write_json_atomic(self.path, {"steps": self.records})

    @property
    def wall_seconds(self) -> float:
        """Seconds since this log was opened (this invocation)."""
        return time.perf_counter() - self.started

    def table_rows(self) -> list[tuple[str, str, float | None]]:
        """(step, status, seconds or None when unknown) in step order, for reports."""
        ordered = sorted(self.records.items(), key=lambda item: item[1].get("index", 0))
        return [(name, rec["status"], rec.get("seconds")) for name, rec in ordered]


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and key not in ("timm_kwargs", "ast_kwargs"):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def request_difference(old: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any] | None = None
                       ) -> str | None:
    """The first result-changing key where two requests differ, as ``key: old → new``.

    A key the old request lacks (a field added to the config since) counts as its value in
    `defaults` (the flattened default config when None): new fields default to what was done before;
    a field that moved since is read where it is now (:func:`vicokd.config.upgrade_config_values`).
    """
    old_flat, new_flat = _flat(upgrade_config_values(old)), _flat(new)
    defaults = _flat(config_to_dict(Config())) if defaults is None else defaults
    for key in sorted(set(old_flat) | set(new_flat)):
        if key in _LOCATION_KEYS or key.startswith("detect."):
            continue
        if key not in old_flat and key in defaults:
            old_flat[key] = defaults[key]
        if old_flat.get(key) != new_flat.get(key):
            return f"{key}: {old_flat.get(key)!r} → {new_flat.get(key)!r}"
    return None


def training_state(config: Config) -> str:
    """"done" (summary exists), "resume" (last checkpoint, no summary) or "todo"."""
    directory = run_dir(config)
    if (directory / "summary.json").is_file():
        return "done"
    return "resume" if (directory / "checkpoints" / "last.safetensors").is_file() else "todo"


def run_training(config: Config, teacher_checkpoint: str | Path | None, step: Step, progress: bool = True
                 ) -> dict[str, Any]:
    """Reuse, resume or start the run of `config` (see the module docstring); returns its summary."""
    directory = run_dir(config)
    requested = config_to_dict(config)
    request_path = directory / REQUEST_FILE
    if request_path.is_file():
        difference = request_difference(json.loads(request_path.read_text()), requested)
        if difference:
            raise VicokdError(f"{directory}: this run was made with another setting ({difference}); "
                              "choose another --out, or delete the run to redo it")
    state = training_state(config)
    if state == "done":
        summary = json.loads((directory / "summary.json").read_text())
        step.status, step.seconds = "reused", summary.get("seconds")
        return summary
    write_json_atomic(request_path, requested)
    if state == "resume":
        step.status = "resumed"
        print(f"resuming {directory} from its last checkpoint", file=sys.stderr)
    return fit(config, teacher_checkpoint=teacher_checkpoint, resume=state == "resume", progress=progress)
