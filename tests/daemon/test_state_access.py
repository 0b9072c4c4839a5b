"""Issue 11, case 8: root-owned, read-only and immutable state, and a really corrupt ``state.db``.

The commands run as an unprivileged user (uid 65534) with real chmod, chown and chattr. That
user keeps only CAP_DAC_READ_SEARCH (ambient), so it can read this test's Python under
/root but may write nothing it does not own: exactly what a user sees after ``sudo``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import remote_files, wait_for

NOBODY = 65534
AS_USER = [
    "setpriv",
    f"--reuid={NOBODY}",
    f"--regid={NOBODY}",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
]
SESSION = '{"type":"session","id":"s1","cwd":"/home/me"}\n{"type":"message","n":1}\n'


@pytest.fixture
def base(env: dict[str, str]) -> Iterator[Path]:
    """A home and TRACEAGENT_HOME that belong to the unprivileged user."""
    if os.geteuid() != 0:
        pytest.fail("these tests need root (to chown, chattr and switch users), as .ci/run gives them")
    root = Path(tempfile.mkdtemp(prefix="traceagent-access-"))
    root.chmod(0o755)
    home = root / "home"
    proj = home / ".pi/agent/sessions/--home-me--"
    proj.mkdir(parents=True)
    (proj / "s1.jsonl").write_text(SESSION)
    ta = root / "ta"
    ta.mkdir()
    (ta / "config.toml").write_text("redact = false\n")
    for p in [root, *root.rglob("*")]:
        os.chown(p, NOBODY, NOBODY, follow_symlinks=False)
    try:
        yield root
    finally:
        subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True, check=False)
        for p in [root, *root.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(stat.S_IRWXU)
        shutil.rmtree(root, ignore_errors=True)


def _env(env: dict[str, str], base: Path) -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**env, "HOME": str(base / "home"), "TRACEAGENT_HOME": str(base / "ta"), "PYTHONPATH": src}


def cli(
    env: dict[str, str], base: Path, *args: str, as_user: bool = True
) -> subprocess.CompletedProcess[str]:
    """``traceagent ARGS`` as the unprivileged user (or as root: ``sudo traceagent``)."""
    return subprocess.run(
        [*(AS_USER if as_user else []), sys.executable, "-m", "traceagent", *args],
        env=_env(env, base),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``root`` with (size, mtime_ns, mode): what "nothing changed" means."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_size if p.is_file() else 0, st.st_mtime_ns, st.st_mode)
    return out


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    """The command failed with one line on stderr and no traceback."""
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("traceagent: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_after_sudo_run_status_reads_and_run_says_how_to_fix(env: dict[str, str], base: Path) -> None:
    ta = base / "ta"
    # `sudo traceagent sync`: state, logs and the local bucket now belong to root
    r = cli(env, base, "sync", as_user=False)
    assert r.returncode == 0, r.stderr
    assert (ta / "state/state.db").stat().st_uid == 0
    before = tree(ta)

    st = cli(env, base, "status", "--json")
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["uploaded"] == 1  # read-only: it still reads what root recorded
    assert cli(env, base, "agents").returncode == 0
    doc = cli(env, base, "doctor")
    assert doc.returncode == 1 and "Traceback" not in doc.stderr, doc.stdout + doc.stderr
    assert f"[FAIL] folders: Cannot write {ta}" in doc.stdout and f"sudo chown -R $USER {ta}" in doc.stdout
    assert tree(ta) == before  # and changed nothing

    for command in (["run", "--headless"], ["sync"]):
        line = one_line(cli(env, base, *command))
        assert "owned by root" in line, line
        # one command puts every folder the root run took back (the bucket's folder too)
        assert f"Fix: sudo chown -R $USER {ta}" in line, line
    assert not list((ta / "state").glob("state.db.corrupt-*"))
    assert tree(ta) == before

    # while root's daemon runs, asking it is one line too (stop it first, then the same fix)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "traceagent", "run", "--headless"],
        env=_env(env, base),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for((ta / "state/control.sock").exists, 30)
        line = one_line(cli(env, base, "status"))
        assert f"sudo kill {daemon.pid}" in line and f"sudo chown -R $USER {ta}" in line, line
    finally:
        daemon.terminate()
        assert daemon.wait(60) == 0

    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(ta)], check=True)  # the fix, as told
    (base / "home/.pi/agent/sessions/--home-me--/s1.jsonl").write_text(SESSION + '{"n":2}\n')
    r = cli(env, base, "sync")
    assert r.returncode == 0, r.stderr
    assert "Uploaded 1 file(s)" in r.stdout


@pytest.mark.parametrize("how", ["chmod 555 state folder", "chmod 444 state.db", "chattr +i state.db"])
def test_read_only_state_is_never_moved_aside(env: dict[str, str], base: Path, how: str) -> None:
    ta = base / "ta"
    r = cli(env, base, "sync")
    assert r.returncode == 0, r.stderr
    db = ta / "state/state.db"
    if how == "chmod 555 state folder":
        db.parent.chmod(0o555)
        fix = f"Fix: chmod u+rwx {db.parent}"
    elif how == "chmod 444 state.db":
        db.chmod(0o444)
        fix = f"Fix: chmod u+rw {db}"
    else:
        subprocess.run(["chattr", "+i", str(db)], check=True)
        fix = f"Fix: sudo chattr -i {db}"
    before = tree(ta / "state")

    for command in (["status", "--json"], ["open-last", "--print"], ["agents"]):
        r = cli(env, base, *command)
        assert r.returncode == 0, (command, r.stderr)
    assert json.loads(cli(env, base, "status", "--json").stdout)["uploaded"] == 1
    assert tree(ta / "state") == before  # read-only commands changed nothing
    for command in (["sync"], ["run", "--headless"], ["pause"]):
        line = one_line(cli(env, base, *command))
        assert str(db) in line and fix in line, line
    # nothing moved aside, rebuilt or created (the writers took the daemon lock, which holds a pid)
    after = tree(ta / "state")
    assert after.keys() == before.keys()
    assert {k: v for k, v in after.items() if k != "daemon.lock"} == {
        k: v for k, v in before.items() if k != "daemon.lock"
    }


def test_unwritable_log_does_not_stop_sync(env: dict[str, str], base: Path) -> None:
    logs = base / "ta/logs"
    logs.mkdir()
    (logs / "traceagent.log").write_text("")
    os.chown(logs, 0, 0)
    os.chown(logs / "traceagent.log", 0, 0)
    r = cli(env, base, "sync")
    assert r.returncode == 0, r.stderr
    assert "Uploaded 1 file(s)" in r.stdout
    assert "Traceback" not in r.stderr
    # (the whole traceagent folder: chown -R of the outermost one that holds root's files)
    assert "Logging to stderr only" in r.stderr and f"sudo chown -R $USER {base / 'ta'}" in r.stderr, r.stderr


def test_a_really_corrupt_state_db_is_one_line_and_a_resync(env: dict[str, str], base: Path) -> None:
    ta = base / "ta"
    assert cli(env, base, "sync").returncode == 0
    db = ta / "state/state.db"
    db.write_bytes(b"this is not an SQLite database " * 200)
    (base / "home/.pi/agent/sessions/--home-me--/s1.jsonl").write_text(SESSION + '{"n":2}\n')

    # read-only: says so in one line and leaves it alone
    line = one_line(cli(env, base, "status"))
    assert f"State database {db} is corrupt" in line, line
    assert not list(db.parent.glob("state.db.corrupt-*"))

    r = cli(env, base, "sync")
    assert r.returncode == 0, r.stderr
    assert len(list(db.parent.glob("state.db.corrupt-*"))) == 1
    log = (ta / "logs/traceagent.log").read_text()
    assert sum("is corrupt" in ln and "moved it to" in ln for ln in log.splitlines()) == 1, log
    got = remote_files(ta / "data/bucket")
    assert got == {"pi/--home-me--/s1.jsonl": (SESSION + '{"n":2}\n').encode()}


def test_read_only_commands_create_nothing(env: dict[str, str], base: Path) -> None:
    ta = base / "ta"
    before = tree(ta)
    for command in (["status"], ["status", "--json"], ["agents"], ["open-last", "--print"], ["doctor"]):
        r = cli(env, base, *command)
        assert "Traceback" not in r.stderr, r.stderr
        assert tree(ta) == before, command
