"""The real ``traceagent run`` in a real tray (Xvfb + trayer + D-Bus + dunst), driven by clicks.

Sessions from the corpus are synced first; then the test right-clicks the icon, pauses sync
from the menu and checks the daemon's own ``status``, opens the last trace (``$BROWSER``
records the URL), and quits from the menu (clean exit). Screenshots: ``<tmp_path>/shots``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import lay_out_corpus, run_cli
from traceagent import autostart
from traceagent.app import control
from traceagent.paths import app_paths
from traceagent.status import Status, TraceInfo
from traceagent.tray import model as traymodel
from traysupport import Desktop, missing_requirements, text_rows, wait_for

pytestmark = pytest.mark.slow

_missing = missing_requirements()
if _missing:
    # CI installs everything (.ci/run): a skip here would hide a missing install step.
    pytest.fail(f"real-tray test cannot run, missing: {', '.join(_missing)}", pytrace=False)


def _status(env: dict[str, str]) -> dict[str, Any]:
    r = run_cli(env, "status", "--json")
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def _menu_keys(env: dict[str, str]) -> list[str]:
    """The rows the tray should draw for the daemon's current status (same model code)."""
    paths = app_paths(env)
    st = Status.from_json(control.request(paths, "status")["status"])
    recent = tuple(TraceInfo(**t) for t in control.request(paths, "recent", limit=10)["traces"])
    inputs = traymodel.TrayInputs(
        status=st,
        recent=recent,
        autostart=autostart.status().enabled,
        config_path=paths.config_file,
        log_path=paths.log_file,
        now=time.time(),
    )
    return [e.key for e in traymodel.flat_rows(traymodel.build_model(inputs).menu)]


def test_real_daemon_in_a_real_tray(env: dict[str, str], tmp_path: Path) -> None:
    t0 = time.monotonic()
    lay_out_corpus(Path(env["HOME"]))
    (tmp_path / "desktop").mkdir()
    desktop = Desktop(tmp_path / "desktop")
    shots = tmp_path / "shots"
    shots.mkdir()
    browser_log = tmp_path / "browser.log"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{browser_log}"\n')
    browser.chmod(0o755)
    run_env = {
        **env,
        **desktop.env,
        "PYSTRAY_BACKEND": "gtk",
        "TRACEAGENT_ICON_THEME": "light",
        "BROWSER": str(browser),
        "NO_AT_BRIDGE": "1",
    }
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "traceagent", "run"], env=run_env, stdout=log, stderr=log)
    try:
        wait_for(
            lambda: _status(env)["state"] == "up_to_date" and _status(env)["uploaded"] == 13,
            60,
            what="the corpus to sync",
        )
        daemon_log = Path(env["TRACEAGENT_HOME"], "logs/traceagent.log")
        # The tray starts beside the engine: its first line may come just after the sync.
        wait_for(lambda: "tray: pystray backend gtk" in daemon_log.read_text(), 20, what="the gtk tray")
        icon = wait_for(lambda: desktop.windows_of_class("traceagent"), 20, what="the tray icon")[0]
        x, y, w, h = icon
        desktop.grab((x - 40, 0, x + w + 4, y + h + 4)).save(shots / "01-icon.png")

        def open_menu(keys: list[str]) -> tuple[tuple[int, int, int, int], list[tuple[int, int]]]:
            desktop.click(x + w // 2, y + h // 2, button=3)
            box = wait_for(desktop.popup_windows, 5, what="the menu")[0]

            def painted() -> list[tuple[int, int]] | None:
                rows = text_rows(desktop.grab(), box)
                return rows if len(rows) == len(keys) else None

            return box, wait_for(painted, 5, what=f"{len(keys)} menu rows")

        def click(box: tuple[int, int, int, int], rows: list[tuple[int, int]], i: int) -> None:
            top, bottom = rows[i]
            desktop.click(box[0] + box[2] // 2, (top + bottom) // 2)
            wait_for(lambda: not desktop.popup_windows(), 5, what="the menu to close")

        # Right click shows the whole menu; "Pause sync" pauses the running daemon.
        keys = _menu_keys(env)
        box, rows = open_menu(keys)
        desktop.grab((box[0] - 8, 0, box[0] + box[2] + 4, box[1] + box[3] + 8)).save(shots / "02-menu.png")
        click(box, rows, keys.index("pause"))
        wait_for(lambda: _status(env)["paused"], 10, what="the daemon to pause")
        assert _status(env)["state"] == "paused"

        # "Open last trace" opens the newest trace's link through $BROWSER.
        last_url = _status(env)["last_trace"]["url"]
        keys = _menu_keys(env)
        box, rows = open_menu(keys)
        desktop.grab((box[0] - 8, 0, box[0] + box[2] + 4, box[1] + box[3] + 8)).save(shots / "03-paused.png")
        click(box, rows, keys.index("open_last"))
        wait_for(browser_log.exists, 10, what="the browser to be called")
        assert browser_log.read_text().split() == [last_url]

        # "Quit" finishes and exits cleanly; the daemon is gone.
        box, rows = open_menu(keys)
        click(box, rows, keys.index("quit"))
        assert proc.wait(30) == 0
        assert _status(env)["running"] is False
        assert "Traceback" not in Path(env["TRACEAGENT_HOME"], "logs/traceagent.log").read_text()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()  # never leave a daemon behind, even when the test failed
                proc.wait(5)
        log.close()
        desktop.close()
        print((tmp_path / "daemon.log").read_text())
    print(f"real-daemon tray e2e took {time.monotonic() - t0:.1f}s")
    os.environ.pop("TRACEAGENT_E2E_UNUSED", None)


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.5])
def test_sigterm_at_any_point_of_start_up_exits_cleanly(
    env: dict[str, str], tmp_path: Path, delay: float
) -> None:
    """A stop signal that lands while the tray is still starting must not leave a daemon behind."""
    (tmp_path / "desktop").mkdir()
    desktop = Desktop(tmp_path / "desktop")
    try:
        run_env = {**env, **desktop.env, "PYSTRAY_BACKEND": "gtk", "NO_AT_BRIDGE": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "traceagent", "run"],
            env=run_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(delay)
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        # 0: our handler ran; -SIGTERM: the signal beat Python's start-up (nothing to clean up).
        assert proc.returncode in (0, -15), err.decode(errors="replace")
        assert b"Traceback" not in err
    finally:
        desktop.close()
