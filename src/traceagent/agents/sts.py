"""The Hub's Session Traces Format (STS): the one writer every exporter shares, and its validator.

An STS file is JSONL: a header line ``{"type":"session","harness":…,"id":…,"name":…}`` and
then one ``{"type":"message","message":{…}}`` line per message, where a message has ``role``
(user | assistant | system | tool), ``content`` (text), and optionally ``reasoningContent``,
``toolCalls`` (``[{"id","function":{"name","arguments"}}]``, arguments a JSON *string*),
``toolCallId`` (on tool results), ``timestamp`` (epoch ms) and ``model``
(huggingface/hub-docs ``docs/hub/session-traces-format.md``).

Exporters build a :class:`Session` from the agent's records and call :func:`exported`; the
writer normalises what the viewer cannot show (empty messages, tool results whose call is
missing) so every file it writes passes :func:`validate`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import re
from pathlib import PurePosixPath
from typing import Any

from traceagent.agents.base import ExportedSession, SessionMeta

ROLES = frozenset({"user", "assistant", "system", "tool"})
_FRACTION = re.compile(r"\.(\d+)")
_MS_THRESHOLD = 10**11  #: epoch values above this are milliseconds (year 1973 in ms, 5138 in s)


@dataclasses.dataclass
class ToolCall:
    """One tool call of an assistant message."""

    id: str
    name: str
    arguments: str = "{}"  #: a JSON document, as a string


@dataclasses.dataclass
class Message:
    """One STS message."""

    role: str
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] = dataclasses.field(default_factory=list)
    tool_call_id: str | None = None
    timestamp: int | None = None  #: epoch milliseconds
    model: str | None = None
    #: For tool results: the tool's name (used only when the call itself is missing).
    tool_name: str | None = None


@dataclasses.dataclass
class Session:
    """One session ready to be written: header fields and messages in order."""

    harness: str
    id: str
    name: str | None = None
    cwd: str | None = None
    git_branch: str | None = None
    parent_id: str | None = None
    is_subagent: bool = False
    messages: list[Message] = dataclasses.field(default_factory=list)
    #: More header fields (any extra metadata is allowed by the format).
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


# -- small conversions every exporter needs ----------------------------------------------------


def to_ms(value: object) -> int | None:
    """Epoch milliseconds from an ISO-8601 string, epoch seconds or epoch milliseconds.

    >>> to_ms("2026-03-01T10:00:00Z"), to_ms(1772359200), to_ms(1772359200000)
    (1772359200000, 1772359200000, 1772359200000)
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            return None
        return int(value) if value > _MS_THRESHOLD else int(value * 1000)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return to_ms(float(text))
        except ValueError:
            pass
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # Python 3.10's fromisoformat takes only 0, 3 or 6 fractional digits.
        text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text.replace(" ", "T", 1))
        try:
            parsed = _dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.timezone.utc)
        return int(parsed.timestamp() * 1000)
    return None


def iso(ms: int | None) -> str | None:
    """``2026-03-01T10:00:00.000Z`` for epoch milliseconds (the form the index shows)."""
    if ms is None:
        return None
    stamp = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_args(value: object) -> str:
    """Tool-call arguments as a JSON string (a string that is not JSON becomes a JSON string)."""
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return json.dumps(value, ensure_ascii=False)
        return value
    if value is None:
        return "{}"
    return json.dumps(value, ensure_ascii=False, default=str)


def as_dict(value: object) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (records are untrusted)."""
    return value if isinstance(value, dict) else {}


def text_of(value: object) -> str:
    """Readable text from a string, a list of content blocks or a result object."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (text_of(v) for v in value) if t)
    if isinstance(value, dict):
        kind = value.get("type")
        if kind in ("image", "image_url", "input_image") or "inlineData" in value:
            return "[image]"
        for key in ("text", "content", "output", "result", "value"):
            if key in value and value[key] is not None:
                return text_of(value[key])
        return json.dumps(value, ensure_ascii=False, default=str)
    return json.dumps(value, ensure_ascii=False, default=str)


def safe_name(name: str) -> str:
    """A single path segment safe for bucket keys (no separators, no leading dot)."""
    out = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).lstrip(".")
    return out[:150] or "unnamed"


def jsonl_records(data: bytes) -> list[dict[str, Any]]:
    """The complete, parseable object lines of JSONL bytes (a torn last line is left out)."""
    out = []
    for raw in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out


# -- writing ---------------------------------------------------------------------------------


def _normalise(messages: list[Message]) -> list[Message]:
    """Drop empty messages; give every tool result a call before it (synthesised if lost)."""
    out: list[Message] = []
    seen: set[str] = set()
    for m in messages:
        role = m.role if m.role in ROLES else "system"
        if role == "tool":
            call_id = m.tool_call_id or f"call_{len(out)}"
            if call_id not in seen:
                # The call was lost (compaction, a truncated file): keep the result visible.
                out.append(
                    Message(
                        role="assistant",
                        tool_calls=[ToolCall(call_id, m.tool_name or "tool")],
                        timestamp=m.timestamp,
                    )
                )
                seen.add(call_id)
            out.append(dataclasses.replace(m, role="tool", tool_call_id=call_id))
            continue
        calls = m.tool_calls if role == "assistant" else []
        if not m.content.strip() and not (m.reasoning or "").strip() and not calls:
            continue
        seen.update(c.id for c in calls)
        out.append(dataclasses.replace(m, role=role, tool_calls=calls, tool_call_id=None))
    return out


def _message_line(m: Message) -> dict[str, Any]:
    body: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.reasoning:
        body["reasoningContent"] = m.reasoning
    if m.tool_calls:
        body["toolCalls"] = [
            {"id": c.id, "function": {"name": c.name, "arguments": json_args(c.arguments)}}
            for c in m.tool_calls
        ]
    if m.tool_call_id:
        body["toolCallId"] = m.tool_call_id
    if m.timestamp is not None:
        body["timestamp"] = int(m.timestamp)
    if m.model:
        body["model"] = m.model
    return {"type": "message", "message": body}


def _dumps(obj: dict[str, Any]) -> bytes:
    # Lone surrogates (broken emoji halves in agent logs) cannot be UTF-8: replace them.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8", "replace")


def render(session: Session) -> bytes:
    """The STS JSONL bytes of ``session`` (complete lines, header first)."""
    messages = _normalise(session.messages)
    header: dict[str, Any] = {"type": "session", "harness": session.harness, "id": session.id}
    if session.name:
        header["name"] = session.name
    if session.cwd:
        header["cwd"] = session.cwd
    if session.git_branch:
        header["gitBranch"] = session.git_branch
    if session.parent_id:
        header["parentId"] = session.parent_id
    stamps = [m.timestamp for m in messages if m.timestamp is not None]
    if stamps:
        header["timestamp"] = iso(min(stamps))
    for key, value in session.extra.items():
        if value is not None and key not in header:
            header[key] = value
    lines = [_dumps(header)] + [_dumps(_message_line(m)) for m in messages]
    return b"\n".join(lines) + b"\n"


def session_meta(session: Session) -> SessionMeta:
    """What the index shows for an exported session (title, first prompt, model, times)."""
    stamps = [m.timestamp for m in session.messages if m.timestamp is not None]
    first_prompt = next((m.content for m in session.messages if m.role == "user" and m.content.strip()), None)
    model = next((m.model for m in reversed(session.messages) if m.model), None)
    return SessionMeta(
        session_id=session.id,
        title=session.name or None,
        first_prompt=first_prompt,
        cwd=session.cwd,
        git_branch=session.git_branch,
        model=model or session.extra.get("model"),
        first_ts=iso(min(stamps)) if stamps else None,
        last_ts=iso(max(stamps)) if stamps else None,
        is_subagent=session.is_subagent,
    )


def exported(session: Session, rel: PurePosixPath | str, mtime: float | None = None) -> ExportedSession:
    """Render ``session`` as one uploadable file at ``rel`` (under the agent's remote folder)."""
    meta = session_meta(session)
    if mtime is None:
        stamps = [m.timestamp for m in session.messages if m.timestamp is not None]
        mtime = max(stamps) / 1000 if stamps else None
    return ExportedSession(rel=PurePosixPath(rel), data=render(session), meta=meta, mtime=mtime)


# -- validating ------------------------------------------------------------------------------


class STSError(ValueError):
    """Output that the Hub's viewer would not accept."""


def _check_message(n: int, body: object, calls: set[str]) -> list[str]:
    where = f"line {n}"
    if not isinstance(body, dict):
        return [f"{where}: 'message' is not an object"]
    problems: list[str] = []
    role = body.get("role")
    if role not in ROLES:
        problems.append(f"{where}: role {role!r} is not one of {sorted(ROLES)}")
    if not isinstance(body.get("content"), str):
        problems.append(f"{where}: content must be a string")
    if "reasoningContent" in body and not isinstance(body["reasoningContent"], str):
        problems.append(f"{where}: reasoningContent must be a string")
    if "timestamp" in body and (
        isinstance(body["timestamp"], bool) or not isinstance(body["timestamp"], int)
    ):
        problems.append(f"{where}: timestamp must be epoch milliseconds (an integer)")
    if "model" in body and not isinstance(body["model"], str):
        problems.append(f"{where}: model must be a string")
    tool_calls = body.get("toolCalls")
    if tool_calls is not None:
        if role != "assistant" or not isinstance(tool_calls, list):
            problems.append(f"{where}: toolCalls must be a list on an assistant message")
        else:
            for call in tool_calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not call["id"]:
                    problems.append(f"{where}: a tool call has no id")
                    continue
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                    problems.append(f"{where}: tool call {call['id']} has no function name")
                elif not isinstance(fn.get("arguments"), str):
                    problems.append(f"{where}: tool call {call['id']} arguments must be a JSON string")
                else:
                    try:
                        json.loads(fn["arguments"])
                    except ValueError:
                        problems.append(f"{where}: tool call {call['id']} arguments are not JSON")
                calls.add(call["id"])
    if role == "tool":
        ref = body.get("toolCallId")
        if not isinstance(ref, str) or not ref:
            problems.append(f"{where}: a tool result needs a toolCallId")
        elif ref not in calls:
            problems.append(f"{where}: tool result {ref} refers to no earlier tool call")
    elif "toolCallId" in body:
        problems.append(f"{where}: toolCallId is only for role 'tool'")
    return problems


def validate(data: bytes) -> list[str]:
    """Every problem in an STS file (empty when the viewer will open it)."""
    if not data:
        return ["empty file"]
    if not data.endswith(b"\n"):
        return ["the last line has no newline"]
    problems: list[str] = []
    calls: set[str] = set()
    for n, raw in enumerate(data.split(b"\n")[:-1], 1):
        try:
            line = json.loads(raw)
        except ValueError:
            problems.append(f"line {n}: not JSON")
            continue
        if not isinstance(line, dict):
            problems.append(f"line {n}: not a JSON object")
            continue
        if n == 1:
            if line.get("type") != "session":
                problems.append("line 1: the header must have type 'session'")
            for key in ("harness", "id"):
                if not isinstance(line.get(key), str) or not line[key]:
                    problems.append(f"line 1: the header needs a non-empty {key!r}")
            if "name" in line and not isinstance(line["name"], str):
                problems.append("line 1: name must be a string")
            continue
        if line.get("type") != "message":
            problems.append(f"line {n}: type must be 'message'")
            continue
        problems.extend(_check_message(n, line.get("message"), calls))
    return problems


def check(data: bytes) -> list[dict[str, Any]]:
    """Raise :class:`STSError` unless ``data`` is valid; return its lines (header first)."""
    problems = validate(data)
    if problems:
        raise STSError("; ".join(problems[:10]))
    return [json.loads(raw) for raw in data.split(b"\n")[:-1]]
