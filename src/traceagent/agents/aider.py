"""Aider: ``<repo>/.aider.chat.history.md``, one Markdown file per repository, split into STS sessions.

Aider keeps no central session folder, so it is opt-in: list the repositories in
``config.toml`` (``[agents.aider] paths = ["~/src/app"]``); each becomes a root. The file is
appended to; every run starts with ``# aider chat started at YYYY-MM-DD HH:MM:SS`` (local
time). User turns are ``#### `` lines, Aider's own output (edits applied, commits, token
counts, the ``Model:`` banner) is ``> `` blockquotes, and the model's replies are plain text.
A history file renamed with ``--chat-history-file``/``AIDER_CHAT_HISTORY_FILE`` is found
when its name still ends in ``.chat.history.md``. ``.aider.input.history`` and the optional
LLM log are never read.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from traceagent.agents.base import Agent, ExportedSession, Root, SessionMeta
from traceagent.agents.sts import Message, Session, exported, safe_name

log = logging.getLogger(__name__)

_START = re.compile(r"^# aider chat started at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s*$", re.MULTILINE)
_MODEL = re.compile(r"^(?:Main )?[Mm]odel:\s*(\S+)")
_SUFFIX = ".chat.history.md"


def _local_ms(stamp: str) -> int:
    """Epoch ms of Aider's header time, which is the machine's local time."""
    return int(_dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").astimezone().timestamp() * 1000)


def split_sessions(text: str) -> list[tuple[str, str]]:
    """``(start time, body)`` for each ``# aider chat started at`` section, in file order."""
    starts = list(_START.finditer(text))
    return [
        (m.group(1), text[m.end() : starts[i + 1].start() if i + 1 < len(starts) else len(text)])
        for i, m in enumerate(starts)
    ]


def parse_turns(body: str) -> list[tuple[str, str]]:
    """``(kind, text)`` blocks of one session: ``user`` (####), ``output`` (>), ``assistant``."""
    blocks: list[tuple[str, list[str]]] = []
    fenced = False  # inside a ``` block of a reply (edit blocks have ">>>>>>> REPLACE" lines)
    for line in body.splitlines():
        if fenced or line.startswith("```"):
            fenced = fenced != line.startswith("```")
            kind, text = "assistant", line.rstrip()
        elif line.startswith("####"):
            kind, text = "user", line[4:].removeprefix(" ").rstrip()
        elif line.startswith(">"):
            kind, text = "output", line[1:].removeprefix(" ").rstrip()
        elif not line.strip():
            if blocks:
                blocks[-1][1].append("")
            continue
        else:
            kind, text = "assistant", line.rstrip()
        if blocks and blocks[-1][0] == kind and not (kind == "user" and blocks[-1][1][-1] == ""):
            blocks[-1][1].append(text)
        else:
            blocks.append((kind, [text]))
    return [(kind, "\n".join(lines).strip()) for kind, lines in blocks if "\n".join(lines).strip()]


def to_session(stamp: str, body: str, *, cwd: str, session_id: str) -> Session:
    """One Aider run as an STS session."""
    start = _local_ms(stamp)
    session = Session(harness="aider", id=session_id, cwd=cwd)
    model: str | None = None
    for kind, text in parse_turns(body):
        if kind == "output":
            for line in text.splitlines():
                m = _MODEL.match(line)
                model = m.group(1) if m else model
            session.messages.append(Message(role="system", content=text))
        elif kind == "user":
            session.messages.append(Message(role="user", content=text))
        else:
            session.messages.append(Message(role="assistant", content=text, model=model))
    if session.messages:
        session.messages[0].timestamp = start
    if model:
        session.extra["model"] = model
    return session


class Aider(Agent):
    """Aider chat histories of the configured repositories, converted to STS."""

    name = "aider"
    display_name = "Aider"
    remote = "aider"
    exports = True

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """None: Aider writes into each repository, so the repositories are configured."""
        return []

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """``.aider.chat.history.md`` (or another ``*.chat.history.md``) at the repository top."""
        return len(rel.parts) == 1 and rel.name.endswith(_SUFFIX)

    def is_whole_json(self, rel: PurePosixPath) -> bool:
        """Markdown, not JSON."""
        return False

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Exported sessions carry their metadata; nothing to read incrementally."""

    def export(self, path: Path) -> list[ExportedSession]:
        """One STS file per ``# aider chat started at`` section."""
        text = path.read_bytes().decode("utf-8", "replace")
        repo = path.parent
        tag = hashlib.sha256(str(repo).encode()).hexdigest()[:8]
        out = []
        seen: dict[str, int] = {}
        for stamp, body in split_sessions(text):
            name = stamp.replace(" ", "T").replace(":", "-")
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:  # two runs started within the same second
                name = f"{name}-{seen[name]}"
            session = to_session(stamp, body, cwd=str(repo), session_id=f"{name}-{tag}")
            if any(m.role in ("user", "assistant") for m in session.messages):
                out.append(exported(session, PurePosixPath(safe_name(repo.name), f"{name}.jsonl")))
        return out
