"""Issue 11, case 11: starting traceagent never makes the keyring prompt.

A real gnome-keyring-daemon on a private D-Bus session bus, in the two setups where asking
it through ``keyring`` opens a prompt: no default collection ("Choose password for new
keyring") and a locked one (an unlock prompt). dbus-monitor records every message on the
bus; no collection may be created or unlocked, no Prompt object used and no prompter
(gcr-prompter, ``org.gnome.keyring.SystemPrompter``) activated, and the daemon syncs to the
local folder. Fails, never skips, when gnome-keyring or dbus is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import bucket_dir, status_json, stop_daemon, wait_for, write_config

SECRET = "hf_keyringNoPromptToken0123456789abcdef"
SESSION = '{"type":"session","id":"k1","cwd":"/home/me"}\n{"type":"message","n":1}\n'
#: What a prompt, or its cause, looks like on the bus.
FORBIDDEN = (
    "member=CreateCollection",
    "member=Unlock",
    "interface=org.freedesktop.Secret.Prompt",
    "org.gnome.keyring.SystemPrompter",
    "org.gnome.keyring.PrivatePrompter",
)


@pytest.fixture
def bus(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private session bus (gnome-keyring not started yet); yields the environment."""
    missing = [b for b in ("dbus-daemon", "dbus-monitor", "gnome-keyring-daemon") if shutil.which(b) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: apt-get install gnome-keyring dbus libsecret-1-0")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    run_env = {
        k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYTHON_KEYRING_BACKEND")
    }
    run_env["XDG_RUNTIME_DIR"] = str(runtime)
    daemon = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().decode().strip()
        assert address, "dbus-daemon did not print its address"
        run_env["DBUS_SESSION_BUS_ADDRESS"] = address
        yield run_env
    finally:
        daemon.terminate()
        try:
            daemon.wait(5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(5)


def keyring_daemon(env: dict[str, str], *, password: bytes | None) -> None:
    """gnome-keyring-daemon on the bus: with ``password``, a login keyring (the default
    collection) is created unlocked; without, there is no collection but the session one."""
    args = ["--unlock"] if password is not None else ["--start"]
    subprocess.run(
        ["gnome-keyring-daemon", *args, "--components=secrets"],
        input=password or b"",
        env=env,
        check=True,
        timeout=30,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def in_bus(env: dict[str, str], code: str) -> str:
    """Run Python ``code`` with the bus (and this tree's traceagent) in a child process."""
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def monitor(env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    """dbus-monitor writing every message on the bus to ``out`` (returns once it listens)."""
    fh = out.open("wb")
    p = subprocess.Popen(
        ["dbus-monitor", "--address", env["DBUS_SESSION_BUS_ADDRESS"]],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=env,
    )
    fh.close()
    assert wait_for(lambda: "NameAcquired" in out.read_text(errors="replace"), 15), out.read_text()
    return p


def run_and_watch(
    env: dict[str, str], tmp_path: Path, daemons: Callable[[dict[str, str]], subprocess.Popen[str]]
) -> str:
    """Start the daemon with a session to sync; returns what the bus saw meanwhile."""
    proj = Path(env["HOME"]) / ".pi/agent/sessions/--home-me--"
    proj.mkdir(parents=True)
    (proj / "k1.jsonl").write_text(SESSION)
    write_config(env, "redact = false\n")
    seen = tmp_path / "bus.txt"
    mon = monitor(env, seen)
    try:
        p = daemons(env)
        target = bucket_dir(env) / "pi/--home-me--/k1.jsonl"
        assert wait_for(lambda: target.is_file() and target.read_text() == SESSION, 60), p.stderr
        st = status_json(env)
        assert st["destination_kind"] == "local folder", st
        assert wait_for(lambda: status_json(env)["state"] == "up_to_date", 30)
        stop_daemon(p)
    finally:
        mon.terminate()
        mon.wait(10)
    return seen.read_text(errors="replace")


def assert_no_prompt(bus_log: str) -> None:
    hits = [ln for ln in bus_log.splitlines() if any(f in ln for f in FORBIDDEN)]
    assert not hits, "\n".join(hits[:10])
    ps = subprocess.run(["ps", "-eo", "comm"], capture_output=True, text=True, check=True).stdout
    assert "gcr-prompter" not in ps


def test_no_default_collection_is_never_created(
    bus: dict[str, str], tmp_path: Path, daemons: Callable[[dict[str, str]], subprocess.Popen[str]]
) -> None:
    keyring_daemon(bus, password=None)
    # precondition: a Secret Service with no default collection (asking keyring would prompt)
    code = (
        "import secretstorage\nfrom secretstorage.collection import get_collection_by_alias\n"
        "c = secretstorage.dbus_init()\ntry:\n    get_collection_by_alias(c, 'default'); print('default')\n"
        "except secretstorage.exceptions.ItemNotFoundException:\n    print('none')\n"
    )
    assert in_bus(bus, code) == "none"
    assert_no_prompt(run_and_watch(bus, tmp_path, daemons))
    assert in_bus(bus, code) == "none"  # still no collection


def test_a_locked_collection_is_never_unlocked(
    bus: dict[str, str], tmp_path: Path, daemons: Callable[[dict[str, str]], subprocess.Popen[str]]
) -> None:
    keyring_daemon(bus, password=b"ci-password")
    # a sign-in stored the token in the keyring; then the session locked it
    where = in_bus(
        bus,
        f"from traceagent.hub.auth import store_token; print(store_token({SECRET!r}))",
    )
    assert where.startswith("system keyring (SecretService"), where
    locked = (
        "import secretstorage\nc = secretstorage.dbus_init()\ncol = secretstorage.get_default_collection(c)\n"
        "col.lock()\nprint(col.is_locked())\n"
    )
    assert in_bus(bus, locked) == "True"
    assert_no_prompt(run_and_watch(bus, tmp_path, daemons))
    check = (
        "import secretstorage\nc = secretstorage.dbus_init()\n"
        "print(secretstorage.get_default_collection(c).is_locked())\n"
    )
    assert in_bus(bus, check) == "True"  # nobody unlocked it


def test_the_keyring_is_read_only_where_a_sign_in_stored_the_token(bus: dict[str, str]) -> None:
    keyring_daemon(bus, password=b"ci-password")
    marker = Path(bus["TRACEAGENT_HOME"]) / "state" / "token-in-keyring.json"
    code = (
        "from pathlib import Path\nfrom traceagent.hub import auth\n"
        f"print(auth.find_token())\nprint(auth.store_token({SECRET!r}).split(' (')[0])\n"
        f"print(Path({str(marker)!r}).read_text().strip())\n"
        "print(auth.find_token().source.split(' (')[0])\nprint(auth.delete_token())\nprint(auth.find_token())\n"
    )
    out = in_bus(bus, code).splitlines()
    assert out[0] == "None" and out[1] == "system keyring" and out[3] == "system keyring", out
    assert "SecretService" in out[2] and SECRET not in out[2]  # the marker says where, holds no secret
    assert out[4:] == ["['system keyring (SecretService Keyring)']", "None"], out
    assert not marker.exists()  # signed out: the keyring is not asked again


def test_a_token_an_older_version_stored_is_adopted_read_only(bus: dict[str, str]) -> None:
    keyring_daemon(bus, password=b"ci-password")
    marker = Path(bus["TRACEAGENT_HOME"]) / "state" / "token-in-keyring.json"
    code = (
        "from keyring.backends import SecretService\nfrom traceagent.hub import auth\n"
        f"SecretService.Keyring().set_password('traceagent', 'huggingface', {SECRET!r})\n"
        "print(auth.find_token())\nprint(auth.adopt_keyring_token().token == %r)\n"
        "print(auth.find_token().source)\n" % SECRET
    )
    out = in_bus(bus, code).splitlines()
    # no marker: not asked; asked once for a Hub user (SinkFactory), then remembered
    assert out == ["None", "True", "system keyring (SecretService Keyring)"], out
    assert marker.is_file()
