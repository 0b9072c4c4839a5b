"""The CLI's command table, the one client for the daemon (with its offline fallback), and the
typed ``kv`` accessors of ``state.db``. (Import circles and upward imports: ``unit/test_layers.py``.)"""

from __future__ import annotations

import ast
import sqlite3
import time
from pathlib import Path

import pytest

import traceagent
from conftest import lay_out_corpus, run_cli

#: The source tree under test (the one imported, so the checks follow PYTHONPATH).
SRC = Path(traceagent.__file__).resolve().parents[1]


def test_the_command_table_has_a_handler_for_every_command() -> None:
    import argparse

    from traceagent.cli import COMMANDS, build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(COMMANDS) == set(sub.choices)
    assert all(callable(h) and h.__module__.startswith("traceagent.cli.") for h in COMMANDS.values())


def test_python_m_traceagent_is_the_cli(env: dict[str, str]) -> None:
    r = run_cli(env, "--version")
    assert r.returncode == 0 and r.stdout.startswith("traceagent ")
    r = run_cli(env, "resume")
    assert (r.returncode, r.stdout) == (0, "traceagent is not running; it will sync when it starts.\n")


# -- the client and its offline fallback ---------------------------------------------------------


def test_the_offline_client_reads_state_db_and_keeps_the_writes_for_the_daemon(env: dict[str, str]) -> None:
    from traceagent.app.client import DaemonClient
    from traceagent.app.wiring import load_context
    from traceagent.sync.state import StateDB

    expected = lay_out_corpus(Path(env["HOME"]))
    assert run_cli(env, "sync").returncode == 0
    ctx = load_context(env)
    client = DaemonClient(ctx)
    before = {p.name: p.stat().st_mtime_ns for p in ctx.paths.state_dir.iterdir()}
    st = client.status()
    assert (st["running"], st["pid"], st["state"]) == (False, None, "up_to_date")
    assert st["uploaded"] == len(expected) and st["destination_kind"] == "local folder"
    assert st["destination"] == str(ctx.paths.default_bucket_dir)
    assert st["last_trace"]["url"].startswith("file://")
    recent = client.recent(3)
    assert len(recent) == 3 and recent[0]["url"] == st["last_trace"]["url"]
    # A read is a read: nothing in the state folder changed.
    assert {p.name: p.stat().st_mtime_ns for p in ctx.paths.state_dir.iterdir()} == before

    until = time.time() + 3600
    assert client.pause(until) is False  # no daemon took it: stored for its start
    db = StateDB(ctx.paths.state_db, read_only=True)
    assert db.paused_until == until
    db.close()
    st = client.status()
    assert (st["state"], st["paused"], st["paused_until"]) == ("paused", True, until)
    assert client.pause(None) is False and client.status()["paused_until"] is None
    assert client.resume() is False and client.status()["state"] == "up_to_date"
    assert client.signed_out() is False
    db = StateDB(ctx.paths.state_db, read_only=True)
    assert (db.paused_until, db.signed_out) == (None, True)
    db.close()
    assert client.reload() is False  # nothing to reload offline: a daemon reads the token at start


def test_without_fallback_the_client_says_no_daemon_runs(env: dict[str, str]) -> None:
    from traceagent.app.client import DaemonClient
    from traceagent.app.wiring import load_context
    from traceagent.errors import UserError

    client = DaemonClient(load_context(env), fallback=False)
    assert client.request("status") is None
    with pytest.raises(UserError, match="traceagent is not running"):
        client.status()
    with pytest.raises(UserError, match="traceagent is not running"):
        client.pause(None)


# -- typed kv accessors --------------------------------------------------------------------------


def _raw_kv(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        return {str(k): str(v) for k, v in conn.execute("SELECT k, v FROM kv")}
    finally:
        conn.close()


def test_kv_accessors_are_typed_and_keep_the_stored_format(tmp_path: Path) -> None:
    from traceagent.sync.state import Record, StateDB

    path = tmp_path / "state.db"
    db = StateDB(path)
    assert (db.paused_until, db.destination, db.destination_identity) == (None, None, None)
    assert (db.last_error, db.last_upload_at, db.signed_out) == (None, None, False)
    db.paused_until = 1700000000.25
    db.destination = "hf://buckets/alice/agent-sessions"
    db.destination_identity = "id-1"
    db.last_error = "The bucket is gone"
    db.signed_out = True
    db.mark_pending([("/x.jsonl", "claude", "claude/x.jsonl", True)])
    db.record_uploaded([Record("/x.jsonl", 1, 1, 1, "h", None, 1)], {}, 1700000001.5)
    db.check_writes(3.0)
    db.close()
    # The values as earlier versions wrote and read them: a state.db stays readable both ways.
    assert _raw_kv(path) == {
        "schema": "1",
        "paused_until": "1700000000.25",
        "destination": "hf://buckets/alice/agent-sessions",
        "destination_identity": "id-1",
        "last_error": "The bucket is gone",
        "signed_out": "1",
        "last_upload_at": "1700000001.5",
    }
    ro = StateDB(path, read_only=True)
    assert (ro.paused_until, ro.last_upload_at, ro.signed_out) == (1700000000.25, 1700000001.5, True)
    ro.close()
    db = StateDB(path)
    db.paused_until = float("inf")
    assert db.paused_until == float("inf")
    db.paused_until = None
    db.signed_out = False
    db.destination_identity = None
    db.close()
    assert {"paused_until", "signed_out", "destination_identity"}.isdisjoint(_raw_kv(path))


def test_a_kv_value_that_is_not_a_number_reads_as_absent(tmp_path: Path) -> None:
    from traceagent.sync.state import StateDB

    path = tmp_path / "state.db"
    StateDB(path).close()
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)", [("paused_until", "soon"), ("last_upload_at", "")]
    )
    conn.commit()
    conn.close()
    db = StateDB(path)
    assert (db.paused_until, db.last_upload_at) == (None, None)
    db.close()


def test_kv_keys_are_named_only_in_the_state_module() -> None:
    keys = ("paused_until", "destination_identity", "last_upload_at", "signed_out", "write_check")
    found = []
    for path in (SRC / "traceagent").rglob("*.py"):
        if path.name == "state.py" and path.parent.name == "sync":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                args = [a.value for a in node.args if isinstance(a, ast.Constant)]
                if (
                    node.func.attr in ("get", "put", "_get", "_put")
                    and args
                    and args[0] in (*keys, "destination", "last_error")
                ):
                    owner = ast.unparse(node.func.value)
                    if "db" in owner:
                        found.append(f"{path.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []
