"""End to end: the real tray (pystray's gtk backend) in a real tray host, driven by clicks.

``tests/support/tray_e2e_app.py`` runs ``traceagent.tray.icon.run_tray`` over a fake engine that records
its calls; :mod:`traysupport` gives it Xvfb, a private session bus, ``trayer`` and ``dunst``.
The test finds the icon on screen, right-clicks it, clicks menu rows found in the
screenshot (no pixel offsets are hard-coded: rows are bands of text, matched to the menu
model in order), and checks what the engine saw, what the browser was asked to open and
how the process ended. Screenshots go to ``<tmp_path>/shots``; the menu shot is also
copied to ``/tmp/traceagent-shots/`` (or ``$TRACEAGENT_SHOTS``) to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from traceagent import icons
from traceagent.icons import IconState
from traceagent.tray import model as traymodel
from traysupport import Desktop, missing_requirements, text_rows, wait_for

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
APP = HERE.parent / "support" / "tray_e2e_app.py"
SHARED_SHOTS = Path(os.environ.get("TRACEAGENT_SHOTS", "/tmp/traceagent-shots"))

_missing = missing_requirements()
if _missing and os.environ.get("CI"):
    # in CI a skipped real-tray test would hide a missing install step
    pytest.fail(f"real-tray test cannot run, missing: {', '.join(_missing)}", pytrace=False)
if _missing:
    pytest.skip(f"needs {', '.join(_missing)}", allow_module_level=True)


class TrayUnderTest:
    """The app process plus what it leaves behind (calls, browser log, screenshots)."""

    def __init__(self, desktop: Desktop, tmp: Path) -> None:
        self.desktop = desktop
        self.tmp = tmp
        self.shots = tmp / "shots"
        self.shots.mkdir()
        self.calls_path = tmp / "calls.jsonl"
        self.control_path = tmp / "control.json"
        self.browser_log = tmp / "browser.log"
        browser = tmp / "browser.sh"
        browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{self.browser_log}"\n')
        browser.chmod(0o755)
        self._seq = 0
        home = tmp / "home"
        home.mkdir()
        env = {
            **desktop.env,
            "PYSTRAY_BACKEND": "gtk",
            "TRACEAGENT_ICON_THEME": "light",  # trayer's panel is light grey
            "TRACEAGENT_E2E_CALLS": str(self.calls_path),
            "TRACEAGENT_E2E_CONTROL": str(self.control_path),
            "TRACEAGENT_E2E_HOME": str(home),
            "BROWSER": str(browser),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
        }
        self.log_path = tmp / "app.log"
        self.proc = subprocess.Popen(
            [sys.executable, str(APP)], env=env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    # -- engine side ------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        if not self.calls_path.exists():
            return []
        entries = [json.loads(line) for line in self.calls_path.read_text().splitlines() if line.strip()]
        return [e for e in entries if method is None or e["method"] == method]

    def control(self, **fields: Any) -> None:
        """Change the fake engine's status (it applies each new ``seq`` and calls listeners)."""
        self._seq += 1
        tmp = self.control_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": self._seq, **fields}))
        tmp.replace(self.control_path)

    def urls_opened(self) -> list[str]:
        return self.browser_log.read_text().split() if self.browser_log.exists() else []

    # -- screen side ------------------------------------------------------------------

    def shot(self, name: str, box: tuple[int, int, int, int] | None = None) -> Path:
        path = self.shots / name
        self.desktop.grab(box).save(path)
        return path

    def icon_box(self) -> tuple[int, int, int, int]:
        boxes = wait_for(lambda: self.desktop.windows_of_class("traceagent"), 15, what="the tray icon window")
        assert self.proc.poll() is None, self.log()
        return boxes[0]

    def icon_shows(self, state: IconState) -> bool:
        """Whether the icon on screen is mostly the colour of ``state``'s light variant."""
        x, y, w, h = self.icon_box()
        img = self.desktop.grab((x, y, x + w, y + h)).convert("RGB")
        target = _state_colour(state)
        close = sum(
            1
            for px in img.get_flattened_data()
            if sum(abs(a - b) for a, b in zip(px, target, strict=True)) < 60
        )
        return close > w * h * 0.2

    def open_menu(self, expected_rows: int) -> tuple[tuple[int, int, int, int], list[tuple[int, int]]]:
        x, y, w, h = self.icon_box()
        self.desktop.click(x + w // 2, y + h // 2, button=3)
        box = wait_for(self.desktop.popup_windows, 5, what="the menu")[0]

        def painted() -> list[tuple[int, int]] | None:  # GTK maps the menu before painting it
            rows = text_rows(self.desktop.grab(), box)
            return rows if len(rows) == expected_rows else None

        try:
            rows = wait_for(painted, 5, what=f"{expected_rows} menu rows")
        except TimeoutError:
            self.shot("failed-menu.png")
            raise
        return box, rows

    def click_row(self, box: tuple[int, int, int, int], rows: list[tuple[int, int]], i: int) -> None:
        top, bottom = rows[i]
        self.desktop.click(box[0] + box[2] // 2, (top + bottom) // 2)
        wait_for(lambda: not self.desktop.popup_windows(), 5, what="the menu to close")

    def close_menu(self) -> None:
        self.desktop.xdotool("key", "Escape")
        wait_for(lambda: not self.desktop.popup_windows(), 5, what="the menu to close")


def _state_colour(state: IconState) -> tuple[int, int, int]:
    """The main colour of ``state``'s light icon (its most common opaque pixel)."""
    from PIL import Image

    path = icons.icon_path(state, "light", 64)
    assert path is not None
    with Image.open(path) as img:
        pixels = list(img.convert("RGBA").get_flattened_data())
    opaque = [(p[0], p[1], p[2]) for p in pixels if p[3] == 255]
    return Counter(opaque).most_common(1)[0][0]


def _rows_for(status_fields: dict[str, Any]) -> list[str]:
    """Keys of the menu rows as drawn, for the fake engine's status with ``status_fields``."""
    from tray_e2e_app import FakeEngine

    engine = FakeEngine()
    engine.set(**status_fields)
    model = traymodel.build_model(traymodel.read_inputs(engine))
    return [e.key for e in traymodel.flat_rows(model.menu)]


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    d = Desktop(tmp_path)
    try:
        yield d
    finally:
        d.close()


@pytest.fixture
def tray(desktop: Desktop, tmp_path: Path) -> Iterator[TrayUnderTest]:
    app = TrayUnderTest(desktop, tmp_path)
    try:
        yield app
    finally:
        app.close()
        print(f"--- app log ---\n{app.log()}")


def _share(path: Path, name: str) -> None:
    SHARED_SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHARED_SHOTS / name)


def test_menu_pause_open_last_and_quit(tray: TrayUnderTest) -> None:
    t0 = time.monotonic()
    rows_keys = _rows_for({})
    assert rows_keys[:3] == ["status", "open_last", "recent"]

    # the icon is in the tray, drawn in the "up to date" picture
    x, y, w, h = tray.icon_box()
    assert y < 40, f"the icon is not in the top panel: {(x, y, w, h)}"
    wait_for(lambda: tray.icon_shows(IconState.UP_TO_DATE), 5, what="the up-to-date icon")
    _share(tray.shot("01-icon.png", (x - 40, 0, x + w + 4, y + h + 4)), "icon.png")

    # right click: the whole menu, one text row per model row
    box, rows = tray.open_menu(len(rows_keys))
    menu_shot = tray.shot("02-menu.png", (box[0] - 8, 0, box[0] + box[2] + 4, box[1] + box[3] + 8))
    _share(menu_shot, "menu.png")

    # "Recent traces ▸" lists the fake engine's three traces; each opens its own page
    top, bottom = rows[rows_keys.index("recent")]
    tray.desktop.click(box[0] + box[2] // 2, (top + bottom) // 2)

    def submenu() -> list[tuple[int, int, int, int]]:
        return [b for b in tray.desktop.popup_windows() if b != box]

    sub = wait_for(submenu, 5, what="the submenu")[0]

    def recent_rows() -> list[tuple[int, int]] | None:
        found = text_rows(tray.desktop.grab(), sub)
        return found if len(found) == 3 else None

    sub_rows = wait_for(recent_rows, 5, what="3 recent rows")
    recent_shot = tray.shot(
        "02b-recent.png", (min(box[0], sub[0]) - 8, 0, 800, max(box[1] + box[3], sub[1] + sub[3]) + 8)
    )
    _share(recent_shot, "menu-recent.png")
    tray.desktop.click(sub[0] + sub[2] // 2, (sub_rows[1][0] + sub_rows[1][1]) // 2)
    wait_for(lambda: not tray.desktop.popup_windows(), 5, what="the menu to close")
    wait_for(tray.urls_opened, 5, what="the browser to be called")
    assert tray.urls_opened() == [
        "https://huggingface.co/buckets/alice/agent-sessions/tree/codex/-home-alice-proj/session-2.jsonl"
    ]
    box, rows = tray.open_menu(len(rows_keys))

    # "Pause sync" pauses the engine until resumed; the icon and the check mark follow
    tray.click_row(box, rows, rows_keys.index("pause"))
    wait_for(lambda: tray.calls("pause"), 5, what="engine.pause()")
    assert tray.calls("pause")[0]["args"] == [None]
    wait_for(lambda: tray.icon_shows(IconState.PAUSED), 5, what="the paused icon")
    paused_keys = _rows_for({"state": "paused", "paused": True})
    box, rows = tray.open_menu(len(paused_keys))
    paused_shot = tray.shot("03-menu-paused.png", (box[0] - 8, 0, box[0] + box[2] + 4, box[1] + box[3] + 8))
    _share(paused_shot, "menu-paused.png")
    top, bottom = rows[paused_keys.index("pause")]
    check_area = tray.desktop.grab((box[0] + 2, top, box[0] + 30, bottom + 1)).convert("L")
    assert sum(check_area.histogram()[:110]) > 10, "the Pause sync check mark is not drawn"

    # "Open last trace" opens the last trace's viewer page through $BROWSER
    tray.click_row(box, rows, paused_keys.index("open_last"))
    last_url = (
        "https://huggingface.co/buckets/alice/agent-sessions/tree/claude/-home-alice-proj/session-1.jsonl"
    )
    wait_for(lambda: len(tray.urls_opened()) == 2, 5, what="the browser to be called")
    assert tray.urls_opened()[1:] == [last_url]

    # a left click runs the default item (gtk backend): the same page again
    x, y, w, h = tray.icon_box()
    tray.desktop.click(x + w // 2, y + h // 2)
    wait_for(lambda: len(tray.urls_opened()) == 3, 5, what="the default action")
    assert tray.urls_opened()[1:] == [last_url, last_url]

    # "Quit" stops the engine, then the tray; the process exits 0
    box, rows = tray.open_menu(len(paused_keys))
    tray.click_row(box, rows, paused_keys.index("quit"))
    assert tray.proc.wait(15) == 0, tray.log()
    assert [c["method"] for c in tray.calls()][-1] == "stop"
    print(f"e2e interaction took {time.monotonic() - t0:.2f}s")


def test_notification_once_and_sign_in_dialog(tray: TrayUnderTest) -> None:
    t0 = time.monotonic()
    tray.icon_box()
    wait_for(lambda: tray.icon_shows(IconState.UP_TO_DATE), 5, what="the up-to-date icon")

    # the token is rejected: one notification, however often the engine reports it
    tray.control(state="signin_needed", bumps=6)
    wait_for(lambda: "Sign-in needed" in tray.desktop.notify_calls(), 10, what="the sign-in notification")
    wait_for(lambda: tray.icon_shows(IconState.ERROR), 5, what="the error icon")
    tray.control(state="signin_needed", pending=3, bumps=4)  # more status changes, same cause
    time.sleep(1.5)
    assert tray.desktop.notify_calls().count("Sign-in needed") == 1, tray.desktop.notify_calls()
    _share(tray.shot("04-notification.png", (400, 0, 800, 200)), "notification.png")

    # "Sign in to Hugging Face…" opens the token window; a rejected token shows why
    keys = _rows_for({"state": "signin_needed", "pending": 3})
    box, rows = tray.open_menu(len(keys))
    tray.click_row(box, rows, keys.index("sign_in"))

    def dialog() -> tuple[int, int, int, int] | None:
        big = [b for b in tray.desktop.windows_of_class("raceagent") if b[2] > 150]
        return big[0] if big else None

    dx, dy, dw, dh = wait_for(dialog, 15, what="the sign-in window")
    time.sleep(0.3)  # Tk maps, then draws
    tray.desktop.xdotool("mousemove", dx + dw // 2, dy + dh // 2)
    tray.desktop.xdotool("type", "--delay", "5", "hf_bad")
    tray.shot("05-signin.png", (dx, dy, dx + dw, dy + dh))
    tray.desktop.xdotool("key", "Return")
    wait_for(lambda: tray.calls("sign_in"), 10, what="engine.sign_in()")
    dx, dy, dw, dh = wait_for(dialog, 15, what="the sign-in window, again")
    time.sleep(0.3)
    shot = tray.shot("06-signin-rejected.png", (dx, dy, dx + dw, dy + dh))
    _share(shot, "signin-rejected.png")
    tray.desktop.xdotool("mousemove", dx + dw // 2, dy + dh // 2)
    tray.desktop.xdotool("type", "--delay", "5", "hf_good")
    tray.desktop.xdotool("key", "Return")
    wait_for(lambda: len(tray.calls("sign_in")) == 2, 10, what="the second engine.sign_in()")
    wait_for(lambda: "Signed in" in tray.desktop.notify_calls(), 10, what="the signed-in notification")
    wait_for(lambda: tray.icon_shows(IconState.UP_TO_DATE), 5, what="the up-to-date icon again")

    # the menu now says who is signed in; Quit still exits cleanly
    keys = _rows_for({"state": "up_to_date", "pending": 3})
    assert "signed_in" in keys
    box, rows = tray.open_menu(len(keys))
    tray.click_row(box, rows, keys.index("quit"))
    assert tray.proc.wait(15) == 0, tray.log()
    assert "hf_good" not in tray.log() and "hf_bad" not in tray.log(), "a token reached the log"
    print(f"e2e interaction took {time.monotonic() - t0:.2f}s")


def test_no_notification_daemon_and_sigterm(tmp_path: Path) -> None:
    """Traps 2 and 1 of testing-tray.md: with no notification daemon on the bus, a
    notification and pystray's close-notification at exit must not crash the tray; and
    SIGTERM quits like the menu's Quit (engine stopped, exit 0)."""
    desktop = Desktop(tmp_path, notifications=False)
    app = TrayUnderTest(desktop, tmp_path)
    try:
        app.icon_box()
        wait_for(lambda: app.icon_shows(IconState.UP_TO_DATE), 5, what="the up-to-date icon")
        app.control(state="signin_needed")
        wait_for(lambda: app.icon_shows(IconState.ERROR), 5, what="the error icon")
        wait_for(lambda: "notification: Sign-in needed" in app.log(), 5, what="the notification attempt")
        assert desktop.notify_calls() == ["Sign-in needed"]  # sent, but nobody owns the name
        app.proc.terminate()
        assert app.proc.wait(15) == 0, app.log()
        assert [c["method"] for c in app.calls()] == ["stop"]
        assert "Traceback" not in app.log(), app.log()
    finally:
        app.close()
        desktop.close()
