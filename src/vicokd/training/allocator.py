"""Host-memory allocator setting for CPU training: return freed large tensors to the system.

glibc serves allocations of at least ``M_MMAP_THRESHOLD`` bytes with their own ``mmap`` and
gives them back on free. By default it raises that threshold each time such a block is freed
(up to 32 MiB on 64-bit), after which tensors of a few MiB come from the heap, and the heap's
freed space stays resident and fragmented. Measured on the paper architecture (ViT-S/32, AST,
T = 70, chunked + checkpointed encoders; ``vicokd benchmark --only train``): extrapolated peak
resident memory at batch 12 is 73 GiB with the default and 7.4 GiB with the threshold fixed at
1 MiB; a batch-1 step took the same time both ways (31.5 s vs 31.4 s at T = 8).

``fit`` fixes the threshold (:data:`TRAINING_MMAP_THRESHOLD`) unless the user set glibc's own
``MALLOC_MMAP_THRESHOLD_`` variable, which then wins.
"""

from __future__ import annotations

import ctypes
import os

TRAINING_MMAP_THRESHOLD = 2**20  # bytes
_M_MMAP_THRESHOLD = -3  # mallopt parameter number (malloc.h)
USER_VARIABLE = "MALLOC_MMAP_THRESHOLD_"


def set_mmap_threshold(threshold: int) -> bool:
    """glibc: serve every allocation of at least `threshold` bytes by its own mmap (``mallopt``).

    Fixing the threshold also stops glibc from raising it dynamically. Returns False where the
    C library is not glibc (nothing changed).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))


def use_training_mmap_threshold() -> bool:
    """Fix the threshold at :data:`TRAINING_MMAP_THRESHOLD` unless ``MALLOC_MMAP_THRESHOLD_`` is set."""
    if USER_VARIABLE in os.environ:
        return False
    return set_mmap_threshold(TRAINING_MMAP_THRESHOLD)
