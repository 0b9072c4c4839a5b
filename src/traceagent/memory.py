"""Giving freed memory back to the operating system."""

from __future__ import annotations

import sys


def release_memory() -> None:
    """Give freed heap back to the OS after a burst of work (glibc keeps it otherwise).

    A daemon that idles for hours should not sit on the peak of its last backfill.
    """
    import ctypes

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (musl): nothing to trim
