"""Reading an agent's live SQLite store without ever writing to it.

The store is opened with ``mode=ro`` (WAL-aware: committed transactions still in the ``-wal``
file are seen) and a busy timeout. Two cases need care:

* a WAL database whose ``-wal`` file is absent (the agent is not running): SQLite would
  create ``-wal``/``-shm`` beside it to open it, so it is opened ``immutable`` instead: with
  no WAL there is nothing but the main file, which only a checkpoint (after WAL writes)
  changes;
* a read-only connection that cannot open (a folder we may not write the ``-shm`` into, an
  old SQLite): the database and its ``-wal`` are copied to a temporary folder and the copy
  is read.

SQLite errors surface as :class:`StoreUnavailableError` (an ``OSError``), so the uploader retries
them with backoff instead of giving up on the store.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 5.0
_SIDECARS = ("-wal", "-shm", "-journal")


class StoreUnavailableError(OSError):
    """The database could not be read now (locked, being replaced, not a database)."""


def sidecar_source(rel: PurePosixPath) -> PurePosixPath:
    """``x.db-wal`` / ``x.db-shm`` / ``x.db-journal`` → ``x.db``; anything else unchanged."""
    for suffix in _SIDECARS:
        if rel.name.endswith(suffix):
            return rel.with_name(rel.name[: -len(suffix)])
    return rel


def wal_token(path: Path) -> tuple[int, int]:
    """``(size, mtime_ns)`` of a database combined with its ``-wal`` (committed writes land there)."""
    st = path.stat()
    size, mtime = st.st_size, st.st_mtime_ns
    try:
        wal = path.with_name(path.name + "-wal").stat()
    except FileNotFoundError:
        return size, mtime
    return size + wal.st_size, max(mtime, wal.st_mtime_ns)


def _is_wal_database(path: Path) -> bool:
    """Byte 18 of the SQLite header is 2 for a WAL-mode database."""
    try:
        with path.open("rb") as f:
            header = f.read(20)
    except OSError:
        return False
    return len(header) == 20 and header.startswith(b"SQLite format 3\x00") and header[18] == 2


def _connect(uri: str) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails now, not mid-export
    return conn


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A consistent read-only connection to the database at ``path`` (closed on exit)."""
    if not path.is_file():
        raise FileNotFoundError(2, "No such database", str(path))
    uri = path.resolve().as_uri() + "?mode=ro"
    if not path.with_name(path.name + "-wal").exists() and _is_wal_database(path):
        uri += "&immutable=1"
    copy_dir: str | None = None
    try:
        try:
            conn = _connect(uri)
        except sqlite3.OperationalError as e:
            log.debug("Read-only open of %s failed (%s); reading a copy", path, e)
            copy_dir = tempfile.mkdtemp(prefix="traceagent-db-")
            copy = Path(copy_dir) / path.name
            shutil.copy2(path, copy)
            wal = path.with_name(path.name + "-wal")
            if wal.exists():
                shutil.copy2(wal, copy.with_name(copy.name + "-wal"))
            conn = _connect(copy.as_uri())
        try:
            yield conn
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise StoreUnavailableError(f"cannot read {path.name}: {e}") from e
    finally:
        if copy_dir is not None:
            shutil.rmtree(copy_dir, ignore_errors=True)


def has_table(conn: sqlite3.Connection, table: str) -> bool:
    """True when ``table`` exists."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return row is not None


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The column names of ``table`` (empty when it does not exist): schemas drift across versions."""
    return {str(r[1]) for r in conn.execute(f'PRAGMA table_info("{table}")')}


def pick(available: set[str], *wanted: str) -> str:
    """``a, b, NULL AS c`` for a SELECT list: missing columns read as NULL."""
    return ", ".join(w if w in available else f"NULL AS {w}" for w in wanted)


class SessionIds:
    """Session ids already in a database, cached per database state.

    Agents that once wrote one file per session and later imported them into a database
    export a legacy file only when the database does not have that session.
    """

    def __init__(self, query: str) -> None:
        self._query = query
        self._cache: dict[Path, tuple[tuple[int, int], frozenset[str]]] = {}

    def __call__(self, db: Path) -> frozenset[str]:
        """The ids in ``db`` (empty when it is missing or unreadable)."""
        try:
            token = wal_token(db)
        except OSError:
            return frozenset()
        cached = self._cache.get(db)
        if cached and cached[0] == token:
            return cached[1]
        try:
            with read_only(db) as conn:
                ids = frozenset(str(r[0]) for r in conn.execute(self._query))
        except OSError:
            ids = frozenset()
        self._cache[db] = (token, ids)
        return ids
