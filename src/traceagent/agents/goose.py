"""Goose (block/goose): ``<data>/sessions/sessions.db`` (SQLite), exported to STS per session.

``<data>`` is ``$GOOSE_PATH_ROOT/data`` when set, else ``$XDG_DATA_HOME/goose`` /
``~/.local/share/goose`` (Linux; macOS too, with ``~/Library/Application Support/Block/goose``
used by some builds) or ``%APPDATA%\\Block\\goose\\data`` (Windows). The ``sessions`` table
has the name, working dir and times; ``messages`` holds one row per message with MCP-style
``content_json`` items (``text``, ``toolRequest``, ``toolResponse``, ``thinking``).
Compaction may replace a session's messages; the export shows whatever is there now.
Before the database, each session was ``<id>.jsonl`` (metadata line, then messages); those
are exported too unless the database already imported them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from traceagent.agents.base import Agent, ExportedSession, Root, SessionMeta, base_checks
from traceagent.agents.blocks import CallIds
from traceagent.agents.sqlite_ro import (
    SessionIds,
    columns,
    has_table,
    pick,
    read_only,
    sidecar_source,
    wal_token,
)
from traceagent.agents.sts import (
    Message,
    Session,
    ToolCall,
    as_dict,
    exported,
    json_args,
    jsonl_records,
    text_of,
    to_ms,
)

log = logging.getLogger(__name__)

_DB = "sessions.db"


def _call(item: dict[str, Any], ids: CallIds) -> ToolCall:
    outcome = as_dict(item.get("toolCall"))
    value = as_dict(outcome.get("value"))
    name = str(value.get("name") or "tool")
    return ToolCall(ids.call(item.get("id"), name), name, json_args(value.get("arguments")))


def _result(item: dict[str, Any]) -> str:
    outcome = as_dict(item.get("toolResult"))
    if outcome.get("status") == "error":
        return f"Error: {text_of(outcome.get('error'))}"
    value = outcome.get("value")
    if isinstance(value, dict) and "content" in value:
        text = text_of(value["content"])
        return f"Error: {text}" if value.get("isError") else text
    return text_of(value)


def convert(role: str, content: object, ids: CallIds, ts: int | None) -> list[Message]:
    """One Goose message (a role and its content items) as STS messages."""
    items = content if isinstance(content, list) else [{"type": "text", "text": text_of(content)}]
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text" and isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif kind == "thinking" and isinstance(item.get("thinking"), str):
            thinking.append(item["thinking"])
        elif kind in ("toolRequest", "frontendToolRequest"):
            calls.append(_call(item, ids))
        elif kind == "toolResponse":
            call_id = ids.result(item.get("id"), "tool")
            results.append(Message(role="tool", content=_result(item), tool_call_id=call_id, timestamp=ts))
        elif kind == "image":
            texts.append("[image]")
    out = list(results)
    if role == "assistant":
        out.append(
            Message(
                role="assistant",
                content="\n\n".join(texts),
                reasoning="\n\n".join(thinking) or None,
                tool_calls=calls,
                timestamp=ts,
            )
        )
    elif texts:
        out.append(Message(role="user", content="\n\n".join(texts), timestamp=ts))
    return out


def to_session(info: Mapping[str, Any], messages: Iterable[tuple[str, object, object]]) -> Session:
    """A Goose session (its row) and ``(role, content, created)`` messages as STS."""
    name = info.get("name") or info.get("description")
    session = Session(
        harness="goose",
        id=str(info.get("id") or "unknown"),
        name=name if isinstance(name, str) and name.strip() else None,
        cwd=info.get("working_dir") if isinstance(info.get("working_dir"), str) else None,
        is_subagent=info.get("session_type") == "sub_agent",
    )
    if isinstance(info.get("session_type"), str):
        session.extra["sessionType"] = info["session_type"]
    ids = CallIds()
    for role, content, created in messages:
        session.messages.extend(convert(role, content, ids, to_ms(created)))
    if session.messages and session.messages[0].timestamp is None:
        session.messages[0].timestamp = to_ms(info.get("created_at"))
    return session


def _visible(metadata: object) -> bool:
    """Messages marked not user-visible (injected context) are not part of what the user saw."""
    try:
        meta = json.loads(metadata) if isinstance(metadata, str) else None
    except ValueError:
        return True
    return not (isinstance(meta, dict) and meta.get("userVisible") is False)


def iter_db_sessions(path: Path) -> Iterator[Session]:
    """Every session in a Goose database, read read-only."""
    with read_only(path) as conn:
        if not has_table(conn, "sessions") or not has_table(conn, "messages"):
            return
        scols = columns(conn, "sessions")
        fields = pick(
            scols, "id", "name", "description", "session_type", "working_dir", "created_at", "updated_at"
        )
        mcols = columns(conn, "messages")
        mfields = pick(mcols, "role", "content_json", "created_timestamp", "metadata_json")
        for row in conn.execute(f"SELECT {fields} FROM sessions ORDER BY created_at, id").fetchall():
            messages = []
            for m in conn.execute(
                f"SELECT {mfields} FROM messages WHERE session_id = ? ORDER BY id", (row["id"],)
            ):
                if not _visible(m["metadata_json"]):
                    continue
                try:
                    content = json.loads(m["content_json"] or "[]")
                except ValueError:
                    content = m["content_json"]
                messages.append((str(m["role"]), content, m["created_timestamp"]))
            yield to_session(dict(row), messages)


def goose_data_dirs(environ: Mapping[str, str], home: Path, platform: str) -> list[Path]:
    """Where Goose keeps its data on ``platform`` (``sys.platform`` values)."""
    root = environ.get("GOOSE_PATH_ROOT")
    if root:
        return [Path(root).expanduser() / "data"]
    if platform.startswith("win"):
        appdata = environ.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
        return [base / "Block" / "goose" / "data"]
    xdg = environ.get("XDG_DATA_HOME")
    dirs = [(Path(xdg).expanduser() if xdg else home / ".local" / "share") / "goose"]
    if platform == "darwin":
        dirs.append(home / "Library" / "Application Support" / "Block" / "goose")
    return dirs


class Goose(Agent):
    """Goose sessions from its SQLite store (and legacy JSONL files), converted to STS."""

    name = "goose"
    display_name = "Goose"
    remote = "goose"
    exports = True

    def __init__(self) -> None:
        self._ids_in_db = SessionIds("SELECT id FROM sessions")

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``<data>/sessions`` for each data folder Goose may use on this OS."""
        dirs = goose_data_dirs(environ, home, sys.platform)
        return [
            Root(self, d / "sessions", self.remote if i == 0 else f"{self.remote}-{i + 1}")
            for i, d in enumerate(dirs)
        ]

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """``sessions.db`` and its ``-wal``; legacy ``<id>.jsonl`` beside it."""
        if not base_checks(rel) or len(rel.parts) != 1:
            return False
        return rel.name in (_DB, _DB + "-wal") or rel.suffix == ".jsonl"

    def source_of(self, rel: PurePosixPath) -> PurePosixPath:
        """``sessions.db-wal`` → ``sessions.db``."""
        return sidecar_source(rel)

    def change_token(self, path: Path) -> tuple[int, int]:
        """The database and its ``-wal`` together."""
        return wal_token(path)

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Exported sessions carry their metadata; nothing to read incrementally."""

    def export(self, path: Path) -> list[ExportedSession]:
        """Every session of the database, or one legacy session (unless imported)."""
        if path.suffix == ".jsonl":
            if path.stem in self._ids_in_db(path.with_name(_DB)):
                return []
            records = jsonl_records(path.read_bytes())
            if not records:
                return []
            info = {"id": path.stem, **records[0]}
            messages = [(str(r.get("role")), r.get("content"), r.get("created")) for r in records[1:]]
            session = to_session(info, messages)
            return [exported(session, f"{path.stem}.jsonl")] if session.messages else []
        return [exported(s, f"{s.id}.jsonl") for s in iter_db_sessions(path) if s.messages]
