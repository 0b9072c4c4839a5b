"""The tray's glue without a display: backend choice, the pystray menu built from the model
(pystray's dummy backend), redraw-only-on-change, notify-once, sign-in and quit."""

from __future__ import annotations

import importlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from traceagent.status import SyncState
from traceagent.tray import backend as traybackend
from traceagent.tray import icon as tray
from traceagent.tray import model as traymodel
from traceagent.tray.model import Action, ActionKind
from tray_e2e_app import FakeEngine
from traysupport import wait_for

LINUX_DESKTOP = {"DISPLAY": ":0", "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus"}


def _typelibs(*present: str) -> Callable[[str, str], bool]:
    return lambda namespace, _version: namespace in present


@pytest.mark.parametrize(
    ("env", "platform", "gi", "typelibs", "expected"),
    [
        (LINUX_DESKTOP, "linux", True, ("Gtk",), "gtk"),
        (LINUX_DESKTOP, "linux", True, ("Gtk", "AyatanaAppIndicator3"), "appindicator"),
        (LINUX_DESKTOP, "linux", True, ("Gtk", "AppIndicator3"), "appindicator"),
        ({**LINUX_DESKTOP, "PYSTRAY_BACKEND": "gtk"}, "linux", True, ("Gtk", "AppIndicator3"), "gtk"),
        ({**LINUX_DESKTOP, "PYSTRAY_BACKEND": "dummy"}, "linux", True, ("Gtk",), None),
        ({**LINUX_DESKTOP, "PYSTRAY_BACKEND": "xorg"}, "linux", True, ("Gtk",), None),
        ({**LINUX_DESKTOP, "PYSTRAY_BACKEND": "qt"}, "linux", True, ("Gtk",), None),
        ({"DBUS_SESSION_BUS_ADDRESS": "x"}, "linux", True, ("Gtk",), None),  # no display
        ({"DISPLAY": ":0"}, "linux", True, ("Gtk",), None),  # no session bus
        ({"DISPLAY": ":0", "XDG_RUNTIME_DIR": "/nonexistent"}, "linux", True, ("Gtk",), None),
        (LINUX_DESKTOP, "linux", False, ("Gtk",), None),  # no PyGObject: pystray would pick xorg
        (LINUX_DESKTOP, "linux", True, (), None),  # no GTK typelib
        ({"WAYLAND_DISPLAY": "wayland-0", "DBUS_SESSION_BUS_ADDRESS": "x"}, "linux", True, ("Gtk",), None),
        (
            {"WAYLAND_DISPLAY": "wayland-0", "DBUS_SESSION_BUS_ADDRESS": "x"},
            "linux",
            True,
            ("Gtk", "AyatanaAppIndicator3"),
            "appindicator",
        ),
        ({}, "darwin", False, (), "darwin"),
        ({}, "win32", False, (), "win32"),
    ],
)
def test_choose_backend(
    env: dict[str, str], platform: str, gi: bool, typelibs: tuple[str, ...], expected: str | None
) -> None:
    backend, reason = traybackend.choose_backend(env, platform, gi_available=gi, typelib=_typelibs(*typelibs))
    assert backend == expected, reason
    assert reason


def test_systemd_user_bus_counts_as_a_session_bus(tmp_path: Path) -> None:
    (tmp_path / "bus").touch()
    env = {"DISPLAY": ":0", "XDG_RUNTIME_DIR": str(tmp_path)}
    assert traybackend.choose_backend(env, "linux", gi_available=True, typelib=_typelibs("Gtk"))[0] == "gtk"


def test_run_tray_headless_returns_false(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "PYSTRAY_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with caplog.at_level("WARNING", logger="traceagent.tray.icon"):
        assert tray.run_tray(FakeEngine()) is False
    assert [r.getMessage() for r in caplog.records if r.name == "traceagent.tray.icon"] == [
        "no tray icon: no display (neither DISPLAY nor WAYLAND_DISPLAY is set); traceagent keeps syncing without one"
    ]
    assert tray.request_quit() is False


def test_run_tray_without_a_tray_host(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tray, "choose_backend", lambda: ("appindicator", "detected"))
    monkeypatch.setattr(traybackend, "tray_host_present", lambda backend: False)
    with caplog.at_level("WARNING", logger="traceagent.tray.icon"):
        assert tray.run_tray(FakeEngine(), host_wait=0) is False
    assert "AppIndicator extension" in caplog.text


# --- the app over pystray's dummy backend ----------------------------------------------------


@pytest.fixture
def pystray(monkeypatch: pytest.MonkeyPatch) -> Any:
    """pystray with its dummy backend (it picks the backend once, at first import)."""
    monkeypatch.setenv("PYSTRAY_BACKEND", "dummy")
    if "pystray" not in sys.modules:
        return importlib.import_module("pystray")
    module = sys.modules["pystray"]
    if module.Icon.__module__ != "pystray._base":
        pytest.fail(
            "pystray was imported earlier in this process with a real backend: the dummy backend is needed here"
        )
    return module


class FakeIcon:
    """Records what the app pushes into pystray (a real dummy Icon raises on update_menu)."""

    HAS_NOTIFICATION = True

    def __init__(self) -> None:
        self.icon: Any = None
        self.title = ""
        self.menu: Any = None
        self.notes: list[tuple[str, str]] = []
        self.stopped = False
        self.sets: list[str] = []

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("icon", "title", "menu") and "sets" in self.__dict__:
            self.sets.append(name)
        object.__setattr__(self, name, value)

    def notify(self, message: str, title: str) -> None:
        self.notes.append((title, message))

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def app(pystray: Any, tmp_path: Path) -> Iterator[tray.TrayApp]:
    engine = FakeEngine(home=tmp_path)
    a = tray.TrayApp(engine, pystray, "dummy")
    a.post = lambda fn: fn()  # run UI updates inline
    yield a
    a.shutdown()


def test_build_icon_mirrors_the_model(app: tray.TrayApp, pystray: Any) -> None:
    icon = app.build_icon()
    assert type(icon).__module__ == "pystray._base"
    assert icon.icon.size == (64, 64)
    model = app.compute_model()
    assert icon.title == model.tooltip
    rows = [i for i in icon.menu.items if i is not pystray.Menu.SEPARATOR]
    flat = traymodel.flat_rows(model.menu)
    assert [i.text for i in rows] == [e.label for e in flat]
    for item, e in zip(rows, flat, strict=True):
        assert item.enabled == e.enabled, e.key
        assert item.default == e.default, e.key
        assert item.checked == e.checked, e.key
        assert bool(item.submenu) == (e.submenu is not None), e.key
    agents = next(i for i in rows if i.text == "Agents")
    assert [(i.text, i.checked) for i in agents.submenu.items] == [
        ("Claude Code (42 sessions)", True),
        ("Codex (7 sessions)", True),
    ]


def test_clicks_are_queued_then_performed_in_order(app: tray.TrayApp, pystray: Any) -> None:
    icon = app.build_icon()
    by_text = {i.text: i for i in icon.menu.items if i is not pystray.Menu.SEPARATOR}
    by_text["Pause sync"](icon)  # what pystray does on a click
    by_text["Sync now"](icon)
    icon.menu(icon)  # the default item: Open last trace (a left click on gtk/win32)
    engine: FakeEngine = app.engine  # type: ignore[assignment]
    assert engine.calls == []  # nothing ran on the UI thread
    pending = []
    while not app._actions.empty():
        pending.append(app._actions.get_nowait())
    assert pending == [
        Action(ActionKind.PAUSE),
        Action(ActionKind.SYNC_NOW),
        Action(ActionKind.OPEN_URL, engine.status().last_trace.url),  # type: ignore[union-attr]
    ]


def test_redraw_only_on_change_and_notify_once(app: tray.TrayApp) -> None:
    app.build_icon()
    fake = FakeIcon()
    app.icon = fake
    engine: FakeEngine = app.engine  # type: ignore[assignment]
    app.refresh()
    app.refresh()
    assert fake.sets == []  # same model as at start: nothing pushed
    engine.set(state=SyncState.SYNCING, uploading=2)
    app.refresh()
    assert fake.sets == ["icon", "title", "menu"]
    assert fake.title == "traceagent — Uploading 2 files…"
    app.refresh()
    assert fake.sets == ["icon", "title", "menu"]

    # a cause is notified when it appears, once, however many refreshes follow
    engine.set(state=SyncState.SIGNIN_NEEDED)
    for _ in range(4):
        app.refresh()
    engine.set(pending=9)
    app.refresh()
    assert [t for t, _ in fake.notes] == ["Sign-in needed"]
    engine.set(state=SyncState.ERROR, last_error="The bucket alice/x is public")
    app.refresh()
    app.refresh()
    assert [t for t, _ in fake.notes] == ["Sign-in needed", "The bucket is public"]
    # resolved, then back: that is news again
    engine.set(state=SyncState.UP_TO_DATE, last_error=None)
    app.refresh()
    engine.set(state=SyncState.SIGNIN_NEEDED)
    app.refresh()
    assert [t for t, _ in fake.notes] == ["Sign-in needed", "The bucket is public", "Sign-in needed"]


def test_listener_bursts_are_coalesced(app: tray.TrayApp, monkeypatch: pytest.MonkeyPatch) -> None:
    """50 engine events in a burst cause at most two redraws (MIN_UPDATE_INTERVAL apart)."""
    app.build_icon()
    fake = FakeIcon()
    app.icon = fake
    count: list[float] = []
    real = app.refresh

    def counting() -> None:
        count.append(time.monotonic())
        real()

    monkeypatch.setattr(app, "refresh", counting)
    monkeypatch.setattr(tray, "MIN_UPDATE_INTERVAL", 0.3)
    app.setup(fake)
    wait_for(lambda: count, 5, what="the first refresh")
    engine: FakeEngine = app.engine  # type: ignore[assignment]
    for i in range(50):
        engine.set(pending=i, state=SyncState.SYNCING)
    wait_for(lambda: fake.title == "traceagent — Syncing · 49 waiting", 5, what="the last state")
    time.sleep(0.4)
    assert 2 <= len(count) <= 3
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(count))


def test_actions_run_on_the_engine_and_quit_stops_engine_then_icon(app: tray.TrayApp) -> None:
    app.build_icon()
    fake = FakeIcon()
    app.icon = fake
    order: list[str] = []
    engine: FakeEngine = app.engine  # type: ignore[assignment]
    real_stop = engine.stop

    def stop() -> None:
        order.append("engine.stop")
        real_stop()

    engine.stop = stop  # type: ignore[method-assign]
    fake.stop = lambda: order.append("icon.stop")  # type: ignore[method-assign]
    app._actions.put(Action(ActionKind.PAUSE_FOR, 1800.0))
    app._actions.put(Action(ActionKind.QUIT))
    app._action_loop()  # returns after Quit
    assert [c["method"] for c in engine.calls] == ["pause", "stop"]
    assert order == ["engine.stop", "icon.stop"]
    assert app.quit_requested.is_set()


def test_failed_action_is_logged_and_shown(app: tray.TrayApp, caplog: pytest.LogCaptureFixture) -> None:
    app.build_icon()
    fake = FakeIcon()
    app.icon = fake

    def broken() -> None:
        raise RuntimeError("database is locked")

    app.engine.sync_now = broken  # type: ignore[method-assign]
    app._actions.put(Action(ActionKind.SYNC_NOW))
    app._actions.put(None)
    app._action_loop()
    assert "sync_now failed" in caplog.text
    assert fake.notes == [("traceagent", "That did not work: database is locked")]


def test_sign_in_reprompts_on_rejection(app: tray.TrayApp, monkeypatch: pytest.MonkeyPatch) -> None:
    app.build_icon()
    fake = FakeIcon()
    app.icon = fake
    answers = [("hf_bad", 0), ("hf_good", 0)]
    errors_shown: list[str | None] = []

    def ask(error: str | None) -> tuple[str | None, int]:
        errors_shown.append(error)
        return answers.pop(0)

    monkeypatch.setattr(app, "_ask_token", ask)
    app._signin_lock.acquire()
    app._sign_in_flow()
    engine: FakeEngine = app.engine  # type: ignore[assignment]
    assert [c["method"] for c in engine.calls] == ["sign_in", "sign_in"]
    assert errors_shown == [None, "Hugging Face rejected this token (401 Unauthorized)."]
    assert fake.notes == [("Signed in", "Signed in to Hugging Face as alice.")]
    assert app._signin_lock.acquire(blocking=False)  # released for the next time


@pytest.mark.parametrize(
    ("answer", "note"), [((None, 1), None), ((None, 2), "Cannot open the sign-in window")]
)
def test_sign_in_cancelled_or_impossible(
    app: tray.TrayApp, monkeypatch: pytest.MonkeyPatch, answer: tuple[None, int], note: str | None
) -> None:
    app.build_icon()
    fake = FakeIcon()
    app.icon = fake
    monkeypatch.setattr(app, "_ask_token", lambda error: answer)
    app._signin_lock.acquire()
    app._sign_in_flow()
    assert app.engine.calls == []  # type: ignore[attr-defined]
    assert [t for t, _ in fake.notes] == ([note] if note else [])


def test_signin_dialog_without_a_display_exits_2() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    res = subprocess.run(
        [sys.executable, "-m", "traceagent.tray.signin_dialog"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert (res.returncode, res.stdout) == (2, "")
