"""OpenCode: ``$XDG_DATA_HOME/opencode/opencode.db`` (SQLite, WAL), exported to STS per session.

OpenCode's data folder is ``xdg-basedir``'s data dir + ``/opencode`` on every OS
(``~/.local/share/opencode`` unless ``XDG_DATA_HOME`` is set; ``OPENCODE_DATA_DIR`` is
ccusage's variable, not OpenCode's). Since v1.2 sessions live in ``opencode.db``
(``opencode-<channel>.db`` for other release channels): ``session`` rows, ``message`` rows
whose ``data`` JSON has the role and model, and ``part`` rows (text, reasoning, tool calls
with their state and output) updated in place while streaming. The database is read
read-only and consistently (``sqlite_ro``); its ``-wal`` is watched, because committed
writes land there first. Never read: ``auth.json`` beside it, the ``session_share`` table
(share secrets), ``snapshot/``.

Before v1.2 the same data was one JSON file per session, message and part under
``storage/``; those sessions are exported too unless the database already has them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
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

_DB_NAME = re.compile(r"^opencode(-[A-Za-z0-9_.]+)?\.db(-wal)?$")


def _tool_result(part: dict[str, Any]) -> tuple[str, int | None] | None:
    state = as_dict(part.get("state"))
    status = state.get("status")
    end = to_ms(as_dict(state.get("time")).get("end"))
    if status == "completed":
        return text_of(state.get("output")), end
    if status == "error":
        return f"Error: {text_of(state.get('error'))}", end
    return None


def _assistant(info: dict[str, Any], parts: list[dict[str, Any]], ts: int | None) -> list[Message]:
    """An assistant message's parts, split where text follows tool calls, so order survives."""
    model = info.get("modelID") if isinstance(info.get("modelID"), str) else None
    out: list[Message] = []
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []

    def flush() -> None:
        if texts or reasoning or calls:
            out.append(
                Message(
                    role="assistant",
                    content="\n\n".join(texts),
                    reasoning="\n\n".join(reasoning) or None,
                    tool_calls=list(calls),
                    timestamp=ts,
                    model=model,
                )
            )
        out.extend(results)
        for pending in (texts, reasoning, calls, results):
            pending.clear()

    for part in parts:
        kind = part.get("type")
        if kind in ("text", "reasoning") and isinstance(part.get("text"), str):
            if calls:
                flush()
            if part.get("synthetic") or part.get("ignored") or not part["text"].strip():
                continue
            (texts if kind == "text" else reasoning).append(part["text"])
        elif kind == "tool":
            call_id = str(part.get("callID") or part.get("id") or f"call_{len(calls)}")
            name = str(part.get("tool") or "tool")
            state = as_dict(part.get("state"))
            calls.append(ToolCall(call_id, name, json_args(state.get("input"))))
            result = _tool_result(part)
            if result is not None:
                results.append(
                    Message(role="tool", content=result[0], tool_call_id=call_id, timestamp=result[1] or ts)
                )
    flush()
    error = info.get("error")
    if isinstance(error, dict):
        data = as_dict(error.get("data"))
        detail = data.get("message") or error.get("message") or error.get("name")
        out.append(Message(role="system", content=f"[error] {text_of(detail)}", timestamp=ts))
    return out


def _user(parts: list[dict[str, Any]], ts: int | None) -> Message:
    texts = []
    for part in parts:
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str) and not part.get("synthetic"):
            texts.append(part["text"])
        elif kind == "file":
            texts.append(
                f"[file: {part.get('filename') or part.get('mime') or 'attachment'}]"
            )  # url: maybe data:
    return Message(role="user", content="\n\n".join(t for t in texts if t.strip()), timestamp=ts)


def to_session(
    info: Mapping[str, Any], messages: list[tuple[dict[str, Any], list[dict[str, Any]]]]
) -> Session:
    """One OpenCode session (its row or JSON, and ``(message info, parts)`` in order) as STS."""
    title = info.get("title")
    parent = info.get("parent_id") or info.get("parentID")
    cwd = info.get("directory") or next(
        (as_dict(m.get("path")).get("cwd") for m, _ in messages if as_dict(m.get("path")).get("cwd")), None
    )
    session = Session(
        harness="opencode",
        id=str(info.get("id") or "unknown"),
        name=title if isinstance(title, str) and title.strip() else None,
        cwd=cwd if isinstance(cwd, str) else None,
        parent_id=parent if isinstance(parent, str) else None,
        is_subagent=isinstance(parent, str),
    )
    for message, parts in messages:
        times = as_dict(message.get("time"))
        ts = to_ms(times.get("created")) or to_ms(message.get("time_created"))
        if message.get("role") == "user":
            session.messages.append(_user(parts, ts))
        elif message.get("role") == "assistant":
            session.messages.extend(_assistant(message, parts, ts))
    return session


def _json(text: object) -> dict[str, Any]:
    try:
        return as_dict(json.loads(text) if isinstance(text, (str, bytes)) else None)
    except ValueError:
        return {}


def iter_db_sessions(path: Path) -> Iterator[tuple[Session, float | None]]:
    """Every session in an OpenCode database, read read-only (newest last)."""
    with read_only(path) as conn:
        if not has_table(conn, "session") or not has_table(conn, "message"):
            return
        scols = columns(conn, "session")
        fields = pick(scols, "id", "parent_id", "directory", "title", "time_created", "time_updated")
        rows = conn.execute(f"SELECT {fields} FROM session ORDER BY time_created, id").fetchall()
        with_parts = has_table(conn, "part")
        for row in rows:
            sid = row["id"]
            parts: dict[str, list[dict[str, Any]]] = {}
            if with_parts:
                for p in conn.execute(
                    "SELECT message_id, data FROM part WHERE session_id = ? ORDER BY id", (sid,)
                ):
                    parts.setdefault(p["message_id"], []).append(_json(p["data"]))
            messages = []
            for m in conn.execute(
                "SELECT id, time_created, data FROM message WHERE session_id = ? ORDER BY time_created, id",
                (sid,),
            ):
                info = _json(m["data"])
                info.setdefault("time_created", m["time_created"])
                messages.append((info, parts.get(m["id"], [])))
            updated = to_ms(row["time_updated"])
            yield to_session(dict(row), messages), (updated / 1000 if updated else None)


def legacy_session(storage: Path, session_id: str) -> Session | None:
    """A pre-v1.2 session from ``storage/{session,message,part}`` JSON files."""
    info: dict[str, Any] = {"id": session_id}
    for candidate in (storage / "session").glob(f"*/{session_id}.json"):
        info = _json(candidate.read_bytes()) or info
        break
    loaded: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for mfile in sorted((storage / "message" / session_id).glob("*.json")):
        message = _json(mfile.read_bytes())
        if not message:
            continue
        inline = message.get("parts")
        if isinstance(inline, list):  # the oldest layout kept parts inside the message
            parts = [p for p in inline if isinstance(p, dict)]
        else:
            folder = storage / "part" / str(message.get("id") or mfile.stem)
            parts = [_json(p.read_bytes()) for p in sorted(folder.glob("*.json"))]
        loaded.append((message, parts))
    loaded.sort(key=lambda m: (to_ms((m[0].get("time") or {}).get("created")) or 0, str(m[0].get("id"))))
    return to_session(info, loaded) if loaded else None


class OpenCode(Agent):
    """OpenCode sessions from its SQLite store (and legacy JSON storage), converted to STS."""

    name = "opencode"
    display_name = "OpenCode"
    remote = "opencode"
    exports = True

    def __init__(self) -> None:
        self._ids_in_db = SessionIds("SELECT id FROM session")

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``$XDG_DATA_HOME/opencode`` or ``~/.local/share/opencode`` (every OS)."""
        base = environ.get("XDG_DATA_HOME")
        data = Path(base).expanduser() if base else home / ".local" / "share"
        return [Root(self, data / "opencode", self.remote)]

    shallow = True

    def descend(self, rel_dir: PurePosixPath) -> bool:
        """Only ``storage/{session,message}/<id>``: never ``snapshot/`` git folders, ``bin/``, logs."""
        parts = rel_dir.parts
        return parts[0] == "storage" and (
            len(parts) == 1 or (parts[1] in ("session", "message") and len(parts) <= 3)
        )

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """The databases and their ``-wal``; legacy session and message JSON. Nothing else."""
        if not base_checks(rel):
            return False
        if len(rel.parts) == 1:
            return bool(_DB_NAME.match(rel.name))
        return (
            len(rel.parts) == 4
            and rel.parts[0] == "storage"
            and rel.parts[1] in ("session", "message")
            and rel.suffix == ".json"
        )

    def source_of(self, rel: PurePosixPath) -> PurePosixPath:
        """``x.db-wal`` → ``x.db``; a legacy session's files → ``storage/message/<session>``."""
        if len(rel.parts) == 1:
            return sidecar_source(rel)
        if len(rel.parts) == 4 and rel.parts[0] == "storage":
            sid = rel.stem if rel.parts[1] == "session" else rel.parts[2]
            return PurePosixPath("storage", "message", sid)
        return rel

    def change_token(self, path: Path) -> tuple[int, int]:
        """Database + ``-wal``; for a legacy session, its message files and session file."""
        if not path.is_dir():
            return wal_token(path)
        files = list(path.glob("*.json")) + list((path.parent.parent / "session").glob(f"*/{path.name}.json"))
        stats = [f.stat() for f in files]
        if not stats:
            raise FileNotFoundError(2, "No messages", str(path))
        return sum(s.st_size for s in stats) + len(stats), max(s.st_mtime_ns for s in stats)

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Exported sessions carry their metadata; nothing to read incrementally."""

    def export(self, path: Path) -> list[ExportedSession]:
        """Every session of a database, or one legacy session (unless the database has it)."""
        if path.is_dir():
            storage = path.parent.parent
            if path.name in self._ids_in_db(storage.parent / "opencode.db"):
                return []
            session = legacy_session(storage, path.name)
            return [exported(session, f"{session.id}.jsonl")] if session and session.messages else []
        match = _DB_NAME.match(path.name)
        channel = match.group(1)[1:] if match and match.group(1) else None
        out = []
        for session, mtime in iter_db_sessions(path):
            if session.messages:
                rel = f"{channel}/{session.id}.jsonl" if channel else f"{session.id}.jsonl"
                out.append(exported(session, rel, mtime))
        return out
