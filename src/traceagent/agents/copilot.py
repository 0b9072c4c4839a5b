"""GitHub Copilot CLI: ``~/.copilot/session-state/<id>/events.jsonl`` (+ ``workspace.yaml``) → STS.

``COPILOT_HOME`` moves ``~/.copilot``; builds from 2025 wrote under
``$XDG_CONFIG_HOME/copilot`` instead, watched as a second root. Older builds wrote a flat
``session-state/<id>.jsonl``. Events are appended: ``session.start`` (cwd, branch),
``user.message``, ``assistant.message`` (text, ``toolRequests``, ``reasoningText``),
``tool.execution_complete`` (the result), ``session.model_change``. ``workspace.yaml`` holds
the session's summary (its title). Only these two files are read; ``checkpoints/``, the
cross-session ``session-store.db`` and ``logs/`` are never uploaded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from traceagent.agents.base import Agent, ExportedSession, Root, SessionMeta, base_checks
from traceagent.agents.blocks import CallIds
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

_EVENTS = "events.jsonl"
_WORKSPACE = "workspace.yaml"


def read_workspace(text: str) -> dict[str, str]:
    """Top-level ``key: value`` scalars of ``workspace.yaml`` (no YAML library needed)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line[0] in " \t#-" or ":" not in line:
            continue
        key, _, value = line.partition(":")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if value and value not in ("|", ">", "null", "~"):
            out[key.strip()] = value
    return out


def _result_text(data: dict[str, Any]) -> str:
    result = data.get("result")
    error = data.get("error")
    if data.get("success") is False and error:
        return f"Error: {text_of(error.get('message') if isinstance(error, dict) else error)}"
    if isinstance(result, dict):
        return text_of(
            result.get("content") if result.get("content") is not None else result.get("detailedContent")
        )
    return text_of(result)


def to_session(events: Iterable[dict[str, Any]], workspace: Mapping[str, str], fallback_id: str) -> Session:
    """Copilot CLI events as an STS session."""
    session = Session(harness="copilot", id=workspace.get("id") or fallback_id)
    title = workspace.get("summary") or workspace.get("name")
    session.name = title or None
    session.cwd = workspace.get("cwd")
    ids = CallIds()
    names: dict[str, str] = {}
    model: str | None = None
    for event in events:
        kind = event.get("type")
        data = event.get("data")
        if not isinstance(data, dict):
            continue
        ts = to_ms(event.get("timestamp"))
        if kind == "session.start":
            session.id = str(data.get("sessionId") or session.id)
            context = as_dict(data.get("context"))
            session.cwd = session.cwd or context.get("cwd")
            session.git_branch = context.get("branch") or session.git_branch
            if isinstance(data.get("selectedModel"), str):
                model = data["selectedModel"]
        elif kind == "session.model_change":
            model = data.get("newModel") if isinstance(data.get("newModel"), str) else model
        elif kind == "user.message":
            session.messages.append(Message(role="user", content=text_of(data.get("content")), timestamp=ts))
        elif kind == "assistant.message":
            calls = []
            for req in data.get("toolRequests") or []:
                if isinstance(req, dict):
                    name = str(req.get("name") or "tool")
                    call_id = ids.call(req.get("toolCallId"), name)
                    names[call_id] = name
                    calls.append(ToolCall(call_id, name, json_args(req.get("arguments"))))
            reasoning = data.get("reasoningText")
            session.messages.append(
                Message(
                    role="assistant",
                    content=text_of(data.get("content")),
                    reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
                    tool_calls=calls,
                    timestamp=ts,
                    model=data.get("model") if isinstance(data.get("model"), str) else model,
                )
            )
        elif kind == "tool.execution_complete":
            name = str(data.get("toolName") or names.get(str(data.get("toolCallId")), "tool"))
            session.messages.append(
                Message(
                    role="tool",
                    content=_result_text(data),
                    tool_call_id=ids.result(data.get("toolCallId"), name),
                    timestamp=ts,
                    tool_name=name,
                )
            )
        elif kind == "session.error":
            session.messages.append(Message(role="system", content=f"[error] {text_of(data.get('message'))}"))
    if model:
        session.extra["model"] = model
    return session


class Copilot(Agent):
    """GitHub Copilot CLI sessions, converted to the Session Traces Format."""

    name = "copilot"
    display_name = "GitHub Copilot CLI"
    remote = "copilot"
    exports = True

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``$COPILOT_HOME/session-state`` or ``~/.copilot/session-state``; 2025 builds' XDG folder."""
        base = environ.get("COPILOT_HOME")
        primary = (Path(base).expanduser() if base else home / ".copilot") / "session-state"
        xdg = environ.get("XDG_CONFIG_HOME")
        legacy = (Path(xdg).expanduser() if xdg else home / ".config") / "copilot" / "session-state"
        roots = [Root(self, primary, self.remote)]
        if legacy != primary:
            roots.append(Root(self, legacy, "copilot-xdg"))
        return roots

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """``<id>/events.jsonl``, ``<id>/workspace.yaml`` and old flat ``<id>.jsonl``."""
        if not base_checks(rel):
            return False
        if len(rel.parts) == 2:
            return rel.name in (_EVENTS, _WORKSPACE)
        return len(rel.parts) == 1 and rel.suffix == ".jsonl"

    def source_of(self, rel: PurePosixPath) -> PurePosixPath:
        """A session folder's files belong to the folder."""
        if len(rel.parts) == 2 and rel.name in (_EVENTS, _WORKSPACE):
            return rel.parent
        return rel

    def change_token(self, path: Path) -> tuple[int, int]:
        """A session folder changes when its events or its workspace file do."""
        if not path.is_dir():
            return super().change_token(path)
        stats = [p.stat() for p in (path / _EVENTS, path / _WORKSPACE) if p.exists()]
        if not stats:
            raise FileNotFoundError(2, "No events yet", str(path / _EVENTS))
        return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Exported sessions carry their metadata; nothing to read incrementally."""

    def export(self, path: Path) -> list[ExportedSession]:
        """One STS file per session folder (or old flat events file)."""
        if path.is_dir():
            events_path, sid = path / _EVENTS, path.name
            try:
                workspace = read_workspace((path / _WORKSPACE).read_text(encoding="utf-8", errors="replace"))
            except FileNotFoundError:
                workspace = {}
        else:
            events_path, sid, workspace = path, path.stem, {}
        if not events_path.exists():
            return []
        session = to_session(jsonl_records(events_path.read_bytes()), workspace, sid)
        if not session.messages:
            return []
        return [exported(session, PurePosixPath(f"{sid}.jsonl"), events_path.stat().st_mtime)]
