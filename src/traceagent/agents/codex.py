"""Codex (CLI, exec, Desktop, VS Code): ``~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl``.

Archiving *moves* a rollout to ``archived_sessions/`` under the same name; that second root
maps to ``codex-archived/`` so the remote copy of the live file is never overwritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from traceagent.agents.base import (
    Agent,
    Root,
    SessionMeta,
    base_checks,
    find_str_field,
    iter_lines_with,
    parse_line,
    type_marker,
)

_BOILERPLATE = ("<environment_context>", "<user_instructions>", "# AGENTS.md", "<permissions")

_SESSION_META = type_marker("session_meta")
_USER_MESSAGE = type_marker("user_message")


class Codex(Agent):
    """OpenAI Codex rollouts (native in the Hub's trace viewer)."""

    name = "codex"
    display_name = "Codex"
    remote = "codex"

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``$CODEX_HOME`` or ``~/.codex``: ``sessions/`` and ``archived_sessions/``."""
        base = environ.get("CODEX_HOME")
        root = Path(base).expanduser() if base else home / ".codex"
        return [
            Root(self, root / "sessions", self.remote),
            Root(self, root / "archived_sessions", "codex-archived"),
        ]

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """Only ``rollout-*.jsonl`` files: never ``history.jsonl``, ``auth.json`` or the state DB."""
        return base_checks(rel) and rel.name.startswith("rollout-") and rel.name.endswith(".jsonl")

    def is_subagent(self, rel: PurePosixPath) -> bool:
        """Codex subagent threads are whole sessions of their own."""
        return False

    def is_whole_json(self, rel: PurePosixPath) -> bool:
        """Codex writes no JSON sidecars."""
        return False

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Read id, cwd, git branch (``session_meta``), model (``turn_context``), title, first prompt."""
        meta.feed_common(chunk)
        if meta.session_id is None:
            for line in iter_lines_with(chunk, _SESSION_META):
                record = parse_line(line)
                payload = record.get("payload") if record else None
                if isinstance(payload, dict):
                    meta.session_id = payload.get("id") if isinstance(payload.get("id"), str) else None
                    meta.cwd = payload.get("cwd") if isinstance(payload.get("cwd"), str) else meta.cwd
                    git = payload.get("git")
                    if isinstance(git, dict) and isinstance(git.get("branch"), str):
                        meta.git_branch = git["branch"]
                break  # the first session_meta describes the thread
        meta.model = find_str_field(chunk, "model", last=True) or meta.model
        title = find_str_field(chunk, "thread_name", last=True)
        if title:
            meta.title = title
        if meta.first_prompt is None:
            for i, line in enumerate(iter_lines_with(chunk, _USER_MESSAGE)):
                if i >= 50:
                    break
                record = parse_line(line)
                payload = record.get("payload") if record else None
                if record is None:
                    meta.malformed_lines += 1
                if not isinstance(payload, dict) or payload.get("type") != "user_message":
                    continue
                text = payload.get("message")
                if isinstance(text, str) and text.strip() and not text.lstrip().startswith(_BOILERPLATE):
                    meta.first_prompt = text
                    break
