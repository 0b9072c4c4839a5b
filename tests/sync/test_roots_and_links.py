"""Issue 11, cases 4 and 5: roots nested in one another, and symlinks inside a root.

Real files, a real watchdog observer, a real SQLite ledger and the engine the daemon runs;
the destination is the default local folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import bucket_dir, remote_files, wait_for, write_config
from traceagent.app.desktop import build_engine
from traceagent.app.wiring import load_context
from traceagent.status import SyncState
from traceagent.sync.engine import Engine

FAST = "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\nredact = false\n"


def claude_line(n: int) -> bytes:
    return (
        f'{{"type":"user","sessionId":"c1","timestamp":"2026-01-01T00:00:{n:02d}Z",'
        f'"message":{{"content":"claude {n}"}}}}\n'
    ).encode()


def codex_line(n: int) -> bytes:
    return (
        f'{{"type":"event_msg","timestamp":"2026-01-01T00:00:{n:02d}Z",'
        f'"payload":{{"type":"user_message","message":"codex {n}"}}}}\n'
    ).encode()


@pytest.fixture
def engines(env: dict[str, str]) -> Iterator[list[Engine]]:
    started: list[Engine] = []
    yield started
    for e in started:
        e.stop()


def start(env: dict[str, str], engines: list[Engine], config: str = FAST) -> Engine:
    write_config(env, config)
    engine, _ = build_engine(load_context(env))
    engine.start()
    engines.append(engine)
    assert wait_idle(engine), engine.status()
    return engine


def wait_idle(engine: Engine, timeout: float = 20) -> bool:
    def idle() -> bool:
        st = engine.status()
        return st.state is SyncState.UP_TO_DATE and st.pending == 0 and st.uploading == 0

    return wait_for(idle, timeout)


def ledger(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """``path -> (status, key)`` straight from state.db."""
    with sqlite3.connect(load_context(env).paths.state_db) as c:
        return {p: (s, k) for p, s, k in c.execute("SELECT path, status, key FROM files")}


def arrived(env: dict[str, str], key: str, data: bytes) -> bool:
    return remote_files(bucket_dir(env)).get(key) == data


# -- case 4: overlapping roots ------------------------------------------------------------------


@pytest.mark.parametrize("nesting", ["claude-in-codex", "codex-in-claude"])
def test_nested_roots_each_keep_their_files(env: dict[str, str], engines: list[Engine], nesting: str) -> None:
    """The most specific root owns a file: scans, vanish checks and live events agree."""
    home = Path(env["HOME"])
    if nesting == "claude-in-codex":
        codex_home = home / ".codex"
        claude_dir = codex_home / "sessions" / "claude-config"
    else:
        claude_dir = home / ".claude"
        codex_home = claude_dir / "projects" / "codex-home"
    env["CODEX_HOME"] = str(codex_home)
    env["CLAUDE_CONFIG_DIR"] = str(claude_dir)
    claude = claude_dir / "projects" / "-home-me-app" / "c1.jsonl"
    codex = codex_home / "sessions" / "2026" / "01" / "01" / "rollout-2026-01-01T00-00-00-c1.jsonl"
    for f, line in ((claude, claude_line(1)), (codex, codex_line(1))):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(line)
    claude_key = "claude/-home-me-app/c1.jsonl"
    codex_key = "codex/2026/01/01/rollout-2026-01-01T00-00-00-c1.jsonl"

    engine = start(env, engines)
    assert remote_files(bucket_dir(env)) == {claude_key: claude.read_bytes(), codex_key: codex.read_bytes()}
    rows = ledger(env)
    assert rows == {str(claude): ("ok", claude_key), str(codex): ("ok", codex_key)}

    # Live appends in both roots arrive, each under its own agent's folder.
    with claude.open("ab") as f:
        f.write(claude_line(2))
    with codex.open("ab") as f:
        f.write(codex_line(2))
    assert wait_for(lambda: arrived(env, claude_key, claude.read_bytes()), 15), remote_files(bucket_dir(env))
    assert wait_for(lambda: arrived(env, codex_key, codex.read_bytes()), 15), remote_files(bucket_dir(env))
    assert wait_idle(engine)
    # A new session in the inner root, created while running, too.
    claude2 = claude.parent / "c2.jsonl"
    claude2.write_bytes(claude_line(3))
    codex2 = codex.parent / "rollout-2026-01-01T00-00-00-c2.jsonl"
    codex2.write_bytes(codex_line(3))
    assert wait_for(lambda: arrived(env, "claude/-home-me-app/c2.jsonl", claude2.read_bytes()), 15)
    assert wait_for(lambda: arrived(env, codex_key.replace("c1", "c2"), codex2.read_bytes()), 15)
    assert wait_idle(engine)
    engine.stop()

    # A restart (both catch-up scans) marks nothing gone and uploads nothing under a wrong folder.
    engine = start(env, engines)
    rows = ledger(env)
    assert {s for s, _ in rows.values()} == {"ok"}, rows
    keys = {claude_key, "claude/-home-me-app/c2.jsonl", codex_key, codex_key.replace("c1", "c2")}
    assert {k for _, k in rows.values()} == keys
    assert set(remote_files(bucket_dir(env))) == keys


def test_a_root_created_inside_another_while_running(env: dict[str, str], engines: list[Engine]) -> None:
    """Claude Code installed (its folder made) inside Codex's sessions while the daemon runs."""
    home = Path(env["HOME"])
    codex_home = home / ".codex"
    claude_dir = codex_home / "sessions" / "claude-config"
    env["CODEX_HOME"] = str(codex_home)
    env["CLAUDE_CONFIG_DIR"] = str(claude_dir)
    codex = codex_home / "sessions" / "2026" / "01" / "01" / "rollout-2026-01-01T00-00-00-c1.jsonl"
    codex.parent.mkdir(parents=True)
    codex.write_bytes(codex_line(1))
    engine = start(env, engines)
    claude = claude_dir / "projects" / "-home-me-app" / "c1.jsonl"
    claude.parent.mkdir(parents=True)
    claude.write_bytes(claude_line(1))
    assert wait_for(lambda: arrived(env, "claude/-home-me-app/c1.jsonl", claude_line(1)), 15)
    with claude.open("ab") as f:
        f.write(claude_line(2))
    assert wait_for(lambda: arrived(env, "claude/-home-me-app/c1.jsonl", claude.read_bytes()), 15)
    assert wait_idle(engine)
    engine.stop()
    # Written while the daemon was stopped: the catch-up scans of both roots must send it.
    with claude.open("ab") as f:
        f.write(claude_line(3))
    engine = start(env, engines)
    assert arrived(env, "claude/-home-me-app/c1.jsonl", claude.read_bytes()), remote_files(bucket_dir(env))
    assert {s for s, _ in ledger(env).values()} == {"ok"}, ledger(env)
    assert set(remote_files(bucket_dir(env))) == {
        "claude/-home-me-app/c1.jsonl",
        "codex/2026/01/01/rollout-2026-01-01T00-00-00-c1.jsonl",
    }


def test_a_switched_off_agents_nested_folder_is_not_synced_as_another_agent(env: dict[str, str]) -> None:
    """Codex switched off, CODEX_HOME inside Claude's projects: no rollout goes up as claude/..."""
    home = Path(env["HOME"])
    codex_home = home / ".claude" / "projects" / "codex-home"
    env["CODEX_HOME"] = str(codex_home)
    rollout = codex_home / "sessions" / "2026" / "01" / "01" / "rollout-2026-01-01T00-00-00-c1.jsonl"
    rollout.parent.mkdir(parents=True)
    rollout.write_bytes(codex_line(1))
    claude = home / ".claude" / "projects" / "-home-me-app" / "c1.jsonl"
    claude.parent.mkdir(parents=True)
    claude.write_bytes(claude_line(1))
    write_config(env, FAST + "[agents.codex]\nenabled = false\n")
    engine, _ = build_engine(load_context(env))
    try:
        engine.run_pass()
    finally:
        engine.stop()
    assert remote_files(bucket_dir(env)) == {"claude/-home-me-app/c1.jsonl": claude.read_bytes()}


# -- case 5: symlinks inside a root ----------------------------------------------------------------


def test_a_symlinked_project_folder_is_synced_and_watched(
    env: dict[str, str], engines: list[Engine], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere" / "dir"
    elsewhere.mkdir(parents=True)
    session = elsewhere / "s1.jsonl"
    session.write_bytes(claude_line(1))
    projects = Path(env["HOME"]) / ".claude" / "projects"
    projects.mkdir(parents=True)
    (projects / "-p").symlink_to(elsewhere, target_is_directory=True)

    engine = start(env, engines)
    assert remote_files(bucket_dir(env)) == {"claude/-p/s1.jsonl": session.read_bytes()}
    assert ledger(env) == {str(projects / "-p" / "s1.jsonl"): ("ok", "claude/-p/s1.jsonl")}

    # Appends written through the target's own path, a new session and a new sub-folder.
    with session.open("ab") as f:
        f.write(claude_line(2))
    assert wait_for(lambda: arrived(env, "claude/-p/s1.jsonl", session.read_bytes()), 15)
    new = elsewhere / "s2.jsonl"
    new.write_bytes(claude_line(3))
    assert wait_for(lambda: arrived(env, "claude/-p/s2.jsonl", new.read_bytes()), 15)
    sub = elsewhere / "s1" / "subagents"
    sub.mkdir(parents=True)
    (sub / "agent-a.jsonl").write_bytes(claude_line(4))
    assert wait_for(lambda: arrived(env, "claude/-p/s1/subagents/agent-a.jsonl", claude_line(4)), 15)
    assert wait_idle(engine)
    rows = ledger(env)
    assert all(p.startswith(str(projects / "-p")) for p in rows), rows  # keys come from the link path

    # A link made while the daemon runs is followed at once.
    other = tmp_path / "elsewhere" / "other"
    other.mkdir()
    (other / "o1.jsonl").write_bytes(claude_line(5))
    (projects / "-o").symlink_to(other, target_is_directory=True)
    assert wait_for(lambda: arrived(env, "claude/-o/o1.jsonl", claude_line(5)), 15)
    with (other / "o1.jsonl").open("ab") as f:
        f.write(claude_line(6))
    assert wait_for(lambda: arrived(env, "claude/-o/o1.jsonl", claude_line(5) + claude_line(6)), 15)


def test_a_symlinked_session_file_target_appended_while_running(
    env: dict[str, str], engines: list[Engine], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    real = store / "real-session.jsonl"
    real.write_bytes(claude_line(1))
    beside = store / "unrelated.jsonl"
    project = Path(env["HOME"]) / ".claude" / "projects" / "-q"
    project.mkdir(parents=True)
    (project / "s.jsonl").symlink_to(real)

    engine = start(env, engines)
    assert remote_files(bucket_dir(env)) == {"claude/-q/s.jsonl": real.read_bytes()}
    with real.open("ab") as f:
        f.write(claude_line(2))
    assert wait_for(lambda: arrived(env, "claude/-q/s.jsonl", real.read_bytes()), 15), remote_files(
        bucket_dir(env)
    )
    # An atomic rewrite of the target (write a temp file, rename it over) arrives too.
    tmp = store / "real-session.jsonl.tmp-1"
    tmp.write_bytes(real.read_bytes() + claude_line(3))
    os.replace(tmp, real)
    assert wait_for(lambda: arrived(env, "claude/-q/s.jsonl", real.read_bytes()), 15)
    # Files that merely sit beside the target are not the link's.
    beside.write_bytes(claude_line(9))
    assert wait_idle(engine)
    assert set(remote_files(bucket_dir(env))) == {"claude/-q/s.jsonl"}


def test_links_into_the_root_and_loops(
    env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A link back into a synced folder is not followed (its target syncs under its own path,
    once); loops inside and outside the root end."""
    projects = Path(env["HOME"]) / ".claude" / "projects"
    proj = projects / "-home-me-app"
    proj.mkdir(parents=True)
    session = proj / "s.jsonl"
    session.write_bytes(claude_line(1))
    (projects / "-alias").symlink_to(proj, target_is_directory=True)  # a second path to the same files
    (proj / "copy.jsonl").symlink_to(session)  # a file link to a file in the root
    (proj / "loop").symlink_to(projects, target_is_directory=True)  # the root itself
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "o.jsonl").write_bytes(claude_line(2))
    (outside / "deep" / "up").symlink_to(outside, target_is_directory=True)  # a loop outside
    (outside / "deep" / "again").symlink_to(outside / "deep", target_is_directory=True)
    (projects / "-out").symlink_to(outside, target_is_directory=True)
    (projects / "-out2").symlink_to(outside, target_is_directory=True)  # the same folder twice
    write_config(env, FAST)
    engine, _ = build_engine(load_context(env))
    with caplog.at_level(logging.INFO, logger="traceagent"):
        try:
            engine.run_pass()
        finally:
            engine.stop()
    assert remote_files(bucket_dir(env)) == {
        "claude/-home-me-app/s.jsonl": claude_line(1),
        "claude/-out/deep/o.jsonl": claude_line(2),
    }
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert f"Not following symlink {projects / '-alias'}" in messages
    assert f"Not following symlink {proj / 'copy.jsonl'}" in messages
    assert "Traceback" not in messages


def test_a_dangling_link_is_logged_once(
    env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    projects = Path(env["HOME"]) / ".claude" / "projects"
    proj = projects / "-home-me-app"
    proj.mkdir(parents=True)
    (proj / "s.jsonl").write_bytes(claude_line(1))
    (projects / "-gone").symlink_to(gone, target_is_directory=True)
    shutil.rmtree(gone)
    write_config(env, FAST)
    with caplog.at_level(logging.INFO, logger="traceagent"):
        for _ in range(3):  # three whole scans
            engine, _ = build_engine(load_context(env))
            try:
                engine.run_pass()
            finally:
                engine.stop()
    assert remote_files(bucket_dir(env)) == {"claude/-home-me-app/s.jsonl": claude_line(1)}
    lines = [r.getMessage() for r in caplog.records if str(projects / "-gone") in r.getMessage()]
    assert len(lines) == 1, lines
    assert "its target cannot be read" in lines[0] and "fix or remove the link" in lines[0]
