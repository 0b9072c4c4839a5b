"""Pi (pi-coding-agent): ``~/.pi/agent/sessions/--<cwd>--/<timestamp>_<uuid>.jsonl``.

Pi rewrites a whole file when it migrates an old format; the uploader notices the rewrite
(the file no longer starts with what was uploaded) and sends it whole again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

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

_HEADER = type_marker("session")
_SESSION_INFO = type_marker("session_info")
_USER = re.compile(rb'"role"\s*:\s*"user"')


class Pi(Agent):
    """Pi sessions (native in the Hub's trace viewer)."""

    name = "pi"
    display_name = "Pi"
    remote = "pi"

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``$PI_CODING_AGENT_DIR/sessions`` or ``~/.pi/agent/sessions``."""
        base = environ.get("PI_CODING_AGENT_DIR")
        root = Path(base).expanduser() if base else home / ".pi" / "agent"
        return [Root(self, root / "sessions", self.remote)]

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """Every ``.jsonl`` below the sessions folder (one folder per working directory)."""
        return base_checks(rel) and rel.name.endswith(".jsonl")

    def is_subagent(self, rel: PurePosixPath) -> bool:
        """Subagent artifacts written by third-party extensions."""
        return "subagent-artifacts" in rel.parts

    def is_whole_json(self, rel: PurePosixPath) -> bool:
        """Pi writes no JSON sidecars."""
        return False

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Header (id, cwd, v1 model), ``session_info`` names, models, first user message."""
        meta.feed_common(chunk)
        if meta.session_id is None:
            for line in iter_lines_with(chunk, _HEADER):
                record = parse_line(line)
                if record and record.get("type") == "session":
                    meta.session_id = record.get("id") if isinstance(record.get("id"), str) else None
                    meta.cwd = record.get("cwd") if isinstance(record.get("cwd"), str) else None
                    if isinstance(record.get("modelId"), str):
                        meta.model = record["modelId"]
                break  # the header is the first session line
        meta.model = find_str_field(chunk, "model", last=True) or meta.model
        for line in lines_with(chunk, _SESSION_INFO, reverse=True):
            record = parse_line(line)
            if record and isinstance(record.get("name"), str) and record["name"].strip():
                meta.title = record["name"]
                break
        if meta.first_prompt is None:
            for i, line in enumerate(iter_lines_with(chunk, _USER)):
                if i >= 50:
                    break
                record = parse_line(line)
                if record is None:
                    meta.malformed_lines += 1
                    continue
                message = record.get("message")
                content = message.get("content") if isinstance(message, dict) else None
                text = content if isinstance(content, str) else None
                if isinstance(content, list):
                    text = next(
                        (
                            b["text"]
                            for b in content
                            if isinstance(b, dict)
                            and b.get("type") == "text"
                            and isinstance(b.get("text"), str)
                        ),
                        None,
                    )
                if text and text.strip():
                    meta.first_prompt = text
                    break
