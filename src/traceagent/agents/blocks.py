"""Content-block conversions that several exporters share.

Two message shapes cover most agents: Anthropic Messages API blocks (``text`` / ``thinking`` /
``tool_use`` / ``tool_result``: Cline, Roo Code, Factory Droid, Cursor transcripts) and
Gemini ``parts`` (``text`` / ``thought`` / ``functionCall`` / ``functionResponse``: Gemini CLI,
Qwen Code). Both turn into STS messages here; calls without ids get stable synthetic ids and
results without ids are paired with the oldest open call of the same tool.
"""

from __future__ import annotations

import dataclasses
from collections import deque

from traceagent.agents.sts import Message, ToolCall, json_args, text_of


class CallIds:
    """Ids for tool calls that carry none, and pairing of id-less results with their call."""

    def __init__(self) -> None:
        self._n = 0
        self._open: dict[str, deque[str]] = {}

    def call(self, call_id: object, name: str) -> str:
        """The id of a call (its own, or a new synthetic one); remembered as open."""
        if not isinstance(call_id, str) or not call_id:
            self._n += 1
            call_id = f"call_{self._n}"
        self._open.setdefault(name, deque()).append(call_id)
        return call_id

    def result(self, call_id: object, name: str) -> str | None:
        """The id a result answers: its own, else the oldest open call of the same tool."""
        if isinstance(call_id, str) and call_id:
            queue = self._open.get(name)
            if queue and call_id in queue:
                queue.remove(call_id)
            return call_id
        queue = self._open.get(name)
        return queue.popleft() if queue else None


def _block_text(block: dict[str, object]) -> str:
    kind = block.get("type")
    if kind == "text":
        value = block.get("text")
        return value if isinstance(value, str) else ""
    if kind in ("image", "document"):
        return f"[{kind}]"
    return ""


def anthropic_messages(
    role: str,
    content: object,
    ids: CallIds,
    *,
    timestamp: int | None = None,
    model: str | None = None,
) -> list[Message]:
    """STS messages for one Anthropic-style message (tool results become ``tool`` messages)."""
    if isinstance(content, str) or content is None:
        return [Message(role=role, content=content or "", timestamp=timestamp, model=model)]
    if not isinstance(content, list):
        return [Message(role=role, content=text_of(content), timestamp=timestamp, model=model)]
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "thinking" and isinstance(block.get("thinking"), str):
            reasoning.append(block["thinking"])
        elif kind in ("tool_use", "server_tool_use"):
            name = str(block.get("name") or "tool")
            calls.append(ToolCall(ids.call(block.get("id"), name), name, json_args(block.get("input"))))
        elif kind == "tool_result":
            name = str(block.get("name") or "tool")
            text = text_of(block.get("content"))
            if block.get("is_error"):
                text = f"Error: {text}"
            results.append(
                Message(
                    role="tool",
                    content=text,
                    tool_call_id=ids.result(block.get("tool_use_id"), name),
                    timestamp=timestamp,
                    tool_name=name,
                )
            )
        else:
            text = _block_text(block)
            if text:
                texts.append(text)
    out = list(results)  # results answer earlier calls, so they come first
    if role == "assistant":
        out.append(
            Message(
                role="assistant",
                content="\n\n".join(texts),
                reasoning="\n\n".join(reasoning) or None,
                tool_calls=calls,
                timestamp=timestamp,
                model=model,
            )
        )
    elif texts:
        out.append(Message(role=role, content="\n\n".join(texts), timestamp=timestamp))
    return out


@dataclasses.dataclass
class GeminiParts:
    """What one Gemini ``Content`` (a list of parts) holds."""

    text: str = ""
    thoughts: str = ""
    calls: list[ToolCall] = dataclasses.field(default_factory=list)
    #: ``(call id, tool name, result text)`` for each ``functionResponse`` part.
    responses: list[tuple[str | None, str, str]] = dataclasses.field(default_factory=list)


def _response_text(response: object) -> str:
    if isinstance(response, dict):
        if "error" in response and response.get("output") is None:
            return f"Error: {text_of(response['error'])}"
        if "output" in response:
            return text_of(response["output"])
    return text_of(response)


def gemini_parts(value: object, ids: CallIds) -> GeminiParts:
    """Split a Gemini ``PartListUnion`` (string, part or list of parts) into text, thoughts, calls."""
    out = GeminiParts()
    if isinstance(value, str):
        out.text = value
        return out
    parts = value if isinstance(value, list) else [value]
    texts: list[str] = []
    thoughts: list[str] = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
            continue
        if not isinstance(part, dict):
            continue
        call = part.get("functionCall")
        response = part.get("functionResponse")
        if isinstance(call, dict):
            name = str(call.get("name") or "tool")
            out.calls.append(ToolCall(ids.call(call.get("id"), name), name, json_args(call.get("args"))))
        elif isinstance(response, dict):
            name = str(response.get("name") or "tool")
            call_id = ids.result(response.get("id"), name)
            out.responses.append((call_id, name, _response_text(response.get("response"))))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
        elif "inlineData" in part or "fileData" in part:
            texts.append("[attachment]")
    out.text = "".join(texts)
    out.thoughts = "\n".join(thoughts)
    return out
