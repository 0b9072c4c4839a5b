"""The upload worker: Hugging Face calls in a spawned child process (hub/worker.py).

Real processes, the real huggingface_hub + hf_xet client in the child, the fake Hub on
127.0.0.1. The daemon-level tests prove the point of the worker: the daemon process never
loads hf_xet, and a worker that dies mid-upload loses nothing.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import (
    lay_out_corpus,
    status_json,
    stop_daemon,
    wait_for,
    write_config,
)
from hfsupport import TOKEN, USER, FakeHub, fake_hub, make_item
from traceagent.hub.api import key_problem
from traceagent.hub.auth import AuthError
from traceagent.hub.sink import HfSink
from traceagent.hub.whoami import WhoAmI, validate_token
from traceagent.hub.worker import HubWorker, WorkerSink, _launch_subprocess, whoami_in
from traceagent.sinks.base import ErrorKind, SinkError

__all__ = ["fake_hub"]

SECRET = "hf_workerSecretToken0123456789abcdefXYZ"
BUCKET = f"{USER}/agent-sessions"
URI = f"hf://buckets/{BUCKET}"


@pytest.fixture(params=["subprocess", "spawn"])
def worker(request: pytest.FixtureRequest) -> Iterator[HubWorker]:
    """Both ways to start a worker: a subprocess (POSIX) and multiprocessing's spawn
    (Windows and frozen apps; it runs here too)."""
    w = HubWorker(idle_exit_s=60, method=request.param)
    yield w
    w.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d.name))
    return out


def _loads_hf_xet(pid: int) -> bool:
    """Whether hf_xet's native library is mapped into process ``pid``."""
    return re.search(r"/hf_xet[^/\n]*\.so", Path(f"/proc/{pid}/maps").read_text()) is not None


def test_uploads_run_in_a_child_process(worker: HubWorker, fake_hub: FakeHub, tmp_path: Path) -> None:
    sink = WorkerSink(worker, uri=URI, token=TOKEN, endpoint=fake_hub.endpoint)
    assert worker.pid is None  # nothing starts until there is work
    sink.ensure()
    pid = worker.pid
    assert pid is not None and pid != os.getpid()
    assert not _loads_hf_xet(pid)  # not yet: only the Hub API was used
    items = [make_item(tmp_path / "spool", f"claude/p/s{i}.jsonl", b'{"n":%d}\n' % i) for i in range(3)]
    sink.upload(items)
    assert worker.pid == pid and worker.starts == 1  # one worker for both calls
    assert _loads_hf_xet(pid)
    for i, item in enumerate(items):
        assert fake_hub.read_file(BUCKET, item.key) == b'{"n":%d}\n' % i
    assert fake_hub.buckets[BUCKET].private
    worker.close()
    assert worker.pid is None and not _alive(pid)


def test_links_are_huggingface_hub_s_own(worker: HubWorker, fake_hub: FakeHub) -> None:
    from huggingface_hub import parse_hf_uri

    sink = WorkerSink(worker, uri=URI + "/laptop", token=TOKEN, endpoint=fake_hub.endpoint)
    before = sink.url_for("claude/p/a b#c.jsonl")  # built here, before the worker said anything
    sink.ensure()
    expected = parse_hf_uri(f"hf://buckets/{BUCKET}/laptop/claude/p/a b#c.jsonl").to_url(
        endpoint=fake_hub.endpoint
    )
    assert sink.url_for("claude/p/a b#c.jsonl") == expected == before
    # the destination is the prefix folder; the bucket page is huggingface_hub's own
    assert sink.browse_url() == parse_hf_uri(f"hf://buckets/{BUCKET}/laptop").to_url(
        endpoint=fake_hub.endpoint
    )
    assert sink._local.bucket_page() == parse_hf_uri(f"hf://buckets/{BUCKET}").to_url(
        endpoint=fake_hub.endpoint
    )


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_built_link_equals_parse_hf_uri(key: str) -> None:
    """Until the worker has answered, the daemon builds links itself: they must be what
    ``parse_hf_uri(...).to_url()`` gives for every key the bucket accepts."""
    from huggingface_hub import parse_hf_uri

    if key_problem(key) is not None:
        return
    endpoint = "https://hub.example"
    built = HfSink(URI, token=None, endpoint=endpoint).url_for(key)
    try:
        expected = parse_hf_uri(f"hf://buckets/{BUCKET}/{key}").to_url(endpoint=endpoint)
    except ValueError:
        return  # keys the parser refuses keep the built route (the same shape)
    learned = HfSink(URI, token=None, endpoint=endpoint)
    assert learned.learn_viewer_routes() is not None
    assert built == expected == learned.url_for(key)


def test_errors_come_back_as_the_same_kinds(worker: HubWorker, fake_hub: FakeHub, tmp_path: Path) -> None:
    sink = WorkerSink(worker, uri=URI, token=TOKEN, endpoint=fake_hub.endpoint)
    sink.ensure()
    # per-file: a key the bucket refuses; the other file lands
    good = make_item(tmp_path / "spool", "claude/p/ok.jsonl", b"{}\n")
    bad = make_item(tmp_path / "spool", "claude/p/../x.jsonl", b"{}\n")
    with pytest.raises(SinkError) as e:
        sink.upload([good, bad])
    assert e.value.kind is ErrorKind.PER_FILE and e.value.failed_keys == ("claude/p/../x.jsonl",)
    assert fake_hub.read_file(BUCKET, "claude/p/ok.jsonl") == b"{}\n"
    # transient, with the server's Retry-After (bucket_info is a call the library does not retry)
    fake_hub.fail_next(r"^GET /api/buckets/alice/agent-sessions$", 429, {"Retry-After": "42"})
    with pytest.raises(SinkError) as e:
        sink.ensure()
    assert e.value.kind is ErrorKind.TRANSIENT and e.value.retry_after == 42.0
    # auth: a revoked token; the message never holds it
    fake_hub.revoke(TOKEN)
    with pytest.raises(SinkError) as e:
        sink.upload([make_item(tmp_path / "spool", "claude/p/u.jsonl", b"{}\n")])
    assert e.value.kind is ErrorKind.AUTH and TOKEN not in e.value.message
    assert worker.starts == 1  # errors do not cost the worker its life


def test_whoami_and_sign_in_checks_run_in_the_worker(worker: HubWorker, fake_hub: FakeHub) -> None:
    fetch = whoami_in(worker)
    who = fetch(TOKEN, fake_hub.endpoint)
    assert who == WhoAmI(name=USER, role="write", orgs=who.orgs) and worker.pid is not None
    assert validate_token(TOKEN, fake_hub.endpoint, fetch=fetch) == USER
    with pytest.raises(AuthError) as e:
        validate_token(SECRET, fake_hub.endpoint, fetch=fetch)  # not a token the Hub knows
    assert e.value.reason == "invalid" and SECRET not in e.value.message
    fake_hub.add_token(SECRET, role="read")
    with pytest.raises(AuthError) as e:
        validate_token(SECRET, fake_hub.endpoint, fetch=fetch)
    assert e.value.reason == "forbidden"


def test_the_worker_s_log_lines_reach_the_daemon_log(
    worker: HubWorker, fake_hub: FakeHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = WorkerSink(worker, uri=URI, token=TOKEN, endpoint=fake_hub.endpoint)
    caplog.set_level(logging.INFO)
    with caplog.at_level(logging.INFO, logger="traceagent"):
        logging.getLogger("traceagent").propagate = True
        sink.upload([make_item(tmp_path / "spool", "claude/p/l.jsonl", b"{}\n")])
        fake_hub.revoke(TOKEN)
        with pytest.raises(SinkError):
            sink.upload([make_item(tmp_path / "spool", "claude/p/m.jsonl", b"{}\n")])
    records = [r for r in caplog.records if r.name == "traceagent.hub.sink"]
    assert any("uploaded 1 file(s)" in r.getMessage() and r.process != os.getpid() for r in records)
    assert any(r.levelno == logging.WARNING for r in records)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_idle_worker_exits_and_the_next_upload_starts_another(fake_hub: FakeHub, tmp_path: Path) -> None:
    worker = HubWorker(idle_exit_s=1.0)
    try:
        sink = WorkerSink(worker, uri=URI, token=TOKEN, endpoint=fake_hub.endpoint)
        sink.upload([make_item(tmp_path / "spool", "claude/p/a.jsonl", b"{}\n")])
        first = worker.pid
        assert first is not None
        assert wait_for(lambda: worker.pid is None and not _alive(first), 15)
        sink.upload([make_item(tmp_path / "spool", "claude/p/b.jsonl", b"{}\n")])
        assert worker.starts == 2 and worker.pid not in (None, first)
        assert fake_hub.read_file(BUCKET, "claude/p/b.jsonl") == b"{}\n"
    finally:
        worker.close()


def test_a_worker_killed_mid_upload_is_a_transient_error(
    worker: HubWorker, fake_hub: FakeHub, tmp_path: Path
) -> None:
    sink = WorkerSink(worker, uri=URI, token=TOKEN, endpoint=fake_hub.endpoint)
    sink.ensure()
    pid = worker.pid
    assert pid is not None
    fake_hub.stall_next(r"/batch$", 10.0)
    item = make_item(tmp_path / "spool", "claude/p/k.jsonl", b'{"k":1}\n')
    killer = subprocess.Popen(["sh", "-c", f"sleep 1; kill -9 {pid}"])
    started = time.monotonic()
    with pytest.raises(SinkError) as e:
        sink.upload([item])
    killer.wait(10)
    assert e.value.kind is ErrorKind.TRANSIENT and "killed by signal 9" in e.value.message
    assert time.monotonic() - started < 8  # noticed at once, not after the 10 s stall
    sink.upload([item])  # a new worker; the spool file was only read, so it is still there
    assert worker.starts == 2
    assert fake_hub.read_file(BUCKET, "claude/p/k.jsonl") == b'{"k":1}\n'


def test_a_worker_whose_daemon_died_finishes_and_exits_quietly(
    fake_hub: FakeHub, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    conn, child = _launch_subprocess(logging.INFO)
    spec = {"uri": URI, "token": TOKEN, "endpoint": fake_hub.endpoint}
    fake_hub.stall_next(r"/batch$", 3.0)
    conn.send(("upload", (spec, [make_item(tmp_path / "spool", "claude/p/orphan.jsonl", b"{}\n")])))
    assert wait_for(lambda: fake_hub.count(r"/batch -> stalled") >= 1, 30)
    conn.close()  # the daemon is gone while the worker waits for the Hub
    assert wait_for(lambda: not child.is_alive(), 30)
    assert child.exitcode == 0
    assert "claude/p/orphan.jsonl" in fake_hub.files(BUCKET)  # the upload in flight still finished
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err, err


def test_sign_in_from_the_tray_checks_the_token_in_the_worker(
    env: dict[str, str], fake_hub: FakeHub, tmp_path: Path
) -> None:
    """``DesktopEngine.sign_in`` (the tray's dialog) as the daemon builds it: the check runs
    in the upload worker, a bad token is refused there, and uploads then use the worker."""
    from traceagent.app.desktop import build_engine
    from traceagent.app.wiring import load_context

    lay_out_corpus(Path(env["HOME"]))
    env = {**env, "HF_ENDPOINT": fake_hub.endpoint}
    write_config(env, "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\n")
    engine, factory = build_engine(load_context(env), worker=True)
    worker = factory.worker
    assert worker is not None
    try:
        engine.start()
        with pytest.raises(AuthError) as e:
            engine.sign_in("hf_notATokenTheHubKnows000000000")
        assert e.value.reason == "invalid" and worker.starts == 1 and worker.pid != os.getpid()
        assert engine.sign_in(TOKEN) == USER
        # Until the new bucket is ready and the uploads are reset, the state is "syncing": the
        # local folder's counts must not make it look "up to date" (a bug this test found).
        assert wait_for(
            lambda: engine.status().uploaded > 0 and engine.status().state.value == "up_to_date", 60
        )
        st = engine.status()
        assert st.signed_in_as == USER and st.destination == URI
        assert worker.starts == 1  # the same worker checked the token and uploaded
        assert fake_hub.files(BUCKET)
    finally:
        engine.stop()
        factory.close()
    assert worker.pid is None


# ---------------------------------------------------------------------- the real daemon
def test_daemon_never_loads_hf_xet_and_survives_a_killed_worker(
    env: dict[str, str], fake_hub: FakeHub, daemons: Callable[[dict[str, str]], subprocess.Popen[str]]
) -> None:
    expected = lay_out_corpus(Path(env["HOME"]))
    env = {**env, "HF_TOKEN": TOKEN, "HF_ENDPOINT": fake_hub.endpoint}
    write_config(env, "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\nupload_worker_idle_seconds = 30\n")
    p = daemons(env)
    assert wait_for(
        lambda: status_json(env)["state"] == "up_to_date" and status_json(env)["uploaded"] == len(expected),
        90,
    )
    st = status_json(env)
    assert st["destination_url"] == f"{fake_hub.endpoint}/buckets/{BUCKET}"  # the tray's "Open bucket"
    workers = _children(p.pid)
    assert len(workers) == 1, workers
    worker_pid = workers[0]
    assert _loads_hf_xet(worker_pid)
    assert not _loads_hf_xet(p.pid)

    # Kill the worker in the middle of an upload: the append is retried and lands whole.
    session = next(path for path in expected if path.suffix == ".jsonl" and "/subagents/" not in str(path))
    old_hash = fake_hub.files(BUCKET)[expected[session]].xet_hash
    fake_hub.stall_next(r"/batch$", 10.0)  # long enough to kill the worker inside it
    with session.open("a") as f:
        f.write('{"type":"user","message":{"role":"user","content":"after the worker died"}}\n')
    assert wait_for(lambda: fake_hub.count(r"/batch -> stalled") >= 1, 30)
    os.kill(worker_pid, signal.SIGKILL)
    # (hashes while the daemon runs: the CAS is hf_xet's local store, which a live writer locks;
    # the bytes are compared once the daemon has stopped)
    assert wait_for(lambda: fake_hub.files(BUCKET)[expected[session]].xet_hash != old_hash, 90)
    assert wait_for(lambda: status_json(env)["state"] == "up_to_date", 60)
    assert not _loads_hf_xet(p.pid)
    second = _children(p.pid)
    assert len(second) == 1 and second != workers  # a new worker took over
    err = stop_daemon(p)
    assert not _alive(second[0])  # no worker outlives the daemon
    assert TOKEN not in err
    log = Path(env["TRACEAGENT_HOME"], "logs/traceagent.log").read_text()
    assert "upload worker stopped unexpectedly (killed by signal 9)" in log
    assert "traceagent.hub.sink: uploaded" in log  # the worker's own lines, in the daemon's log
    assert TOKEN not in log
    assert fake_hub.read_file(BUCKET, expected[session]) == session.read_bytes()
