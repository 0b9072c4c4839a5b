"""Snapshots: the exact bytes to publish for one file, taken without trusting the writer.

The snapshot rule (HF's ``PartialFileIO`` idea): read the file only up to the size seen at
open, keep only complete lines (a half-written last line waits for its newline), pass them
through the redactor, and write them to a spool file. The sink uploads the spool file, so a
line appended meanwhile can never be sent torn.

Two costs stay in proportion to what changed: with a :class:`Resume` (a sink that appends),
only the bytes after what was uploaded are read and spooled, once the file's head and the
bytes just before the old end match their fingerprints; and a line longer than ``LONG_LINE``
is never held whole (it streams through the redactor in pieces).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)

CHUNK = 1 << 20
#: A transcript larger than this is refused as a per-file issue (the bucket takes it, but a
#: laptop daemon should not spool it on every append).
MAX_FILE_BYTES = 1 << 30
#: A line longer than this is never held whole: it streams through the redactor in pieces
#: (:meth:`traceagent.redact.Redactor.line_stream`) and is not read for metadata (the readers
#: look at small records; a 150 MB line is a pasted file or an image).
LONG_LINE = 4 << 20
#: Fingerprint windows: the first and the last bytes of what was uploaded. An append is
#: recognised by them (and the size), without reading the rest of the file again.
MARK_WINDOW = 16 << 10

#: ``(complete lines) -> (redacted lines, {rule: count})``
Transform = Callable[[bytes], tuple[bytes, dict[str, int]]]
#: Called with each new chunk of complete lines beyond ``feed_from`` (metadata reader).
Feeder = Callable[[bytes], None]


class LineStream(Protocol):
    """Redacts one long line in pieces (:class:`traceagent.redact.core.LineStream`)."""

    counts: dict[str, int]

    def feed(self, data: bytes) -> bytes:
        """The next bytes of the line (no newline); returns the redacted bytes now final."""
        ...

    def finish(self) -> bytes:
        """The line is complete; returns the redacted rest."""
        ...


@runtime_checkable
class StreamingTransform(Protocol):
    """A transform that can also redact one line in pieces (the :class:`Redactor`)."""

    def __call__(self, data: bytes) -> tuple[bytes, dict[str, int]]:
        """Redact complete lines."""
        ...

    def line_stream(self) -> LineStream:
        """A redactor for one long line given in pieces."""
        ...


class SnapshotError(Exception):
    """A per-file reason not to upload (binary content, too large, not JSON)."""


@dataclasses.dataclass(frozen=True)
class Resume:
    """What was uploaded of a file before, to read and send only what was appended since."""

    offset: int  #: source bytes uploaded (a line boundary): ``up_size``
    chain: str  #: their content hash: ``up_hash``
    marks: str  #: their fingerprints (:func:`make_marks`): ``up_marks``


@dataclasses.dataclass
class Snapshot:
    """The outcome of reading one file."""

    size: int  #: source bytes covered (complete lines only)
    #: Content hash of those bytes (before redaction): their sha256, or after an append the
    #: chained ``sha256(previous hash + appended bytes)`` (see :func:`chain_hash`).
    sha256: str
    prefix_sha256: str | None  #: hash of the first ``prefix_len`` bytes, to detect rewrites
    stat_size: int
    stat_mtime_ns: int
    mtime: float
    spool_path: Path | None  #: the bytes to publish (None when nothing complete was found)
    out_size: int  #: bytes in the spool file
    redactions: dict[str, int]
    torn_tail: int  #: bytes of a half-written last line left for later
    #: Source offset the spool starts at: 0 (the whole file) or, when a :class:`Resume`
    #: matched, the size uploaded before (the spool holds only the appended lines).
    start: int = 0
    #: Fingerprints of the ``size`` bytes, kept as ``up_marks`` for the next append.
    marks: str | None = None
    #: Fingerprints of the first ``prefix_len`` bytes (as they were recorded then).
    prefix_marks: str | None = None

    def discard(self) -> None:
        """Delete the spool file (nothing to upload after all)."""
        if self.spool_path is not None:
            self.spool_path.unlink(missing_ok=True)
            self.spool_path = None


def transform_tag(transform: Transform | None) -> str:
    """Which redaction produced a remote copy: appended lines must be redacted the same way."""
    if transform is None:
        return "none"
    fingerprint = getattr(transform, "fingerprint", None)
    return fingerprint if isinstance(fingerprint, str) else "custom"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def make_marks(tag: str, head: bytes, tail: bytes) -> str:
    """Fingerprints of uploaded bytes: the redaction tag, the first and the last
    ``MARK_WINDOW`` bytes. A later read that finds the same head and the same bytes just
    before the old end (and no smaller size) is taken for an append to them."""
    return f"1:{tag}:{_digest(head)}:{_digest(tail)}"


def same_content(a: str | None, b: str | None) -> bool:
    """Two marks fingerprint the same bytes (whatever redaction was used)."""
    return a is not None and b is not None and a.split(":", 2)[2:] == b.split(":", 2)[2:]


def chain_hash(previous: str) -> hashlib._Hash:
    """The running hash of bytes appended to content hashed ``previous``.

    An append never re-reads what was uploaded, so the hash of the whole is chained:
    ``sha256(previous.encode() + appended)``. A whole read gives the plain sha256 instead;
    the two differ, so a copy is never taken for unchanged on a hash from the other kind.
    """
    return hashlib.sha256(previous.encode("ascii"))


def take_snapshot(
    src: Path,
    spool_dir: Path,
    *,
    whole_json: bool = False,
    transform: Transform | None = None,
    feed: Feeder | None = None,
    feed_from: int = 0,
    prefix_len: int = 0,
    resume: Resume | None = None,
) -> Snapshot:
    """Copy the complete lines of ``src`` into a new spool file.

    ``feed`` sees every chunk of complete lines that starts at or after ``feed_from`` (so
    metadata is read incrementally; lines over ``LONG_LINE`` are skipped). ``prefix_len``
    asks for the hash and fingerprints of the first bytes, which the caller compares with
    what it uploaded before to tell an append from a rewrite. With ``resume``, the file's
    head and the bytes before ``resume.offset`` are checked against ``resume.marks``; when
    they match, only the bytes after it are read and spooled (``Snapshot.start``), else the
    whole file is. Raises ``OSError`` (vanished, unreadable) or :class:`SnapshotError`.
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
        tag = transform_tag(transform)
        reader = _Reader(f, st, tag=tag, transform=transform, feed=feed, feed_from=feed_from)
        if resume is not None and not reader.resume(resume):
            log.debug("%s does not continue what was uploaded; reading it whole", src)
        reader.prefix_len = prefix_len
        fd, tmp = tempfile.mkstemp(dir=spool_dir, prefix="snap-", suffix=".part")
        spool = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                reader.run(out)
        except BaseException:
            spool.unlink(missing_ok=True)
            raise
    return reader.snapshot(spool, st)


class _Reader:
    """One pass over a file's bytes: complete lines to the spool, hashes and fingerprints.

    Memory stays bounded whatever the line lengths: a line longer than ``LONG_LINE`` goes to
    the spool in pieces (through the transform's :class:`LineStream`), and if the file ends
    before its newline, the spool is cut back to the last complete line.
    """

    def __init__(
        self,
        f: io.BufferedReader,
        st: os.stat_result,
        *,
        tag: str,
        transform: Transform | None,
        feed: Feeder | None,
        feed_from: int,
    ) -> None:
        self.f = f
        self.remaining = st.st_size
        self.tag = tag
        self.transform = transform
        self.feed = feed
        self.feed_from = feed_from
        self.prefix_len = 0
        self.begin = 0  #: source offset the spool starts at
        self.pos = 0  #: source offset of the next byte read
        self.offset = 0  #: end of the complete lines consumed
        self.digest = hashlib.sha256()
        self.chain: str | None = None
        self.head = bytearray()  #: source bytes [0, MARK_WINDOW)
        self.tail = b""  #: the last MARK_WINDOW bytes of the complete lines
        self.prefix: hashlib._Hash | None = None
        self.prefix_tail = bytearray()  #: source bytes [prefix_len - MARK_WINDOW, prefix_len)
        self.out_size = 0
        self.redactions: dict[str, int] = {}
        self.carry: list[bytes] = []
        self.carry_len = 0
        # A long line in progress: its hash so far, redactor, length, last bytes, spooled bytes.
        self.long_hash: hashlib._Hash | None = None
        self.long_stream: LineStream | None = None
        self.long_len = 0
        self.long_tail = b""
        self.long_out = 0
        self.torn = 0

    def resume(self, r: Resume) -> bool:
        """Start after ``r.offset`` if the file still holds what was uploaded up to there."""
        if r.offset <= 0 or self.remaining < r.offset:
            return False
        n = min(MARK_WINDOW, r.offset)
        head = self.f.read(n)
        self.f.seek(r.offset - n)
        tail = self.f.read(n)
        if len(head) != n or len(tail) != n or not tail.endswith(b"\n"):
            self.f.seek(0)
            return False
        if make_marks(self.tag, head, tail) != r.marks:
            self.f.seek(0)
            return False
        self.f.seek(r.offset)
        self.begin = self.pos = self.offset = r.offset
        self.remaining -= r.offset
        self.digest = chain_hash(r.chain)
        self.chain = r.chain
        self.head = bytearray(head)
        self.tail = tail
        return True

    def run(self, out: io.BufferedWriter) -> None:
        if self.prefix_len and not self.begin:
            self.prefix = hashlib.sha256()
        first = not self.begin
        while self.remaining > 0:
            block = self.f.read(min(CHUNK, self.remaining))
            if not block:
                break  # truncated while we read: keep what is complete
            self.remaining -= len(block)
            if first:
                first = False
                if b"\x00" in block[:8192]:
                    raise SnapshotError("binary content (NUL bytes): not a JSONL transcript")
            self._capture(block)
            self._block(block, out)
        if self.long_hash is not None:
            # The file ends inside a long line: it is not complete, nothing of it is published.
            self.torn = self.long_len
            out.flush()
            out.truncate(self.out_size)
        else:
            self.torn = self.carry_len

    def _capture(self, block: bytes) -> None:
        """Source bytes at fixed offsets: the head window and the prefix's hash and tail."""
        pos = self.pos
        self.pos += len(block)
        if pos < MARK_WINDOW and len(self.head) == pos:
            self.head += block[: MARK_WINDOW - pos]
        if self.prefix is not None and pos < self.prefix_len:
            self.prefix.update(block[: self.prefix_len - pos])
        lo = self.prefix_len - MARK_WINDOW
        if self.prefix_len and pos < self.prefix_len and pos + len(block) > lo:
            self.prefix_tail += block[max(0, lo - pos) : self.prefix_len - pos]

    def _block(self, block: bytes, out: io.BufferedWriter) -> None:
        if self.long_hash is not None:
            nl = block.find(b"\n")
            if nl < 0:
                self._long_piece(block, out)
                return
            self._long_piece(block[:nl], out)
            self._long_end(out)
            block = block[nl + 1 :]
            if not block:
                return
        if b"\n" not in block:
            self.carry.append(block)
            self.carry_len += len(block)
            self._maybe_long(out)
            return
        buf = b"".join((*self.carry, block)) if self.carry else block
        cut = buf.rfind(b"\n") + 1
        self._lines(buf[:cut], out)
        rest = buf[cut:]
        self.carry = [rest] if rest else []
        self.carry_len = len(rest)
        self._maybe_long(out)

    def _lines(self, lines: bytes, out: io.BufferedWriter) -> None:
        """A chunk of complete lines (each at most about ``LONG_LINE + CHUNK`` bytes)."""
        self.digest.update(lines)
        self.tail = (self.tail + lines[-MARK_WINDOW:])[-MARK_WINDOW:]
        if self.feed is not None and self.offset + len(lines) > self.feed_from:
            start = max(0, self.feed_from - self.offset)
            # feed_from always falls on a line boundary (it is a previous size).
            self.feed(lines[start:])
        self.offset += len(lines)
        if self.transform is not None:
            lines, counts = self.transform(lines)
            self._count(counts)
        out.write(lines)
        self.out_size += len(lines)

    def _count(self, counts: dict[str, int]) -> None:
        for rule, n in counts.items():
            self.redactions[rule] = self.redactions.get(rule, 0) + n

    def _maybe_long(self, out: io.BufferedWriter) -> None:
        """A torn line that grew past ``LONG_LINE``: stream it from now on."""
        if self.carry_len <= LONG_LINE:
            return
        if self.transform is not None and not isinstance(self.transform, StreamingTransform):
            return  # a plain transform needs the whole line (only tests use one)
        self.long_hash = self.digest.copy()
        self.long_stream = self.transform.line_stream() if self.transform is not None else None
        self.long_len = 0
        self.long_tail = b""
        self.long_out = 0
        carried, self.carry, self.carry_len = self.carry, [], 0
        for piece in carried:
            self._long_piece(piece, out)

    def _long_piece(self, piece: bytes, out: io.BufferedWriter) -> None:
        assert self.long_hash is not None
        if not piece:
            return
        self.long_hash.update(piece)
        self.long_len += len(piece)
        self.long_tail = (self.long_tail + piece[-MARK_WINDOW:])[-MARK_WINDOW:]
        data = self.long_stream.feed(piece) if self.long_stream is not None else piece
        out.write(data)
        self.long_out += len(data)

    def _long_end(self, out: io.BufferedWriter) -> None:
        """The long line's newline arrived: it is complete and counts as published."""
        assert self.long_hash is not None
        data = b"\n"
        if self.long_stream is not None:
            data = self.long_stream.finish() + data
            self._count(self.long_stream.counts)
        out.write(data)
        self.long_hash.update(b"\n")
        self.digest = self.long_hash
        self.offset += self.long_len + 1
        self.tail = (self.tail + self.long_tail + b"\n")[-MARK_WINDOW:]
        self.out_size += self.long_out + len(data)
        self.long_hash = self.long_stream = None
        self.long_len = self.long_out = 0
        self.long_tail = b""

    def snapshot(self, spool: Path, st: os.stat_result) -> Snapshot:
        offset = self.offset
        sha = self.digest.hexdigest()
        if self.chain is not None and offset == self.begin:
            sha = self.chain  # nothing appended: the content is what was uploaded
        prefix_marks = None
        n = min(MARK_WINDOW, self.prefix_len)
        if self.prefix_len and offset >= self.prefix_len and len(self.prefix_tail) == n:
            prefix_marks = make_marks(self.tag, bytes(self.head[:n]), bytes(self.prefix_tail))
        snap = Snapshot(
            size=offset,
            sha256=sha,
            prefix_sha256=(
                self.prefix.hexdigest() if self.prefix is not None and offset >= self.prefix_len else None
            ),
            stat_size=st.st_size,
            stat_mtime_ns=st.st_mtime_ns,
            mtime=st.st_mtime,
            spool_path=spool,
            out_size=self.out_size,
            redactions=self.redactions,
            torn_tail=self.torn,
            start=self.begin,
            marks=make_marks(self.tag, bytes(self.head[: min(MARK_WINDOW, offset)]), self.tail),
            prefix_marks=prefix_marks,
        )
        if offset == self.begin:
            snap.discard()
        return snap


def feed_complete_lines(path: Path, size: int, feed: Feeder) -> None:
    """Feed the complete lines of the first ``size`` bytes of ``path`` in chunks, skipping
    lines over ``LONG_LINE`` without holding them (metadata of a rewritten file)."""
    with open(path, "rb") as f:
        done = 0
        carry: list[bytes] = []
        carry_len = 0
        skipping = False
        while done < size:
            block = f.read(min(CHUNK, size - done))
            if not block:
                break
            done += len(block)
            if skipping:
                nl = block.find(b"\n")
                if nl < 0:
                    continue
                skipping, block = False, block[nl + 1 :]
            if b"\n" not in block:
                carry.append(block)
                carry_len += len(block)
                if carry_len > LONG_LINE:
                    skipping, carry, carry_len = True, [], 0
                continue
            buf = b"".join((*carry, block)) if carry else block
            cut = buf.rfind(b"\n") + 1
            feed(buf[:cut])
            rest = buf[cut:]
            carry, carry_len = ([rest] if rest else []), len(rest)
            if carry_len > LONG_LINE:
                skipping, carry, carry_len = True, [], 0


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
