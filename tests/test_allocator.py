"""The CPU training allocator setting: glibc's mmap threshold, unless the user chose one."""

import ctypes

import pytest

from vicokd.training import allocator


def _glibc() -> bool:
    try:
        ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return True


def test_user_variable_wins(monkeypatch):
    called = []
    monkeypatch.setattr(allocator, "set_mmap_threshold", called.append)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "4194304")
    assert allocator.use_training_mmap_threshold() is False and called == []
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    allocator.use_training_mmap_threshold()
    assert called == [allocator.TRAINING_MMAP_THRESHOLD]


@pytest.mark.skipif(not _glibc(), reason="mallopt is glibc's")
def test_mallopt_accepts_the_threshold():
    assert allocator.set_mmap_threshold(allocator.TRAINING_MMAP_THRESHOLD) is True
