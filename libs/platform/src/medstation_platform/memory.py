"""The C allocator set up for a long-running server process."""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3  # <malloc.h>
# Python's own objects come from its small-object allocator; blocks this size or larger
# (password-hashing buffers, big messages) are rare enough to be worth a mapping each.
MMAP_THRESHOLD_BYTES = 1 << 20


def return_freed_large_blocks(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Blocks of `threshold_bytes` or more get pages of their own, unmapped when freed.

    glibc maps such blocks by itself only at first: each time one is freed it raises its
    threshold to that block's size (up to 32 MiB), and from then on blocks that size come
    from the heap of the allocating thread, which keeps their pages once they are freed.
    argon2id allocates 19 MiB per hash on the hashing threads, so the user service held
    on to 19 MiB per thread after its first logins (143 MB idle where its peers idle at
    119). Setting the threshold fixes it and turns that adjustment off.

    False where the C library has no `mallopt` (not glibc) or refuses the value.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
