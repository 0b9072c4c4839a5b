"""File-based agents: Factory Droid (native), Gemini CLI, Copilot CLI, Qwen Code, Cursor CLI, Aider.

Each fixture is written in the agent's own layout (agents.md); every export is checked with
the STS validator, then for roles, tool calls paired with results, timestamps and titles.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path, PurePosixPath

from stsvalidate import by_rel, header, messages, only, tool_pairs, write_json, write_jsonl
from traceagent.agents import BY_NAME, SessionMeta
from traceagent.agents.droid import to_session as droid_to_session
from traceagent.agents.gemini import replay
from traceagent.agents.sts import exported, jsonl_records, render, validate

T0 = "2026-04-20T10:00:00.000Z"
MS0 = 1776679200000


def ts(seconds: int) -> str:
    return f"2026-04-20T10:00:{seconds:02d}.000Z"


# -- Factory Droid ---------------------------------------------------------------------------

DROID = [
    {
        "type": "session_start",
        "id": "d-1",
        "title": "Fix login",
        "sessionTitle": "Fix the login form",
        "cwd": "/home/me/web",
        "version": "0.84",
    },
    {
        "type": "message",
        "id": "m1",
        "parentId": None,
        "timestamp": ts(1),
        "message": {"role": "user", "content": [{"type": "text", "text": "the login form is broken"}]},
    },
    {
        "type": "message",
        "id": "m2",
        "parentId": "m1",
        "timestamp": ts(2),
        "message": {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "tu1", "name": "Read", "input": {"path": "login.tsx"}},
            ],
        },
    },
    {
        "type": "message",
        "id": "m3",
        "parentId": "m2",
        "timestamp": ts(3),
        "message": {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "<form>"}],
        },
    },
]


def test_droid_uploads_raw_with_sidecars_and_reads_metadata() -> None:
    droid = BY_NAME["droid"]
    assert not droid.exports
    assert droid.is_transcript(PurePosixPath("-home-me-web/d-1.jsonl"))
    assert droid.is_transcript(PurePosixPath("-home-me-web/d-1.settings.json"))
    assert droid.is_whole_json(PurePosixPath("-home-me-web/d-1.settings.json"))
    assert not droid.is_transcript(PurePosixPath("-home-me-web/settings.json"))
    meta = SessionMeta()
    droid.feed(meta, "".join(json.dumps(r) + "\n" for r in DROID).encode())
    assert (meta.session_id, meta.title, meta.cwd) == ("d-1", "Fix the login form", "/home/me/web")
    assert meta.first_prompt == "the login form is broken"
    assert (meta.first_ts, meta.last_ts) == (ts(1), ts(3))


def test_droid_fallback_conversion_is_valid_sts() -> None:
    session = droid_to_session(DROID, {"model": "claude-sonnet-4-5", "tokenUsage": {"inputTokens": 5}})
    data = exported(session, "x/d-1.jsonl").data
    assert header(data)["name"] == "Fix the login form"
    msgs = messages(data)
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool"]
    assert tool_pairs(msgs) == [("Read", '{"path": "login.tsx"}', "<form>")]
    assert msgs[1]["model"] == "claude-sonnet-4-5" and msgs[0]["timestamp"] == MS0 + 1000


# -- Gemini CLI ------------------------------------------------------------------------------


def gemini_log() -> list[dict[str, object]]:
    call = {
        "id": "run_shell_command-1",
        "name": "run_shell_command",
        "args": {"command": "make"},
        "result": [
            {
                "functionResponse": {
                    "id": "run_shell_command-1",
                    "name": "run_shell_command",
                    "response": {"output": "build ok"},
                }
            }
        ],
        "status": "success",
        "timestamp": ts(3),
    }
    return [
        {"sessionId": "g-1", "projectHash": "h", "startTime": T0, "lastUpdated": T0, "kind": "main"},
        {"id": "m1", "timestamp": ts(1), "type": "user", "content": [{"text": "fix the build"}]},
        {
            "id": "m2",
            "timestamp": ts(2),
            "type": "gemini",
            "content": [{"text": "Running make."}],
            "thoughts": [{"subject": "Plan", "description": "run make first", "timestamp": ts(2)}],
            "toolCalls": [call],
            "tokens": {"input": 10, "output": 5, "cached": 0, "total": 15},
            "model": "gemini-2.5-pro",
        },
        {"$set": {"lastUpdated": ts(3)}},
        {"id": "m3", "timestamp": ts(4), "type": "user", "content": [{"text": "now deploy to prod"}]},
        {"id": "m4", "timestamp": ts(5), "type": "gemini", "content": [{"text": "Deploying"}]},
        {"$rewindTo": "m3"},
        {"id": "m5", "timestamp": ts(6), "type": "user", "content": [{"text": "now run the tests"}]},
        {
            "id": "m6",
            "timestamp": ts(7),
            "type": "gemini",
            "content": [{"text": "Tests…"}],
            "model": "gemini-2.5-pro",
        },
        {
            "id": "m6",
            "timestamp": ts(8),
            "type": "gemini",
            "content": [{"text": "All tests pass."}],
            "model": "gemini-2.5-pro",
        },
        {"id": "m7", "timestamp": ts(9), "type": "info", "content": "Request cancelled."},
        {"$set": {"summary": "Fix the build and test"}},
    ]


def test_gemini_replay_applies_set_rewind_and_reappended_ids() -> None:
    conversation = replay(gemini_log())
    assert [m["id"] for m in conversation.messages] == ["m1", "m2", "m5", "m6", "m7"]
    assert conversation.messages[3]["content"] == [{"text": "All tests pass."}]
    assert conversation.metadata["summary"] == "Fix the build and test"
    assert replay([{"id": "a"}, {"$rewindTo": "unknown"}]).messages == []


def test_gemini_export(tmp_path: Path) -> None:
    gemini = BY_NAME["gemini"]
    root = tmp_path / ".gemini/tmp"
    project = root / "my-app"
    (project / ".project_root").parent.mkdir(parents=True)
    (project / ".project_root").write_text("/home/me/my-app\n")
    log = write_jsonl(project / "chats/session-2026-04-20T10-00-g1aaaaaa.jsonl", gemini_log())
    with log.open("a") as f:
        f.write('{"id":"m8","type":"user","content":"half-writ')  # a torn last line is not read
    assert gemini.is_transcript(PurePosixPath("my-app/chats") / log.name)
    assert not gemini.is_transcript(PurePosixPath("my-app/logs.json"))
    assert not gemini.is_transcript(PurePosixPath("my-app/chats") / (log.name + ".unreadable-1700000000000"))
    s = only(gemini.export(log))
    assert s.rel == PurePosixPath("my-app/session-2026-04-20T10-00-g1aaaaaa.jsonl")
    head = header(s.data)
    assert (head["harness"], head["id"], head["name"], head["cwd"]) == (
        "gemini",
        "g-1",
        "Fix the build and test",
        "/home/me/my-app",
    )
    msgs = messages(s.data)
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "fix the build"),
        ("assistant", "Running make."),
        ("tool", "build ok"),
        ("user", "now run the tests"),
        ("assistant", "All tests pass."),
        ("system", "[info] Request cancelled."),
    ]
    assert msgs[1]["reasoningContent"] == "Plan: run make first"
    assert tool_pairs(msgs) == [("run_shell_command", '{"command": "make"}', "build ok")]
    assert msgs[0]["timestamp"] == MS0 + 1000 and msgs[4]["timestamp"] == MS0 + 8000
    assert s.meta.title == "Fix the build and test" and s.meta.model == "gemini-2.5-pro"
    assert s.meta.first_prompt == "fix the build"


def test_gemini_legacy_json_subagents_and_hash_folders(tmp_path: Path) -> None:
    gemini = BY_NAME["gemini"]
    root = tmp_path / ".gemini/tmp"
    write_json(tmp_path / ".gemini/projects.json", {"projects": {"/home/me/old": "old"}})
    import hashlib

    hashed = root / hashlib.sha256(b"/home/me/old").hexdigest()
    doc = {
        "sessionId": "g-old",
        "projectHash": "x",
        "startTime": T0,
        "lastUpdated": T0,
        "summary": "Old session",
        "messages": [
            {"id": "a", "timestamp": ts(1), "type": "user", "content": "hello"},
            {
                "id": "b",
                "timestamp": ts(2),
                "type": "gemini",
                "content": [{"text": "hi"}],
                "model": "gemini-2.0",
            },
        ],
    }
    legacy = write_json(hashed / "chats/session-2025-01-01T10-00-gold.json", doc)
    s = only(gemini.export(legacy))
    assert header(s.data)["cwd"] == "/home/me/old" and header(s.data)["name"] == "Old session"
    assert [m["content"] for m in messages(s.data)] == ["hello", "hi"]
    # Once resumed, Gemini converts it to a .jsonl of the same name: the JSON is then skipped.
    write_jsonl(legacy.with_suffix(".jsonl"), [{"sessionId": "g-old", "projectHash": "x"}, *doc["messages"]])  # type: ignore[list-item]
    assert gemini.export(legacy) == []
    sub = write_jsonl(
        root / "my-app/chats/g-1/g-sub.jsonl",
        [
            {"sessionId": "g-sub", "projectHash": "h", "kind": "subagent"},
            {"id": "x", "timestamp": ts(1), "type": "user", "content": "search"},
        ],
    )
    assert gemini.is_transcript(PurePosixPath("my-app/chats/g-1/g-sub.jsonl"))
    s = only(gemini.export(sub))
    assert s.rel == PurePosixPath("my-app/g-1/g-sub.jsonl") and s.meta.is_subagent
    assert header(s.data)["parentId"] == "g-1"


# -- GitHub Copilot CLI ----------------------------------------------------------------------


def copilot_events() -> list[dict[str, object]]:
    def ev(kind: str, data: dict[str, object], second: int) -> dict[str, object]:
        return {"type": kind, "data": data, "id": f"e{second}", "timestamp": ts(second), "parentId": None}

    return [
        ev(
            "session.start",
            {
                "sessionId": "c-1",
                "copilotVersion": "1.0.20",
                "startTime": T0,
                "context": {"cwd": "/home/me/api", "gitRoot": "/home/me/api", "branch": "feature/x"},
            },
            0,
        ),
        ev("session.model_change", {"newModel": "gpt-5.2"}, 1),
        ev("user.message", {"content": "list the files", "attachments": []}, 2),
        ev("assistant.turn_start", {"turnId": "0"}, 3),
        ev(
            "assistant.message",
            {
                "messageId": "a1",
                "content": "",
                "reasoningText": "use ls",
                "toolRequests": [{"toolCallId": "tc1", "name": "bash", "arguments": {"command": "ls"}}],
            },
            4,
        ),
        ev(
            "tool.execution_start",
            {"toolCallId": "tc1", "toolName": "bash", "arguments": {"command": "ls"}},
            5,
        ),
        ev(
            "tool.execution_complete",
            {"toolCallId": "tc1", "success": True, "result": {"content": "a.py b.py"}},
            6,
        ),
        ev("assistant.message", {"messageId": "a2", "content": "Two files.", "toolRequests": []}, 7),
        ev("assistant.turn_end", {"turnId": "0"}, 8),
        ev("session.shutdown", {"modelMetrics": {"gpt-5.2": {"requests": 2}}}, 9),
    ]


def test_copilot_export(tmp_path: Path) -> None:
    copilot = BY_NAME["copilot"]
    folder = tmp_path / "session-state/c-1"
    write_jsonl(folder / "events.jsonl", copilot_events())
    (folder / "workspace.yaml").write_text(
        "id: c-1\ncwd: /home/me/api\nsummary: 'List the project files'\ncreated_at: 2026-04-20T10:00:00Z\n"
    )
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints/index.md").write_text("x")
    assert copilot.is_transcript(PurePosixPath("c-1/events.jsonl"))
    assert copilot.is_transcript(PurePosixPath("c-1/workspace.yaml"))
    assert not copilot.is_transcript(PurePosixPath("c-1/checkpoints/index.md"))
    assert not copilot.is_transcript(PurePosixPath("session-store.db"))
    assert copilot.source_of(PurePosixPath("c-1/workspace.yaml")) == PurePosixPath("c-1")
    token = copilot.change_token(folder)
    s = only(copilot.export(folder))
    assert s.rel == PurePosixPath("c-1.jsonl")
    head = header(s.data)
    assert (head["id"], head["name"], head["cwd"], head["gitBranch"]) == (
        "c-1",
        "List the project files",
        "/home/me/api",
        "feature/x",
    )
    msgs = messages(s.data)
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant"]
    assert tool_pairs(msgs) == [("bash", '{"command": "ls"}', "a.py b.py")]
    assert msgs[1]["reasoningContent"] == "use ls" and msgs[3]["model"] == "gpt-5.2"
    with (folder / "events.jsonl").open("a") as f:
        f.write(json.dumps({"type": "user.message", "data": {"content": "more"}, "timestamp": ts(10)}) + "\n")
    assert copilot.change_token(folder) != token
    # The old flat layout: session-state/<id>.jsonl.
    flat = write_jsonl(tmp_path / "session-state/c-0.jsonl", copilot_events()[:3])
    assert copilot.is_transcript(PurePosixPath("c-0.jsonl"))
    assert [m["role"] for m in messages(only(copilot.export(flat)).data)] == ["user"]


# -- Qwen Code -------------------------------------------------------------------------------


def qwen_records() -> list[dict[str, object]]:
    base = {"sessionId": "q-1", "cwd": "/home/me/ml", "version": "0.9.0", "gitBranch": "main"}

    def rec(uuid: str, parent: str | None, kind: str, second: int, **extra: object) -> dict[str, object]:
        return {**base, "uuid": uuid, "parentUuid": parent, "timestamp": ts(second), "type": kind, **extra}

    call = {"functionCall": {"id": "fc1", "name": "read_file", "args": {"path": "train.py"}}}
    response = {
        "functionResponse": {"id": "fc1", "name": "read_file", "response": {"output": "import torch"}}
    }
    return [
        rec("u1", None, "user", 1, message={"role": "user", "parts": [{"text": "explain train.py"}]}),
        rec("a1", "u1", "assistant", 2, model="qwen3-coder", message={"role": "model", "parts": [call]}),
        rec(
            "t1",
            "a1",
            "tool_result",
            3,
            message={"role": "user", "parts": [response]},
            toolCallResult={"callId": "fc1", "status": "success"},
        ),
        rec(
            "a2",
            "t1",
            "assistant",
            4,
            model="qwen3-coder",
            message={
                "role": "model",
                "parts": [{"text": "thinking", "thought": True}, {"text": "It trains."}],
            },
        ),
        rec("u2", "a2", "user", 5, message={"role": "user", "parts": [{"text": "delete it"}]}),
        rec("a3", "u2", "assistant", 6, message={"role": "model", "parts": [{"text": "Deleted."}]}),
        rec("r1", "a3", "system", 7, subtype="rewind", systemPayload={"truncatedCount": 2}),
        rec("u3", "a2", "user", 8, message={"role": "user", "parts": [{"text": "add a docstring"}]}),
        rec(
            "a4",
            "u3",
            "assistant",
            9,
            model="qwen3-coder",
            message={"role": "model", "parts": [{"text": "Done."}]},
        ),
        rec(
            "s1",
            "a4",
            "system",
            10,
            subtype="custom_title",
            systemPayload={"customTitle": "Explain train.py"},
        ),
    ]


def test_qwen_export_follows_the_active_branch(tmp_path: Path) -> None:
    qwen = BY_NAME["qwen"]
    log = write_jsonl(tmp_path / "projects/-home-me-ml/chats/q-1.jsonl", qwen_records())
    assert qwen.is_transcript(PurePosixPath("-home-me-ml/chats/q-1.jsonl"))
    assert not qwen.is_transcript(PurePosixPath("-home-me-ml/settings.json"))
    s = only(qwen.export(log))
    assert s.rel == PurePosixPath("-home-me-ml/q-1.jsonl")
    head = header(s.data)
    assert (head["id"], head["name"], head["cwd"], head["gitBranch"]) == (
        "q-1",
        "Explain train.py",
        "/home/me/ml",
        "main",
    )
    msgs = messages(s.data)
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "explain train.py"),
        ("assistant", ""),
        ("tool", "import torch"),
        ("assistant", "It trains."),
        ("user", "add a docstring"),
        ("assistant", "Done."),
    ]
    assert tool_pairs(msgs) == [("read_file", '{"path": "train.py"}', "import torch")]
    assert msgs[3]["reasoningContent"] == "thinking" and msgs[5]["model"] == "qwen3-coder"
    assert msgs[-1]["timestamp"] == MS0 + 9000


# -- Cursor CLI ------------------------------------------------------------------------------


def make_cursor_store(chats: Path, session_id: str, meta: dict[str, object]) -> Path:
    store = chats / "0f3a" / session_id / "store.db"
    store.parent.mkdir(parents=True)
    conn = sqlite3.connect(store)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE blobs (id TEXT PRIMARY KEY, data BLOB)")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('0', ?)", (json.dumps(meta).encode().hex(),))
    conn.commit()
    conn.close()
    return store


def test_cursor_export_with_store_metadata(tmp_path: Path) -> None:
    cursor = BY_NAME["cursor-agent"]
    sid = "4f1c2d3e-0000-4000-8000-000000000001"
    transcript = write_jsonl(
        tmp_path / ".cursor/projects/home-me-site/agent-transcripts" / f"{sid}.jsonl",
        [
            {
                "role": "user",
                "message": {
                    "content": [
                        {"type": "text", "text": "<user_info>OS linux</user_info>"},
                        {"type": "text", "text": "<user_query>\nmake the header blue\n</user_query>"},
                    ]
                },
            },
            {
                "role": "assistant",
                "message": {
                    "content": [
                        {"type": "text", "text": "Editing the CSS."},
                        {"type": "tool_use", "name": "Shell", "input": {"command": "ls"}},
                    ]
                },
            },
            {"type": "turn_ended", "status": "success"},
        ],
    )
    make_cursor_store(
        tmp_path / ".cursor/chats",
        sid,
        {"agentId": sid, "name": "Blue header", "createdAt": MS0, "lastUsedModel": "gpt-5"},
    )
    rel = PurePosixPath("home-me-site/agent-transcripts") / f"{sid}.jsonl"
    assert cursor.is_transcript(rel)
    assert not cursor.is_transcript(PurePosixPath("home-me-site/worker.log"))
    s = only(cursor.export(transcript))
    assert s.rel == PurePosixPath(f"home-me-site/{sid}.jsonl")
    assert header(s.data)["name"] == "Blue header"
    msgs = messages(s.data)
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "make the header blue"),
        ("assistant", "Editing the CSS."),
    ]
    assert msgs[1]["toolCalls"][0]["function"] == {"name": "Shell", "arguments": '{"command": "ls"}'}
    assert msgs[0]["timestamp"] == MS0 and msgs[1]["model"] == "gpt-5"
    # Nested layout with a subagent, and no store: still exported.
    nested = write_jsonl(
        tmp_path / ".cursor/projects/home-me-site/agent-transcripts" / sid / "subagents/sub-1.jsonl",
        [{"role": "user", "message": {"content": [{"type": "text", "text": "find usages"}]}}],
    )
    s = only(cursor.export(nested))
    assert s.rel == PurePosixPath(f"home-me-site/{sid}/subagents/sub-1.jsonl") and s.meta.is_subagent


# -- Aider -----------------------------------------------------------------------------------

AIDER = """
# aider chat started at 2026-04-20 12:00:00

> Aider v0.86.1
> Main model: anthropic/claude-sonnet-4-5 with diff edit format
> Git repo: .git with 12 files

#### add a --verbose flag<2sp>
#### to the cli

I'll add the flag.

cli.py
```python
<<<<<<< SEARCH
=======
>>>>>>> REPLACE
```

> Tokens: 2.1k sent, 120 received.
> Applied edit to cli.py
> Commit 1a2b3c4 feat: add --verbose

#### /exit

# aider chat started at 2026-04-21 09:30:00

> Aider v0.86.1
> Model: gpt-5 with whole edit format

#### hello

Hi! How can I help?
""".replace("<2sp>", "  ")  # Aider ends multi-line input lines with two spaces


def test_aider_splits_runs_into_sessions(tmp_path: Path) -> None:
    aider = BY_NAME["aider"]
    repo = tmp_path / "my-cli"
    repo.mkdir()
    history = repo / ".aider.chat.history.md"
    history.write_text(AIDER, encoding="utf-8")
    sessions = by_rel(aider.export(history))
    assert sorted(sessions) == ["my-cli/2026-04-20T12-00-00.jsonl", "my-cli/2026-04-21T09-30-00.jsonl"]
    first = sessions["my-cli/2026-04-20T12-00-00.jsonl"]
    msgs = messages(first.data)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "system", "user"]
    assert msgs[1]["content"] == "add a --verbose flag\nto the cli"
    assert msgs[2]["content"].startswith("I'll add the flag.") and ">>>>>>> REPLACE" in msgs[2]["content"]
    assert msgs[2]["model"] == "anthropic/claude-sonnet-4-5"
    assert "Commit 1a2b3c4" in msgs[3]["content"]
    assert header(first.data)["cwd"] == str(repo)
    assert first.meta.first_prompt == "add a --verbose flag\nto the cli"
    second = sessions["my-cli/2026-04-21T09-30-00.jsonl"]
    assert messages(second.data)[-1]["model"] == "gpt-5"
    assert header(first.data)["id"] != header(second.data)["id"]


def test_every_file_exporter_output_validates() -> None:
    """The fixtures above, rendered directly: no exporter emits a file the viewer rejects."""
    for data in (render(droid_to_session(DROID)),):
        assert validate(data) == []
    assert jsonl_records(b'{"a":1}\n{"b":') == [{"a": 1}]
