"""Outages that must never leave the status saying "Up to date" while changes are missing.

Each test breaks something real while a daemon runs (a full state disk on a tmpfs, a kernel
inotify queue that overflows, a destination folder that refuses writes), checks what the
status says during the outage, repairs it, and waits for every change to arrive.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import end_daemon, run_cli, status_json, stop_daemon, wait_for, write_config

FAST = "debounce_seconds = 0.3\nmax_delay_seconds = 1\nredact = false\n"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (tmpfs mounts, sysctl, setpriv)")


def _line(i: int, text: str = "hello") -> bytes:
    return b'{"type":"user","sessionId":"s%d","message":{"role":"user","content":"%s"}}\n' % (
        i,
        text.encode(),
    )


def _sessions(home: Path, project: str, n: int) -> list[Path]:
    proj = home / ".claude/projects" / project
    proj.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = proj / f"0000000{i}-aaaa-bbbb-cccc-{project.strip('-')[:12]:0>12}.jsonl"
        p.write_bytes(_line(i))
        out.append(p)
    return out


def _remote(dest: Path, home: Path, local: Path) -> Path:
    return dest / "claude" / local.relative_to(home / ".claude/projects")


def _arrived(dest: Path, home: Path, files: list[Path]) -> bool:
    for f in files:
        try:
            if _remote(dest, home, f).read_bytes() != f.read_bytes():
                return False
        except OSError:
            return False
    return True


def _state(env: dict[str, str]) -> dict[str, Any]:
    return status_json(env)


def _log(env: dict[str, str]) -> str:
    path = Path(env["TRACEAGENT_HOME"]) / "logs/traceagent.log"
    return path.read_text(encoding="utf-8") if path.exists() else ""


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path) -> None:
    """Write ``path`` until its file system has no block left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)


def _start(env: dict[str, str], prefix: list[str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*(prefix or []), sys.executable, "-m", "traceagent", "run", "--headless"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        end_daemon(p)


def _up_to_date(env: dict[str, str]) -> bool:
    st = _state(env)
    return st["state"] == "up_to_date" and st["pending"] == 0


# -- case 1: the state disk fills up ------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "named"),
    [("state", ("state.db", "full")), ("state/spool", ("spool", "full"))],
    ids=["state-db", "spool"],
)
def test_a_full_state_disk_loses_nothing_and_says_so(
    env: dict[str, str],
    tmp_path: Path,
    procs: list[subprocess.Popen[str]],
    full: str,
    named: tuple[str, str],
) -> None:
    home = Path(env["HOME"])
    dest = tmp_path / "dest"  # another disk than the state: only the state fills up
    write_config(env, f'destination = "{dest}"\n{FAST}')
    files = _sessions(home, "-home-me-full", 4)
    # The whole state folder on a small disk, or only the spool of snapshots beside state.db.
    state_dir = Path(env["TRACEAGENT_HOME"]) / full
    with _tmpfs(state_dir, "8M"):
        d = _start(env)
        procs.append(d)
        assert wait_for(lambda: _arrived(dest, home, files) and _up_to_date(env), 30), _state(env)
        filler = state_dir / "filler"
        _fill(filler)
        for i, f in enumerate(files):
            with f.open("ab") as out:
                out.write(_line(i, "written while the state disk is full"))
        # The daemon cannot record what it saw: it must not claim to be up to date.
        assert wait_for(lambda: _state(env)["state"] == "error", 20), _state(env)
        st = _state(env)
        assert all(word in st["last_error"] for word in named), st
        assert st["issues"] == 0, st  # not mistaken for a problem of the files
        assert "\n" not in st["last_error"]
        assert not _arrived(dest, home, files)
        filler.unlink()
        # Space is back: every change seen meanwhile arrives, with no new event to help.
        assert wait_for(lambda: _arrived(dest, home, files), 60), _state(env)
        assert wait_for(lambda: _up_to_date(env), 30), _state(env)
        stop_daemon(d)
    log = _log(env)
    assert "Traceback" not in log and "Not uploaded" not in log, log
    failed = [ln for ln in log.splitlines() if "ERROR" in ln and named[0] in ln]
    assert len(failed) == 1, log  # named once, not at every retry


@pytest.mark.parametrize(
    ("full", "spare", "named"),
    [
        ("state", 0, "daemon.lock"),  # not even the lock can record its pid
        ("state", 4096, "state.db"),  # the lock can, the ledger cannot
        ("state/spool", 0, "spool"),  # the ledger can, the snapshots cannot
    ],
    ids=["lock", "state-db", "spool"],
)
def test_a_foreground_sync_on_a_full_state_disk_says_so_in_one_line_and_loses_nothing(
    env: dict[str, str], tmp_path: Path, full: str, spare: int, named: str
) -> None:
    home = Path(env["HOME"])
    dest = tmp_path / "dest"
    write_config(env, f'destination = "{dest}"\n{FAST}')
    files = _sessions(home, "-home-me-fg", 3)
    state_dir = Path(env["TRACEAGENT_HOME"]) / full
    with _tmpfs(state_dir, "8M"):
        r = run_cli(env, "sync")
        assert r.returncode == 0 and _arrived(dest, home, files), r.stderr
        filler = state_dir / "filler"
        _fill(filler)
        os.truncate(filler, max(0, filler.stat().st_size - spare))
        for i, f in enumerate(files):
            with f.open("ab") as out:
                out.write(_line(i, "written while the state disk is full"))
        files += _sessions(home, "-home-me-fg-new", 1)
        for args in (["sync"], ["sync", "--verify"]):
            r = run_cli(env, *args)
            assert r.returncode != 0, (args, r.stdout, r.stderr)
            lines = r.stderr.splitlines()
            assert len(lines) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
            assert named in lines[0] and "full" in lines[0] and "traceagent sync" in lines[0], lines
        # A preview writes nothing, so it still works and lists every change.
        r = run_cli(env, "sync", "--dry-run")
        assert r.returncode == 0, r.stderr
        assert "4 file(s) would be uploaded." in r.stdout, r.stdout
        assert not _arrived(dest, home, files)
        filler.unlink()
        r = run_cli(env, "sync")
        assert r.returncode == 0, r.stderr
        assert _arrived(dest, home, files), r.stdout
    assert "Traceback" not in _log(env)


# -- case 7: a destination that refuses writes --------------------------------------------------

#: As root, permissions do not bind: run the daemon without the capabilities that bypass them.
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def _break_by_mode(dest: Path) -> tuple[str, Any]:
    dest.chmod(0)
    return "Permission denied", lambda: dest.chmod(0o700)


def _break_read_only_tree(dest: Path) -> tuple[str, Any]:
    """Every folder and file of the destination read-only (a share remounted for another
    user): neither a new copy nor an append in place can be written."""
    folders = [dest, *(p for p in dest.rglob("*") if p.is_dir())]
    files = [p for p in dest.rglob("*") if p.is_file()]
    for f in files:
        f.chmod(0o444)
    for f in folders:
        f.chmod(0o555)

    def fix() -> None:
        for f in folders:
            f.chmod(0o755)
        for f in files:
            f.chmod(0o644)

    return "Permission denied", fix


def _break_by_file(dest: Path) -> tuple[str, Any]:
    away = dest.with_name("dest.away")
    dest.rename(away)
    dest.write_text("a file where the folder was\n")

    def fix() -> None:
        dest.unlink()
        away.rename(dest)

    return "Not a directory", fix


@pytest.mark.parametrize(
    "breaker",
    [_break_read_only_tree, _break_by_mode, _break_by_file],
    ids=["read-only", "no-access", "file-in-the-way"],
)
def test_a_destination_refusing_writes_is_a_state_and_heals_fast(
    env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[str]], breaker: Any
) -> None:
    home = Path(env["HOME"])
    dest = tmp_path / "dest"
    write_config(env, f'destination = "{dest}"\n{FAST}')
    files = _sessions(home, "-home-me-dest", 4)
    d = _start(env, NO_DAC)
    procs.append(d)
    assert wait_for(lambda: _arrived(dest, home, files) and _up_to_date(env), 30), _state(env)
    reason, fix = breaker(dest)
    try:
        for i, f in enumerate(files):
            with f.open("ab") as out:
                out.write(_line(i, "written while the destination refuses writes"))
        assert wait_for(lambda: _state(env)["state"] in ("error", "offline"), 20), _state(env)
        st = _state(env)
        assert str(dest) in st["last_error"] and reason in st["last_error"], st
        # Several retries later the state still says so (no per-file backoff hides it).
        wait_for(lambda: False, 8)
        st = _state(env)
        assert st["state"] in ("error", "offline") and st["issues"] == 0, st
    finally:
        fix()
    assert wait_for(lambda: _arrived(dest, home, files), 30), _state(env)
    assert wait_for(lambda: _up_to_date(env), 10), _state(env)
    stop_daemon(d)
    log = _log(env)
    # Named once, not once per file or per retry.
    assert log.count(f"{dest}") >= 1
    refused = [ln for ln in log.splitlines() if reason in ln]
    assert len(refused) == 1, refused
    assert "Not uploaded" not in log, log


def test_a_per_file_refusal_names_its_own_file_and_the_rest_syncs(
    env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    home = Path(env["HOME"])
    dest = tmp_path / "dest"
    write_config(env, f'destination = "{dest}"\n{FAST}')
    locked = _sessions(home, "-home-me-locked", 2)
    free = _sessions(home, "-home-me-free", 2)
    d = _start(env, NO_DAC)
    procs.append(d)
    assert wait_for(lambda: _arrived(dest, home, locked + free) and _up_to_date(env), 30), _state(env)
    locked_dir = _remote(dest, home, locked[0]).parent
    # One folder of the destination refuses (its copies too, or they would take appends in
    # place); the destination as a whole is fine.
    locked_copies = [p for p in locked_dir.iterdir() if p.is_file()]
    for p in locked_copies:
        p.chmod(0o444)
    locked_dir.chmod(0o500)
    try:
        for i, f in enumerate(locked + free):
            with f.open("ab") as out:
                out.write(_line(i, "more"))
        assert wait_for(lambda: _arrived(dest, home, free), 20), _state(env)
        assert wait_for(lambda: _state(env)["issues"] == 2, 20), _state(env)
        st = _state(env)
        assert st["state"] not in ("error", "offline"), st
    finally:
        locked_dir.chmod(0o700)
        for p in locked_copies:
            p.chmod(0o644)
    stop_daemon(d)
    lines = [ln for ln in _log(env).splitlines() if "Not uploaded" in ln]
    assert len(lines) == 2, lines
    for f in locked:
        mine = [ln for ln in lines if str(f) in ln]
        assert len(mine) == 1, lines
        # The line names this file's copy in the destination, and no other file.
        assert str(_remote(dest, home, f)) in mine[0], mine
        other = next(o for o in locked if o != f)
        assert other.name not in mine[0], mine


# -- case 2: the inotify queue overflows ----------------------------------------------------------

MAX_QUEUED = Path("/proc/sys/fs/inotify/max_queued_events")

#: Appends round-robin over the files (consecutive events differ, so the kernel merges none).
BURST = textwrap.dedent(
    """
    import sys
    handles = [open(p, "ab", buffering=0) for p in sys.argv[2:]]
    line = b'{"type":"user","message":{"role":"user","content":"burst"}}\\n'
    for i in range(int(sys.argv[1])):
        handles[i % len(handles)].write(line)
    """
)


def test_an_inotify_overflow_is_logged_and_caught_up(
    env: dict[str, str], tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    home = Path(env["HOME"])
    dest = tmp_path / "dest"
    write_config(env, f'destination = "{dest}"\n{FAST}')
    noisy = _sessions(home, "-home-me-noisy", 20)
    late = _sessions(home, "-home-me-late", 4)
    saved = MAX_QUEUED.read_text()
    try:
        # The queue length is fixed when the daemon's inotify instance is made: lower the limit
        # only until the daemon watches its folders (other processes keep the normal one).
        MAX_QUEUED.write_text("256\n")
        d = _start(env)
        procs.append(d)
        assert wait_for(lambda: "Watching " in _log(env), 30), _log(env)
    finally:
        MAX_QUEUED.write_text(saved)
    assert wait_for(lambda: _arrived(dest, home, noisy + late) and _up_to_date(env), 60), _state(env)
    # The daemon is busy (stopped, here) while 2,000 appends overflow its 256-event queue; the
    # late sessions change after the overflow, so the kernel reports nothing at all for them.
    d.send_signal(signal.SIGSTOP)
    try:
        subprocess.run([sys.executable, "-c", BURST, "2000", *map(str, noisy)], check=True, timeout=60)
        subprocess.run([sys.executable, "-c", BURST, "8", *map(str, late)], check=True, timeout=60)
    finally:
        d.send_signal(signal.SIGCONT)
    assert wait_for(lambda: _arrived(dest, home, noisy + late), 60), _state(env)
    assert wait_for(lambda: _up_to_date(env), 30), _state(env)
    stop_daemon(d)
    log = _log(env)
    assert "Inotify queue overflowed" in log, log  # watchdog's own warning reaches the log
    ours = [ln for ln in log.splitlines() if "events were lost" in ln and "rescanning" in ln]
    assert len(ours) == 1, log
