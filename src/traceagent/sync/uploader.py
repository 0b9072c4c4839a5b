"""The uploader: turns queued rows into snapshots and hands them to the sink in batches.

For a transcript, a snapshot is its complete lines, redacted (``snapshot.py``). For an agent
whose store the viewer cannot read (a SQLite database, a whole-JSON file), the agent's
exporter converts it into one Session Traces Format file per session, and only the sessions
whose bytes changed are sent. Nothing is marked uploaded until the sink call returned.
To a sink that can append (the folder), a file that only grew sends just its new lines.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import random
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from traceagent.agents import BY_NAME
from traceagent.agents.base import Agent, SessionMeta
from traceagent.sinks.base import ErrorKind, Sink, SinkError, UploadItem
from traceagent.sinks.keys import InvalidKeyError, make_key
from traceagent.sync.snapshot import (
    Resume,
    SnapshotError,
    Transform,
    feed_complete_lines,
    same_content,
    take_snapshot,
    transform_tag,
)
from traceagent.sync.state import FileRow, PendingItem, Record, StateDB

log = logging.getLogger(__name__)

#: Per-file retry after a read error: 5 s doubling up to an hour.
FILE_RETRY_BASE = 5.0
FILE_RETRY_CAP = 3600.0
NEVER = 1e18  # "until the file changes"
#: Errors of writing a snapshot that belong to the disk, not to the file read.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class SpoolError(OSError):
    """The spool folder (beside ``state.db``) cannot take a snapshot: the state disk is full.

    Not a problem of the file being read, so it is never recorded as a per-file error: the
    engine keeps the file queued, reports the state disk, and retries.
    """


@dataclasses.dataclass
class PassResult:
    """What a batch (or a foreground pass) did."""

    uploaded: int = 0
    unchanged: int = 0
    failed: int = 0
    pending: int = 0
    error: str | None = None


class _Source(NamedTuple):
    """An exported store as read for an export: the row marked checked once its sessions landed."""

    path: str
    size: int  #: the store's change token (``Agent.change_token``)
    mtime_ns: int


@dataclasses.dataclass
class _Prepared:
    item: UploadItem
    record: Record
    redactions: dict[str, int]
    #: For exported sessions: the source row to mark checked once all its sessions landed.
    source: _Source | None = None
    #: Per-file failures so far (the retry backoff grows with it).
    attempts: int = 0


def safe_feed(agent: Agent, meta: SessionMeta, chunk: bytes, path: Path) -> None:
    """Metadata is a nicety: a reader failing on odd records never blocks the upload."""
    try:
        agent.feed(meta, chunk)
    except Exception:
        log.debug("Could not read metadata from %s", path, exc_info=True)


class Uploader:
    """Prepares and sends batches; reports sink-wide failures to the engine's error funnel."""

    def __init__(
        self,
        db: StateDB,
        spool_dir: Path,
        *,
        transform_for: Callable[[str], Transform | None],
        on_sink_error: Callable[[SinkError, list[str]], None],
        on_progress: Callable[[int], None],
        clock: Callable[[], float],
    ) -> None:
        self.db = db
        self.spool_dir = spool_dir
        self._transform_for = transform_for
        self._on_sink_error = on_sink_error
        self._on_progress = on_progress
        self._clock = clock
        self._logged: set[tuple[str, str]] = set()
        #: The last per-file failure message (shown as "last error").
        self.last_file_error: str | None = None

    # -- one batch -----------------------------------------------------------------------------

    def upload_batch(self, sink: Sink, rows: list[FileRow], result: PassResult) -> bool:
        """Prepare and send ``rows``. Returns False when the sink failed as a whole."""
        prepared: list[_Prepared] = []
        for row in rows:
            try:
                out = self._prepare(row, sink)
            except Exception as e:  # one bad file never stops the others
                state_error = _state_folder_error(e, self.spool_dir)
                if state_error is not None:
                    # The state folder failed, not this file: the engine keeps the rows queued
                    # and retries; the snapshots taken so far would only fill the disk more.
                    for p in prepared:
                        p.item.spool_path.unlink(missing_ok=True)
                    if state_error is e:
                        raise
                    raise state_error from e
                log.exception("Unexpected error reading %s", row.path)
                self.file_error(row.path, f"unexpected error: {e}", transient=True, attempts=row.attempts)
                out = False
            if out is False:
                result.failed += 1
            elif out is True or not out:
                result.unchanged += 1
            else:
                prepared.extend(out)
        if not prepared:
            return True
        by_key = {p.item.key: p for p in prepared}
        items = [p.item for p in prepared]
        self._on_progress(len(items))
        failed: set[str] = set()
        try:
            sink.upload(items)
        except SinkError as e:
            if e.kind is not ErrorKind.PER_FILE or not e.failed_keys:
                self._on_sink_error(e, sorted({p.record.path for p in prepared} | _sources(prepared)))
                result.failed += len(items)
                result.error = e.message
                return False
            failed = set(e.failed_keys)
            self.last_file_error = e.message
            for key in failed:
                if key in by_key:
                    p = by_key[key]
                    self.file_error(
                        p.source.path if p.source else p.record.path,
                        e.key_messages.get(key, e.message),  # this file's reason, not the batch's
                        transient=True,
                        attempts=p.attempts,
                    )
        except Exception as e:  # a bug or an unclassified library error: back off, keep the data
            log.exception("Unexpected error while uploading %d file(s)", len(items))
            self._on_sink_error(
                SinkError(f"Unexpected upload error: {e}", kind=ErrorKind.TRANSIENT),
                sorted({p.record.path for p in prepared} | _sources(prepared)),
            )
            result.failed += len(items)
            result.error = str(e)
            return False
        finally:
            for item in items:
                item.spool_path.unlink(missing_ok=True)
            self._on_progress(0)
        done = [p for p in prepared if p.item.key not in failed]
        totals: dict[str, int] = {}
        for p in done:
            for rule, n in p.redactions.items():
                totals[rule] = totals.get(rule, 0) + n
        self.db.record_uploaded([p.record for p in done], totals, self._clock())
        # An exported store is in step once every one of its changed sessions landed.
        failed_sources = {p.source.path for p in prepared if p.source and p.item.key in failed}
        for src in {p.source for p in done if p.source and p.source.path not in failed_sources}:
            assert src is not None
            self.db.record_checked(src.path, src.size, src.mtime_ns, None)
        result.uploaded += len(done)
        result.failed += len(failed)
        if totals:
            log.info("Redacted %s before upload", ", ".join(f"{n} {r}" for r, n in sorted(totals.items())))
        log.info("Uploaded %d file(s) to %s", len(done), sink.location)
        return True

    # -- snapshots -----------------------------------------------------------------------------

    def _prepare(self, row: FileRow, sink: Sink) -> list[_Prepared] | bool:
        """The items to send for one row; ``[]``/True when nothing changed, False on a per-file error."""
        agent = BY_NAME.get(row.agent)
        if agent is None:
            self.db.mark_gone([row.path])
            return True
        if agent.exports:
            return self._prepare_export(row, agent)
        path = Path(row.path)
        meta = SessionMeta.from_json(row.meta)
        # The key is "<remote folder>/<path relative to the root>".
        whole_json = agent.is_whole_json(PurePosixPath(*PurePosixPath(row.key).parts[1:]))
        fresh = dataclasses.replace(meta)
        transform = self._transform_for(row.agent)
        resume = None if whole_json else self._resume(row, sink, transform)
        try:
            snap = take_snapshot(
                path,
                self.spool_dir,
                whole_json=whole_json,
                transform=transform,
                feed=None if whole_json else (lambda chunk: safe_feed(agent, fresh, chunk, path)),
                feed_from=meta.parsed_bytes,
                prefix_len=row.up_size,
                resume=resume,
            )
        except FileNotFoundError:
            log.info("Local file vanished before upload, remote copy kept: %s", path)
            self.db.mark_gone([row.path])
            return True
        except SnapshotError as e:
            self.file_error(row.path, str(e), transient=False, attempts=row.attempts)
            return False
        except OSError as e:
            if e.errno in _DISK_FULL:  # writing the snapshot, not reading the file
                raise SpoolError(e.errno, e.strerror, str(self.spool_dir)) from e
            self.file_error(
                row.path, f"cannot read: {e.strerror or e}", transient=True, attempts=row.attempts
            )
            return False
        appended = snap.start > 0
        # After an append the recorded hash is chained, not the prefix's: the fingerprints tell.
        rewritten = (
            not appended
            and row.up_size > 0
            and snap.prefix_sha256 != row.up_hash
            and not same_content(snap.prefix_marks, row.up_marks)
        )
        if not whole_json and (rewritten or snap.size < meta.parsed_bytes):
            log.info("%s was rewritten; uploading it whole", path)
            fresh = reparse(agent, path, snap.size)
        if not whole_json:
            fresh.parsed_bytes = snap.size
        meta_json = None if whole_json else redact_meta(fresh, transform).to_json()
        if (snap.size == row.up_size and snap.sha256 == row.up_hash) or snap.size == 0:
            snap.discard()
            self.db.record_checked(row.path, snap.stat_size, snap.stat_mtime_ns, meta_json)
            return True
        assert snap.spool_path is not None
        if appended:
            # Only the new lines, to go right after the remote copy's last byte.
            assert row.out_size is not None
            item = UploadItem(
                spool_path=snap.spool_path,
                key=row.key,
                size=snap.out_size,
                mtime=snap.mtime,
                append_at=row.out_size,
            )
            out_size = row.out_size + snap.out_size
        else:
            item = UploadItem(spool_path=snap.spool_path, key=row.key, size=snap.out_size, mtime=snap.mtime)
            out_size = snap.out_size
        record = Record(
            row.path,
            snap.stat_size,
            snap.stat_mtime_ns,
            snap.size,
            snap.sha256,
            meta_json,
            out_size,
            snap.marks if sink.can_append and not whole_json else None,
        )
        return [_Prepared(item, record, snap.redactions, attempts=row.attempts)]

    def _resume(self, row: FileRow, sink: Sink, transform: Transform | None) -> Resume | None:
        """Where to append to the remote copy, when the sink can and it is as we left it.

        The copy must hold exactly the bytes we recorded (its size is the ``out_size`` we
        wrote), and they must have been redacted the way new lines would be. Otherwise (a
        first upload, a copy changed or removed behind our back, a torn append after a
        crash, other redaction settings) the file goes whole, which also heals the copy.
        """
        if not sink.can_append or row.up_size <= 0 or not row.up_hash or not row.up_marks:
            return None
        if row.out_size is None:
            return None
        if row.up_marks.split(":", 2)[1:2] != [transform_tag(transform)]:
            return None
        if sink.append_size(row.key) != row.out_size:
            return None
        return Resume(row.up_size, row.up_hash, row.up_marks)

    def _prepare_export(self, row: FileRow, agent: Agent) -> list[_Prepared] | bool:
        """Convert an agent's store into per-session STS files; keep only the changed ones."""
        path = Path(row.path)
        try:
            size, mtime_ns = agent.change_token(path)
            sessions = agent.export(path)
        except FileNotFoundError:
            log.info("Local store vanished before export, remote copies kept: %s", path)
            self.db.mark_gone([row.path])
            return True
        except OSError as e:
            self.file_error(
                row.path, f"cannot read: {e.strerror or e}", transient=True, attempts=row.attempts
            )
            return False
        except Exception as e:  # a store in a format we do not understand (yet)
            log.warning("Cannot export %s", path, exc_info=True)
            self.file_error(row.path, f"cannot export: {e}", transient=False, attempts=row.attempts)
            return False
        remote = row.key.split("/", 1)[0]
        known = self.db.export_hashes(row.path)
        transform = self._transform_for(row.agent)
        source = _Source(row.path, size, mtime_ns)
        out: list[_Prepared] = []
        pending: list[PendingItem] = []
        for s in sessions:
            virtual = f"{row.path}#{s.rel.as_posix()}"
            data = s.data
            counts: dict[str, int] = {}
            if transform is not None and data:
                data, counts = transform(data)
            digest = hashlib.sha256(data).hexdigest()
            if known.get(virtual) == digest:
                continue
            try:
                key = make_key(remote, PurePosixPath(s.rel))
            except InvalidKeyError as e:
                log.warning("Skipping a session of %s: %s", path, e)
                continue
            fd, tmp = tempfile.mkstemp(dir=self.spool_dir, prefix="snap-", suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            pending.append(PendingItem(virtual, row.agent, key, not s.meta.is_subagent))
            s.meta.parsed_bytes = len(data)
            item = UploadItem(spool_path=Path(tmp), key=key, size=len(data), mtime=s.mtime or mtime_ns / 1e9)
            record = Record(
                virtual, len(data), 0, len(data), digest, redact_meta(s.meta, transform).to_json(), len(data)
            )
            out.append(_Prepared(item, record, counts, source=source, attempts=row.attempts))
        if pending:
            self.db.mark_pending(pending, source=row.path)
        if not out:
            self.db.record_checked(source.path, source.size, source.mtime_ns, None)
            return True
        return out

    # -- per-file errors -----------------------------------------------------------------------

    def file_error(self, path: str, message: str, *, transient: bool, attempts: int) -> None:
        """Record a per-file problem (logged once per file and message) and when to retry."""
        if (path, message) not in self._logged:
            self._logged.add((path, message))
            log.warning("Not uploaded: %s: %s", path, message)
        self.last_file_error = f"{Path(path).name}: {message}"
        if transient:
            delay = min(FILE_RETRY_CAP, FILE_RETRY_BASE * 2**attempts) * random.uniform(0.5, 1.0)
            retry_at = self._clock() + delay
        else:
            retry_at = NEVER  # e.g. binary content: try again only when the file changes
        stat: tuple[int, int] | None = None
        if not transient:
            try:
                st = os.stat(path)
                stat = (st.st_size, st.st_mtime_ns)
            except OSError:
                stat = None
        self.db.record_error(path, message, retry_at, stat=stat)


def redact_meta(meta: SessionMeta, transform: Transform | None) -> SessionMeta:
    """The metadata shown in ``status`` and the tray, with the same redaction as the upload.

    A title is often the first prompt, which is where users paste tokens.
    """
    if transform is None:
        return meta
    out = dataclasses.replace(meta)
    for name in ("title", "first_prompt", "cwd", "git_branch"):
        value = getattr(out, name)
        if not value:
            continue
        line = json.dumps(value, ensure_ascii=False).encode() + b"\n"
        redacted, counts = transform(line)
        if counts:
            try:
                setattr(out, name, json.loads(redacted))
            except ValueError:
                setattr(out, name, "[REDACTED]")
    return out


def _state_folder_error(e: Exception, spool_dir: Path) -> Exception | None:
    """``e`` as a failure of the state folder (``state.db``, a full spool disk), else None."""
    if isinstance(e, sqlite3.Error | SpoolError):
        return e
    if isinstance(e, OSError) and e.errno in _DISK_FULL:  # writing a snapshot, never reading
        return SpoolError(e.errno, e.strerror, str(spool_dir))
    return None


def _sources(prepared: list[_Prepared]) -> set[str]:
    return {p.source.path for p in prepared if p.source}


def reparse(agent: Agent, path: Path, size: int) -> SessionMeta:
    """Read a rewritten file's metadata from the start (rare: Pi migrations, rewrites)."""
    meta = SessionMeta()
    try:
        feed_complete_lines(path, size, lambda chunk: safe_feed(agent, meta, chunk, path))
    except OSError as e:
        log.warning("Cannot re-read %s for its metadata: %s", path, e.strerror or e)
    return meta
