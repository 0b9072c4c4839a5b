"""Qwen Code: ``~/.qwen/projects/<sanitized cwd>/chats/<session id>.jsonl``, exported to STS.

The base folder is ``$QWEN_RUNTIME_DIR`` (Qwen's own variable), else ``$QWEN_HOME`` (used by
third-party parsers), else ``~/.qwen``. Records form a tree through ``uuid``/``parentUuid``
like Claude Code's; a rewind continues from an earlier record, so the conversation the user
sees is the chain that ends at the last message record. Messages are Gemini ``Content``
objects (``parts`` with ``functionCall``/``functionResponse``); the title is the last
``custom_title`` record (re-appended at the end of the file every 32 KB).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from traceagent.agents.base import Agent, ExportedSession, Root, SessionMeta, base_checks
from traceagent.agents.blocks import CallIds, gemini_parts
from traceagent.agents.sts import Message, Session, exported, jsonl_records, text_of, to_ms

log = logging.getLogger(__name__)

_MESSAGE_TYPES = ("user", "assistant", "tool_result")


def active_chain(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records on the branch that ends at the last message record, oldest first."""
    by_uuid = {r["uuid"]: r for r in records if isinstance(r.get("uuid"), str)}
    leaf = next((r for r in reversed(records) if r.get("type") in _MESSAGE_TYPES), None)
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    node = leaf
    while node is not None:
        uid = node.get("uuid")
        if not isinstance(uid, str) or uid in seen:
            break
        seen.add(uid)
        chain.append(node)
        parent = node.get("parentUuid")
        node = by_uuid.get(parent) if isinstance(parent, str) else None
    if leaf is not None and not chain:
        # Records without uuids (not written by Qwen's recorder): keep file order.
        return [r for r in records if r.get("type") in _MESSAGE_TYPES]
    chain.reverse()
    return chain


def _title(records: Sequence[dict[str, Any]]) -> str | None:
    for r in reversed(records):
        payload = r.get("systemPayload")
        if r.get("subtype") == "custom_title" and isinstance(payload, dict):
            title = payload.get("customTitle")
            if isinstance(title, str) and title.strip():
                return title
    return None


def to_session(records: Sequence[dict[str, Any]], fallback_id: str) -> Session:
    """Qwen Code chat records as an STS session (the active branch only)."""
    chain = active_chain(records)
    first = next((r for r in records if isinstance(r.get("sessionId"), str)), {})
    session = Session(harness="qwen", id=str(first.get("sessionId") or fallback_id), name=_title(records))
    ids = CallIds()
    for record in chain:
        kind = record.get("type")
        ts = to_ms(record.get("timestamp"))
        session.cwd = record.get("cwd") if isinstance(record.get("cwd"), str) else session.cwd
        if isinstance(record.get("gitBranch"), str) and record["gitBranch"]:
            session.git_branch = record["gitBranch"]
        message = record.get("message")
        parts_value = message.get("parts") if isinstance(message, dict) else None
        if kind == "user" and record.get("subtype") is None:
            parts = gemini_parts(parts_value, ids)
            if parts.responses:  # tool results recorded on a user turn
                session.messages.extend(
                    Message(role="tool", content=t, tool_call_id=cid, timestamp=ts, tool_name=n)
                    for cid, n, t in parts.responses
                )
            session.messages.append(Message(role="user", content=parts.text, timestamp=ts))
        elif kind == "assistant":
            parts = gemini_parts(parts_value, ids)
            session.messages.append(
                Message(
                    role="assistant",
                    content=parts.text,
                    reasoning=parts.thoughts or None,
                    tool_calls=parts.calls,
                    timestamp=ts,
                    model=record.get("model") if isinstance(record.get("model"), str) else None,
                )
            )
        elif kind == "tool_result":
            parts = gemini_parts(parts_value, ids)
            result = record.get("toolCallResult")
            for call_id, name, text in parts.responses:
                session.messages.append(
                    Message(role="tool", content=text, tool_call_id=call_id, timestamp=ts, tool_name=name)
                )
            if not parts.responses and isinstance(result, dict):
                name = "tool"
                session.messages.append(
                    Message(
                        role="tool",
                        content=text_of(result.get("error") or result.get("resultDisplay")),
                        tool_call_id=ids.result(result.get("callId"), name),
                        timestamp=ts,
                        tool_name=name,
                    )
                )
    return session


class Qwen(Agent):
    """Qwen Code chat logs, converted to the Session Traces Format."""

    name = "qwen"
    display_name = "Qwen Code"
    remote = "qwen"
    exports = True

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``$QWEN_RUNTIME_DIR/projects``, ``$QWEN_HOME/projects`` or ``~/.qwen/projects``."""
        base = environ.get("QWEN_RUNTIME_DIR") or environ.get("QWEN_HOME")
        root = Path(base).expanduser() if base else home / ".qwen"
        return [Root(self, root / "projects", self.remote)]

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """``<project>/chats/<session>.jsonl`` only (``tmp/`` and settings are never read)."""
        return base_checks(rel) and len(rel.parts) == 3 and rel.parts[1] == "chats" and rel.suffix == ".jsonl"

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Exported sessions carry their metadata; nothing to read incrementally."""

    def export(self, path: Path) -> list[ExportedSession]:
        """One STS file per chat log."""
        session = to_session(jsonl_records(path.read_bytes()), path.stem)
        if not session.messages:
            return []
        rel = PurePosixPath(path.parent.parent.name, path.stem + ".jsonl")
        return [exported(session, rel, path.stat().st_mtime)]
