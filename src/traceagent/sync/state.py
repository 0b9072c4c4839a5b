"""``state.db``: the durable ledger and queue (SQLite in WAL mode).

One row per known transcript. A row is "in step" when the bytes last uploaded (``up_size``
bytes with hash ``up_hash``) are what the file's complete lines hold now. The stat seen at
the last check (``ck_size``, ``ck_mtime_ns``) lets a restart skip unchanged files with a
``stat`` and no read. Nothing is recorded as uploaded until the sink call returned, so a
kill -9 at any moment loses nothing: whatever differs is simply pending again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from traceagent.errors import UserError
from traceagent.paths import access_problem

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    key TEXT NOT NULL,
    is_trace INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'pending',
    ck_size INTEGER,
    ck_mtime_ns INTEGER,
    up_size INTEGER NOT NULL DEFAULT 0,
    up_hash TEXT,
    uploaded_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    meta TEXT,
    source TEXT,
    out_size INTEGER,
    up_marks TEXT
);
CREATE INDEX IF NOT EXISTS files_queue ON files(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS files_recent ON files(is_trace, ck_mtime_ns);
CREATE INDEX IF NOT EXISTS files_source ON files(source);
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS redactions (rule TEXT PRIMARY KEY, count INTEGER NOT NULL);
"""


class _Kv:
    """The keys of the ``kv`` table, each named here only (see the accessors of :class:`StateDB`)."""

    SCHEMA = "schema"
    PAUSED_UNTIL = "paused_until"
    DESTINATION = "destination"
    DESTINATION_IDENTITY = "destination_identity"
    LAST_ERROR = "last_error"
    LAST_UPLOAD_AT = "last_upload_at"
    SIGNED_OUT = "signed_out"
    WRITE_CHECK = "write_check"


# Row statuses:
#   pending  differs from the remote copy; queued
#   ok       in step (a torn last line may be waiting, which is not a difference)
#   error    a per-file problem; retried with backoff and whenever the file changes
#   gone     the local file vanished; its remote copy is kept


@dataclasses.dataclass(frozen=True)
class FileRow:
    """One row of the ``files`` table."""

    path: str
    agent: str
    key: str
    is_trace: bool
    status: str
    ck_size: int | None
    ck_mtime_ns: int | None
    up_size: int
    up_hash: str | None
    uploaded_at: float | None
    attempts: int
    next_attempt_at: float
    last_error: str | None
    meta: str | None
    #: For a session exported from an agent's store: the store's path (else None).
    source: str | None
    #: Bytes of the remote copy as last uploaded (after redaction); None before it is known.
    out_size: int | None
    #: Fingerprints of the uploaded bytes (``snapshot.make_marks``), kept where the sink can
    #: append: the next upload then sends only the lines added after ``up_size``.
    up_marks: str | None = None


class Record(NamedTuple):
    """One upload that landed, for :meth:`StateDB.record_uploaded`."""

    path: str
    ck_size: int
    ck_mtime_ns: int
    #: Source bytes covered (complete lines) and their hash (after an append: chained,
    #: ``snapshot.chain_hash``).
    up_size: int
    up_hash: str
    meta: str | None
    #: Bytes of the remote copy (after redaction).
    out_size: int
    #: Fingerprints for the next append (None: the next upload sends the file whole).
    marks: str | None = None


class PendingItem(NamedTuple):
    """One file to queue, for :meth:`StateDB.mark_pending`."""

    path: str
    agent: str  #: the agent's name (``Agent.name``)
    key: str  #: the remote key
    is_trace: bool  #: a main transcript (listed as a trace), not a sidecar or subagent file


class Checked(NamedTuple):
    """What the ledger last read of a file (:meth:`StateDB.checked_stats`)."""

    size: int | None
    mtime_ns: int | None
    status: str


_COLUMNS = ", ".join(f.name for f in dataclasses.fields(FileRow))


class StateAccessError(UserError):
    """``state.db`` cannot be opened as needed (permissions, a corrupt file seen read-only).

    The message is one line naming the path and what fixes it; it is never a reason to move
    the database aside."""


#: SQLite's primary result codes that mean "this file is not a sound database" (the only
#: reason to move a ledger aside) and those that mean "you may not write (or open) it".
_SQLITE_CORRUPT = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_SQLITE_NO_ACCESS = (3, 8, 14, 23)  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_AUTH


def _primary_code(e: sqlite3.Error) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


class StateDB:
    """Thread-safe access to ``state.db``. One connection, serialised by a lock.

    With ``read_only`` (``status``, ``open-last``...) nothing on disk changes: the file is
    opened read-only, never created, migrated or moved aside; a missing one reads as empty.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        if not read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except PermissionError:
                raise StateAccessError(access_problem(path.parent)) from None
        self._lock = threading.RLock()
        self._conn = self._open_read_only(path) if read_only else self._open(path)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        # Asked first: SQLite would open an unwritable file read-only and leave a -wal/-shm.
        if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise StateAccessError(access_problem(path))
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across a process crash in WAL mode (only power loss can roll
            # back the last transactions, and then the files are simply pending again).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(
                _SCHEMA.replace("CREATE INDEX IF NOT EXISTS files_source ON files(source);", "")
            )
            columns = {r[1] for r in conn.execute("PRAGMA table_info(files)")}
            if "source" not in columns:  # a state.db from before exported sources
                conn.execute("ALTER TABLE files ADD COLUMN source TEXT")
            if "out_size" not in columns:  # a state.db from before remote sizes were kept
                conn.execute("ALTER TABLE files ADD COLUMN out_size INTEGER")
            if "up_marks" not in columns:  # a state.db from before appends
                conn.execute("ALTER TABLE files ADD COLUMN up_marks TEXT")
            conn.execute("CREATE INDEX IF NOT EXISTS files_source ON files(source)")
            conn.execute("INSERT OR IGNORE INTO kv(k, v) VALUES(?, ?)", (_Kv.SCHEMA, str(SCHEMA_VERSION)))
            # SQLite opens a file it may not write (root-owned, chattr +i) read-only without a
            # word: a real write now finds that, not the first upload's bookkeeping.
            conn.execute("UPDATE kv SET v = v WHERE k = ?", (_Kv.SCHEMA,))
        except sqlite3.DatabaseError as e:
            if conn is not None:
                conn.close()
            if _primary_code(e) not in _SQLITE_CORRUPT:
                if _primary_code(e) in _SQLITE_NO_ACCESS:
                    raise StateAccessError(access_problem(path)) from None
                raise
            # A corrupt ledger is rebuilt from the disk scan: uploads are idempotent.
            broken = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            try:
                path.rename(broken)
                for suffix in ("-wal", "-shm"):
                    Path(str(path) + suffix).unlink(missing_ok=True)
            except PermissionError:
                raise StateAccessError(access_problem(path)) from None
            log.error(
                "State database %s is corrupt (%s); moved it to %s and starting afresh", path, e, broken
            )
            return StateDB._open(path)
        return conn

    @staticmethod
    def _open_read_only(path: Path) -> sqlite3.Connection:
        """Open ``state.db`` without changing anything on disk (not even a ``-wal`` or ``-shm``)."""
        if not path.exists():  # nothing learned yet: an empty ledger, and no file is created
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            conn.executescript(_SCHEMA)
            return conn
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        # After a crash the last transactions are in the WAL: read it through the existing
        # shared memory. Otherwise "immutable": SQLite creates no -wal/-shm file (a root-run
        # `sudo traceagent status` must not leave root-owned files behind).
        live = wal.exists() and wal.stat().st_size > 0 and shm.exists()
        uri = path.absolute().as_uri()
        attempts = (
            [f"{uri}?mode=ro", f"{uri}?mode=ro&immutable=1"] if live else [f"{uri}?mode=ro&immutable=1"]
        )
        for i, target in enumerate(attempts):
            try:
                conn = sqlite3.connect(target, uri=True, check_same_thread=False, isolation_level=None)
                try:
                    StateDB._shim_old_schema(conn)
                except BaseException:
                    conn.close()
                    raise
                return conn
            except sqlite3.DatabaseError as e:
                code = _primary_code(e)
                if code in _SQLITE_CORRUPT:
                    raise StateAccessError(
                        f"State database {path} is corrupt ({e}); `traceagent run` or `traceagent sync` "
                        "moves it aside and rebuilds it from the session files."
                    ) from None
                if i + 1 < len(attempts):
                    continue
                if code in _SQLITE_NO_ACCESS:
                    raise StateAccessError(access_problem(path, what="read")) from None
                raise
        raise AssertionError("unreachable")

    @staticmethod
    def _shim_old_schema(conn: sqlite3.Connection) -> None:
        """Read an older (or empty) ``state.db`` as the current schema, in TEMP objects only."""
        tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for part in _SCHEMA.split(";"):
            stmt = part.strip()
            if stmt.startswith("CREATE TABLE"):
                name = stmt.split()[5]
                if name not in tables:
                    conn.execute(stmt.replace("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1))
        if "files" in tables:
            columns = {r[1] for r in conn.execute("PRAGMA main.table_info(files)")}
            missing = [f.name for f in dataclasses.fields(FileRow) if f.name not in columns]
            if missing:  # a TEMP view shadows main.files for unqualified names
                extra = ", ".join(f"NULL AS {m}" for m in missing)
                conn.execute(f"CREATE TEMP VIEW files AS SELECT *, {extra} FROM main.files")

    def close(self) -> None:
        """Close the connection (checkpoints the WAL)."""
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error:
                # A COMMIT that failed (disk full) may leave the transaction open; every later
                # BEGIN would then fail even after space is freed.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    # -- key/value settings the machine keeps (pause, destination in use, ...) -----------------
    # Each ``kv`` key is named once, in :class:`_Kv`; callers use the typed accessors below.

    def _get(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _put(self, key: str, value: str | None) -> None:
        with self._lock:
            if value is None:
                self._conn.execute("DELETE FROM kv WHERE k = ?", (key,))
            else:
                self._conn.execute("INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)", (key, value))

    def _get_float(self, key: str) -> float | None:
        raw = self._get(key)
        if raw is None:
            return None
        try:
            return float(raw)
        except ValueError:  # a value nobody should have written: read as absent
            return None

    @property
    def paused_until(self) -> float | None:
        """When a pause ends (Unix time; ``inf``: until resumed), None when not paused.

        A pause that has ended already is still returned: the caller compares it with its clock."""
        return self._get_float(_Kv.PAUSED_UNTIL)

    @paused_until.setter
    def paused_until(self, until: float | None) -> None:
        self._put(_Kv.PAUSED_UNTIL, None if until is None else repr(float(until)))

    @property
    def destination(self) -> str | None:
        """The destination (``Sink.location``) the uploads in the ledger went to."""
        return self._get(_Kv.DESTINATION)

    @destination.setter
    def destination(self, location: str | None) -> None:
        self._put(_Kv.DESTINATION, location)

    @property
    def destination_identity(self) -> str | None:
        """The identity (``Sink.identity()``) of that destination, None when not known yet."""
        return self._get(_Kv.DESTINATION_IDENTITY)

    @destination_identity.setter
    def destination_identity(self, identity: str | None) -> None:
        self._put(_Kv.DESTINATION_IDENTITY, identity)

    @property
    def last_error(self) -> str | None:
        """The last destination error, kept across restarts until uploads work again."""
        return self._get(_Kv.LAST_ERROR)

    @last_error.setter
    def last_error(self, message: str | None) -> None:
        self._put(_Kv.LAST_ERROR, message)

    @property
    def last_upload_at(self) -> float | None:
        """When the last upload landed (Unix time; written by :meth:`record_uploaded`)."""
        return self._get_float(_Kv.LAST_UPLOAD_AT)

    @property
    def signed_out(self) -> bool:
        """The user signed out on purpose: the local folder is the destination until a sign-in."""
        return self._get(_Kv.SIGNED_OUT) == "1"

    @signed_out.setter
    def signed_out(self, value: bool) -> None:
        self._put(_Kv.SIGNED_OUT, "1" if value else None)

    def check_writes(self, now: float) -> None:
        """Write and delete a value: raises (disk full, read-only) while state writes fail."""
        self._put(_Kv.WRITE_CHECK, repr(now))
        self._put(_Kv.WRITE_CHECK, None)

    # -- files ---------------------------------------------------------------------------------

    def row(self, path: str) -> FileRow | None:
        """The row of one file."""
        with self._lock:
            r = self._conn.execute(f"SELECT {_COLUMNS} FROM files WHERE path = ?", (path,)).fetchone()
        return None if r is None else FileRow(*r)

    def checked_stats(self) -> dict[str, Checked]:
        """``path -> (ck_size, ck_mtime_ns, status)`` for every row: the restart fast path."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT path, ck_size, ck_mtime_ns, status FROM files WHERE source IS NULL"
            ).fetchall()
        return {p: Checked(s, m, st) for p, s, m, st in rows}

    def mark_pending(self, items: Iterable[PendingItem], *, source: str | None = None) -> int:
        """Queue files ``(path, agent, key, is_trace)``; new files get a row. Returns the count.

        A file in the error state is queued again at once: it changed, so the error may be gone.
        ``source`` marks rows that are sessions exported from that store.
        """
        n = 0
        with self.transaction() as c:
            for path, agent, key, is_trace in items:
                c.execute(
                    "INSERT INTO files(path, agent, key, is_trace, status, source) VALUES(?, ?, ?, ?, 'pending', ?) "
                    "ON CONFLICT(path) DO UPDATE SET status = 'pending', next_attempt_at = 0, "
                    "agent = excluded.agent, key = excluded.key, is_trace = excluded.is_trace",
                    (path, agent, key, int(is_trace), source),
                )
                n += 1
        return n

    def export_hashes(self, source: str) -> dict[str, str]:
        """``virtual path -> hash uploaded`` for the sessions exported from ``source``."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT path, up_hash FROM files WHERE source = ? AND up_hash IS NOT NULL", (source,)
            ).fetchall()
        return {str(p): str(h) for p, h in rows}

    def mark_gone(self, paths: Iterable[str]) -> None:
        """The files vanished locally. Their rows (and remote copies) stay."""
        with self.transaction() as c:
            c.executemany("UPDATE files SET status = 'gone' WHERE path = ?", [(p,) for p in paths])

    def due(self, now: float, limit: int, agents: Sequence[str] | None = None) -> list[FileRow]:
        """Queued files (of ``agents`` when given) whose next attempt time has come."""
        # Exported sessions are (re)built from their store's row, never queued by themselves.
        sql = (
            f"SELECT {_COLUMNS} FROM files WHERE status IN ('pending', 'error') AND next_attempt_at <= ? "
            "AND source IS NULL"
        )
        args: list[object] = [now]
        if agents is not None:
            sql += f" AND agent IN ({', '.join('?' for _ in agents)})"
            args.extend(agents)
        sql += " ORDER BY attempts, next_attempt_at LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [FileRow(*r) for r in rows]

    def next_due_time(self, agents: Sequence[str] | None = None) -> float | None:
        """When the next queued file (of ``agents``) becomes due (None when none is queued)."""
        sql = "SELECT MIN(next_attempt_at) FROM files WHERE status IN ('pending', 'error') AND source IS NULL"
        args: list[object] = []
        if agents is not None:
            sql += f" AND agent IN ({', '.join('?' for _ in agents)})"
            args.extend(agents)
        with self._lock:
            row = self._conn.execute(sql, args).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def record_checked(self, path: str, size: int, mtime_ns: int, meta: str | None) -> None:
        """The file was read and holds nothing new to upload (e.g. only a torn last line)."""
        with self.transaction() as c:
            c.execute(
                "UPDATE files SET status = 'ok', ck_size = ?, ck_mtime_ns = ?, attempts = 0, "
                "last_error = NULL, meta = COALESCE(?, meta) WHERE path = ?",
                (size, mtime_ns, meta, path),
            )

    def record_uploaded(self, entries: Sequence[Record], redactions: dict[str, int], now: float) -> None:
        """Uploads that landed."""
        with self.transaction() as c:
            c.executemany(
                "UPDATE files SET status = 'ok', ck_size = ?, ck_mtime_ns = ?, up_size = ?, up_hash = ?, "
                "uploaded_at = ?, attempts = 0, next_attempt_at = 0, last_error = NULL, "
                "meta = COALESCE(?, meta), out_size = ?, up_marks = ? WHERE path = ?",
                [
                    (r.ck_size, r.ck_mtime_ns, r.up_size, r.up_hash, now, r.meta, r.out_size, r.marks, r.path)
                    for r in entries
                ],
            )
            for rule, count in redactions.items():
                c.execute(
                    "INSERT INTO redactions(rule, count) VALUES(?, ?) "
                    "ON CONFLICT(rule) DO UPDATE SET count = count + excluded.count",
                    (rule, count),
                )
            c.execute("INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)", (_Kv.LAST_UPLOAD_AT, repr(now)))

    def record_error(
        self, path: str, message: str, retry_at: float, *, stat: tuple[int, int] | None = None
    ) -> None:
        """A per-file failure: keep it queued, retry at ``retry_at``.

        ``stat`` (size, mtime_ns) records the file as read, so a restart does not retry a file
        that can only fail again until it changes (binary content).
        """
        with self.transaction() as c:
            c.execute(
                "UPDATE files SET status = 'error', attempts = attempts + 1, next_attempt_at = ?, "
                "last_error = ?, ck_size = COALESCE(?, ck_size), ck_mtime_ns = COALESCE(?, ck_mtime_ns) "
                "WHERE path = ?",
                (retry_at, message, stat[0] if stat else None, stat[1] if stat else None, path),
            )

    def defer(self, paths: Iterable[str], retry_at: float) -> None:
        """Postpone queued files (queue-wide backoff) without counting a per-file failure."""
        with self.transaction() as c:
            c.executemany(
                "UPDATE files SET next_attempt_at = ? WHERE path = ? AND status IN ('pending', 'error')",
                [(retry_at, p) for p in paths],
            )

    def release_all(self) -> None:
        """Make every queued file due now ("Sync now", resume, a new token)."""
        with self._lock:
            self._conn.execute("UPDATE files SET next_attempt_at = 0 WHERE status IN ('pending', 'error')")

    def reset_uploads(self) -> None:
        """The destination changed: every file must be uploaded again."""
        with self._lock:
            self._conn.execute(
                "UPDATE files SET up_size = 0, up_hash = NULL, uploaded_at = NULL, ck_size = NULL, out_size = NULL, "
                "up_marks = NULL, ck_mtime_ns = NULL, status = CASE WHEN status = 'gone' THEN 'gone' ELSE 'pending' END, "
                "attempts = 0, next_attempt_at = 0"
            )

    def uploaded_rows(self, agents: Sequence[str] | None = None) -> list[tuple[str, str, int | None, bool]]:
        """``(path, key, out_size, gone)`` of every file whose copy the destination should hold
        (``gone``: the local file, or the store a session was exported from, vanished)."""
        sql = (
            "SELECT f.path, f.key, f.out_size, f.status = 'gone' OR COALESCE(s.status = 'gone', 0) "
            "FROM files f LEFT JOIN files s ON s.path = f.source "
            "WHERE f.up_hash IS NOT NULL AND f.status IN ('ok', 'gone')"
        )
        args: list[object] = []
        if agents is not None:
            sql += f" AND f.agent IN ({', '.join('?' for _ in agents)})"
            args.extend(agents)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY f.key", args).fetchall()
        return [(str(p), str(k), None if n is None else int(n), bool(g)) for p, k, n, g in rows]

    def resend(self, paths: Iterable[str]) -> None:
        """Upload these files again (their remote copies are missing or differ). A session
        exported from a store is sent again through its store's next export."""
        wanted = [(p,) for p in paths]
        forget = (
            "up_size = 0, up_hash = NULL, out_size = NULL, ck_size = NULL, ck_mtime_ns = NULL, "
            "status = 'pending', attempts = 0, next_attempt_at = 0"
        )
        with self.transaction() as c:
            c.executemany(
                "UPDATE files SET status = 'pending', ck_size = NULL, ck_mtime_ns = NULL, attempts = 0, "
                "next_attempt_at = 0 WHERE status != 'gone' AND path = (SELECT source FROM files WHERE path = ?)",
                wanted,
            )
            c.executemany(f"UPDATE files SET {forget} WHERE path = ? AND status != 'gone'", wanted)

    # -- what the front ends show --------------------------------------------------------------

    def counts(self, agents: Sequence[str] | None = None) -> dict[str, int]:
        """Rows per status. With ``agents``, files of other (switched-off) agents are not queued."""
        # An exported session waiting for its store's next export is not a queued file either.
        sql = "SELECT status, COUNT(*) FROM files WHERE (source IS NULL OR status != 'pending')"
        args: list[object] = []
        if agents is not None:
            sql += f" AND (status NOT IN ('pending', 'error') OR agent IN ({', '.join('?' for _ in agents)}))"
            args.extend(agents)
        with self._lock:
            rows = self._conn.execute(sql + " GROUP BY status", args).fetchall()
        return {str(s): int(n) for s, n in rows}

    def sessions_per_agent(self) -> dict[str, int]:
        """How many traces (not subagent files) each agent has in the index."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT agent, COUNT(*) FROM files WHERE is_trace = 1 GROUP BY agent"
            ).fetchall()
        return {str(a): int(n) for a, n in rows}

    def recent(
        self, limit: int, agents: Sequence[str] | None = None, *, now: float | None = None
    ) -> list[FileRow]:
        """Uploaded traces, most recently modified first: the ``limit`` latest modified by ``now``
        (default: the current time), then every one modified after it (a clock in the future,
        ``touch -d``), which only the caller can rank (by their record times). Both use the index."""
        sql = f"SELECT {_COLUMNS} FROM files WHERE is_trace = 1 AND up_size > 0"
        args: list[object] = []
        if agents is not None:
            sql += f" AND agent IN ({', '.join('?' for _ in agents)})"
            args.extend(agents)
        now_ns = int((time.time() if now is None else now) * 1e9)
        with self._lock:
            rows = self._conn.execute(
                sql + " AND ck_mtime_ns <= ? ORDER BY ck_mtime_ns DESC LIMIT ?", [*args, now_ns, limit]
            ).fetchall()
            rows += self._conn.execute(
                sql + " AND ck_mtime_ns > ? ORDER BY ck_mtime_ns DESC", [*args, now_ns]
            ).fetchall()
        return [FileRow(*r) for r in rows]

    def errors(self, limit: int = 20) -> list[FileRow]:
        """Files with a per-file problem, newest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM files WHERE status = 'error' ORDER BY next_attempt_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [FileRow(*r) for r in rows]

    def redaction_counts(self) -> dict[str, int]:
        """Secrets redacted so far, per rule."""
        with self._lock:
            rows = self._conn.execute("SELECT rule, count FROM redactions ORDER BY rule").fetchall()
        return {str(r): int(n) for r, n in rows}
