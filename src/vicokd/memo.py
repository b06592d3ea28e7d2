"""Per-process memos of files that every run of a process reads again: keyed by the file's identity.

A demo or a reproduce grid trains hundreds of runs in one process, and each run opens the same
cache index, clip metadata, person scores and feature arrays. :class:`FileMemo` keeps what a
reader returned for a file under the key ``(absolute path, inode, mtime_ns, size)``: a file
rewritten in place or replaced atomically (a new inode) is read again, an unchanged one is not.
Entries are dropped least recently used first once their total size passes the memo's limit.
What a memo holds is shared by every caller: readers return read-only or immutable values.
Used by every layer (it imports nothing of vicokd), like :mod:`vicokd.io`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["FileMemo"]

Value = TypeVar("Value")
FileIdentity = tuple[str, int, int, int]


def file_identity(path: str | Path) -> FileIdentity:
    """``(absolute path, inode, mtime_ns, size)``; a missing file raises FileNotFoundError."""
    absolute = os.path.abspath(path)
    stat = os.stat(absolute)
    return absolute, stat.st_ino, stat.st_mtime_ns, stat.st_size


class FileMemo(Generic[Value]):
    """``memo.get(path, read)`` = ``read(path)``, once per file identity (module docstring).

    Args:
        limit: the most total size kept (least recently used entries are dropped beyond it;
            the newest entry is always kept).
        size: the size of one value (default 1: `limit` counts entries).
    """

    def __init__(self, limit: float, size: Callable[[Value], float] = lambda value: 1) -> None:
        self.limit = limit
        self._size = size
        self._entries: OrderedDict[FileIdentity, tuple[Value, float]] = OrderedDict()
        self._total = 0.0

    def get(self, path: str | Path, read: Callable[[Path], Value]) -> Value:
        """The memoised ``read(path)``; FileNotFoundError when `path` is missing."""
        identity = file_identity(path)
        entry = self._entries.get(identity)
        if entry is not None:
            self._entries.move_to_end(identity)
            return entry[0]
        value = read(Path(path))
        weight = self._size(value)
        self._entries[identity] = (value, weight)
        self._total += weight
        while self._total > self.limit and len(self._entries) > 1:
            self._total -= self._entries.popitem(last=False)[1][1]
        return value

    def clear(self) -> None:
        self._entries.clear()
        self._total = 0.0
