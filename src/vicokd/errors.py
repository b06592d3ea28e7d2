"""The project's error type: every user-facing failure is one line naming the file and field.

The CLI catches :class:`VicokdError`, prints ``error: <message>`` and exits with code 2; any
other exception is a bug and keeps its traceback only under ``--debug``.
"""

from __future__ import annotations


class VicokdError(Exception):
    """A user-facing error with a one-line message (file / field / what to do)."""


class ConfigError(VicokdError):
    """A configuration file or override is invalid."""


class DataError(VicokdError):
    """An annotation file, video or cache entry is missing or malformed."""
