"""Remote keys and destinations: the one place that says what a key and a destination may be.

A key is ``<agent folder>/<path relative to the agent's root>``, always POSIX. The bucket
rules (hub-docs "Object key naming": no leading or trailing ``/``, no ``//``, no ``\\``, no
NUL, no ``..`` segment, no leading ``./``) plus what keeps viewer URLs sane (no ``.``
segments, no control characters, at most :data:`KEY_MAX_BYTES` bytes of UTF-8) are in
:func:`key_problem`; :func:`make_key`, the folder sink and the Hub sink all use it, so a key
accepted when a file is queued is never refused when it is uploaded.

A destination (``config.toml``'s ``destination``, ``TRACEAGENT_DESTINATION``, the tray, the
sinks) is parsed by :func:`parse_destination` only. Pure: no ``huggingface_hub`` import.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePath
from urllib.parse import quote, unquote, urlsplit
from urllib.request import url2pathname

__all__ = [
    "KEY_MAX_BYTES",
    "META_DIR",
    "PREFIX_MAX_BYTES",
    "Destination",
    "DestinationError",
    "InvalidKeyError",
    "check_key",
    "key_problem",
    "make_key",
    "parse_destination",
]

#: The longest remote key (prefix included), in bytes of UTF-8 (S3's limit).
KEY_MAX_BYTES = 1024
#: The longest prefix a destination may have (``hf://buckets/<ns>/<bucket>/<prefix>``).
PREFIX_MAX_BYTES = 128
#: An item key leaves room for the longest prefix and its ``/``: any valid prefix joined
#: to any valid item key is a valid remote key.
_ITEM_KEY_MAX_BYTES = KEY_MAX_BYTES - PREFIX_MAX_BYTES - 1
#: traceagent's own files in a destination (the folder sink's identity marker, ...). No agent
#: folder has this name, so it never meets an uploaded key.
META_DIR = "_traceagent"

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
#: The Hub's namespace and bucket names: ASCII letters, digits, ``-``, ``_``, ``.``.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_WINDOWS_DRIVE_RE = re.compile(r"^[A-Za-z]:[\\/]")
#: Hosts whose bucket pages are recognised without an ``endpoint`` setting (as huggingface_hub's
#: ``constants.HF_URL_HOSTS``).
HUB_HOSTS = frozenset({"huggingface.co", "www.huggingface.co", "hf.co", "hub-ci.huggingface.co"})
_EXPECTED = "expected hf://buckets/<namespace>/<bucket>[/<prefix>]"
_KINDS = (
    "use hf://buckets/<namespace>/<bucket>[/<prefix>], a bucket's page "
    "(https://huggingface.co/buckets/<namespace>/<bucket>), an absolute folder path, ~/folder "
    "or file:///absolute/path"
)


# --------------------------------------------------------------------------- keys
class InvalidKeyError(ValueError):
    """A path that cannot be a remote key."""


def key_problem(key: str, *, max_bytes: int = KEY_MAX_BYTES) -> str | None:
    """Why ``key`` breaks the key rules, or ``None`` when it is fine."""
    if not key:
        return "the key is empty"
    if key.startswith("/") or key.endswith("/"):
        return "a key must not start or end with '/'"
    if "//" in key:
        return "a key must not contain '//'"
    if "\\" in key:
        return "a key must not contain '\\'"
    if _CONTROL_RE.search(key):
        return "a key must not contain control characters"
    if any(part in (".", "..") for part in key.split("/")):
        return "a key must not contain '.' or '..' path segments"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "a key must be valid Unicode"
    if size > max_bytes:
        return f"a key must be at most {max_bytes} bytes long"
    return None


def check_key(key: str) -> str:
    """Return ``key`` if it obeys the key rules (with room for any prefix), else raise
    :class:`InvalidKeyError`."""
    problem = key_problem(key, max_bytes=_ITEM_KEY_MAX_BYTES)
    if problem:
        raise InvalidKeyError(f"{key!r} is not a valid bucket key: {problem}")
    return key


def make_key(remote_folder: str, rel: PurePath, prefix: str = "") -> str:
    """The key of a file ``rel`` (relative to its root) under ``remote_folder``."""
    parts = [p for p in (prefix.strip("/"), remote_folder, rel.as_posix()) if p]
    return check_key("/".join(parts))


# --------------------------------------------------------------------------- destinations
class DestinationError(ValueError):
    """A destination string that is not one; the message is one line meant for the user."""


@dataclasses.dataclass(frozen=True)
class Destination:
    """A parsed destination: a Hugging Face bucket (``folder`` is None) or a local folder."""

    namespace: str = ""
    bucket: str = ""
    #: The folder inside the bucket every key goes under ("" for the bucket's root).
    prefix: str = ""
    #: The absolute folder of a local destination.
    folder: Path | None = None

    @property
    def is_hub(self) -> bool:
        """True for a Hugging Face bucket."""
        return self.folder is None

    @property
    def bucket_id(self) -> str:
        """``namespace/bucket``."""
        return f"{self.namespace}/{self.bucket}"

    @property
    def uri(self) -> str:
        """The canonical spelling: ``hf://buckets/<ns>/<bucket>[/<prefix>]`` or the folder path."""
        if self.folder is not None:
            return str(self.folder)
        return f"hf://buckets/{self.bucket_id}" + (f"/{self.prefix}" if self.prefix else "")

    def web_url(self, endpoint: str = "https://huggingface.co") -> str:
        """The bucket's page (or its prefix folder's) on ``endpoint``; a folder's file:// URL."""
        if self.folder is not None:
            return self.folder.as_uri()
        base = f"{endpoint.rstrip('/')}/buckets/{self.bucket_id}"
        return base + (f"/tree/{quote(self.prefix, safe='/')}" if self.prefix else "")


def parse_destination(text: str, *, endpoints: Iterable[str | None] = ()) -> Destination:
    """Parse a destination: ``hf://buckets/<ns>/<bucket>[/<prefix>]``, a bucket's web page
    (``https://huggingface.co/buckets/<ns>/<bucket>[/tree/<prefix>]``, also on the host of any
    of ``endpoints``), an absolute path, ``~/path`` or ``file:///path``.

    Raises :class:`DestinationError` (one line, quoting ``text``) for anything else: unknown
    schemes, ``hf:/`` with one slash, an empty ``file://``, relative paths, names the Hub
    does not allow.
    """
    s = text.strip()
    if not s:
        raise DestinationError(f"the destination is empty; {_KINDS}")
    low = s.lower()
    if low.startswith("hf://"):
        return _parse_hf(s[len("hf://") :], s)
    if low.startswith("hf:"):
        raise DestinationError(f"{_EXPECTED} (with two slashes after 'hf:'), got {s!r}")
    hosts = _hosts(endpoints)
    if low.startswith(("http://", "https://")) or any(low.startswith(h + "/") for h in hosts):
        return _parse_web(s, hosts, endpoints)
    if low.startswith("file:"):
        return Destination(folder=_file_url_folder(s))
    if os.name == "nt" and _WINDOWS_DRIVE_RE.match(s):
        return Destination(folder=_absolute(s, s))
    m = _SCHEME_RE.match(s)
    if m and len(m.group(1)) > 1:
        raise DestinationError(f"unknown scheme '{m.group(1)}:' in {s!r}; {_KINDS}")
    return Destination(folder=_absolute(s, s))


def _parse_hf(body: str, raw: str) -> Destination:
    if not body.startswith("buckets/"):
        raise DestinationError(f"{_EXPECTED}, got {raw!r} (only Storage Buckets can be destinations)")
    parts = body[len("buckets/") :].rstrip("/").split("/", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise DestinationError(f"{_EXPECTED}, got {raw!r} (a namespace and a bucket name are needed)")
    return _bucket(parts[0], parts[1], parts[2] if len(parts) == 3 else "", raw)


def _bucket(namespace: str, bucket: str, prefix: str, raw: str) -> Destination:
    for what, name in (("namespace", namespace), ("bucket name", bucket)):
        if not _NAME_RE.match(name) or ".." in name or name.endswith("."):
            raise DestinationError(
                f"invalid {what} {name!r} in {raw!r}: use ASCII letters, digits, '-', '_' and '.' "
                "(starting with a letter or digit, at most 96 characters, no '..', not ending in '.')"
            )
    if prefix:
        problem = key_problem(prefix, max_bytes=PREFIX_MAX_BYTES)
        if problem:
            raise DestinationError(f"invalid prefix {prefix!r} in {raw!r}: {problem}")
    return Destination(namespace, bucket, prefix)


def _hosts(endpoints: Iterable[str | None]) -> frozenset[str]:
    extra = set()
    for endpoint in endpoints:
        if endpoint:
            host = urlsplit(endpoint if "://" in endpoint else "//" + endpoint).hostname
            if host:
                extra.add(host.lower())
    return HUB_HOSTS | extra


def _parse_web(raw: str, hosts: frozenset[str], endpoints: Iterable[str | None]) -> Destination:
    """A bucket's page, as the ``hf`` CLI reads it (``parse_hf_uri``): ``/tree/<path>`` is a
    folder of the bucket; query and fragment are ignored."""
    url = urlsplit(raw if "://" in raw else "//" + raw)
    host = (url.hostname or "").lower()
    if host not in hosts:
        raise DestinationError(
            f"{raw!r} is not a Hugging Face URL (host {host or '?'}); set `endpoint` for another Hub, or {_KINDS}"
        )
    path = url.path
    for endpoint in endpoints:  # a Hub served under a path (http://host:8080/hf)
        if not endpoint:
            continue
        ep = urlsplit(endpoint if "://" in endpoint else "//" + endpoint)
        base = ep.path.rstrip("/")
        if base and (ep.hostname or "").lower() == host and (path == base or path.startswith(base + "/")):
            path = path[len(base) :]
            break
    segments = [seg for seg in path.split("/") if seg]
    if len(segments) < 3 or segments[0] != "buckets":
        raise DestinationError(
            f"{raw!r} is not a bucket's page: expected https://{host}/buckets/<namespace>/<bucket>"
        )
    prefix = ""
    rest = segments[3:]
    if rest:
        if rest[0] != "tree":
            raise DestinationError(
                f"{raw!r} points at a file ('/{rest[0]}/'), not a bucket: use the bucket's page "
                "or a folder's page (…/tree/<folder>)"
            )
        prefix = "/".join(unquote(seg) for seg in rest[1:])
    return _bucket(unquote(segments[1]), unquote(segments[2]), prefix, raw)


def _file_url_folder(raw: str) -> Path:
    if not raw.lower().startswith("file://"):
        raise DestinationError(f"expected file:///absolute/path, got {raw!r}")
    url = urlsplit(raw)
    if url.netloc not in ("", "localhost"):
        raise DestinationError(
            f"{raw!r} names another host ({url.netloc}): mount the share and use its local path"
        )
    if not url.path:
        raise DestinationError(f"{raw!r} has no path: expected file:///absolute/path")
    return _absolute(url2pathname(url.path), raw)


def _absolute(path: str, raw: str) -> Path:
    if "\x00" in path:
        raise DestinationError(f"{raw!r} contains a NUL character")
    p = Path(path)
    if path.startswith("~"):
        try:
            p = p.expanduser()
        except RuntimeError:  # "~nosuchuser", or no home folder at all
            p = Path(path)
        if str(p).startswith("~"):
            raise DestinationError(f"cannot expand {raw!r}: no such user or home folder")
    if not p.is_absolute():
        raise DestinationError(
            f"{raw!r} is a relative path: use an absolute folder path, ~/folder or file:///absolute/path"
        )
    return p
