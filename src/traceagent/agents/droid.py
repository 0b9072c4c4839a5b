"""Factory Droid: ``~/.factory/sessions/<project>/<session>.jsonl`` + ``<session>.settings.json``.

Droid is closed source; the layout comes from maintained third-party parsers (agents.md §4).
A later hub-docs change lists Droid's folder as viewer-native, so the transcripts are
uploaded as they are, with their ``.settings.json`` sidecars (model, token usage; whole JSON,
rewritten in place) beside them. :func:`to_session` is the STS conversion kept ready in case
the viewer turns out not to read Droid's own format. No override variable is known
(``DROID_SESSIONS_DIR`` is ccusage's, not Droid's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from traceagent.agents.base import (
    Agent,
    Root,
    SessionMeta,
    base_checks,
    iter_lines_with,
    lines_with,
    parse_line,
    type_marker,
)
from traceagent.agents.blocks import CallIds, anthropic_messages
from traceagent.agents.sts import Session, to_ms

_SESSION_START = type_marker("session_start")
_MESSAGE = type_marker("message")
_SIDECAR = ".settings.json"


def _first_user_text(record: dict[str, Any]) -> str | None:
    message = record.get("message")
    if not isinstance(message, dict) or message.get("role") != "user":
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content if content.strip() else None
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                return None
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                text: str = block["text"]
                if text.strip() and not text.lstrip().startswith("<system-reminder>"):
                    return text
    return None


class Droid(Agent):
    """Factory Droid sessions (uploaded as they are)."""

    name = "droid"
    display_name = "Factory Droid"
    remote = "droid"

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``~/.factory/sessions`` on every OS (``%USERPROFILE%\\.factory`` on Windows)."""
        return [Root(self, home / ".factory" / "sessions", self.remote)]

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """Session transcripts and their ``<id>.settings.json`` sidecars."""
        if not base_checks(rel):
            return False
        return rel.name.endswith((".jsonl", _SIDECAR))

    def is_whole_json(self, rel: PurePosixPath) -> bool:
        """The ``.settings.json`` sidecars (rewritten whole)."""
        return rel.name.endswith(_SIDECAR)

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Id, title and cwd from ``session_start``; timestamps; the first user message."""
        meta.feed_common(chunk)
        for line in lines_with(chunk, _SESSION_START, reverse=True)[:1]:
            record = parse_line(line)
            if record is None:
                continue
            if meta.session_id is None and isinstance(record.get("id"), str):
                meta.session_id = record["id"]
            if isinstance(record.get("cwd"), str):
                meta.cwd = meta.cwd or record["cwd"]
            title = record.get("sessionTitle") or record.get("title")
            if isinstance(title, str) and title.strip():
                meta.title = title
        if meta.first_prompt is None:
            for i, line in enumerate(iter_lines_with(chunk, _MESSAGE)):
                if i >= 100:
                    break
                record = parse_line(line)
                if record is None:
                    meta.malformed_lines += 1
                    continue
                text = _first_user_text(record)
                if text:
                    meta.first_prompt = text
                    break


def to_session(records: Iterable[dict[str, Any]], settings: dict[str, Any] | None = None) -> Session:
    """Droid transcript records (and the optional sidecar) as an STS session (the fallback)."""
    settings = settings or {}
    model = settings.get("model") if isinstance(settings.get("model"), str) else None
    session = Session(harness="droid", id="")
    ids = CallIds()
    for record in records:
        kind = record.get("type")
        if kind == "session_start":
            session.id = str(record.get("id") or session.id)
            title = record.get("sessionTitle") or record.get("title")
            session.name = title if isinstance(title, str) and title.strip() else session.name
            session.cwd = record.get("cwd") if isinstance(record.get("cwd"), str) else session.cwd
        elif kind == "message" and isinstance(record.get("message"), dict):
            message = record["message"]
            role = message.get("role")
            if role not in ("user", "assistant"):
                continue
            session.messages.extend(
                anthropic_messages(
                    role,
                    message.get("content"),
                    ids,
                    timestamp=to_ms(record.get("timestamp")),
                    model=model if role == "assistant" else None,
                )
            )
    session.id = session.id or "unknown"
    return session
