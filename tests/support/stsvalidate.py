"""Helpers for the agent tests: STS validation, isolation from the agents' own variables."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from traceagent.agents.base import ExportedSession
from traceagent.agents.sts import check

#: Variables the agents read (beyond HOME/XDG, which the ``env`` fixture isolates).
AGENT_VARS = (
    "GEMINI_CLI_HOME",
    "COPILOT_HOME",
    "QWEN_RUNTIME_DIR",
    "QWEN_HOME",
    "GOOSE_PATH_ROOT",
    "HERMES_HOME",
    "HERMES_DATA_DIR_SUFFIX",
    "CLINE_DATA_DIR",
    "CLINE_DIR",
    "APPDATA",
    "LOCALAPPDATA",
)


def isolate_agents(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Drop the agents' override variables from ``env`` and from this process."""
    for var in AGENT_VARS:
        env.pop(var, None)
        monkeypatch.delenv(var, raising=False)
    return env


def sts_lines(data: bytes) -> list[dict[str, Any]]:
    """Validate an STS file (the test fails on any problem) and return its lines."""
    return check(data)


def messages(data: bytes) -> list[dict[str, Any]]:
    """The ``message`` objects of a valid STS file."""
    return [line["message"] for line in sts_lines(data)[1:]]


def header(data: bytes) -> dict[str, Any]:
    """The header line of a valid STS file."""
    return sts_lines(data)[0]


def only(sessions: Sequence[ExportedSession]) -> ExportedSession:
    """The single exported session (validated)."""
    assert len(sessions) == 1, [s.rel for s in sessions]
    sts_lines(sessions[0].data)
    return sessions[0]


def by_rel(sessions: Sequence[ExportedSession]) -> dict[str, ExportedSession]:
    """Exported sessions by their remote path (every one validated)."""
    for s in sessions:
        sts_lines(s.data)
    return {s.rel.as_posix(): s for s in sessions}


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    """Write records as JSONL (creating folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_json(path: Path, value: object) -> Path:
    """Write one JSON document (creating folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")
    return path


def tool_pairs(msgs: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(tool name, arguments, result content)`` for each call that has a result."""
    calls: dict[str, tuple[str, str]] = {}
    out = []
    for m in msgs:
        for c in m.get("toolCalls", []):
            calls[c["id"]] = (c["function"]["name"], c["function"]["arguments"])
        if m["role"] == "tool":
            name, args = calls[m["toolCallId"]]
            out.append((name, args, m["content"]))
    return out


# -- OpenCode's store, as its migrations create it (shared by the agent and engine tests) ------

OPENCODE_SCHEMA = """
CREATE TABLE `project` (`id` text PRIMARY KEY, `worktree` text NOT NULL, `vcs` text, `name` text,
 `icon_url` text, `icon_color` text, `time_created` integer NOT NULL, `time_updated` integer NOT NULL,
 `time_initialized` integer, `sandboxes` text NOT NULL);
CREATE TABLE `session` (`id` text PRIMARY KEY, `project_id` text NOT NULL, `parent_id` text,
 `slug` text NOT NULL, `directory` text NOT NULL, `title` text NOT NULL, `version` text NOT NULL,
 `share_url` text, `summary_additions` integer, `summary_deletions` integer, `summary_files` integer,
 `summary_diffs` text, `revert` text, `permission` text, `time_created` integer NOT NULL,
 `time_updated` integer NOT NULL, `time_compacting` integer, `time_archived` integer,
 `workspace_id` text, `path` text, `agent` text, `model` text,
 CONSTRAINT `fk_session_project_id_project_id_fk` FOREIGN KEY (`project_id`) REFERENCES `project`(`id`) ON DELETE CASCADE);
CREATE TABLE `message` (`id` text PRIMARY KEY, `session_id` text NOT NULL, `time_created` integer NOT NULL,
 `time_updated` integer NOT NULL, `data` text NOT NULL,
 CONSTRAINT `fk_message_session_id_session_id_fk` FOREIGN KEY (`session_id`) REFERENCES `session`(`id`) ON DELETE CASCADE);
CREATE TABLE `part` (`id` text PRIMARY KEY, `message_id` text NOT NULL, `session_id` text NOT NULL,
 `time_created` integer NOT NULL, `time_updated` integer NOT NULL, `data` text NOT NULL,
 CONSTRAINT `fk_part_message_id_message_id_fk` FOREIGN KEY (`message_id`) REFERENCES `message`(`id`) ON DELETE CASCADE);
CREATE TABLE `todo` (`session_id` text NOT NULL, `content` text NOT NULL, `status` text NOT NULL,
 `priority` text NOT NULL, `position` integer NOT NULL, `time_created` integer NOT NULL,
 `time_updated` integer NOT NULL, CONSTRAINT `todo_pk` PRIMARY KEY(`session_id`, `position`));
CREATE TABLE `permission` (`project_id` text PRIMARY KEY, `time_created` integer NOT NULL,
 `time_updated` integer NOT NULL, `data` text NOT NULL);
CREATE TABLE `session_share` (`session_id` text PRIMARY KEY, `id` text NOT NULL, `secret` text NOT NULL,
 `url` text NOT NULL, `time_created` integer NOT NULL, `time_updated` integer NOT NULL);
CREATE INDEX `message_session_time_created_id_idx` ON `message` (`session_id`,`time_created`,`id`);
CREATE INDEX `part_message_id_id_idx` ON `part` (`message_id`,`id`);
CREATE INDEX `part_session_idx` ON `part` (`session_id`);
CREATE INDEX `session_project_idx` ON `session` (`project_id`);
CREATE INDEX `session_parent_idx` ON `session` (`parent_id`);
"""

SHARE_SECRET = "share-secret-7f3c9a1e"


def opencode_db(path: Path) -> sqlite3.Connection:
    """A new OpenCode database in WAL mode (kept open: the caller is the live agent)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # keep commits in the -wal, as a busy agent does
    conn.executescript(OPENCODE_SCHEMA)
    conn.execute(
        "INSERT INTO project VALUES ('p1', '/home/me/app', 'git', 'app', NULL, NULL, 1, 1, NULL, '[]')"
    )
    conn.commit()
    return conn


def opencode_session(
    conn: sqlite3.Connection,
    sid: str,
    title: str,
    t0: int,
    turns: Sequence[tuple[str, Sequence[dict[str, Any]]]],
    *,
    parent: str | None = None,
    share: bool = False,
) -> None:
    """Insert a session and its ``(role, parts)`` turns, one message per turn, 1 s apart."""
    conn.execute(
        "INSERT OR REPLACE INTO session (id, project_id, parent_id, slug, directory, title, version, "
        "time_created, time_updated) VALUES (?, 'p1', ?, ?, '/home/me/app', ?, '1.2.3', ?, ?)",
        (sid, parent, sid[-6:], title, t0, t0 + 1000 * len(turns)),
    )
    for i, (role, parts) in enumerate(turns):
        add_opencode_message(conn, sid, f"msg_{sid}_{i:03d}", role=role, t=t0 + 1000 * i, parts=parts)
    if share:
        conn.execute(
            "INSERT INTO session_share VALUES (?, 'sh1', ?, 'https://opncd.ai/s/x', ?, ?)",
            (sid, SHARE_SECRET, t0, t0),
        )
    conn.commit()


def add_opencode_message(
    conn: sqlite3.Connection, sid: str, mid: str, *, role: str, t: int, parts: Sequence[dict[str, Any]]
) -> None:
    """Insert one message with its parts (as OpenCode's session processor writes them)."""
    data: dict[str, Any] = {"role": role, "time": {"created": t}}
    if role == "assistant":
        data.update(
            {
                "modelID": "claude-sonnet-4-5",
                "providerID": "anthropic",
                "mode": "build",
                "path": {"cwd": "/home/me/app", "root": "/home/me/app"},
                "cost": 0.01,
                "tokens": {"input": 10, "output": 5, "reasoning": 0, "cache": {"read": 0, "write": 0}},
                "time": {"created": t, "completed": t + 500},
            }
        )
    conn.execute("INSERT OR REPLACE INTO message VALUES (?, ?, ?, ?, ?)", (mid, sid, t, t, json.dumps(data)))
    for j, part in enumerate(parts):
        conn.execute(
            "INSERT OR REPLACE INTO part VALUES (?, ?, ?, ?, ?, ?)",
            (f"prt_{mid}_{j:03d}", mid, sid, t, t, json.dumps(part)),
        )
    conn.execute("UPDATE session SET time_updated = ? WHERE id = ?", (t + 500, sid))
