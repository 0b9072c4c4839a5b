"""The command line as a user meets it: messages, exit codes, and talking to the daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import (
    lay_out_corpus,
    run_cli,
    start_daemon,
    wait_for,
    write_config,
)


def test_malformed_config_is_a_clear_message_not_a_traceback(env: dict[str, str]) -> None:
    cfg = write_config(env, "debounce_seconds = 10\n[agents.codex]\nenabled = 'yes'\n")
    for args in (("status",), ("sync",), ("run", "--headless")):
        r = run_cli(env, *args)
        assert r.returncode == 1
        assert (
            r.stderr.strip()
            == f"traceagent: {cfg}, line 3: key 'agents.codex.enabled': expected true or false, got 'yes'"
        )
        assert "Traceback" not in r.stderr


def test_bad_redaction_rule_is_named_at_load(env: dict[str, str]) -> None:
    cfg = write_config(env, '[redaction]\nrules = { mine = "a(" }\n')
    r = run_cli(env, "status")
    assert r.returncode == 1 and str(cfg) in r.stderr and "mine" in r.stderr and "Traceback" not in r.stderr


def test_sync_dry_run_then_sync_then_status(env: dict[str, str]) -> None:
    expected = lay_out_corpus(Path(env["HOME"]))
    r = run_cli(env, "sync", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"{len(expected)} file(s) would be uploaded." in r.stdout
    assert "new    claude/-experiments-ideas/03eb5929-52b3-4b13-ada3-b93ae35806b8.jsonl" in r.stdout
    r = run_cli(env, "sync")
    assert r.returncode == 0, r.stderr
    assert f"Uploaded {len(expected)} file(s), 0 unchanged" in r.stdout
    st = json.loads(run_cli(env, "status", "--json").stdout)
    assert st["state"] == "up_to_date" and st["running"] is False and st["uploaded"] == len(expected)
    assert {a["name"] for a in st["agents"]} == {"claude", "codex", "pi"}
    text = run_cli(env, "status").stdout
    assert "traceagent not running" in text and "State:        Up to date" in text
    # With no daemon the state is how things stood at the last run, and says so.
    assert "State:        Up to date when it last ran" in text
    r = run_cli(env, "agents")
    assert "Claude Code (claude, sync on)" in r.stdout and "codex/  (3 file(s))" in r.stdout
    r = run_cli(env, "open-last", "--print")
    assert r.returncode == 0 and r.stdout.startswith("file://")
    assert run_cli(env, "sync", "--dry-run").stdout.strip() == "0 file(s) would be uploaded."


def test_pause_and_resume_without_a_daemon(env: dict[str, str]) -> None:
    r = run_cli(env, "pause", "--for", "2x")
    assert r.returncode == 1 and "Cannot read the duration '2x'" in r.stderr
    r = run_cli(env, "pause", "--for", "30m")
    assert r.returncode == 0 and "not running; the pause applies when it starts" in r.stdout
    st = json.loads(run_cli(env, "status", "--json").stdout)
    assert st["paused"] is True and st["state"] == "paused" and st["paused_until"] > time.time() + 1700
    assert run_cli(env, "resume").returncode == 0
    assert json.loads(run_cli(env, "status", "--json").stdout)["paused"] is False


def test_one_daemon_per_config_and_control_channel(env: dict[str, str]) -> None:
    write_config(env, "debounce_seconds = 0.3\nmax_delay_seconds = 1\n")
    p = start_daemon(env)
    try:
        assert wait_for(
            lambda: json.loads(run_cli(env, "status", "--json").stdout or "{}").get("running"), 30
        )
        second = run_cli(env, "run", "--headless")
        assert second.returncode == 1
        assert second.stderr.strip() == f"traceagent: traceagent is already running (pid {p.pid})."
        assert run_cli(env, "run", "--if-not-running", "--headless").returncode == 0
        r = run_cli(env, "pause", "--for", "1h")
        assert r.returncode == 0 and r.stdout.startswith("Sync paused until")
        st = json.loads(run_cli(env, "status", "--json").stdout)
        assert st["pid"] == p.pid and st["state"] == "paused"
        assert run_cli(env, "resume").stdout.strip() == "Sync resumed."
        r = run_cli(env, "sync")  # with a daemon running, `sync` asks it instead of starting another engine
        assert r.returncode == 0 and "asked it to sync now" in r.stdout and "Up to date" in r.stdout, r.stderr
        assert json.loads(run_cli(env, "status", "--json").stdout)["state"] == "up_to_date"
    finally:
        p.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "Traceback" not in err


#: A `status` (or `sync`, `open-last`) asking in a loop whether a daemon runs.
_PROBE = """
from traceagent.app import control
from traceagent.paths import app_paths
paths = app_paths()
control.running_pid(paths)
print("probing", flush=True)
while True:
    control.running_pid(paths)
"""


def test_status_probes_never_make_a_starting_daemon_think_another_runs(env: dict[str, str]) -> None:
    from traceagent.app.control import DaemonLock, running_pid
    from traceagent.errors import AlreadyRunningError
    from traceagent.paths import app_paths

    paths = app_paths()
    paths.ensure()
    probers = [
        subprocess.Popen([sys.executable, "-c", _PROBE], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for p in probers:
            assert p.stdout is not None and p.stdout.readline() == "probing\n"
        refused = 0
        for _ in range(1000):  # a daemon starting while someone asks `traceagent status`
            lock = DaemonLock(paths.lock_file)
            try:
                lock.acquire()
            except AlreadyRunningError:
                refused += 1
                continue
            lock.release()
        assert refused == 0
    finally:
        for p in probers:
            p.kill()
            p.wait()
    # A daemon holding the lock is still seen at once, by probes and by a second daemon.
    holder = DaemonLock(paths.lock_file)
    holder.acquire()
    try:
        assert running_pid(paths) == os.getpid()
        started = time.monotonic()
        with pytest.raises(AlreadyRunningError) as refused_by:
            DaemonLock(paths.lock_file).acquire()
        assert refused_by.value.pid == os.getpid() and time.monotonic() - started < 1.0
    finally:
        holder.release()
    assert running_pid(paths) is None


def test_redact_preview_masks_what_it_finds(env: dict[str, str], tmp_path: Path) -> None:
    from secretgen import Gen, family_secrets

    secrets = family_secrets(Gen(3))[:6]
    f = tmp_path / "s.jsonl"
    f.write_text(
        "".join(json.dumps({"type": "user", "message": {"content": s.text}}) + "\n" for s in secrets)
    )
    r = run_cli(env, "redact", str(f))
    assert r.returncode == 0, r.stderr
    assert "secret(s) would be redacted" in r.stdout
    for s in secrets:
        for fragment in s.fragments:
            if len(fragment) > 8:
                assert fragment not in r.stdout, s.family
    clean = tmp_path / "clean.jsonl"
    clean.write_text('{"type":"user","message":{"content":"hello"}}\n')
    assert run_cli(env, "redact", str(clean)).stdout.startswith(f"No secrets found in {clean}")
    assert run_cli(env, "redact", str(tmp_path / "missing.jsonl")).returncode == 1


def test_status_before_anything_was_synced_is_not_up_to_date(env: dict[str, str]) -> None:
    lay_out_corpus(Path(env["HOME"]))
    text = run_cli(env, "status").stdout
    assert "State:        Not synced yet" in text and "Up to date" not in text, text
