"""Issue 11, case 12: a headless doctor, a 255-byte name on another file system, a session
stamped in the future, and a config.toml that starts with a UTF-8 BOM."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli, status_json, write_config

PROJ = ".pi/agent/sessions/--home-me--"


def session(sid: str, when: dt.datetime) -> str:
    ts = when.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return (
        f'{{"type":"session","id":"{sid}","timestamp":"{ts}","cwd":"/home/me"}}\n'
        f'{{"type":"message","timestamp":"{ts}","message":{{"role":"user","content":"{sid}"}}}}\n'
    )


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs: another file system than the state folder's spool."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_doctor_on_a_headless_server_is_info_and_exit_0(env: dict[str, str]) -> None:
    headless = {k: v for k, v in env.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYSTRAY_BACKEND")}
    r = run_cli(headless, "doctor")
    assert "[info] tray: no display" in r.stdout, r.stdout
    assert "[FAIL]" not in r.stdout, r.stdout
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_255_byte_name_reaches_a_destination_on_another_file_system(
    env: dict[str, str], tmpfs: Path
) -> None:
    proj = Path(env["HOME"]) / PROJ
    proj.mkdir(parents=True)
    name = "n" * (255 - len(".jsonl")) + ".jsonl"
    assert len(name.encode()) == 255
    body = session("long", dt.datetime.now(dt.timezone.utc))
    (proj / name).write_text(body)
    dest = tmpfs / "bucket"
    write_config(env, f'redact = false\ndestination = "{dest}"\n')
    r = run_cli(env, "sync")
    spool = Path(env["TRACEAGENT_HOME"]) / "state/spool"
    assert spool.stat().st_dev != tmpfs.stat().st_dev  # the copy-and-rename (EXDEV) path ran
    assert r.returncode == 0, r.stdout + r.stderr
    assert (dest / "pi/--home-me--" / name).read_text() == body
    leftover = dest / ".traceagent-tmp"
    assert not leftover.exists() or not any(leftover.iterdir())


def test_a_session_stamped_in_the_future_is_not_the_last_trace_for_good(env: dict[str, str]) -> None:
    proj = Path(env["HOME"]) / PROJ
    proj.mkdir(parents=True)
    write_config(env, "redact = false\n")
    future = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
    skewed = proj / "skewed.jsonl"
    skewed.write_text(session("skewed", future))  # records and mtime from a clock in 2100
    os.utime(skewed, (future.timestamp(), future.timestamp()))
    assert run_cli(env, "sync").returncode == 0
    assert status_json(env)["last_trace"]["local_path"] == str(skewed)

    fresh = proj / "fresh.jsonl"
    fresh.write_text(session("fresh", dt.datetime.now(dt.timezone.utc)))
    assert run_cli(env, "sync").returncode == 0
    st = status_json(env)
    assert st["last_trace"]["local_path"] == str(fresh), st["last_trace"]


def test_a_config_toml_with_a_utf8_bom_loads(env: dict[str, str]) -> None:
    (Path(env["HOME"]) / PROJ).mkdir(parents=True)
    path = write_config(env, "")
    path.write_bytes(b"\xef\xbb\xbf" + "# réglages\n[agents.pi]\nenabled = false\n".encode())
    r = run_cli(env, "status")
    assert r.returncode == 0, r.stderr
    assert "not valid TOML" not in r.stderr
    assert "Pi: 0 session(s) (sync off)" in r.stdout, r.stdout
