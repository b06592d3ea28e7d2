"""Atomic file output: every file vicokd writes appears whole or not at all.

A writer gets a temporary path beside the target (hidden: ``.<name>.<random><suffix>``, the same
suffix, so that writers which choose a format by extension still do), and the temporary file
replaces the target in one rename once the writer returns; on any error, Ctrl-C included, it is
removed and the target is left as it was. The parent folder is created. Used by every layer
(it imports nothing of vicokd), like :mod:`vicokd.errors`.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "write_csv", "write_json_atomic", "write_safetensors", "write_text"]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """`text` as UTF-8, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """`data` as JSON (indent 1, a final newline), atomically."""
    return write_text(path, json.dumps(data, indent=1) + "\n")


def write_csv(path: str | Path, fields: Sequence[str], rows: Iterable[dict[str, Any]]) -> Path:
    """CSV with a header row; `rows` are mappings over `fields`."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def write_safetensors(tensors: dict[str, Any], path: str | Path) -> Path:
    """`tensors` (name → torch tensor) as a safetensors file, atomically.

    safetensors reports a failed write (a full disk) as its own error type with the OS error in the
    text (``I/O error: No space left on device (os error 28)``); it is raised here as the
    :class:`OSError` it is, naming `path`, so that the command's one line says what to do.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp))
        except SafetensorError as exc:
            code = re.search(r"os error (\d+)", str(exc))
            if code is None:
                raise
            number = int(code.group(1))
            raise OSError(number, os.strerror(number), str(path)) from None
    return Path(path)
