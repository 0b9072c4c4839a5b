"""The whole product against the fake Hub: ``traceagent run --headless`` with a token keeps the
user's private ``agent-sessions`` bucket in step, ``open-last`` gives the viewer link, and a
rejected token ends in "sign-in needed" with nothing lost until ``traceagent login``.

The real huggingface_hub + hf_xet client runs in the daemon's upload worker process; the fake
Hub runs in a thread of this process on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from conftest import (
    lay_out_corpus,
    run_cli,
    status_json,
    stop_daemon,
    wait_for,
    write_config,
)
from hfsupport import TOKEN, USER, FakeHub, fake_hub

__all__ = ["fake_hub"]

BUCKET = f"{USER}/agent-sessions"
FAST = "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\n"


def test_daemon_keeps_the_private_default_bucket_in_step(
    env: dict[str, str], fake_hub: FakeHub, daemons: Callable[[dict[str, str]], subprocess.Popen[str]]
) -> None:
    expected = lay_out_corpus(Path(env["HOME"]))
    env = {**env, "HF_TOKEN": TOKEN, "HF_ENDPOINT": fake_hub.endpoint}
    write_config(env, FAST)
    p = daemons(env)
    assert wait_for(
        lambda: status_json(env)["state"] == "up_to_date" and status_json(env)["uploaded"] == len(expected),
        90,
    )
    st = status_json(env)
    assert st["destination"] == f"hf://buckets/{BUCKET}" and st["signed_in_as"] == USER
    lt = st["last_trace"]
    assert isinstance(lt, dict)
    r = run_cli(env, "open-last", "--print")
    assert r.returncode == 0 and r.stdout.strip() == lt["url"]
    assert lt["url"] == f"{fake_hub.endpoint}/buckets/{BUCKET}/tree/{lt['remote_key']}"
    err = stop_daemon(p)
    assert TOKEN not in err
    stored = fake_hub.files(BUCKET)
    assert set(stored) == set(expected.values())
    for path, key in expected.items():
        assert fake_hub.read_file(BUCKET, key) == path.read_bytes(), key
    assert fake_hub.buckets[BUCKET].private
    log = Path(env["TRACEAGENT_HOME"], "logs/traceagent.log").read_text()
    state_files = b"".join(f.read_bytes() for f in Path(env["TRACEAGENT_HOME"]).rglob("*") if f.is_file())
    assert TOKEN not in log and TOKEN.encode() not in state_files


def test_rejected_token_means_signin_needed_and_nothing_lost(
    env: dict[str, str], fake_hub: FakeHub, daemons: Callable[[dict[str, str]], subprocess.Popen[str]]
) -> None:
    old = "hf_tokenThatWillBeRevoked0123456789ab"
    fake_hub.add_token(old)
    hf_home = Path(env["HF_HOME"])
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text(old)  # as `hf auth login` leaves it
    session = Path(env["HOME"]) / ".pi/agent/sessions/--home-me--/s.jsonl"
    session.parent.mkdir(parents=True)
    session.write_text('{"type":"session","id":"s","cwd":"/home/me"}\n')
    env = {**env, "HF_ENDPOINT": fake_hub.endpoint}
    write_config(env, FAST)
    p = daemons(env)
    assert wait_for(lambda: status_json(env)["state"] == "up_to_date", 90)
    fake_hub.revoke(old)
    with session.open("a") as f:
        f.write('{"type":"message","id":"m1","message":{"role":"user","content":"after revoke"}}\n')
    assert wait_for(lambda: status_json(env)["state"] == "signin_needed", 60)
    st = status_json(env)
    assert "rejected the token" in str(st["last_error"]) and old not in json.dumps(st)
    # A new token through `traceagent login` reaches the running daemon; the append uploads.
    r = run_cli(env, "login", "--token-stdin", input=TOKEN + "\n")
    assert r.returncode == 0, r.stderr
    assert f"Signed in as {USER}" in r.stdout and TOKEN not in r.stdout
    assert wait_for(lambda: status_json(env)["state"] == "up_to_date", 90)
    stop_daemon(p)
    assert fake_hub.read_file(BUCKET, "pi/--home-me--/s.jsonl") == session.read_bytes()
