"""Cursor CLI (cursor-agent): ``~/.cursor/projects/<slug>/agent-transcripts/<id>.jsonl`` → STS.

From third-party parsers (agents.md §11; no primary source). Transcript lines are
``{"role": "user"|"assistant", "message": {"content": [text | tool_use blocks]}}``, sometimes
``{"type": "turn_ended"}``; user text is wrapped in ``<user_query>``. The transcript has no
timestamps, tool results or model; the session's name, creation time and last model come
from the per-session SQLite store ``~/.cursor/chats/<md5(cwd)>/<id>/store.db`` (table
``meta``, key ``0``, hex-encoded JSON), read read-only and never uploaded. Newer builds nest
the transcript as ``agent-transcripts/<id>/<id>.jsonl`` with ``subagents/`` below it. The
IDE's own chat history (``state.vscdb``) is out of scope. No override variable is known.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from traceagent.agents.base import Agent, ExportedSession, Root, SessionMeta, base_checks
from traceagent.agents.blocks import CallIds, anthropic_messages
from traceagent.agents.sqlite_ro import has_table, read_only
from traceagent.agents.sts import Session, exported, jsonl_records, to_ms

log = logging.getLogger(__name__)

_TRANSCRIPTS = "agent-transcripts"
_QUERY = re.compile(r"<user_query>\s*(.*?)\s*</user_query>", re.DOTALL)


def _unwrap(content: object) -> object:
    """User text without the ``<user_query>`` wrapper (the context blocks around it dropped)."""
    if isinstance(content, str):
        m = _QUERY.search(content)
        return m.group(1) if m else content
    if isinstance(content, list):
        texts = [b for b in content if isinstance(b, dict) and isinstance(b.get("text"), str)]
        if not any(_QUERY.search(b["text"]) for b in texts):
            return content
        out: list[Any] = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                m = _QUERY.search(block["text"])
                if m:  # the typed query; the context blocks around it are dropped
                    out.append({**block, "text": m.group(1)})
                continue
            out.append(block)
        return out
    return content


def to_session(records: Iterable[dict[str, Any]], session_id: str, meta: Mapping[str, Any]) -> Session:
    """Cursor transcript records (plus the store's metadata) as an STS session."""
    name = meta.get("name")
    model = meta.get("lastUsedModel") if isinstance(meta.get("lastUsedModel"), str) else None
    session = Session(
        harness="cursor-agent",
        id=session_id,
        name=name if isinstance(name, str) and name.strip() and name != "New Agent" else None,
    )
    if model:
        session.extra["model"] = model
    ids = CallIds()
    for record in records:
        role = record.get("role")
        message = record.get("message")
        if role not in ("user", "assistant") or not isinstance(message, dict):
            continue
        content = _unwrap(message.get("content")) if role == "user" else message.get("content")
        session.messages.extend(
            anthropic_messages(role, content, ids, model=model if role == "assistant" else None)
        )
    if session.messages:
        session.messages[0].timestamp = to_ms(meta.get("createdAt"))
    return session


def store_meta(chats: Path, session_id: str) -> dict[str, Any]:
    """The ``meta`` JSON of ``chats/*/<session id>/store.db`` (empty when absent or unreadable)."""
    for store in chats.glob(f"*/{session_id}/store.db"):
        try:
            with read_only(store) as conn:
                if not has_table(conn, "meta"):
                    return {}
                row = conn.execute("SELECT value FROM meta WHERE key = '0'").fetchone()
        except OSError as e:
            log.debug("Cannot read %s: %s", store, e)
            return {}
        if row is None:
            return {}
        value = row[0]
        try:
            raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
            meta = json.loads(raw)
        except (ValueError, TypeError):
            return {}
        return meta if isinstance(meta, dict) else {}
    return {}


class Cursor(Agent):
    """Cursor CLI agent transcripts, converted to the Session Traces Format."""

    name = "cursor-agent"  #: the CLI's command name; the Cursor IDE's own chats are out of scope
    display_name = "Cursor CLI"
    remote = "cursor-agent"
    exports = True

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``~/.cursor/projects`` (every OS)."""
        return [Root(self, home / ".cursor" / "projects", self.remote)]

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """``<slug>/agent-transcripts/**.jsonl`` only."""
        return (
            base_checks(rel)
            and len(rel.parts) >= 3
            and rel.parts[1] == _TRANSCRIPTS
            and rel.suffix == ".jsonl"
        )

    def is_subagent(self, rel: PurePosixPath) -> bool:
        """Subagent transcripts below a session's folder."""
        return "subagents" in rel.parts

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Exported sessions carry their metadata; nothing to read incrementally."""

    def export(self, path: Path) -> list[ExportedSession]:
        """One STS file per transcript."""
        parts = path.parts
        where = len(parts) - 1 - parts[::-1].index(_TRANSCRIPTS)
        projects = Path(*parts[: where - 1])
        inner = PurePosixPath(*parts[where + 1 :])
        session_id = path.stem
        meta = store_meta(projects.parent / "chats", session_id)
        session = to_session(jsonl_records(path.read_bytes()), session_id, meta)
        if not session.messages:
            return []
        session.is_subagent = "subagents" in inner.parts
        if session.is_subagent:
            session.parent_id = inner.parts[0]
        stat = path.stat()
        if len(session.messages) > 1 and session.messages[-1].timestamp is None:
            session.messages[-1].timestamp = int(stat.st_mtime * 1000)
        # <slug>/<id>.jsonl for flat and nested layouts alike; subagents keep their folder.
        rel_inner = inner if session.is_subagent else PurePosixPath(f"{session_id}.jsonl")
        return [exported(session, PurePosixPath(parts[where - 1]) / rel_inner, stat.st_mtime)]
