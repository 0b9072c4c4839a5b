"""Cline and Roo Code: ``<VS Code user dir>/globalStorage/<extension>/tasks/<task id>/`` → STS.

Each task folder holds whole-JSON files rewritten on every update:
``api_conversation_history.json`` (an array of Anthropic-style ``{role, content[]}``
messages: the conversation), ``ui_messages.json`` (``{ts, type, say|ask, text}``: what the
panel showed, used for timestamps), ``task_metadata.json`` (``model_usage``: which model ran
when). The task id is its creation time in ms. ``state/taskHistory.json`` beside ``tasks/``
gives the working directory. Every VS Code flavour (Code, Insiders, VSCodium, Cursor,
Windsurf) is a root of its own; the Cline CLI keeps the same layout under
``$CLINE_DATA_DIR``, ``$CLINE_DIR/data`` or ``~/.cline/data``, next to ``secrets.json``
(API keys) and ``globalState.json``, which are outside ``tasks/`` and never read.
"""

from __future__ import annotations

import bisect
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from traceagent.agents.base import Agent, ExportedSession, Root, SessionMeta, base_checks
from traceagent.agents.blocks import CallIds, anthropic_messages
from traceagent.agents.sts import Session, exported, to_ms

log = logging.getLogger(__name__)

API = "api_conversation_history.json"
UI = "ui_messages.json"
META = "task_metadata.json"
TASK_FILES = (API, UI, META)

#: VS Code flavours: (folder under the config dir, suffix of the remote folder).
FLAVOURS = (
    ("Code", ""),
    ("Code - Insiders", "insiders"),
    ("VSCodium", "vscodium"),
    ("Cursor", "cursor"),
    ("Windsurf", "windsurf"),
)


def vscode_user_dirs(environ: Mapping[str, str], home: Path, platform: str) -> list[tuple[str, Path]]:
    """``(remote suffix, User folder)`` for each VS Code flavour on ``platform``."""
    if platform.startswith("win"):
        appdata = environ.get("APPDATA")
        base = Path(appdata) if appdata else home / "AppData" / "Roaming"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = environ.get("XDG_CONFIG_HOME")
        base = Path(xdg).expanduser() if xdg else home / ".config"
    return [(suffix, base / folder / "User") for folder, suffix in FLAVOURS]


def _strip_context(content: object) -> object:
    """User turns without Cline's injected ``<environment_details>``; ``<task>`` unwrapped."""
    if not isinstance(content, list):
        return content
    out = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            text = block["text"].strip()
            if text.startswith("<environment_details>"):
                continue
            if text.startswith("<task>") and text.endswith("</task>"):
                out.append({**block, "text": text[len("<task>") : -len("</task>")].strip()})
                continue
        out.append(block)
    return out


def _model_at(usage: Sequence[tuple[int, str]], ts: int | None) -> str | None:
    """The model in use at ``ts`` (from ``task_metadata.json``'s ``model_usage``)."""
    if not usage:
        return None
    if ts is None:
        return usage[-1][1]
    i = bisect.bisect_right([u[0] for u in usage], ts)
    return usage[max(i - 1, 0)][1]


def to_session(
    task_id: str,
    api: Sequence[object],
    ui: Sequence[object] = (),
    metadata: Mapping[str, Any] | None = None,
    *,
    harness: str = "cline",
    cwd: str | None = None,
) -> Session:
    """A task's API history as an STS session, timed from the UI log where messages carry no ``ts``."""
    usage = sorted(
        (to_ms(u.get("ts")) or 0, str(u.get("model_id")))
        for u in ((metadata or {}).get("model_usage") or [])
        if isinstance(u, dict) and u.get("model_id")
    )
    ui_items = [u for u in ui if isinstance(u, dict)]
    requests = [to_ms(u.get("ts")) for u in ui_items if u.get("say") == "api_req_started"]
    start = to_ms(ui_items[0].get("ts")) if ui_items else None
    start = start or (to_ms(int(task_id)) if task_id.isdigit() else None)
    session = Session(harness=harness, id=task_id, cwd=cwd)
    ids = CallIds()
    replies = 0
    last_ts = start
    for item in api:
        if not isinstance(item, dict) or item.get("role") not in ("user", "assistant"):
            continue
        role = str(item["role"])
        ts = to_ms(item.get("ts"))
        if ts is None and role == "assistant" and replies < len(requests):
            ts = requests[replies]
        ts = ts or last_ts
        content = item.get("content") if role == "assistant" else _strip_context(item.get("content"))
        model = _model_at(usage, ts) if role == "assistant" else None
        session.messages.extend(anthropic_messages(role, content, ids, timestamp=ts, model=model))
        replies += role == "assistant"
        last_ts = ts
    return session


def _load(path: Path) -> Any:
    """A whole-JSON file, or None when absent; a half-written file is retried later."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(data)
    except ValueError as e:
        raise OSError(f"{path.name} is not complete JSON yet") from e


def task_cwd(tasks: Path, task_id: str) -> str | None:
    """``cwdOnTaskInitialization`` from ``state/taskHistory.json`` beside ``tasks/``."""
    try:
        history = json.loads((tasks.parent / "state" / "taskHistory.json").read_bytes())
    except (OSError, ValueError):
        return None
    for item in history if isinstance(history, list) else []:
        if isinstance(item, dict) and str(item.get("id")) == task_id:
            cwd = item.get("cwdOnTaskInitialization")
            return cwd if isinstance(cwd, str) else None
    return None


class TaskFolders(Agent):
    """A VS Code extension that keeps one folder of whole-JSON files per task."""

    extension_id: ClassVar[str]
    exports = True

    def _roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        return [
            Root(
                self,
                user / "globalStorage" / self.extension_id / "tasks",
                f"{self.remote}-{suffix}" if suffix else self.remote,
            )
            for suffix, user in vscode_user_dirs(environ, home, sys.platform)
        ]

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """``tasks/`` in the extension's global storage of every VS Code flavour."""
        return self._roots(environ, home)

    def is_transcript(self, rel: PurePosixPath) -> bool:
        """The three task files; never settings, secrets or checkpoints."""
        return base_checks(rel) and len(rel.parts) == 2 and rel.name in TASK_FILES

    def source_of(self, rel: PurePosixPath) -> PurePosixPath:
        """A task's files belong to its folder."""
        return rel.parent if len(rel.parts) == 2 and rel.name in TASK_FILES else rel

    def change_token(self, path: Path) -> tuple[int, int]:
        """A task folder changes when any of its files does."""
        stats = [(path / name).stat() for name in TASK_FILES if (path / name).exists()]
        if not stats:
            raise FileNotFoundError(2, "No task files", str(path / API))
        return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)

    def feed(self, meta: SessionMeta, chunk: bytes) -> None:
        """Exported sessions carry their metadata; nothing to read incrementally."""

    def export(self, path: Path) -> list[ExportedSession]:
        """One STS file per task folder (nothing until the API history exists)."""
        api = _load(path / API)
        if not isinstance(api, list):
            return []
        ui = _load(path / UI)
        metadata = _load(path / META)
        session = to_session(
            path.name,
            api,
            ui if isinstance(ui, list) else [],
            metadata if isinstance(metadata, dict) else None,
            harness=self.name,
            cwd=task_cwd(path.parent, path.name),
        )
        if not session.messages:
            return []
        return [exported(session, f"{path.name}.jsonl", (path / API).stat().st_mtime)]


class Cline(TaskFolders):
    """Cline (VS Code extension and CLI) tasks, converted to the Session Traces Format."""

    name = "cline"
    display_name = "Cline"
    remote = "cline"
    extension_id = "saoudrizwan.claude-dev"

    def default_roots(self, environ: Mapping[str, str], home: Path) -> list[Root]:
        """Every VS Code flavour's extension storage, and the CLI's data folder."""
        data = environ.get("CLINE_DATA_DIR")
        cli = Path(data).expanduser() if data else None
        if cli is None:
            base = environ.get("CLINE_DIR")
            cli = (Path(base).expanduser() if base else home / ".cline") / "data"
        return [*self._roots(environ, home), Root(self, cli / "tasks", "cline-cli")]


class RooCode(TaskFolders):
    """Roo Code (a Cline fork) tasks, converted to the Session Traces Format."""

    name = "roo"
    display_name = "Roo Code"
    remote = "roo"
    extension_id = "rooveterinaryinc.roo-cline"
