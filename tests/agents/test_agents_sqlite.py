"""SQLite agents: OpenCode, Goose, Hermes Agent, each against its own schema (and legacy files)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path, PurePosixPath
from typing import Any

from stsvalidate import (
    SHARE_SECRET,
    add_opencode_message,
    by_rel,
    header,
    messages,
    only,
    opencode_db,
    opencode_session,
    tool_pairs,
    write_json,
    write_jsonl,
)
from traceagent.agents import BY_NAME

MS0 = 1776679200000  # 2026-04-20T10:00:00Z


# -- OpenCode --------------------------------------------------------------------------------


def oc_tool(
    call_id: str, name: str, args: dict[str, Any], output: str, status: str = "completed"
) -> dict[str, Any]:
    state: dict[str, Any] = {"status": status, "input": args, "title": name, "metadata": {}}
    state["time"] = {"start": MS0 + 1200, "end": MS0 + 1400}
    state["output" if status == "completed" else "error"] = output
    return {"type": "tool", "callID": call_id, "tool": name, "state": state}


OC_TURNS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "user",
        [
            {"type": "text", "text": "fix the failing test"},
            {"type": "text", "text": "Called the Read tool with …", "synthetic": True},
            {"type": "file", "filename": "test_app.py", "mime": "text/x-python", "url": "file:///x"},
        ],
    ),
    (
        "assistant",
        [
            {"type": "step-start"},
            {"type": "reasoning", "text": "run pytest first"},
            {"type": "text", "text": "Running the tests."},
            oc_tool("toolu_1", "bash", {"command": "pytest -q"}, "1 failed"),
            {"type": "step-finish", "reason": "tool-calls"},
            {"type": "step-start"},
            {"type": "text", "text": "Fixing the assertion."},
            oc_tool("toolu_2", "edit", {"filePath": "test_app.py"}, "permission denied", status="error"),
            oc_tool("toolu_3", "bash", {"command": "sleep 99"}, "", status="running"),
        ],
    ),
]


def test_opencode_exports_every_session_of_the_database(tmp_path: Path) -> None:
    opencode = BY_NAME["opencode"]
    db = tmp_path / "opencode/opencode.db"
    conn = opencode_db(db)
    opencode_session(conn, "ses_A", "Fix the failing test", MS0, OC_TURNS, share=True)
    opencode_session(
        conn,
        "ses_B",
        "Explore tests (@explore subagent)",
        MS0 + 5000,
        [("user", [{"type": "text", "text": "find tests"}])],
        parent="ses_A",
    )
    opencode_session(conn, "ses_E", "New session", MS0 + 9000, [])  # no messages yet: not exported
    token = opencode.change_token(db)
    sessions = by_rel(opencode.export(db))
    assert sorted(sessions) == ["ses_A.jsonl", "ses_B.jsonl"]
    a = sessions["ses_A.jsonl"]
    head = header(a.data)
    assert (head["harness"], head["id"], head["name"], head["cwd"]) == (
        "opencode",
        "ses_A",
        "Fix the failing test",
        "/home/me/app",
    )
    msgs = messages(a.data)
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "fix the failing test\n\n[file: test_app.py]"),
        ("assistant", "Running the tests."),
        ("tool", "1 failed"),
        ("assistant", "Fixing the assertion."),
        ("tool", "Error: permission denied"),
    ]
    assert msgs[1]["reasoningContent"] == "run pytest first" and msgs[1]["model"] == "claude-sonnet-4-5"
    assert [c["function"]["name"] for c in msgs[3]["toolCalls"]] == [
        "edit",
        "bash",
    ]  # the running call has no result
    assert tool_pairs(msgs) == [
        ("bash", '{"command": "pytest -q"}', "1 failed"),
        ("edit", '{"filePath": "test_app.py"}', "Error: permission denied"),
    ]
    assert msgs[0]["timestamp"] == MS0 and msgs[2]["timestamp"] == MS0 + 1400
    assert a.meta.title == "Fix the failing test" and a.meta.first_prompt.startswith("fix the failing test")
    b = sessions["ses_B.jsonl"]
    assert b.meta.is_subagent and header(b.data)["parentId"] == "ses_A"
    assert all(SHARE_SECRET.encode() not in s.data for s in sessions.values())
    # A committed change (still in the -wal) changes the token and the export.
    add_opencode_message(
        conn, "ses_A", "msg_ses_A_900", role="user", t=MS0 + 60000, parts=[{"type": "text", "text": "thanks"}]
    )
    conn.commit()
    assert (db.parent / "opencode.db-wal").stat().st_size > 0
    assert opencode.change_token(db) != token
    assert messages(by_rel(opencode.export(db))["ses_A.jsonl"].data)[-1]["content"] == "thanks"
    conn.close()


def test_opencode_allow_list_channels_and_legacy_storage(tmp_path: Path) -> None:
    opencode = BY_NAME["opencode"]
    for rel, ok in [
        ("opencode.db", True),
        ("opencode.db-wal", True),
        ("opencode-beta.db", True),
        ("opencode.db-shm", False),
        ("auth.json", False),
        ("mcp-auth.json", False),
        ("log/2026-04-20.log", False),
        ("snapshot/p1/objects/ab/cdef", False),
        ("storage/session/p1/ses_L.json", True),
        ("storage/message/ses_L/msg_1.json", True),
        ("storage/part/msg_1/prt_1.json", False),
        ("storage/session_share/ses_L.json", False),
        ("storage/project/p1.json", False),
    ]:
        assert opencode.is_transcript(PurePosixPath(rel)) is ok, rel
    assert opencode.source_of(PurePosixPath("opencode-beta.db-wal")) == PurePosixPath("opencode-beta.db")
    assert opencode.source_of(PurePosixPath("storage/session/p1/ses_L.json")) == PurePosixPath(
        "storage/message/ses_L"
    )
    root = tmp_path / "opencode"
    beta = opencode_db(root / "opencode-beta.db")
    opencode_session(beta, "ses_X", "beta", MS0, [("user", [{"type": "text", "text": "hi"}])])
    assert [s.rel.as_posix() for s in opencode.export(root / "opencode-beta.db")] == ["beta/ses_X.jsonl"]
    beta.close()
    # Legacy JSON storage (before v1.2): one file per session, message and part.
    storage = root / "storage"
    write_json(
        storage / "session/p1/ses_L.json",
        {"id": "ses_L", "title": "Old one", "directory": "/home/me/old", "time": {"created": MS0}},
    )
    write_json(
        storage / "message/ses_L/msg_1.json",
        {"id": "msg_1", "sessionID": "ses_L", "role": "user", "time": {"created": MS0}},
    )
    write_json(
        storage / "part/msg_1/prt_1.json",
        {"id": "prt_1", "messageID": "msg_1", "type": "text", "text": "hello"},
    )
    write_json(
        storage / "message/ses_L/msg_2.json",
        {
            "id": "msg_2",
            "sessionID": "ses_L",
            "role": "assistant",
            "modelID": "gpt-4.1",
            "time": {"created": MS0 + 1000},
        },
    )
    write_json(storage / "part/msg_2/prt_1.json", {"type": "text", "text": "hi there"})
    write_json(storage / "session_share/ses_L.json", {"secret": SHARE_SECRET})
    source = root / opencode.source_of(PurePosixPath("storage/message/ses_L/msg_1.json"))
    opencode.change_token(source)
    s = only(opencode.export(source))
    assert s.rel == PurePosixPath("ses_L.jsonl") and header(s.data)["name"] == "Old one"
    assert [(m["role"], m["content"]) for m in messages(s.data)] == [
        ("user", "hello"),
        ("assistant", "hi there"),
    ]
    assert SHARE_SECRET.encode() not in s.data
    # Once migrated into opencode.db, the legacy copy is not exported again.
    main = opencode_db(root / "opencode.db")
    opencode_session(main, "ses_L", "Old one", MS0, [("user", [{"type": "text", "text": "hello"}])])
    assert opencode.export(source) == []
    main.close()


# -- Goose -----------------------------------------------------------------------------------

GOOSE_SCHEMA = """
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
INSERT INTO schema_version (version) VALUES (5);
CREATE TABLE sessions (
    id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', description TEXT NOT NULL DEFAULT '',
    user_set_name BOOLEAN DEFAULT FALSE, session_type TEXT NOT NULL DEFAULT 'user', working_dir TEXT NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    extension_data TEXT DEFAULT '{}', total_tokens INTEGER, input_tokens INTEGER, output_tokens INTEGER,
    accumulated_total_tokens INTEGER, accumulated_input_tokens INTEGER, accumulated_output_tokens INTEGER,
    schedule_id TEXT, recipe_json TEXT, user_recipe_values_json TEXT);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(id), role TEXT NOT NULL,
    content_json TEXT NOT NULL, created_timestamp INTEGER NOT NULL, timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    tokens INTEGER, metadata_json TEXT);
CREATE INDEX idx_messages_session ON messages(session_id);
CREATE INDEX idx_sessions_updated ON sessions(updated_at DESC);
CREATE INDEX idx_sessions_type ON sessions(session_type);
"""

S0 = MS0 // 1000
VISIBLE = json.dumps({"userVisible": True, "agentVisible": True})


def goose_messages() -> list[tuple[str, list[dict[str, Any]], int, str]]:
    request = {
        "type": "toolRequest",
        "id": "call_1",
        "toolCall": {
            "status": "success",
            "value": {"name": "developer__shell", "arguments": {"command": "ls"}},
        },
    }
    response = {
        "type": "toolResponse",
        "id": "call_1",
        "toolResult": {"status": "success", "value": [{"type": "text", "text": "Cargo.toml src"}]},
    }
    return [
        ("user", [{"type": "text", "text": "what is in this repo?"}], S0, VISIBLE),
        ("assistant", [{"type": "text", "text": "Let me look."}, request], S0 + 1, VISIBLE),
        ("user", [response], S0 + 2, VISIBLE),
        (
            "user",
            [{"type": "text", "text": "(compaction summary for the model)"}],
            S0 + 3,
            json.dumps({"userVisible": False}),
        ),
        (
            "assistant",
            [
                {"type": "thinking", "thinking": "a Rust crate", "signature": "sig"},
                {"type": "text", "text": "A Rust crate."},
            ],
            S0 + 4,
            VISIBLE,
        ),
    ]


def test_goose_export_and_legacy_files(tmp_path: Path) -> None:
    goose = BY_NAME["goose"]
    db = tmp_path / "sessions/sessions.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(GOOSE_SCHEMA)
    conn.execute(
        "INSERT INTO sessions (id, name, working_dir, session_type, created_at) VALUES (?, ?, ?, ?, ?)",
        ("20260420_1", "Repo tour", "/home/me/crate", "user", "2026-04-20 10:00:00"),
    )
    conn.execute(
        "INSERT INTO sessions (id, description, working_dir, session_type) VALUES ('20260420_2', 'sub task', '/x', 'sub_agent')"
    )
    for role, content, created, meta in goose_messages():
        conn.execute(
            "INSERT INTO messages (session_id, role, content_json, created_timestamp, metadata_json) VALUES (?, ?, ?, ?, ?)",
            ("20260420_1", role, json.dumps(content), created, meta),
        )
    conn.execute(
        "INSERT INTO messages (session_id, role, content_json, created_timestamp) VALUES ('20260420_2', 'user', ?, ?)",
        (json.dumps([{"type": "text", "text": "grep"}]), S0),
    )
    conn.commit()
    for rel, ok in [
        ("sessions.db", True),
        ("sessions.db-wal", True),
        ("sessions.db-shm", False),
        ("20250101_1.jsonl", True),
        ("backups/sessions.db", False),
    ]:
        assert goose.is_transcript(PurePosixPath(rel)) is ok, rel
    sessions = by_rel(goose.export(db))
    assert sorted(sessions) == ["20260420_1.jsonl", "20260420_2.jsonl"]
    s = sessions["20260420_1.jsonl"]
    head = header(s.data)
    assert (head["harness"], head["name"], head["cwd"]) == ("goose", "Repo tour", "/home/me/crate")
    msgs = messages(s.data)
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "what is in this repo?"),
        ("assistant", "Let me look."),
        ("tool", "Cargo.toml src"),
        ("assistant", "A Rust crate."),
    ]
    assert tool_pairs(msgs) == [("developer__shell", '{"command": "ls"}', "Cargo.toml src")]
    assert msgs[3]["reasoningContent"] == "a Rust crate" and msgs[0]["timestamp"] == MS0
    assert sessions["20260420_2.jsonl"].meta.is_subagent
    # Legacy <id>.jsonl: exported unless the database imported it.
    line1 = {"working_dir": "/home/me/old", "description": "Old chat", "message_count": 1}
    old = write_jsonl(
        db.parent / "20250101_1.jsonl",
        [line1, {"role": "user", "created": S0, "content": [{"type": "text", "text": "hi"}]}],
    )
    s = only(goose.export(old))
    assert header(s.data)["name"] == "Old chat" and messages(s.data)[0]["content"] == "hi"
    imported = write_jsonl(db.parent / "20260420_1.jsonl", [line1])
    assert goose.export(imported) == []
    conn.close()


# -- Hermes Agent ----------------------------------------------------------------------------

HERMES_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, created_source TEXT, user_id TEXT, session_key TEXT,
    chat_id TEXT, chat_type TEXT, thread_id TEXT, display_name TEXT, origin_json TEXT,
    expiry_finalized INTEGER DEFAULT 0, model TEXT, model_config TEXT, system_prompt TEXT,
    system_prompt_hash TEXT, parent_session_id TEXT, started_at REAL NOT NULL, ended_at REAL,
    end_reason TEXT, message_count INTEGER DEFAULT 0, tool_call_count INTEGER DEFAULT 0,
    input_tokens INTEGER DEFAULT 0, output_tokens INTEGER DEFAULT 0, cache_read_tokens INTEGER DEFAULT 0,
    cache_write_tokens INTEGER DEFAULT 0, reasoning_tokens INTEGER DEFAULT 0, cwd TEXT, git_branch TEXT,
    git_repo_root TEXT, billing_provider TEXT, estimated_cost_usd REAL, title TEXT, title_source TEXT,
    last_activity_at REAL, archived INTEGER NOT NULL DEFAULT 0, pinned INTEGER NOT NULL DEFAULT 0,
    hidden INTEGER NOT NULL DEFAULT 0,
    FOREIGN KEY (parent_session_id) REFERENCES sessions(id));
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(id),
    role TEXT NOT NULL, content TEXT, tool_call_id TEXT, tool_calls TEXT, tool_name TEXT,
    effect_disposition TEXT, timestamp REAL NOT NULL, token_count INTEGER, finish_reason TEXT,
    reasoning TEXT, reasoning_content TEXT, reasoning_details TEXT, codex_reasoning_items TEXT,
    codex_message_items TEXT, platform_message_id TEXT, observed INTEGER DEFAULT 0,
    _compressed_summary INTEGER NOT NULL DEFAULT 0, active INTEGER NOT NULL DEFAULT 1,
    compacted INTEGER NOT NULL DEFAULT 0, api_content TEXT, display_kind TEXT, display_metadata TEXT,
    display_identity BLOB, display_order INTEGER);
CREATE TABLE IF NOT EXISTS state_meta (key TEXT PRIMARY KEY, value TEXT);
CREATE INDEX IF NOT EXISTS idx_messages_session ON messages(session_id, timestamp);
"""

#: An older install: no cwd/git columns on sessions, no active/compacted/display columns on messages.
HERMES_OLD_SCHEMA = """
CREATE TABLE sessions (id TEXT PRIMARY KEY, source TEXT NOT NULL, model TEXT, model_config TEXT,
    system_prompt TEXT, parent_session_id TEXT, started_at REAL NOT NULL, ended_at REAL, end_reason TEXT,
    message_count INTEGER DEFAULT 0, tool_call_count INTEGER DEFAULT 0, input_tokens INTEGER DEFAULT 0,
    output_tokens INTEGER DEFAULT 0, title TEXT);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, role TEXT NOT NULL,
    content TEXT, tool_call_id TEXT, tool_calls TEXT, tool_name TEXT, timestamp REAL NOT NULL,
    token_count INTEGER, finish_reason TEXT, reasoning TEXT);
"""


def hermes_db(path: Path, schema: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(schema)
    return conn


def add_hermes_message(conn: sqlite3.Connection, sid: str, role: str, t: float, **cols: Any) -> None:
    names = ["session_id", "role", "timestamp", *cols]
    conn.execute(
        f"INSERT INTO messages ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        (sid, role, t, *cols.values()),
    )


def test_hermes_export_profiles_rewinds_and_legacy(tmp_path: Path) -> None:
    hermes = BY_NAME["hermes"]
    root = tmp_path / ".hermes"
    conn = hermes_db(root / "state.db", HERMES_SCHEMA)
    conn.execute(
        "INSERT INTO sessions (id, source, model, started_at, cwd, git_branch, title) VALUES (?, 'cli', ?, ?, ?, ?, ?)",
        ("20260420_100000_ab12", "anthropic/claude-opus-4.6", S0, "/home/me/bot", "main", "Disk usage"),
    )
    sid = "20260420_100000_ab12"
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "terminal", "arguments": '{"command": "df -h"}'},
        }
    ]
    add_hermes_message(conn, sid, "user", S0 + 1, content="how full is the disk?")
    add_hermes_message(
        conn, sid, "assistant", S0 + 2, content="", tool_calls=json.dumps(calls), reasoning="check df"
    )
    add_hermes_message(
        conn, sid, "tool", S0 + 3, content="/dev/sda1 42%", tool_call_id="call_1", tool_name="terminal"
    )
    add_hermes_message(conn, sid, "assistant", S0 + 4, content="42% used.", finish_reason="stop")
    add_hermes_message(conn, sid, "user", S0 + 5, content="rewound away", active=0)
    add_hermes_message(conn, sid, "user", S0 + 6, content="(model-only scaffolding)", display_kind="hidden")
    conn.commit()
    (root / ".env").write_text("OPENROUTER_API_KEY=sk-or-secret\n")
    (root / "auth.json").write_text('{"token": "secret"}')
    for rel, ok in [
        ("state.db", True),
        ("state.db-wal", True),
        ("state.db-shm", False),
        (".env", False),
        ("auth.json", False),
        ("config.yaml", False),
        ("profiles/work/state.db", True),
        ("profiles/work/.env", False),
        ("sessions/session_20250101_x.json", True),
        ("profiles/work/sessions/session_y.json", True),
        ("hermes-agent/sessions/session_z.json", False),
    ]:
        assert hermes.is_transcript(PurePosixPath(rel)) is ok, rel
    s = only(hermes.export(root / "state.db"))
    assert s.rel == PurePosixPath(f"{sid}.jsonl")
    head = header(s.data)
    assert (head["harness"], head["name"], head["cwd"], head["gitBranch"], head["source"]) == (
        "hermes",
        "Disk usage",
        "/home/me/bot",
        "main",
        "cli",
    )
    msgs = messages(s.data)
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "how full is the disk?"),
        ("assistant", ""),
        ("tool", "/dev/sda1 42%"),
        ("assistant", "42% used."),
    ]
    assert tool_pairs(msgs) == [("terminal", '{"command": "df -h"}', "/dev/sda1 42%")]
    assert msgs[1]["reasoningContent"] == "check df" and msgs[3]["model"] == "anthropic/claude-opus-4.6"
    assert msgs[0]["timestamp"] == MS0 + 1000
    # A profile with an older schema.
    old = hermes_db(root / "profiles/work/state.db", HERMES_OLD_SCHEMA)
    old.execute(
        "INSERT INTO sessions (id, source, started_at, model) VALUES ('w1', 'telegram', ?, 'gpt-5')", (S0,)
    )
    add_hermes_message(old, "w1", "user", S0, content="hello from telegram")
    old.commit()
    s = only(hermes.export(root / "profiles/work/state.db"))
    assert s.rel == PurePosixPath("profiles/work/w1.jsonl") and header(s.data)["source"] == "telegram"
    # Legacy session JSON: exported unless the database has it.
    legacy = write_json(
        root / "sessions/session_20250101_old.json",
        {
            "session_id": "20250101_old",
            "model": "hermes-3",
            "platform": "cli",
            "session_start": "2025-01-01T10:00:00",
            "messages": [
                {"role": "user", "content": "old question"},
                {"role": "assistant", "content": "old answer"},
            ],
        },
    )
    s = only(hermes.export(legacy))
    assert [m["content"] for m in messages(s.data)] == ["old question", "old answer"]
    assert messages(s.data)[0]["timestamp"] == 1735725600000
    dup = write_json(
        root / "sessions/session_dup.json",
        {"session_id": sid, "messages": [{"role": "user", "content": "x"}]},
    )
    assert hermes.export(dup) == []
    for exported in (hermes.export(root / "state.db"), hermes.export(legacy)):
        assert all(b"sk-or-secret" not in e.data for e in exported)
    conn.close()
    old.close()
