"""Regressions found in review: each was reproduced first, then fixed."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import bucket_dir, remote_files, run_cli, wait_for, write_config
from secretgen import Gen, family_secrets
from traceagent.app.desktop import build_engine
from traceagent.app.wiring import load_context
from traceagent.status import SyncState
from traceagent.sync.engine import Engine

FAST = "debounce_seconds = 0.3\nmax_delay_seconds = 1\n"


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    started: list[Engine] = []
    yield started
    for e in started:
        e.stop()


def _start(env: dict[str, str], engines: list[Engine], config: str = FAST) -> Engine:
    write_config(env, config)
    engine, _ = build_engine(load_context(env))
    engine.start()
    engines.append(engine)
    return engine


def _idle(engine: Engine) -> bool:
    st = engine.status()
    return st.state is SyncState.UP_TO_DATE and st.pending == 0


def test_a_non_utf8_file_name_does_not_stop_the_others(env: dict[str, str], engines: list[Engine]) -> None:
    proj = Path(env["HOME"]) / ".pi/agent/sessions/--p--"
    proj.mkdir(parents=True)
    (proj / "good.jsonl").write_text('{"type":"session","id":"g"}\n')
    with open(os.path.join(os.fsencode(proj), b"bad\xff.jsonl"), "wb") as f:
        f.write(b'{"type":"session","id":"b"}\n')
    engine = _start(env, engines)
    assert wait_for(lambda: _idle(engine), 20), engine.status()
    assert list(remote_files(bucket_dir(env))) == ["pi/--p--/good.jsonl"]


def test_sidecars_and_titles_are_redacted_too(env: dict[str, str], engines: list[Engine]) -> None:
    secret = next(s for s in family_secrets(Gen(9)) if s.family.startswith("github"))
    proj = Path(env["HOME"]) / ".claude/projects/-home-me-app"
    sub = proj / "0b1c2d3e-aaaa-bbbb-cccc-1234567890ab/subagents"
    sub.mkdir(parents=True)
    (sub / "agent-a1.meta.json").write_text(
        json.dumps({"agentType": "x", "description": f"use {secret.text}"}, indent=2)
    )
    session = proj / "0b1c2d3e-aaaa-bbbb-cccc-1234567890ab.jsonl"
    record = {
        "type": "user",
        "sessionId": "0b1c",
        "message": {"role": "user", "content": f"token {secret.text} fix auth"},
    }
    session.write_text(json.dumps(record) + "\n")
    engine = _start(env, engines)
    assert wait_for(lambda: _idle(engine) and engine.status().last_trace is not None, 20)
    got = remote_files(bucket_dir(env))
    meta = got["claude/-home-me-app/0b1c2d3e-aaaa-bbbb-cccc-1234567890ab/subagents/agent-a1.meta.json"]
    json.loads(meta)
    title = engine.status().last_trace.title  # type: ignore[union-attr]
    state_db = (Path(env["TRACEAGENT_HOME"]) / "state/state.db").read_bytes()
    for fragment in secret.fragments:
        assert fragment.encode() not in meta and fragment not in title and fragment.encode() not in state_db
    assert "[REDACTED:" in title


def test_a_switched_off_agent_does_not_keep_the_daemon_syncing(
    env: dict[str, str], engines: list[Engine]
) -> None:
    f = Path(env["HOME"]) / ".codex/sessions/2026/01/01/rollout-2026-01-01T00-00-00-1.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text('{"type":"session_meta","payload":{"id":"1"}}\n')
    engine = _start(env, engines)
    assert wait_for(lambda: _idle(engine), 20)
    engine.pause()
    with f.open("a") as fh:
        fh.write('{"type":"event_msg"}\n')
    assert wait_for(lambda: engine.status().pending == 1, 10)
    engine.set_agent_enabled("codex", False)  # type: ignore[attr-defined]
    engine.resume()
    assert wait_for(lambda: _idle(engine), 10), engine.status()


def test_a_session_folder_deleted_and_recreated_is_watched_again(
    env: dict[str, str], engines: list[Engine]
) -> None:
    root = Path(env["HOME"]) / ".pi/agent/sessions"
    (root / "--p--").mkdir(parents=True)
    (root / "--p--/a.jsonl").write_text('{"type":"session"}\n')
    engine = _start(env, engines)
    assert wait_for(lambda: _idle(engine), 20)
    shutil.rmtree(root)
    time.sleep(0.5)
    (root / "--p--").mkdir(parents=True)
    (root / "--p--/b.jsonl").write_text('{"type":"session"}\n')
    assert wait_for((bucket_dir(env) / "pi/--p--/b.jsonl").exists, 15)
    assert (bucket_dir(env) / "pi/--p--/a.jsonl").exists()  # the remote copy of the deleted file is kept


def test_toggling_an_agent_while_home_is_busy_does_not_deadlock(
    env: dict[str, str], engines: list[Engine]
) -> None:
    home = Path(env["HOME"])
    for i in range(30):
        (home / f".codex/sessions/2026/01/{i:02d}").mkdir(parents=True)
    (home / ".claude/projects/-p").mkdir(parents=True)  # Pi is absent: HOME is watched for it
    engine = _start(env, engines)
    assert wait_for(lambda: _idle(engine), 20)
    stop = threading.Event()

    def churn() -> None:  # ordinary activity in HOME
        n = 0
        while not stop.is_set():
            (home / "notes.txt").write_text(str(n))
            n += 1
            time.sleep(0.001)

    def toggle() -> None:  # the tray's Agents ▸ Codex check, clicked again and again
        for i in range(80):
            engine.set_agent_enabled("codex", i % 2 == 1)  # type: ignore[attr-defined]

    threading.Thread(target=churn, daemon=True).start()
    toggler = threading.Thread(target=toggle, daemon=True)
    toggler.start()
    toggler.join(60)
    stop.set()
    assert not toggler.is_alive(), "set_agent_enabled hung (lock-order deadlock with the observer)"
    f = home / ".claude/projects/-p/after.jsonl"
    f.write_text('{"type":"user"}\n')
    assert wait_for((bucket_dir(env) / "claude/-p/after.jsonl").exists, 15), "file events stopped"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'destination = "hf://buckets/alice"',
            "key 'destination': expected hf://buckets/<namespace>/<bucket>",
        ),
        ('viewer_url_template = "https://x/{path}/{repo}"', "key 'viewer_url_template': only {namespace}"),
    ],
)
def test_bad_destination_or_template_is_a_config_error(env: dict[str, str], line: str, expected: str) -> None:
    write_config(env, line + "\n")
    r = run_cli(env, "status")
    assert r.returncode == 1 and expected in r.stderr and "Traceback" not in r.stderr


def test_an_unreadable_token_does_not_switch_a_hub_user_to_the_local_folder(env: dict[str, str]) -> None:
    from traceagent.sync.state import StateDB

    write_config(env, FAST)
    ctx = load_context(env)
    ctx.paths.ensure()
    db = StateDB(ctx.paths.state_db)
    db.destination = "hf://buckets/alice/agent-sessions"  # what the last run used
    db.close()
    engine, _ = build_engine(ctx)  # no token anywhere now (a locked keyring looks the same)
    try:
        assert engine._ensure_sink() is False
        st = engine.status()
        assert st.state is SyncState.SIGNIN_NEEDED and "keyring" in (st.last_error or "")
        assert not bucket_dir(env).exists()
        # An explicit sign-out makes the local folder the destination, on purpose.
        engine.mark_signed_out()
        assert engine._ensure_sink() is True
        assert engine.status().destination == str(bucket_dir(env))
    finally:
        engine.stop()
