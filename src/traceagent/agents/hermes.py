"""Hermes Agent (NousResearch): ``~/.hermes/state.db`` (SQLite, WAL), exported to STS per session.

The home is ``$HERMES_HOME`` (a profile path ``<root>/profiles/<name>`` means ``<root>``), else
``~/.hermes`` (``%LOCALAPPDATA%\\hermes`` on Windows; ``HERMES_DATA_DIR_SUFFIX`` is appended to
the default name). Each named profile has its own ``profiles/<name>/state.db``. ``sessions``
rows carry title, model, cwd and times (epoch seconds); ``messages`` rows are OpenAI-style
(``role``, ``content``, ``tool_calls`` JSON, ``tool_call_id``, ``reasoning``). Rows that a
rewind deactivated (``active = 0``, not ``compacted``) and hidden scaffolding are left out, so
the export is what the user saw. Compression splits a session into a chain linked by
``parent_session_id``; the link is kept in the header. Older installs wrote
``sessions/session_*.json`` documents, exported unless the database has the session.
``.env``, ``auth.json`` and ``config.yaml`` beside them are never read.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from traceagent.agents.base import Agent, ExportedSession, Root, SessionMeta, base_checks
from traceagent.agents.sqlite_ro import (
    SessionIds,
    columns,
    has_table,
    pick,
    read_only,
    sidecar_source,
    wal_token,
)
from traceagent.agents.sts import Message, Session, ToolCall, as_dict, exported, json_args, text_of, to_ms

log = logging.getLogger(__name__)

_DB = "state.db"


def _tool_calls(value: object) -> list[ToolCall]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    calls = []
    for i, call in enumerate(value if isinstance(value, list) else []):
        if not isinstance(call, dict):
            continue
        fn = as_dict(call.get("function")) or call
        name = str(fn.get("name") or "tool")
        calls.append(ToolCall(str(call.get("id") or f"call_{i}"), name, json_args(fn.get("arguments"))))
    return calls


def convert(row: Mapping[str, Any], model: str | None) -> Message | None:
    """One Hermes message row (or legacy message) as an STS message."""
    role = row.get("role")
    ts = to_ms(row.get("timestamp"))
    content = text_of(row.get("content"))
    if role == "assistant":
        reasoning = row.get("reasoning_content") or row.get("reasoning")
        return Message(
            role="assistant",
            content=content,
            reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
            tool_calls=_tool_calls(row.get("tool_calls")),
            timestamp=ts,
            model=model,
        )
    if role == "tool":
        call_id = row.get("tool_call_id")
        return Message(
            role="tool",
            content=content,
            tool_call_id=call_id if isinstance(call_id, str) else None,
            timestamp=ts,
            tool_name=row.get("tool_name") if isinstance(row.get("tool_name"), str) else None,
        )
    if role in ("user", "system"):
        return Message(role=str(role), content=content, timestamp=ts)
    return None


def to_session(info: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]) -> Session:
    """A Hermes session (row or legacy document) and its messages as STS."""
    model = info.get("model") if isinstance(info.get("model"), str) else None
    title = info.get("title")
    parent = info.get("parent_session_id")
    session = Session(
        harness="hermes",
        id=str(info.get("id") or info.get("session_id") or "unknown"),
        name=title if isinstance(title, str) and title.strip() else None,
        cwd=info.get("cwd") if isinstance(info.get("cwd"), str) else None,
        git_branch=info.get("git_branch") if isinstance(info.get("git_branch"), str) else None,
        parent_id=parent if isinstance(parent, str) else None,
    )
    source = info.get("source") or info.get("platform")
    if isinstance(source, str):
        session.extra["source"] = source
    if model:
        session.extra["model"] = model
    for row in messages:
        message = convert(row, model)
        if message is not None:
            session.messages.append(message)
    if session.messages and session.messages[0].timestamp is None:
        session.messages[0].timestamp = to_ms(info.get("started_at") or info.get("session_start"))
    return session


def iter_db_sessions(path: Path) -> Iterator[Session]:
    """Every session in a Hermes ``state.db``, read read-only."""
    with read_only(path) as conn:
        if not has_table(conn, "sessions") or not has_table(conn, "messages"):
            return
        scols = columns(conn, "sessions")
        fields = pick(
            scols, "id", "title", "model", "source", "started_at", "cwd", "git_branch", "parent_session_id"
        )
        mcols = columns(conn, "messages")
        mfields = pick(
            mcols,
            "role",
            "content",
            "tool_call_id",
            "tool_calls",
            "tool_name",
            "timestamp",
            "reasoning",
            "reasoning_content",
        )
        where = "session_id = ?"
        if "active" in mcols:
            where += " AND (active = 1" + (" OR compacted = 1)" if "compacted" in mcols else ")")
        if "display_kind" in mcols:
            where += " AND COALESCE(display_kind, '') <> 'hidden'"
        for row in conn.execute(f"SELECT {fields} FROM sessions ORDER BY started_at, id").fetchall():
            messages = [
                dict(m)
                for m in conn.execute(
                    f"SELECT {mfields} FROM messages WHERE {where} ORDER BY id", (row["id"],)
                )
            ]
            yield to_session(dict(row), messages)


def hermes_root(environ: Mapping[str, str], home: Path, platform: str) -> Path:
    """The Hermes root (the folder holding ``state.db`` and ``profiles/``) on ``platform``."""
    env = environ.get("HERMES_HOME", "").strip()
    if env:
        path = Path(env).expanduser()
        return path.parent.parent if path.parent.name == "profiles" else path
    suffix = environ.get("HERMES_DATA_DIR_SUFFIX", "")
    if platform.startswith("win"):
        local = environ.get("LOCALAPPDATA")
        return (Path(local) if local else home / "AppData" / "Local") / f"hermes{suffix}"
    return home / f".hermes{suffix}"


def _profile_prefix(rel: PurePosixPath) -> tuple[str, ...]:
    return rel.parts[:2] if len(rel.parts) >= 2 and rel.parts[0] == "profiles" else ()


class Hermes(Agent):
    """Hermes Agent sessions from ``state.db`` (and legacy JSON), converted to STS."""

    name = "hermes"
    display_name = "Hermes Agent"
    remote = "hermes"
    exports = True

    def __init__(self) -> None:
        self._ids_in_db = SessionIds("SELECT id FROM sessions")

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """The Hermes root; profiles are found inside it."""
        return [Root(self, hermes_root(environ, home, sys.platform), self.remote)]

    shallow = True

    def descend(self, rel_dir: PurePosixPath) -> bool:
        """``profiles/<name>`` and ``[profiles/<name>/]sessions``: not the checkout or its venv."""
        parts = rel_dir.parts
        if parts[0] == "profiles":
            return len(parts) <= 2 or (len(parts) == 3 and parts[2] == "sessions")
        return parts == ("sessions",)

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """``[profiles/<name>/]state.db`` (+ ``-wal``) and ``[…/]sessions/session_*.json``."""
        if not base_checks(rel):
            return False
        inner = PurePosixPath(*rel.parts[len(_profile_prefix(rel)) :])
        if len(inner.parts) == 1:
            return inner.name in (_DB, _DB + "-wal")
        return (
            len(inner.parts) == 2
            and inner.parts[0] == "sessions"
            and inner.name.startswith("session_")
            and inner.suffix == ".json"
        )

    def source_of(self, rel: PurePosixPath) -> PurePosixPath:
        """``state.db-wal`` → ``state.db``."""
        return sidecar_source(rel)

    def change_token(self, path: Path) -> tuple[int, int]:
        """The database with its ``-wal`` (a legacy JSON file: its own stat)."""
        return wal_token(path) if path.name == _DB else super().change_token(path)

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Exported sessions carry their metadata; nothing to read incrementally."""

    def export(self, path: Path) -> list[ExportedSession]:
        """Every session of a ``state.db``, or one legacy session (unless the database has it)."""
        if path.name == _DB:
            home = path.parent
            prefix = f"profiles/{home.name}/" if home.parent.name == "profiles" else ""
            return [exported(s, f"{prefix}{s.id}.jsonl") for s in iter_db_sessions(path) if s.messages]
        home = path.parent.parent
        try:
            document = json.loads(path.read_bytes())
        except ValueError as e:
            raise OSError(f"{path.name} is not complete JSON yet") from e
        if not isinstance(document, dict):
            return []
        session_id = str(document.get("session_id") or path.stem.removeprefix("session_"))
        if session_id in self._ids_in_db(home / _DB):
            return []
        raw = document.get("messages")
        session = to_session(
            {**document, "id": session_id},
            [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else [],
        )
        prefix = f"profiles/{home.name}/" if home.parent.name == "profiles" else ""
        return [exported(session, f"{prefix}{session_id}.jsonl")] if session.messages else []
