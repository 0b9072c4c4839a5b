"""Gemini CLI: ``~/.gemini/tmp/<project>/chats/session-<UTC minute>-<id8>.jsonl``, exported to STS.

``GEMINI_CLI_HOME`` replaces the home folder. The JSONL log (v0.39+) is append-only but not
a plain list of messages: ``{"$set": {…}}`` updates the metadata (``summary`` is the title),
``{"$rewindTo": id}`` drops that message and everything after it, and a message id appended
again replaces the earlier copy in place. :func:`replay` applies them exactly as Gemini CLI's
own loader does, so the export shows the conversation as the user last saw it. Older
sessions are one JSON document (``session-….json``) rewritten whole; once resumed, Gemini
converts one into a ``.jsonl`` of the same name, which then wins. Subagent logs live in
``chats/<parent session id>/<id>.jsonl``. The project folder is a slug (or, before 2026,
a SHA-256 of the project root); the working directory comes from ``.project_root`` or
``~/.gemini/projects.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from traceagent.agents.base import Agent, ExportedSession, Root, SessionMeta, base_checks
from traceagent.agents.blocks import CallIds, gemini_parts
from traceagent.agents.sts import Message, Session, ToolCall, exported, jsonl_records, text_of, to_ms

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Conversation:
    """A replayed Gemini session: its metadata and its messages in display order."""

    metadata: dict[str, Any]
    messages: list[dict[str, Any]]


def replay(records: Iterable[dict[str, Any]]) -> Conversation:
    """Apply a JSONL log's records in order: messages, ``$set``, ``$rewindTo``, re-appended ids."""
    metadata: dict[str, Any] = {}
    messages: dict[str, dict[str, Any]] = {}
    for record in records:
        rewind = record.get("$rewindTo")
        if isinstance(rewind, str):
            if rewind in messages:
                keys = list(messages)
                for key in keys[keys.index(rewind) :]:
                    del messages[key]
            else:
                messages.clear()
        elif isinstance(record.get("id"), str):
            messages[record["id"]] = record  # a re-appended id keeps its place, last copy wins
        elif isinstance(record.get("$set"), dict):
            metadata.update(record["$set"])
        elif isinstance(record.get("sessionId"), str):
            metadata.update(record)
    listed = metadata.pop("messages", None)
    if isinstance(listed, list) and listed:
        return Conversation(metadata, [m for m in listed if isinstance(m, dict)])
    return Conversation(metadata, list(messages.values()))


def legacy(document: dict[str, Any]) -> Conversation:
    """A pre-v0.39 whole-JSON session document."""
    messages = document.get("messages")
    meta = {k: v for k, v in document.items() if k != "messages"}
    return Conversation(
        meta, [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    )


def _thoughts(record: dict[str, Any]) -> str:
    out = []
    for t in record.get("thoughts") or []:
        if isinstance(t, dict):
            subject, description = t.get("subject"), t.get("description")
            out.append(": ".join(str(x) for x in (subject, description) if x))
    return "\n\n".join(x for x in out if x)


def _tool_messages(
    record: dict[str, Any], ids: CallIds, ts: int | None
) -> tuple[list[ToolCall], list[Message]]:
    calls: list[ToolCall] = []
    results: list[Message] = []
    for tc in record.get("toolCalls") or []:
        if not isinstance(tc, dict):
            continue
        name = str(tc.get("name") or "tool")
        call_id = ids.call(tc.get("id"), name)
        calls.append(ToolCall(call_id, name, json.dumps(tc.get("args") or {}, ensure_ascii=False)))
        result = tc.get("result")
        text = ""
        if result is not None:
            parts = gemini_parts(result, CallIds())
            text = "\n".join(r[2] for r in parts.responses) or parts.text or text_of(result)
        if not text and tc.get("status") not in (None, "success"):
            text = f"[{tc.get('status')}]"
        results.append(
            Message(
                role="tool", content=text, tool_call_id=call_id, timestamp=to_ms(tc.get("timestamp")) or ts
            )
        )
    return calls, results


def to_session(
    conversation: Conversation, *, cwd: str | None = None, parent_id: str | None = None
) -> Session:
    """A replayed conversation as an STS session."""
    meta = conversation.metadata
    summary = meta.get("summary")
    session = Session(
        harness="gemini",
        id=str(meta.get("sessionId") or "unknown"),
        name=summary if isinstance(summary, str) and summary.strip() else None,
        cwd=cwd,
        parent_id=parent_id,
        is_subagent=meta.get("kind") == "subagent" or parent_id is not None,
    )
    ids = CallIds()
    for record in conversation.messages:
        kind = record.get("type")
        ts = to_ms(record.get("timestamp"))
        if kind == "user":
            shown = record.get("displayContent") or record.get("content")
            parts = gemini_parts(shown, ids)
            session.messages.append(Message(role="user", content=parts.text, timestamp=ts))
        elif kind == "gemini":
            parts = gemini_parts(record.get("content"), ids)
            calls, results = _tool_messages(record, ids, ts)
            reasoning = "\n\n".join(x for x in (_thoughts(record), parts.thoughts) if x)
            model = record.get("model") if isinstance(record.get("model"), str) else None
            session.messages.append(
                Message(
                    role="assistant",
                    content=parts.text,
                    reasoning=reasoning or None,
                    tool_calls=parts.calls + calls,
                    timestamp=ts,
                    model=model,
                )
            )
            session.messages.extend(results)
        elif kind in ("info", "error", "warning"):
            text = gemini_parts(record.get("content"), ids).text
            if text:
                session.messages.append(Message(role="system", content=f"[{kind}] {text}", timestamp=ts))
    if meta.get("startTime") and session.messages and session.messages[0].timestamp is None:
        session.messages[0].timestamp = to_ms(meta["startTime"])
    return session


def project_cwd(project_dir: Path) -> str | None:
    """The project root of a ``tmp/<project>`` folder (``.project_root``, else ``projects.json``)."""
    marker = project_dir / ".project_root"
    try:
        text = marker.read_text(encoding="utf-8").strip()
        if text:
            return text
    except OSError:
        pass
    try:
        registry = json.loads((project_dir.parent.parent / "projects.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    projects = registry.get("projects") if isinstance(registry, dict) else None
    if not isinstance(projects, dict):
        return None
    for root, slug in projects.items():
        # Slug folders (2026+) are registered; hash folders are the SHA-256 of the project root.
        if slug == project_dir.name or hashlib.sha256(str(root).encode()).hexdigest() == project_dir.name:
            return str(root)
    return None


class Gemini(Agent):
    """Gemini CLI chat logs, converted to the Session Traces Format."""

    name = "gemini"
    display_name = "Gemini CLI"
    remote = "gemini"
    exports = True

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``$GEMINI_CLI_HOME/.gemini/tmp`` or ``~/.gemini/tmp`` (every OS)."""
        base = environ.get("GEMINI_CLI_HOME")
        root = Path(base).expanduser() if base else home
        return [Root(self, root / ".gemini" / "tmp", self.remote)]

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """``<project>/chats/session-*.jsonl|json`` and subagent ``<project>/chats/<parent>/<id>.jsonl``."""
        if not base_checks(rel) or len(rel.parts) < 3 or rel.parts[1] != "chats":
            return False
        if len(rel.parts) == 3:
            return rel.name.startswith("session-") and rel.suffix in (".jsonl", ".json")
        return len(rel.parts) == 4 and rel.suffix == ".jsonl"

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Exported sessions carry their metadata; nothing to read incrementally."""

    def export(self, path: Path) -> list[ExportedSession]:
        """One STS file per chat log (a legacy ``.json`` superseded by its ``.jsonl`` is skipped)."""
        data = path.read_bytes()
        subagent = path.parent.name != "chats"
        chats = path.parent.parent if subagent else path.parent
        project = chats.parent
        if path.suffix == ".json":
            if path.with_suffix(".jsonl").exists():
                return []
            try:
                document = json.loads(data)
            except ValueError as e:  # rewritten whole: caught mid-write, try again later
                raise OSError(f"{path.name} is not complete JSON yet") from e
            if not isinstance(document, dict):
                return []
            conversation = legacy(document)
        else:
            conversation = replay(jsonl_records(data))
        if not conversation.metadata.get("sessionId") and not conversation.messages:
            return []
        session = to_session(
            conversation,
            cwd=project_cwd(project),
            parent_id=path.parent.name if subagent else None,
        )
        if not session.messages:
            return []
        parts = [project.name, path.parent.name] if subagent else [project.name]
        rel = PurePosixPath(*parts, path.stem + ".jsonl")
        return [exported(session, rel, path.stat().st_mtime)]
