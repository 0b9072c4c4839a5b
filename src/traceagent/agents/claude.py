"""Claude Code: ``~/.claude/projects/<encoded-cwd>/<session>.jsonl`` plus subagent files.

``CLAUDE_CONFIG_DIR`` moves the whole ``~/.claude`` folder. Only files under ``projects/``
are considered, so ``.credentials.json``, ``history.jsonl`` and ``settings.json`` (which
live one level up) can never be picked, and ``memory/`` and ``tool-results/`` are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from traceagent.agents.base import (
    Agent,
    Root,
    SessionMeta,
    base_checks,
    find_str_field,
    iter_lines_with,
    lines_with,
    parse_line,
    type_marker,
)

_SKIP_DIRS = frozenset({"memory", "tool-results", "file-history", "todos", "shell-snapshots"})
_WRAPPERS = (
    "<command-",
    "<local-command",
    "Caveat:",
    "<system-reminder>",
    "<user-prompt-submit-hook>",
    "<ide_",
)


def _prompt_text(record: dict[str, Any]) -> str | None:
    """The user's typed text in a ``type:user`` record, or None for tool results and wrappers."""
    if record.get("isMeta") or record.get("isCompactSummary") or record.get("toolUseResult") is not None:
        return None
    message = record.get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    text: str | None = None
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                return None
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                candidate = block["text"]
                if candidate.strip() and not candidate.lstrip().startswith(_WRAPPERS):
                    text = candidate
                    break
    if not text or not text.strip() or text.lstrip().startswith(_WRAPPERS):
        return None
    return text


_USER = type_marker("user")
_SUMMARY = type_marker("summary")
_AI_TITLE = type_marker("ai-title")
_CUSTOM_TITLE = type_marker("custom-title")


class ClaudeCode(Agent):
    """Claude Code sessions (native in the Hub's trace viewer)."""

    name = "claude"
    display_name = "Claude Code"
    remote = "claude"

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``$CLAUDE_CONFIG_DIR/projects`` or ``~/.claude/projects`` (every OS)."""
        base = environ.get("CLAUDE_CONFIG_DIR")
        root = Path(base).expanduser() if base else home / ".claude"
        return [Root(self, root / "projects", self.remote)]

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """Transcripts inside a project folder; subagent ``.meta.json`` sidecars."""
        if not base_checks(rel) or len(rel.parts) < 2 or _SKIP_DIRS.intersection(rel.parts[:-1]):
            return False
        if rel.name.endswith(".jsonl"):
            return True
        return rel.name.endswith(".meta.json") and "subagents" in rel.parts

    def is_subagent(self, rel: PurePosixPath) -> bool:
        """Subagent and old "warmup" agent files: uploaded, but not listed as traces."""
        return "subagents" in rel.parts or rel.name.startswith("agent-")

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Read session id, cwd, branch, model, title and first prompt from the records."""
        meta.feed_common(chunk)
        meta.session_id = meta.session_id or find_str_field(chunk, "sessionId")
        meta.cwd = meta.cwd or find_str_field(chunk, "cwd")
        meta.git_branch = find_str_field(chunk, "gitBranch", last=True) or meta.git_branch
        meta.model = find_str_field(chunk, "model", last=True, skip=("<synthetic>",)) or meta.model
        for marker, key in ((_AI_TITLE, "aiTitle"), (_CUSTOM_TITLE, "customTitle")):
            for line in lines_with(chunk, marker, reverse=True):
                record = parse_line(line)
                if record and isinstance(record.get(key), str) and record[key].strip():
                    meta.title = record[key]
                    return self._first_prompt(meta, chunk)
        for line in lines_with(chunk, _SUMMARY, reverse=True):
            record = parse_line(line)
            if record and isinstance(record.get("summary"), str) and record["summary"].strip():
                meta.title = record["summary"]
                break
        self._first_prompt(meta, chunk)

    @staticmethod
    def _first_prompt(meta: SessionMeta, chunk: bytes) -> None:
        if meta.first_prompt is not None:
            return
        for i, line in enumerate(iter_lines_with(chunk, _USER)):
            if i >= 200:  # bounded: a session whose first 200 user lines are all tool results
                break
            record = parse_line(line)
            if record is None:
                meta.malformed_lines += 1
                continue
            text = _prompt_text(record) if record.get("type") == "user" else None
            if text:
                meta.first_prompt = text
                return
