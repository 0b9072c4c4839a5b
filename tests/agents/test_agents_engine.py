"""Exporting agents through the real engine: watchdog, debouncer, state.db, uploader, local bucket."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from test_agents_cline import make_task
from test_agents_files import DROID, copilot_events, gemini_log, make_cursor_store, qwen_records
from test_agents_sqlite import GOOSE_SCHEMA, HERMES_SCHEMA, OC_TURNS

from conftest import bucket_dir, remote_files, run_cli, wait_for, write_config
from stsvalidate import (
    SHARE_SECRET,
    add_opencode_message,
    header,
    isolate_agents,
    messages,
    opencode_db,
    opencode_session,
    write_json,
    write_jsonl,
)
from traceagent.agents import BY_NAME
from traceagent.agents.sts import validate
from traceagent.app.desktop import build_engine
from traceagent.app.wiring import load_context
from traceagent.status import SyncState
from traceagent.sync.engine import Engine

FAST = "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\nredact = false\n"
MS0 = 1776679200000
AUTH_SECRET = "sk-ant-api03-auth-json-do-not-upload"


def wait_idle(engine: Engine, timeout: float = 20) -> bool:
    def idle() -> bool:
        st = engine.status()
        return st.state is SyncState.UP_TO_DATE and st.pending == 0 and st.uploading == 0

    return wait_for(idle, timeout)


def start(env: dict[str, str], config: str = FAST) -> Engine:
    write_config(env, config)
    engine, _ = build_engine(load_context(env))
    engine.start()
    assert wait_idle(engine), engine.status()
    return engine


def test_opencode_live_database_reaches_the_bucket_as_sts(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_agents(env, monkeypatch)
    root = Path(env["HOME"]) / ".local/share/opencode"
    agent = opencode_db(root / "opencode.db")  # the agent: a live writer, commits sit in the -wal
    opencode_session(agent, "ses_A", "Fix the failing test", MS0, OC_TURNS, share=True)
    opencode_session(agent, "ses_B", "Second", MS0 + 5000, [("user", [{"type": "text", "text": "hello"}])])
    (root / "auth.json").write_text(json.dumps({"anthropic": {"type": "api", "key": AUTH_SECRET}}))
    engine = start(env)
    bucket = bucket_dir(env) / "opencode"
    try:
        assert sorted(p.name for p in bucket.iterdir()) == ["ses_A.jsonl", "ses_B.jsonl"]
        for f in bucket.iterdir():
            assert validate(f.read_bytes()) == [], f
        a = bucket / "ses_A.jsonl"
        assert header(a.read_bytes())["name"] == "Fix the failing test"
        assert [m["role"] for m in messages(a.read_bytes())] == [
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
        ]
        blob = b"".join(remote_files(bucket_dir(env)).values())
        assert AUTH_SECRET.encode() not in blob and SHARE_SECRET.encode() not in blob
        b_inode = (bucket / "ses_B.jsonl").stat().st_ino

        # A session changes: it is exported again; the unchanged one is not re-sent.
        add_opencode_message(
            agent,
            "ses_A",
            "msg_A_late",
            role="user",
            t=MS0 + 60_000,
            parts=[{"type": "text", "text": "and lint"}],
        )
        agent.commit()
        assert wait_for(lambda: messages(a.read_bytes())[-1]["content"] == "and lint", 10)
        # A new session appears.
        opencode_session(
            agent, "ses_C", "Third", MS0 + 90_000, [("user", [{"type": "text", "text": "new one"}])]
        )
        assert wait_for((bucket / "ses_C.jsonl").exists, 10)
        assert wait_idle(engine)
        assert (bucket / "ses_B.jsonl").stat().st_ino == b_inode
        st = engine.status()
        assert [(x.name, x.sessions) for x in st.agents] == [("opencode", 3)]
        assert st.last_trace is not None and st.last_trace.remote_key == "opencode/ses_C.jsonl"
        assert st.last_trace.title == "Third"
    finally:
        engine.stop()

    # A restart with nothing changed neither re-exports nor re-sends.
    inodes = {p.name: p.stat().st_ino for p in bucket.iterdir()}
    calls: list[Path] = []
    real_export = BY_NAME["opencode"].export

    def spy(path: Path) -> Any:
        calls.append(path)
        return real_export(path)

    monkeypatch.setattr(BY_NAME["opencode"], "export", spy)
    again = start(env)
    time.sleep(0.5)
    again.stop()
    assert calls == []
    assert {p.name: p.stat().st_ino for p in bucket.iterdir()} == inodes
    agent.close()


def lay_out_every_agent(home: Path) -> tuple[dict[str, str], list[str]]:
    """Fixture stores for every new agent under ``home``; returns (config paths, secrets beside them)."""
    secrets = []

    def secret(path: Path, name: str) -> None:
        value = f"sk-secret-{name}-0123456789abcdef"
        secrets.append(value)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"apiKey": value}))

    droid = home / ".factory/sessions/-home-me-web"
    write_jsonl(droid / "d-1.jsonl", DROID)
    write_json(droid / "d-1.settings.json", {"model": "claude-sonnet-4-5"})
    secret(droid / "settings.json", "droid")
    secret(home / ".factory/auth.json", "factory")
    gemini = home / ".gemini/tmp/my-app"
    write_jsonl(gemini / "chats/session-2026-04-20T10-00-g1aaaaaa.jsonl", gemini_log())
    secret(gemini / "logs.json", "gemini-logs")
    secret(home / ".gemini/oauth_creds.json", "gemini")
    copilot = home / ".copilot/session-state/c-1"
    write_jsonl(copilot / "events.jsonl", copilot_events())
    (copilot / "workspace.yaml").write_text("summary: List files\n")
    secret(copilot / "checkpoints/001.json", "copilot-checkpoint")
    secret(home / ".copilot/config.json", "copilot")
    write_jsonl(home / ".qwen/projects/-home-me-ml/chats/q-1.jsonl", qwen_records())
    secret(home / ".qwen/oauth_creds.json", "qwen")
    oc = opencode_db(home / ".local/share/opencode/opencode.db")
    opencode_session(oc, "ses_A", "Fix the failing test", MS0, OC_TURNS, share=True)
    oc.close()
    secret(home / ".local/share/opencode/auth.json", "opencode")
    (home / ".local/share/goose/sessions").mkdir(parents=True)
    goose = sqlite3.connect(home / ".local/share/goose/sessions/sessions.db")
    goose.executescript(GOOSE_SCHEMA)
    goose.execute("INSERT INTO sessions (id, name, working_dir) VALUES ('20260420_1', 'Tour', '/x')")
    goose.execute(
        "INSERT INTO messages (session_id, role, content_json, created_timestamp) VALUES ('20260420_1', 'user', ?, ?)",
        (json.dumps([{"type": "text", "text": "hi goose"}]), MS0 // 1000),
    )
    goose.commit()
    goose.close()
    (home / ".hermes").mkdir()
    hermes = sqlite3.connect(home / ".hermes/state.db")
    hermes.executescript(HERMES_SCHEMA)
    hermes.execute(
        "INSERT INTO sessions (id, source, started_at, title) VALUES ('h1', 'cli', ?, 'Hermes chat')",
        (MS0 / 1000,),
    )
    hermes.execute(
        "INSERT INTO messages (session_id, role, content, timestamp) VALUES ('h1', 'user', 'hi hermes', ?)",
        (MS0 / 1000,),
    )
    hermes.commit()
    hermes.close()
    (home / ".hermes/.env").write_text("OPENROUTER_API_KEY=sk-secret-hermes-env-0123456789abcdef\n")
    secrets.append("sk-secret-hermes-env-0123456789abcdef")
    sid = "4f1c2d3e-0000-4000-8000-000000000001"
    write_jsonl(
        home / ".cursor/projects/home-me-site/agent-transcripts" / f"{sid}.jsonl",
        [
            {
                "role": "user",
                "message": {"content": [{"type": "text", "text": "<user_query>blue</user_query>"}]},
            }
        ],
    )
    make_cursor_store(home / ".cursor/chats", sid, {"name": "Blue", "createdAt": MS0})
    secret(home / ".cursor/cli-config.json", "cursor")
    code = home / ".config/Code/User/globalStorage"
    make_task(code / "saoudrizwan.claude-dev/tasks")
    make_task(code / "rooveterinaryinc.roo-cline/tasks")
    make_task(home / ".cline/data/tasks", "1776679300000")
    secret(home / ".cline/data/secrets.json", "cline-cli")
    repo = home / "src/tool"
    repo.mkdir(parents=True)
    (repo / ".aider.chat.history.md").write_text(
        "\n# aider chat started at 2026-04-20 12:00:00\n\n> Model: gpt-5\n\n#### hello\n\nHi!\n",
        encoding="utf-8",
    )
    secret(repo / ".aider.input.history", "aider-input")
    secret(repo / ".env", "aider-env")
    return {"aider": str(repo)}, secrets


def test_every_agent_syncs_in_one_pass_and_no_secret_leaves(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_agents(env, monkeypatch)
    home = Path(env["HOME"])
    paths, secrets = lay_out_every_agent(home)
    write_config(env, f'{FAST}\n[agents.aider]\npaths = ["{paths["aider"]}"]\n')
    engine, _ = build_engine(load_context(env))
    try:
        result = engine.run_pass()
    finally:
        engine.stop()
    assert result.failed == 0 and result.pending == 0, result
    got = remote_files(bucket_dir(env))
    sid = "4f1c2d3e-0000-4000-8000-000000000001"
    assert sorted(got) == sorted(
        [
            "droid/-home-me-web/d-1.jsonl",
            "droid/-home-me-web/d-1.settings.json",
            "gemini/my-app/session-2026-04-20T10-00-g1aaaaaa.jsonl",
            "copilot/c-1.jsonl",
            "qwen/-home-me-ml/q-1.jsonl",
            "opencode/ses_A.jsonl",
            "goose/20260420_1.jsonl",
            "hermes/h1.jsonl",
            f"cursor-agent/home-me-site/{sid}.jsonl",
            "cline/1776679200000.jsonl",
            "cline-cli/1776679300000.jsonl",
            "roo/1776679200000.jsonl",
            "aider/tool/2026-04-20T12-00-00.jsonl",
        ]
    )
    assert (
        got["droid/-home-me-web/d-1.jsonl"]
        == (home / ".factory/sessions/-home-me-web/d-1.jsonl").read_bytes()
    )
    for key, data in got.items():
        if not key.startswith("droid/"):
            assert validate(data) == [], key
            assert header(data)["harness"] == key.split("/")[0].removesuffix("-cli")
    blob = b"".join(got.values())
    for value in [*secrets, SHARE_SECRET, "sk-ant-in-settings"]:
        assert value.encode() not in blob, value
    # `traceagent agents` lists each detected agent once, with its roots.
    out = run_cli(env, "agents").stdout
    for name in (
        "Factory Droid",
        "Gemini CLI",
        "GitHub Copilot CLI",
        "Qwen Code",
        "OpenCode",
        "Goose",
        "Hermes Agent",
        "Cursor CLI",
        "Cline",
        "Roo Code",
        "Aider",
    ):
        assert out.count(f"{name} (") == 1, (name, out)
