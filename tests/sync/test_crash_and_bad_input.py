"""Crash safety (SIGKILL during a backfill) and bad input (nothing crashes, the rest syncs)."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import CORPUS, bucket_dir, remote_files, run_cli, start_daemon, wait_for, write_config
from traceagent.app.desktop import build_engine
from traceagent.app.wiring import load_context


def _backfill_tree(home: Path, n: int, seed: int = 7) -> dict[Path, str]:
    """``n`` Claude sessions made from the real corpus files (copied and renamed)."""
    rng = random.Random(seed)
    templates = sorted((CORPUS / "claude-code/projects").rglob("*.jsonl")) + sorted(
        (CORPUS / "pi/sessions").rglob("*.jsonl")
    )
    expected = {}
    root = home / ".claude/projects"
    for i in range(n):
        folder = root / f"-home-me-proj{i % 17}"
        folder.mkdir(parents=True, exist_ok=True)
        f = folder / f"{i:08d}-aaaa-bbbb-cccc-{rng.randrange(16**12):012x}.jsonl"
        shutil.copyfile(rng.choice(templates), f)
        expected[f] = f"claude/{folder.name}/{f.name}"
    return expected


@pytest.mark.slow
def test_sigkill_during_backfill_then_restart_ends_identical(env: dict[str, str]) -> None:
    expected = _backfill_tree(Path(env["HOME"]), 300)
    write_config(env, "debounce_seconds = 0.2\nmax_delay_seconds = 1\nbatch_size = 10\nredact = false\n")
    dest = bucket_dir(env)
    rng = random.Random(11)
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-m", "traceagent", "run", "--headless"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.4, 1.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(10)
        # Whatever landed so far is whole: absent, or a copy of the source's complete lines
        # at some moment (sessions grow between crashes, so it may be an older prefix).
        for path, key in expected.items():
            target = dest / key
            if target.exists():
                remote, local = target.read_bytes(), path.read_bytes()
                assert remote and local.startswith(remote) and remote.endswith(b"\n"), f"torn {key}"
        # Sessions keep growing between crashes.
        for path in rng.sample(sorted(expected), 5):
            with path.open("a") as fh:
                fh.write(json.dumps({"type": "user", "n": kills}) + "\n")
    assert kills >= 5
    proc = start_daemon(env)
    try:

        def in_step() -> bool:
            # "running": this daemon answers (state.db alone would say up to date too early).
            r = run_cli(env, "status", "--json")
            if r.returncode != 0:
                return False
            st = json.loads(r.stdout)
            return bool(st["running"]) and st["pid"] == proc.pid and st["state"] == "up_to_date"

        # A daemon that exits (say, refused its lock) fails at once, with its stderr below.
        settled = wait_for(lambda: proc.poll() is not None or in_step(), 120, 0.5)
        exited = proc.poll() is not None
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert settled and not exited, f"the daemon {'exited' if exited else 'never got in step'}: {err}"
    assert proc.returncode == 0, err
    got = remote_files(dest)
    assert got == {key: path.read_bytes() for path, key in expected.items()}
    assert not list(dest.rglob("*.part")) and not (dest / ".traceagent-tmp").exists()

    # One more restart with nothing changed uploads nothing.
    before = {k: (dest / k).stat().st_mtime_ns for k in got}
    r = run_cli(env, "sync")
    assert r.returncode == 0, r.stderr
    assert "Uploaded 0 file(s)" in r.stdout
    assert {k: (dest / k).stat().st_mtime_ns for k in got} == before


def test_bad_input_is_reported_and_the_rest_syncs(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    home = Path(env["HOME"])
    proj = home / ".claude/projects/-home-me-app"
    proj.mkdir(parents=True)
    good = proj / "11111111-aaaa-bbbb-cccc-000000000001.jsonl"
    good.write_text('{"type":"user","sessionId":"1","message":{"role":"user","content":"hello"}}\n')
    malformed = proj / "11111111-aaaa-bbbb-cccc-000000000002.jsonl"
    malformed.write_bytes(b'{"type":"user"\n{not json at all}\n{"type":"user","message":{"content":"ok"}}\n')
    binary = proj / "11111111-aaaa-bbbb-cccc-000000000003.jsonl"
    binary.write_bytes(bytes(range(256)) * 4 + b"\n")
    latin1 = proj / "11111111-aaaa-bbbb-cccc-000000000004.jsonl"
    latin1.write_bytes(b'{"type":"user","message":{"content":"caf\xe9 \xff"}}\n')
    empty = proj / "11111111-aaaa-bbbb-cccc-000000000005.jsonl"
    empty.write_bytes(b"")
    spaced = home / ".claude/projects/-home-me-my app-été" / "résumé session.jsonl"
    spaced.parent.mkdir()
    spaced.write_text('{"type":"user","message":{"content":"ünïcödé"}}\n')
    (proj / "loop").symlink_to(proj)  # a folder symlink loop
    (proj / "a.jsonl").symlink_to(proj / "b.jsonl")
    (proj / "b.jsonl").symlink_to(proj / "a.jsonl")  # a file symlink loop
    os.mkfifo(proj / "fifo.jsonl")  # would block a naive open()
    write_config(env, "redact = false\n")

    engine, _ = build_engine(load_context(env))
    with caplog.at_level(logging.INFO, logger="traceagent"):
        result = engine.run_pass()
        st = engine.status()
        engine.stop()
    got = remote_files(bucket_dir(env))
    assert got == {
        f"claude/-home-me-app/{good.name}": good.read_bytes(),
        f"claude/-home-me-app/{malformed.name}": malformed.read_bytes(),
        f"claude/-home-me-app/{latin1.name}": latin1.read_bytes(),
        f"claude/-home-me-my app-été/{spaced.name}": spaced.read_bytes(),
    }
    assert result.uploaded == 4
    assert st.issues == 1  # the binary file (the FIFO is not a regular file: never opened)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert f"Not uploaded: {binary}: binary content" in messages
    assert "a.jsonl" in messages  # the symlink loop is named in a clear line
    assert "Traceback" not in messages


def test_unreadable_file_and_folder(env: dict[str, str]) -> None:
    # Permissions do not bind root: as root, run the sync without the capabilities that
    # bypass them (setpriv from util-linux drops them from the bounding set before exec).
    as_root = os.geteuid() == 0
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="traceagent-perm-"))
    try:
        home = base / "home"
        proj = home / ".pi/agent/sessions/--home-me--"
        proj.mkdir(parents=True)
        ok = proj / "ok.jsonl"
        ok.write_text('{"type":"session","id":"ok"}\n')
        secret = proj / "locked.jsonl"
        secret.write_text('{"type":"session","id":"locked"}\n')
        secret.chmod(0)
        closed = home / ".pi/agent/sessions/--closed--"
        closed.mkdir()
        (closed / "x.jsonl").write_text("{}\n")
        closed.chmod(0)
        ta = base / "ta"
        ta.mkdir()
        (ta / "config.toml").write_text("redact = false\n")
        run_env = {**env, "HOME": str(home), "TRACEAGENT_HOME": str(ta)}
        r = subprocess.run(
            [*prefix, sys.executable, "-m", "traceagent", "sync"],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert r.returncode == 1, r.stdout + r.stderr  # one file could not be read
        assert "Uploaded 1 file(s)" in r.stdout
        assert "1 file(s) not uploaded yet" in r.stderr
        assert (ta / "data/bucket/pi/--home-me--/ok.jsonl").read_bytes() == ok.read_bytes()
        log = (ta / "logs/traceagent.log").read_text()
        assert "locked.jsonl: cannot read: Permission denied" in log
        assert f"Cannot read folder {closed}: Permission denied" in log
    finally:
        for p in base.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(stat.S_IRWXU)
        shutil.rmtree(base, ignore_errors=True)
