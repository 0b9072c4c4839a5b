"""What every agent source provides, and the byte-level helpers their metadata readers share.

Metadata is read from the records themselves (never from lossy folder names). Readers work
on whole chunks of complete lines with ``bytes.find``/``rfind`` and decode JSON only for
the few lines that matter, so a 200 MB transcript costs a memory scan, not a million
``json.loads`` calls.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

#: Names an agent (or an editor) writes while saving; never uploaded.
_TEMP_NAME = re.compile(
    r"(^\.|~$|\.tmp$|\.tmp[-.]|\.swp$|\.lock$|\.part$|\.unreadable-|\.deleted\.|\.bak$)", re.IGNORECASE
)
#: Files that sit beside transcripts and must never leave the machine.
NEVER_UPLOAD = frozenset(
    {
        "history.jsonl",
        "settings.json",
        "settings.local.json",
        ".credentials.json",
        "auth.json",
        "secrets.json",
    }
)

TITLE_MAX = 80


def is_temp_name(name: str) -> bool:
    """True for editor/agent temp, lock and hidden files."""
    return bool(_TEMP_NAME.search(name))


def shorten(text: str, limit: int = TITLE_MAX) -> str:
    """Collapse whitespace and cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


@dataclasses.dataclass(frozen=True)
class Root:
    """One session folder of one agent and the remote folder it maps to."""

    #: The agent that writes here (its ``name`` is the ledger's ``agent`` column).
    agent: Agent
    path: Path
    remote: str  #: e.g. "claude", "codex", "codex-archived"


_TS = re.compile(rb'"timestamp"\s*:\s*"(\d{4}-\d\d-\d\d[^"]*)"')


def _json_string_at(buf: bytes, start: int) -> str | None:
    """Decode the JSON string literal that starts at ``buf[start] == '"'``."""
    i = start + 1
    n = len(buf)
    while i < n:
        c = buf[i]
        if c == 0x5C:  # backslash: skip the escaped character
            i += 2
            continue
        if c == 0x22:
            try:
                value = json.loads(buf[start : i + 1])
            except ValueError:
                return None
            return value if isinstance(value, str) else None
        if c == 0x0A:
            return None
        i += 1
    return None


_FIELD_CACHE: dict[str, re.Pattern[bytes]] = {}


def _field_re(name: str) -> re.Pattern[bytes]:
    """``"name"`` then a colon and the opening quote of a string value (any spacing)."""
    rx = _FIELD_CACHE.get(name)
    if rx is None:
        rx = _FIELD_CACHE[name] = re.compile(rb'"' + re.escape(name.encode()) + rb'"\s*:\s*"')
    return rx


def find_str_field(buf: bytes, name: str, *, last: bool = False, skip: tuple[str, ...] = ()) -> str | None:
    """The value of the first (or last) ``"name":"..."`` in ``buf``, skipping values in ``skip``."""
    rx = _field_re(name)
    quoted = b'"' + name.encode() + b'"'
    if last:
        # Scan back with rfind (fast, in C) and confirm each hit with the regex.
        end = len(buf)
        while True:
            pos = buf.rfind(quoted, 0, end)
            if pos < 0:
                return None
            m = rx.match(buf, pos)
            if m:
                value = _json_string_at(buf, m.end() - 1)
                if value and value not in skip:
                    return value
            end = pos
    for m in rx.finditer(buf):
        value = _json_string_at(buf, m.end() - 1)
        if value and value not in skip:
            return value
    return None


def line_around(buf: bytes, pos: int) -> bytes:
    """The whole line of ``buf`` that contains offset ``pos``."""
    start = buf.rfind(b"\n", 0, pos) + 1
    end = buf.find(b"\n", pos)
    return buf[start : end if end >= 0 else len(buf)]


#: pattern -> a literal every match contains (checked with a fast ``in`` before the regex).
_LITERALS: dict[re.Pattern[bytes], bytes] = {}


def type_marker(value: str) -> re.Pattern[bytes]:
    """A pattern for ``"type":"value"`` with any spacing (compact JSON is the common case)."""
    rx = re.compile(rb'"type"\s*:\s*"' + re.escape(value.encode()) + rb'"')
    _LITERALS[rx] = b'"' + value.encode() + b'"'
    return rx


def iter_lines_with(buf: bytes, marker: bytes | re.Pattern[bytes]) -> Iterator[bytes]:
    """Each line containing ``marker`` (once per line), lazily, in file order.

    Lazy so that "the first user prompt" stops at the first match instead of slicing out
    every user line of a 100 MB chunk; a chunk without the marker's literal is skipped at
    memory-search speed.
    """
    if isinstance(marker, re.Pattern):
        literal = _LITERALS.get(marker)
        if literal is not None and literal not in buf:
            return
        rx = marker
    else:
        if marker not in buf:
            return
        rx = re.compile(re.escape(marker))
    pos = 0
    while True:
        m = rx.search(buf, pos)
        if m is None:
            return
        end = buf.find(b"\n", m.start())
        end = len(buf) if end < 0 else end
        yield line_around(buf, m.start())
        pos = end + 1


def lines_with(buf: bytes, marker: bytes | re.Pattern[bytes], *, reverse: bool = False) -> list[bytes]:
    """Every line containing ``marker`` (each line once), in file order or reversed."""
    out = list(iter_lines_with(buf, marker))
    return out[::-1] if reverse else out


def parse_line(line: bytes) -> dict[str, Any] | None:
    """``json.loads`` of one line; None for malformed lines (they are skipped, never fatal)."""
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


@dataclasses.dataclass
class SessionMeta:
    """What the index knows about one session file. Serialised as JSON in the state DB."""

    session_id: str | None = None
    title: str | None = None  #: an explicit title (AI title, summary, session name)
    first_prompt: str | None = None
    cwd: str | None = None
    git_branch: str | None = None
    model: str | None = None
    first_ts: str | None = None
    last_ts: str | None = None
    is_subagent: bool = False
    #: How many bytes of the file this metadata has read (incremental parsing of appends).
    parsed_bytes: int = 0
    malformed_lines: int = 0

    @property
    def display_title(self) -> str:
        """The title to show: explicit title, else the first prompt, else the session id."""
        return shorten(self.title or self.first_prompt or self.session_id or "untitled session")

    def to_json(self) -> str:
        """Compact JSON for the state DB."""
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> SessionMeta:
        """Inverse of :meth:`to_json`; tolerant of older/unknown keys."""
        if not text:
            return cls()
        try:
            raw = json.loads(text)
        except ValueError:
            return cls()
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in fields})

    def feed_common(self, chunk: bytes) -> None:
        """Timestamps and malformed-line count, shared by every agent."""
        if self.first_ts is None:
            m = _TS.search(chunk)
            if m:
                self.first_ts = m.group(1).decode("ascii", "replace")
        # The last timestamp: scan back line by line (lines are short near the end).
        end = len(chunk)
        for _ in range(64):
            start = chunk.rfind(b"\n", 0, max(end - 1, 0)) + 1
            m = _TS.search(chunk, start, end)
            if m:
                ts = m.group(1).decode("ascii", "replace")
                # Records are not always in time order (Claude's summary lines); keep the latest.
                if self.last_ts is None or ts > self.last_ts:
                    self.last_ts = ts
                break
            if start == 0:
                break
            end = start


@dataclasses.dataclass
class ExportedSession:
    """One session converted to the Hub's Session Traces Format by an agent's exporter."""

    rel: PurePosixPath  #: path under the agent's remote folder, e.g. ``<project>/<id>.jsonl``
    data: bytes  #: complete STS JSONL lines
    meta: SessionMeta
    mtime: float | None = None  #: when the session last changed (Unix time), if known


class Agent(abc.ABC):
    """A coding agent whose session transcripts traceagent mirrors."""

    name: ClassVar[str]  #: registry and config name: "claude"
    display_name: ClassVar[str]  #: "Claude Code"
    remote: ClassVar[str]  #: the remote folder of the primary root
    #: True when the agent's files are converted (``export``) rather than uploaded as they are.
    exports: ClassVar[bool] = False
    #: True when the root is a data folder with much else in it: then only the folders that
    #: :meth:`descend` allows are watched, each on its own (no recursive watch of caches).
    shallow: ClassVar[bool] = False

    def __repr__(self) -> str:
        # Roots hold their agent: keep their repr short (logs, test failures).
        return f"<agent {self.name}>"

    def descend(self, rel_dir: PurePosixPath) -> bool:
        """Whether a folder (relative to the root) may hold sessions: scans skip the others."""
        return True

    def export(self, path: Path) -> list[ExportedSession]:
        """Convert the store at ``path`` into one STS file per session (exporting agents)."""
        raise NotImplementedError(f"{self.name} uploads its files as they are")

    def source_of(self, rel: PurePosixPath) -> PurePosixPath:
        """The store a watched file belongs to (``x.db-wal`` → ``x.db``); itself by default.

        Must be idempotent: ``source_of(source_of(rel)) == source_of(rel)``.
        """
        return rel

    def change_token(self, path: Path) -> tuple[int, int]:
        """``(size, mtime_ns)`` that changes whenever the store changes (the restart fast path).

        Exporting agents with a SQLite store combine the database and its ``-wal`` file.
        """
        st = path.stat()
        return st.st_size, st.st_mtime_ns

    @abc.abstractmethod
    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """Session folders where the agent writes, whether or not they exist yet."""

    @abc.abstractmethod
    def is_transcript(self, rel: PurePosixPath) -> bool:
        """Allow-list: is this path (relative to a root) a file to upload?"""

    @abc.abstractmethod
    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Update ``meta`` from a chunk of complete lines (the next bytes of the file)."""

    def is_subagent(self, rel: PurePosixPath) -> bool:
        """Files uploaded with the session but not listed as traces of their own."""
        return False

    def is_whole_json(self, rel: PurePosixPath) -> bool:
        """Sidecars that are one JSON document (uploaded only when they parse)."""
        return rel.suffix == ".json"

    def roots(self, environ: Mapping[str, str], home: Path, configured: tuple[Path, ...] = ()) -> list[Root]:
        """The roots to watch: the configured paths if any, else the defaults."""
        if not configured:
            return self.default_roots(environ, home)
        return [
            Root(self, p, self.remote if i == 0 else f"{self.remote}-{i + 1}")
            for i, p in enumerate(configured)
        ]


def base_checks(rel: PurePosixPath) -> bool:
    """Checks every agent applies first: no temp names, no credentials, no hidden folders."""
    if not rel.parts or rel.name in NEVER_UPLOAD or is_temp_name(rel.name):
        return False
    return not any(part.startswith(".") for part in rel.parts[:-1])
