"""Remote keys: ``<agent folder>/<path relative to the agent's root>``, always POSIX.

The bucket rules (hub-docs "Object key naming"): no leading or trailing ``/``, no ``//``,
no ``\\``, no NUL, no ``..`` segment, no leading ``./``.
"""

from __future__ import annotations

import re
from pathlib import PurePath

_BAD = re.compile(r"(^/|/$|//|\\|\x00|(^|/)\.\.(/|$)|^\./)")


class InvalidKeyError(ValueError):
    """A path that cannot be a remote key."""


def check_key(key: str) -> str:
    """Return ``key`` if it obeys the bucket rules, else raise :class:`InvalidKeyError`."""
    if not key or _BAD.search(key):
        raise InvalidKeyError(f"{key!r} is not a valid bucket key")
    return key


def make_key(remote_folder: str, rel: PurePath, prefix: str = "") -> str:
    """The key of a file ``rel`` (relative to its root) under ``remote_folder``."""
    parts = [p for p in (prefix.strip("/"), remote_folder, rel.as_posix()) if p]
    return check_key("/".join(parts))
