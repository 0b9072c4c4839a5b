"""A destination that disappears or is changed behind traceagent's back (issue 11, case 3).

The ledger says every file is uploaded; the destination no longer holds them: a local folder
deleted, a share remounted empty, a bucket deleted and created again, a remote copy overwritten
by hand. Every destination has an identity (a marker in a folder, the bucket's own id and
creation time) checked at start and once per upload pass; ``traceagent sync --verify`` lists
the destination and sends again what is missing or has another size.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import lay_out_corpus, remote_files, run_cli, status_json, stop_daemon, wait_for, write_config
from hfsupport import TOKEN, USER, FakeHub, fake_hub
from secretgen import Gen, family_secrets
from traceagent.app.desktop import build_engine
from traceagent.app.wiring import load_context
from traceagent.hub.sink import HfSink
from traceagent.status import SyncState
from traceagent.sync.engine import Engine

__all__ = ["fake_hub"]

FAST = "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\n"
BUCKET = f"{USER}/traces"


def _idle(engine: Engine) -> bool:
    st = engine.status()
    return st.state is SyncState.UP_TO_DATE and st.pending == 0 and st.uploading == 0


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    started: list[Engine] = []
    yield started
    for e in started:
        e.stop()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """``mount(dir)``: a fresh, empty tmpfs on ``dir`` (a share remounted empty); all unmounted after."""
    mounted: list[Path] = []

    def mount(where: Path) -> None:
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(where)], check=True)
        mounted.append(where)

    yield mount
    for where in set(mounted):
        while subprocess.run(["mountpoint", "-q", str(where)], check=False).returncode == 0:
            subprocess.run(["umount", str(where)], check=True)


def _secret_session(home: Path) -> tuple[Path, str]:
    """A Claude session holding a secret (redacted in the remote copy) and its remote key."""
    secret = family_secrets(Gen(11))[0]
    f = home / ".claude/projects/-home-me-app/5b1c2d3e-aaaa-bbbb-cccc-1234567890ab.jsonl"
    f.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "type": "user",
        "sessionId": "5b1c",
        "message": {"role": "user", "content": f"use {secret.text}"},
    }
    f.write_text(json.dumps(record) + "\n")
    return f, f"claude/-home-me-app/{f.name}"


# --------------------------------------------------------------------------- local folders
def test_local_folder_deleted_while_the_daemon_runs_gets_everything_back(
    env: dict[str, str], engines: list[Engine], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expected = lay_out_corpus(Path(env["HOME"]))
    dest = tmp_path / "dest"
    write_config(env, FAST + f'destination = "{dest}"\nredact = false\n')
    engine, _ = build_engine(load_context(env))
    engine.start()
    engines.append(engine)
    assert wait_for(lambda: _idle(engine), 30), engine.status()
    assert remote_files(dest) == {key: path.read_bytes() for path, key in expected.items()}
    assert (dest / "_traceagent/destination-id").is_file()

    shutil.rmtree(dest)  # deleted by hand (or a cleanup script) while traceagent runs
    session = next(p for p, key in expected.items() if key.startswith("pi/"))
    with session.open("a") as f:
        f.write('{"type":"message","id":"m9","message":{"role":"user","content":"later"}}\n')
    with caplog.at_level(logging.WARNING, logger="traceagent.sync.engine"):
        assert wait_for(lambda: remote_files(dest) == {k: p.read_bytes() for p, k in expected.items()}, 30), (
            sorted(remote_files(dest))
        )
        assert wait_for(lambda: _idle(engine), 30)
    lines = [r.getMessage() for r in caplog.records if "not the one the uploads went to" in r.getMessage()]
    assert len(lines) == 1 and str(dest) in lines[0]
    assert engine.status().uploaded == len(expected)


def test_a_share_remounted_empty_is_filled_again_by_the_next_sync(
    env: dict[str, str], tmp_path: Path, tmpfs: Callable[[Path], None]
) -> None:
    expected = lay_out_corpus(Path(env["HOME"]))
    share = tmp_path / "nas"
    tmpfs(share)
    write_config(env, f'destination = "file://{share}"\nredact = false\n')
    r = run_cli(env, "sync")
    assert r.returncode == 0 and f"Uploaded {len(expected)} file(s), 0 unchanged" in r.stdout, r.stderr
    subprocess.run(["umount", str(share)], check=True)
    tmpfs(share)  # the NAS comes back empty (a new volume, a restore that failed, ...)
    r = run_cli(env, "sync")
    assert r.returncode == 0, r.stderr
    assert f"Uploaded {len(expected)} file(s), 0 unchanged, to {share}." in r.stdout
    assert remote_files(share) == {key: path.read_bytes() for path, key in expected.items()}
    # …and only once: the share is ours again.
    r = run_cli(env, "sync")
    assert "Uploaded 0 file(s)" in r.stdout
    st = status_json(env)
    assert st["state"] == "up_to_date" and st["uploaded"] == len(expected)


def test_sync_verify_in_the_foreground_puts_a_hand_edited_folder_right(
    env: dict[str, str], tmp_path: Path
) -> None:
    expected = lay_out_corpus(Path(env["HOME"]))
    home = Path(env["HOME"])
    session, secret_key = _secret_session(home)
    dest = tmp_path / "dest"
    write_config(env, f'destination = "{dest}"\n')
    assert run_cli(env, "sync").returncode == 0
    redacted = (dest / secret_key).read_bytes()
    assert redacted != session.read_bytes()
    (dest / secret_key).write_bytes(session.read_bytes())  # an unredacted copy put there by hand
    gone_key = next(iter(expected.values()))
    (dest / gone_key).unlink()
    r = run_cli(env, "sync")  # without --verify the ledger is believed
    assert "Uploaded 0 file(s)" in r.stdout
    r = run_cli(env, "sync", "--verify")
    assert r.returncode == 0, r.stderr
    total = len(expected) + 1
    assert f"Verified {total} file(s) in {dest}: 2 missing or changed." in r.stdout
    assert f"  re-sent: {gone_key} (missing)" in r.stdout
    size = len(session.read_bytes())
    assert f"  re-sent: {secret_key} ({size:,} bytes there, {len(redacted):,} sent)" in r.stdout
    assert f"Uploaded 2 file(s), 0 unchanged, to {dest}." in r.stdout
    assert (dest / secret_key).read_bytes() == redacted
    assert remote_files(dest)[gone_key] == next(p for p, k in expected.items() if k == gone_key).read_bytes()
    r = run_cli(env, "sync", "--verify")
    assert (
        f"Verified {total} file(s) in {dest}: 0 missing or changed." in r.stdout and "re-sent" not in r.stdout
    )


def test_verify_sends_an_exported_session_again_through_its_store(
    env: dict[str, str], engines: list[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import bucket_dir
    from stsvalidate import isolate_agents, opencode_db, opencode_session

    isolate_agents(env, monkeypatch)
    root = Path(env["HOME"]) / ".local/share/opencode"
    db = opencode_db(root / "opencode.db")
    opencode_session(db, "ses_A", "First", 1776679200000, [("user", [{"type": "text", "text": "hi"}])])
    opencode_session(db, "ses_B", "Second", 1776679205000, [("user", [{"type": "text", "text": "yo"}])])
    write_config(env, FAST + "redact = false\n")
    engine, _ = build_engine(load_context(env))
    engine.start()
    engines.append(engine)
    bucket = bucket_dir(env) / "opencode"
    assert wait_for(lambda: _idle(engine) and (bucket / "ses_B.jsonl").exists(), 30), engine.status()
    good = (bucket / "ses_A.jsonl").read_bytes()
    (bucket / "ses_A.jsonl").unlink()
    found = engine.request_verify()  # what the daemon does for `traceagent sync --verify`
    assert [(key, why) for _, key, why in found.resent] == [("opencode/ses_A.jsonl", "missing")]
    assert wait_for(lambda: (bucket / "ses_A.jsonl").exists() and _idle(engine), 30), engine.status()
    assert (bucket / "ses_A.jsonl").read_bytes() == good


# --------------------------------------------------------------------------- Hub buckets
def _hub_env(env: dict[str, str], hub: FakeHub, destination: str) -> dict[str, str]:
    run_env = {**env, "HF_TOKEN": TOKEN, "HF_ENDPOINT": hub.endpoint}
    write_config(run_env, FAST + f'destination = "{destination}"\n')
    return run_env


def test_bucket_deleted_and_created_again_gets_all_files_back(
    env: dict[str, str], fake_hub: FakeHub, daemons: Callable[[dict[str, str]], subprocess.Popen[str]]
) -> None:
    expected = lay_out_corpus(Path(env["HOME"]))
    assert len(expected) == 13
    env = _hub_env(env, fake_hub, f"hf://buckets/{BUCKET}")
    p = daemons(env)
    assert wait_for(
        lambda: status_json(env)["state"] == "up_to_date" and status_json(env)["uploaded"] == 13, 90
    )
    assert len(fake_hub.files(BUCKET)) == 13
    st = status_json(env)
    assert st["destination"] == f"hf://buckets/{BUCKET}" and st["destination_kind"] == "Hugging Face bucket"

    # Idle: no call to the Hub at all, not even the identity check (a bounded look is the only way
    # to see that nothing happens).
    calls = len(fake_hub.requests)
    time.sleep(3)
    assert len(fake_hub.requests) == calls, fake_hub.requests[calls:]

    fake_hub.delete_bucket(BUCKET)  # deleted on the website …
    fake_hub.create_bucket(BUCKET, private=True)  # … and created again, empty
    r = run_cli(env, "sync")
    assert r.returncode == 0, r.stderr
    assert f"Up to date: 13 file(s) in hf://buckets/{BUCKET}." in r.stdout
    stored = fake_hub.files(BUCKET)
    assert set(stored) == set(expected.values())
    for path, key in expected.items():
        assert fake_hub.read_file(BUCKET, key) == path.read_bytes(), key
    stop_daemon(p)
    log = Path(env["TRACEAGENT_HOME"], "logs/traceagent.log").read_text()
    assert log.count("is not the one the uploads went to") == 1


def test_sync_verify_through_the_daemon_puts_an_unredacted_copy_right(
    env: dict[str, str], fake_hub: FakeHub, daemons: Callable[[dict[str, str]], subprocess.Popen[str]]
) -> None:
    from huggingface_hub import HfApi

    expected = lay_out_corpus(Path(env["HOME"]))
    session, secret_key = _secret_session(Path(env["HOME"]))
    # The bucket's page as pasted from a browser is that bucket (case 6).
    env = _hub_env(env, fake_hub, f"{fake_hub.endpoint}/buckets/{BUCKET}")
    p = daemons(env)
    total = len(expected) + 1
    assert wait_for(
        lambda: status_json(env)["state"] == "up_to_date" and status_json(env)["uploaded"] == total, 90
    )
    redacted = fake_hub.read_file(BUCKET, secret_key)
    assert redacted != session.read_bytes()
    # `hf sync` from another tool pushes the raw file over the redacted copy; another copy is deleted.
    gone_key = next(iter(expected.values()))
    api = HfApi(endpoint=fake_hub.endpoint, token=TOKEN)
    api.batch_bucket_files(BUCKET, add=[(str(session), secret_key)], delete=[gone_key])
    assert fake_hub.read_file(BUCKET, secret_key) == session.read_bytes()

    r = run_cli(env, "sync", "--verify")
    assert r.returncode == 0, r.stderr
    assert f"Verified {total} file(s) in hf://buckets/{BUCKET}: 2 missing or changed." in r.stdout
    assert f"  re-sent: {gone_key} (missing)" in r.stdout
    size = len(session.read_bytes())
    assert f"  re-sent: {secret_key} ({size:,} bytes there, {len(redacted):,} sent)" in r.stdout
    assert f"Up to date: {total} file(s) in hf://buckets/{BUCKET}." in r.stdout
    assert fake_hub.read_file(BUCKET, secret_key) == redacted
    gone_path = next(p for p, k in expected.items() if k == gone_key)
    assert fake_hub.read_file(BUCKET, gone_key) == gone_path.read_bytes()
    stop_daemon(p)


def test_the_bucket_identity_follows_its_creation(fake_hub: FakeHub) -> None:
    """``bucket_info``'s id and created_at, through the real client against the fake Hub."""
    sink = HfSink(f"hf://buckets/{BUCKET}", token=TOKEN, endpoint=fake_hub.endpoint)
    sink.ensure()
    first = sink.identity()
    assert first == sink.identity() and first.startswith(f"{BUCKET} created ")
    from huggingface_hub import HfApi

    HfApi(endpoint=fake_hub.endpoint, token=TOKEN).delete_bucket(BUCKET)
    second = sink.identity()  # vanished: created again (private), with a new identity
    assert second != first and fake_hub.buckets[BUCKET].private
    fake_hub.delete_bucket(BUCKET)
    fake_hub.create_bucket(BUCKET, private=True)
    assert sink.identity() not in (first, second)


def test_listing_a_bucket_under_a_prefix_gives_item_keys_and_sizes(fake_hub: FakeHub, tmp_path: Path) -> None:
    from hfsupport import make_item

    sink = HfSink(f"hf://buckets/{BUCKET}/laptop", token=TOKEN, endpoint=fake_hub.endpoint)
    items = [make_item(tmp_path, "claude/-p/a.jsonl", b"1\n"), make_item(tmp_path, "pi/b c/d.jsonl", b"22\n")]
    sink.upload(items)
    HfSink(f"hf://buckets/{BUCKET}", token=TOKEN, endpoint=fake_hub.endpoint).upload(
        [make_item(tmp_path, "elsewhere.jsonl", b"x\n")]
    )
    assert sink.list_files() == {"claude/-p/a.jsonl": 2, "pi/b c/d.jsonl": 3}
    fake_hub.delete_bucket(BUCKET)
    assert sink.list_files() == {}  # a vanished bucket holds nothing (and is not created by a listing)
    assert BUCKET not in fake_hub.buckets
