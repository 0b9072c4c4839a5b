"""The engine against real files, a real watchdog observer and a real SQLite state."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import bucket_dir, lay_out_corpus, remote_files, wait_for, write_config
from traceagent.app.desktop import build_engine
from traceagent.app.wiring import load_context
from traceagent.status import SyncState
from traceagent.sync.engine import Engine

FAST = "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\nredact = false\n"


@pytest.fixture
def start_engine(env: dict[str, str]) -> Iterator[object]:
    engines: list[Engine] = []

    def start(config: str = FAST) -> Engine:
        write_config(env, config)
        engine, _ = build_engine(load_context(env))
        engine.start()
        engines.append(engine)
        assert wait_idle(engine), engine.status()
        return engine

    yield start
    for e in engines:
        e.stop()


def wait_idle(engine: Engine, timeout: float = 20) -> bool:
    def idle() -> bool:
        st = engine.status()
        return st.state is SyncState.UP_TO_DATE and st.pending == 0 and st.uploading == 0

    return wait_for(idle, timeout)


def test_sync_mirrors_the_corpus_byte_for_byte(env: dict[str, str], start_engine) -> None:  # type: ignore[no-untyped-def]
    """With redaction on (the default), clean real transcripts arrive byte-identical."""
    expected = lay_out_corpus(Path(env["HOME"]))
    # Things that sit beside transcripts and must never be uploaded.
    home = Path(env["HOME"])
    (home / ".claude/.credentials.json").write_text('{"claudeAiOauth": {"accessToken": "x"}}')
    (home / ".claude/history.jsonl").write_text('{"display": "hi"}\n')
    (home / ".codex/auth.json").write_text('{"OPENAI_API_KEY": "x"}')
    (home / ".codex/history.jsonl").write_text('{"text": "hi"}\n')
    (home / ".claude/projects/-experiments-ideas/settings.json").write_text("{}")
    (home / ".claude/projects/-experiments-ideas/x.jsonl.tmp-99").write_text("{}\n")
    engine = start_engine("debounce_seconds = 0.3\nmax_delay_seconds = 1.5\n")
    got = remote_files(bucket_dir(env))
    assert got == {key: path.read_bytes() for path, key in expected.items()}
    st = engine.status()
    assert st.uploaded == len(expected)
    assert {a.name: a.sessions for a in st.agents} == {"claude": 5, "codex": 3, "pi": 2}
    assert st.last_trace is not None and st.last_trace.url.startswith("file://")


def test_live_appends_torn_lines_new_files_and_rewrites(env: dict[str, str], start_engine) -> None:  # type: ignore[no-untyped-def]
    home = Path(env["HOME"])
    sessions = home / ".pi/agent/sessions/--home-me-app--"
    sessions.mkdir(parents=True)
    f = sessions / "2026-03-01T10-00-00-000Z_019c0000-0000-7000-8000-000000000001.jsonl"
    header = {
        "type": "session",
        "version": 3,
        "id": "019c0000-0000-7000-8000-000000000001",
        "timestamp": "2026-03-01T10:00:00.000Z",
        "cwd": "/home/me/app",
    }
    f.write_text(json.dumps(header) + "\n")
    engine = start_engine()
    dest = bucket_dir(env) / "pi/--home-me-app--" / f.name
    assert dest.read_bytes() == f.read_bytes()

    # An appended line arrives.
    line = json.dumps(
        {
            "type": "message",
            "id": "a1",
            "parentId": None,
            "timestamp": "2026-03-01T10:00:01.000Z",
            "message": {"role": "user", "content": [{"type": "text", "text": "fix the tests"}]},
        }
    )
    with f.open("a") as fh:
        fh.write(line + "\n")
    assert wait_for(lambda: dest.read_bytes() == f.read_bytes(), 10)

    # A half-written last line does not arrive until its newline is written.
    complete = f.read_bytes()
    with f.open("a") as fh:
        fh.write('{"type": "message", "id": "b2", "parentId": "a1", "timestamp": "2026-03-01T10:00:')
    time.sleep(1.5)
    assert dest.read_bytes() == complete
    with f.open("a") as fh:
        fh.write('02.000Z"}\n')
    assert wait_for(lambda: dest.read_bytes() == f.read_bytes(), 10)
    assert engine.status().last_trace is not None
    assert engine.status().last_trace.title == "fix the tests"  # type: ignore[union-attr]

    # A new session file arrives (in a folder created after start).
    other = home / ".pi/agent/sessions/--home-me-other--" / "2026-03-02T10-00-00-000Z_019c.jsonl"
    other.parent.mkdir()
    other.write_text(json.dumps({**header, "id": "019c"}) + "\n")
    other_dest = bucket_dir(env) / "pi/--home-me-other--" / other.name
    assert wait_for(lambda: other_dest.exists() and other_dest.read_bytes() == other.read_bytes(), 10)

    # A rewritten, shorter file is re-sent whole.
    f.write_text(json.dumps({**header, "version": 3, "migrated": True}) + "\n")
    assert wait_for(lambda: dest.read_bytes() == f.read_bytes(), 10)

    # A vanished file keeps its remote copy.
    kept = dest.read_bytes()
    f.unlink()
    time.sleep(1.0)
    assert dest.read_bytes() == kept
    assert wait_idle(engine)


def test_continuous_appends_arrive_within_max_delay(env: dict[str, str], start_engine) -> None:  # type: ignore[no-untyped-def]
    f = Path(env["HOME"]) / ".codex/sessions/2026/03/01/rollout-2026-03-01T10-00-00-019c.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text('{"timestamp":"2026-03-01T10:00:00.000Z","type":"session_meta","payload":{"id":"019c"}}\n')
    start_engine()
    dest = bucket_dir(env) / "codex/2026/03/01" / f.name
    # Write a line every 0.1 s (never quiet for the 0.3 s debounce) for 3 s.
    start = time.monotonic()
    arrived_at = None
    n = 0
    while time.monotonic() - start < 3.0:
        with f.open("a") as fh:
            fh.write(
                json.dumps({"timestamp": "2026-03-01T10:00:01.000Z", "type": "event_msg", "n": n}) + "\n"
            )
        n += 1
        if arrived_at is None and dest.exists() and b'"n": 0' in dest.read_bytes():
            arrived_at = time.monotonic() - start
        time.sleep(0.1)
    assert arrived_at is not None and arrived_at <= 1.5 + 1.0, arrived_at


def test_agent_installed_while_running_is_picked_up(env: dict[str, str], start_engine) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine()
    assert engine.status().agents == ()
    f = Path(env["HOME"]) / ".claude/projects/-home-me-new/0b1c2d3e-aaaa-bbbb-cccc-1234567890ab.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text('{"type":"user","sessionId":"0b1c","message":{"role":"user","content":"hello"}}\n')
    dest = bucket_dir(env) / "claude/-home-me-new" / f.name
    assert wait_for(dest.exists, 15)
    assert [a.name for a in engine.status().agents] == ["claude"]


def test_restart_does_not_reupload_or_reread_unchanged_files(env: dict[str, str], start_engine) -> None:  # type: ignore[no-untyped-def]
    lay_out_corpus(Path(env["HOME"]))
    first = start_engine()
    mtimes = {p: p.stat().st_mtime_ns for p in bucket_dir(env).rglob("*") if p.is_file()}
    first.stop()
    engine, _ = build_engine(load_context(env))
    opened: list[str] = []
    import traceagent.sync.uploader as eng

    real = eng.take_snapshot

    def spy(src, *a, **k):  # type: ignore[no-untyped-def]
        opened.append(str(src))
        return real(src, *a, **k)

    eng.take_snapshot = spy  # type: ignore[assignment]
    try:
        engine.start()
        assert wait_idle(engine)
        time.sleep(0.5)
    finally:
        eng.take_snapshot = real
        engine.stop()
    assert opened == []
    assert {p: p.stat().st_mtime_ns for p in bucket_dir(env).rglob("*") if p.is_file()} == mtimes


def test_pause_stops_uploads_but_not_recording(env: dict[str, str], start_engine) -> None:  # type: ignore[no-untyped-def]
    f = Path(env["HOME"]) / ".pi/agent/sessions/--a--/s.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text('{"type":"session","id":"s"}\n')
    engine = start_engine()
    engine.pause(time.time() + 3600)
    with f.open("a") as fh:
        fh.write('{"type":"message"}\n')
    dest = bucket_dir(env) / "pi/--a--/s.jsonl"
    assert wait_for(lambda: engine.status().pending == 1, 5)
    st = engine.status()
    assert st.state is SyncState.PAUSED and st.paused_until is not None
    assert dest.read_bytes() != f.read_bytes()
    engine.resume()
    assert wait_for(lambda: dest.read_bytes() == f.read_bytes(), 10)
    # A timed pause survives a restart.
    engine.pause(time.time() + 3600)
    engine.stop()
    again, _ = build_engine(load_context(env))
    assert again.paused and again.status().state is SyncState.PAUSED
    again.db.close()
    os.environ.pop("TRACEAGENT_UNUSED", None)


def test_secrets_are_redacted_in_the_bucket_not_on_disk(env: dict[str, str], start_engine) -> None:  # type: ignore[no-untyped-def]
    from secretgen import Gen, family_secrets

    secrets = family_secrets(Gen(5))
    f = Path(env["HOME"]) / ".claude/projects/-home-me-app/0b1c2d3e-aaaa-bbbb-cccc-1234567890ab.jsonl"
    f.parent.mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "type": "user",
                "sessionId": "0b1c",
                "message": {"role": "user", "content": f"use {s.text} please"},
            }
        )
        for s in secrets
    ]
    f.write_text("\n".join(lines) + "\n")
    original = f.read_bytes()
    engine = start_engine("debounce_seconds = 0.3\nmax_delay_seconds = 1.5\n")
    remote = (bucket_dir(env) / "claude/-home-me-app" / f.name).read_bytes()
    assert f.read_bytes() == original  # the local file is never modified
    for s in secrets:
        for fragment in s.fragments:
            assert fragment.encode() not in remote, (s.family, fragment)
    assert remote.count(b"[REDACTED:") >= len(secrets)
    for line in remote.splitlines():
        json.loads(line)  # still valid JSON
    counts = engine.status().redactions
    assert sum(counts.values()) >= len(secrets) and all(n > 0 for n in counts.values())


def test_rejected_token_is_retried_when_the_credentials_change(env: dict[str, str]) -> None:
    from traceagent.config import Settings
    from traceagent.paths import app_paths
    from traceagent.sinks.base import ErrorKind, SinkError
    from traceagent.sinks.local import LocalFolderSink

    tokens = ["old"]
    dest = Path(env["TRACEAGENT_HOME"]) / "dest"

    def factory() -> LocalFolderSink:
        if tokens[-1] == "old":
            raise SinkError("Hugging Face rejected the token (401)", kind=ErrorKind.AUTH)
        return LocalFolderSink(dest)

    class E(Engine):
        def credentials_fingerprint(self) -> str | None:
            return tokens[-1]

    engine = E(app_paths(env), Settings(), factory, environ=env)
    try:
        assert engine._ensure_sink() is False
        assert engine.status().state is SyncState.SIGNIN_NEEDED
        engine._auth_recheck()  # nothing changed: still blocked, no retry storm
        assert engine.status().state is SyncState.SIGNIN_NEEDED
        tokens.append("new")
        engine._auth_recheck()
        assert engine._ensure_sink() is True
        assert engine.status().state is not SyncState.SIGNIN_NEEDED
    finally:
        engine.db.close()


def test_shallow_roots_watch_only_session_folders(tmp_path: Path) -> None:
    """OpenCode's data folder also holds snapshot git trees: those are neither watched nor walked."""
    from traceagent.agents import BY_NAME
    from traceagent.agents.base import Root
    from traceagent.sync.roots import scan_root
    from traceagent.sync.watcher import Watcher

    root = tmp_path / "opencode"
    for d in ("snapshot/abc/objects/00", "snapshot/abc/objects/01", "bin", "storage/session/p1"):
        (root / d).mkdir(parents=True)
    (root / "snapshot/abc/objects/00/x.json").write_text("{}")
    agent = BY_NAME["opencode"]
    r = Root(agent, root, agent.remote)
    seen: list[Path] = []
    w = Watcher(
        [r], on_file=lambda _r, p: seen.append(p), on_gone=lambda _r, p: None, on_scan=lambda _r, p: None
    )
    w.start()
    try:
        watched = set(w._watches)
        assert root in watched and root / "storage/session/p1" in watched
        assert not any("snapshot" in str(p) or p.name == "bin" for p in watched)
        assert [p for p, _ in scan_root(r)] == []
        # A session folder created later gets its own watch, and its files are reported.
        new = root / "storage/session/p2"
        new.mkdir()
        assert wait_for(lambda: new in w._watches, 5)
        (new / "ses_1.json").write_text('{"id": "ses_1"}')
        assert wait_for(lambda: new / "ses_1.json" in seen, 5)
    finally:
        w.stop()
