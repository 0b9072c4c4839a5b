"""Snapshots: the exact bytes to publish for one file, taken without trusting the writer.

The snapshot rule (HF's ``PartialFileIO`` idea): read the file only up to the size seen at
open, keep only complete lines (a half-written last line waits for its newline), pass them
through the redactor, and write them to a spool file. The sink uploads the spool file, so a
line appended meanwhile can never be sent torn.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
#: A transcript larger than this is refused as a per-file issue (the bucket takes it, but a
#: laptop daemon should not spool it on every append).
MAX_FILE_BYTES = 1 << 30

#: ``(complete lines) -> (redacted lines, {rule: count})``
Transform = Callable[[bytes], tuple[bytes, dict[str, int]]]
#: Called with each new chunk of complete lines beyond ``feed_from`` (metadata reader).
Feeder = Callable[[bytes], None]


class SnapshotError(Exception):
    """A per-file reason not to upload (binary content, too large, not JSON)."""


@dataclasses.dataclass
class Snapshot:
    """The outcome of reading one file."""

    size: int  #: source bytes covered (complete lines only)
    sha256: str  #: hash of those source bytes (before redaction)
    prefix_sha256: str | None  #: hash of the first ``prefix_len`` bytes, to detect rewrites
    stat_size: int
    stat_mtime_ns: int
    mtime: float
    spool_path: Path | None  #: the bytes to publish (None when nothing complete was found)
    out_size: int
    redactions: dict[str, int]
    torn_tail: int  #: bytes of a half-written last line left for later

    def discard(self) -> None:
        """Delete the spool file (nothing to upload after all)."""
        if self.spool_path is not None:
            self.spool_path.unlink(missing_ok=True)
            self.spool_path = None


def take_snapshot(
    src: Path,
    spool_dir: Path,
    *,
    whole_json: bool = False,
    transform: Transform | None = None,
    feed: Feeder | None = None,
    feed_from: int = 0,
    prefix_len: int = 0,
) -> Snapshot:
    """Copy the complete lines of ``src`` into a new spool file.

    ``feed`` sees every chunk of complete lines that starts at or after ``feed_from`` (so
    metadata is read incrementally). ``prefix_len`` asks for the hash of the first bytes,
    which the caller compares with what it uploaded before to tell an append from a rewrite.
    Raises ``OSError`` (vanished, unreadable) or :class:`SnapshotError`.
    """
    spool_dir.mkdir(parents=True, exist_ok=True)
    if not stat.S_ISREG(os.stat(src).st_mode):
        # A FIFO or device named *.jsonl would block a plain open() forever.
        raise SnapshotError("not a regular file")
    with open(src, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SnapshotError("not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise SnapshotError(f"file is {st.st_size / 1e9:.1f} GB, larger than the 1 GB limit")
        if whole_json:
            return _whole_json(f.read(st.st_size), st, spool_dir, transform)
        fd, tmp = tempfile.mkstemp(dir=spool_dir, prefix="snap-", suffix=".part")
        spool = Path(tmp)
        try:
            digest = hashlib.sha256()
            prefix = hashlib.sha256() if prefix_len else None
            redactions: dict[str, int] = {}
            offset = 0  # source bytes of complete lines consumed so far
            out_size = 0
            carry = b""
            remaining = st.st_size
            first = True
            with os.fdopen(fd, "wb") as out:
                while remaining > 0:
                    block = f.read(min(CHUNK, remaining))
                    if not block:
                        break  # truncated while we read: keep what is complete
                    remaining -= len(block)
                    if first:
                        first = False
                        if b"\x00" in block[:8192]:
                            raise SnapshotError("binary content (NUL bytes): not a JSONL transcript")
                    buf = carry + block if carry else block
                    cut = buf.rfind(b"\n") + 1
                    if cut == 0:
                        carry = buf
                        continue
                    lines, carry = buf[:cut], buf[cut:]
                    digest.update(lines)
                    if prefix is not None and offset < prefix_len:
                        prefix.update(lines[: prefix_len - offset])
                    if feed is not None and offset + len(lines) > feed_from:
                        start = max(0, feed_from - offset)
                        # feed_from always falls on a line boundary (it is a previous size).
                        feed(lines[start:])
                    offset += len(lines)
                    if transform is not None:
                        lines, counts = transform(lines)
                        for rule, n in counts.items():
                            redactions[rule] = redactions.get(rule, 0) + n
                    out.write(lines)
                    out_size += len(lines)
        except BaseException:
            spool.unlink(missing_ok=True)
            raise
    snap = Snapshot(
        size=offset,
        sha256=digest.hexdigest(),
        prefix_sha256=prefix.hexdigest() if prefix is not None and offset >= prefix_len else None,
        stat_size=st.st_size,
        stat_mtime_ns=st.st_mtime_ns,
        mtime=st.st_mtime,
        spool_path=spool,
        out_size=out_size,
        redactions=redactions,
        torn_tail=len(carry),
    )
    if offset == 0:
        snap.discard()
    return snap


def _whole_json(data: bytes, st: os.stat_result, spool_dir: Path, transform: Transform | None) -> Snapshot:
    """Sidecars (``.meta.json``) are uploaded only when they parse: never a half-saved file.

    They are redacted like transcripts; if redacting the document as written would break it
    (a secret across a pretty-printed structure), it is redacted as one compact line instead.
    """
    try:
        document = json.loads(data)
    except ValueError:
        raise SnapshotError("not a complete JSON document yet (half-written?)") from None
    source = data
    redactions: dict[str, int] = {}
    if transform is not None:
        out_data, redactions = transform(data + b"\n")
        out_data = out_data[:-1]
        try:
            json.loads(out_data)
        except ValueError:
            compact = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
            out_data, redactions = transform(compact + b"\n")
            out_data = out_data[:-1]
        data = out_data
    fd, tmp = tempfile.mkstemp(dir=spool_dir, prefix="snap-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Snapshot(
        size=len(source),
        sha256=hashlib.sha256(source).hexdigest(),
        prefix_sha256=None,
        stat_size=st.st_size,
        stat_mtime_ns=st.st_mtime_ns,
        mtime=st.st_mtime,
        spool_path=Path(tmp),
        out_size=len(data),
        redactions=redactions,
        torn_tail=0,
    )
