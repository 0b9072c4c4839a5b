"""The tray icon: a thin pystray view over the engine.

``run_tray(engine)`` owns the main thread while the tray is up. Three small threads feed it:

* the *refresh* thread reads the engine (woken by its listener, at most
  :data:`MIN_UPDATE_INTERVAL` apart, and once a minute for the "how long ago" labels),
  builds a :class:`~traceagent.tray.model.TrayModel` and, only when it differs from the
  last one, posts it to the UI;
* the *action* thread runs menu commands on the engine in click order, so a slow engine
  call never freezes the menu;
* a *sign-in* thread, while the token dialog (a subprocess) is open.

Every change to the icon goes through :meth:`TrayApp.post`, the one dispatcher onto the
tray's own loop (``GLib.idle_add`` for the GTK backends, AppKit's main thread on macOS).

pystray is imported lazily, inside :func:`run_tray`, after the backend is chosen: importing
it picks a backend for the whole process, and headless it even raises.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from traceagent import icons
from traceagent.entrypoints import SIGNIN_DIALOG
from traceagent.icons import IconState
from traceagent.tray import model as traymodel
from traceagent.tray.backend import choose_backend, wait_for_tray_host
from traceagent.tray.model import Action, ActionKind, MenuEntry, TrayEngine, TrayModel

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

#: The tray never redraws more often than this (seconds).
MIN_UPDATE_INTERVAL = 0.5
#: Without engine events the model is still rebuilt this often, for "5 min ago" labels.
TICK_SECONDS = 60.0
#: How long to wait at start-up for a tray host (the panel may start after us at login).
TRAY_HOST_WAIT = 10.0
#: Backends whose loop is GLib's (they need a D-Bus session and PyGObject).
GTK_BACKENDS = ("gtk", "appindicator")
#: Icon size handed to each backend before it tells us better (pixels).
DEFAULT_ICON_SIZE = {"gtk": 32, "appindicator": 64, "darwin": 64, "win32": 32}
NOTIFICATIONS_SERVICE = "org.freedesktop.Notifications"

_current: TrayApp | None = None


# --- the running tray --------------------------------------------------------------------


def make_dispatcher(backend: str) -> Callable[[Callable[[], None]], None]:
    """A function that runs callables on the tray's loop, whichever thread posts them."""

    def guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("tray update failed")

    if backend in GTK_BACKENDS:
        from gi.repository import GLib

        def post_glib(fn: Callable[[], None]) -> None:
            def once() -> bool:
                guarded(fn)
                return False  # GLib.SOURCE_REMOVE

            GLib.idle_add(once)

        return post_glib
    if backend == "darwin":
        try:  # pyobjc: pystray's own dependency on macOS
            app_helper = importlib.import_module("PyObjCTools.AppHelper")
            return lambda fn: app_helper.callAfter(guarded, fn)
        except ImportError:
            pass
    lock = threading.Lock()

    def post_locked(fn: Callable[[], None]) -> None:
        with lock:
            guarded(fn)

    return post_locked


class TrayApp:
    """One tray icon over one engine (see the module docstring for the threads)."""

    def __init__(self, engine: TrayEngine, pystray: Any, backend: str) -> None:
        self.engine = engine
        self.backend = backend
        self._pystray = pystray
        self.post = make_dispatcher(backend)
        self.icon: Any = None
        self.quit_requested = threading.Event()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._actions: queue.Queue[Action | None] = queue.Queue()
        self._computed: TrayModel | None = None  # last model built (refresh thread)
        self._shown: TrayModel | None = None  # last model applied (UI thread)
        self._shown_size = 0
        self._icon_size = DEFAULT_ICON_SIZE.get(backend, 64)
        self._variant = icons.detect_variant()
        self._active_causes: set[str] = set()
        self._signin_lock = threading.Lock()
        self._dialog: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []

    # -- building ---------------------------------------------------------------------

    def build_icon(self) -> Any:
        """The pystray Icon for the engine's current state (not shown yet)."""
        model = self.compute_model()
        self._computed = self._shown = model
        self._shown_size = self._icon_size
        self.icon = self._pystray.Icon(
            "traceagent",
            self._image(model.icon),
            model.tooltip,
            self.to_pystray_menu(model.menu),
        )
        return self.icon

    def compute_model(self) -> TrayModel:
        """Read the engine and build the model (any thread but the UI's: it may block)."""
        return traymodel.build_model(traymodel.read_inputs(self.engine))

    def _image(self, state: IconState) -> Image.Image:
        return icons.load_icon(state, size=self._icon_size, variant=self._variant)

    def to_pystray_menu(self, entries: Sequence[MenuEntry]) -> Any:
        """A pystray Menu for model entries; clicks are queued for the action thread."""
        pystray = self._pystray
        items = []
        for entry in entries:
            if entry.separator:
                items.append(pystray.Menu.SEPARATOR)
                continue
            label = entry.label.replace("&", "&&") if self.backend == "win32" else entry.label
            if entry.submenu is not None:
                items.append(
                    pystray.MenuItem(label, self.to_pystray_menu(entry.submenu), enabled=entry.enabled)
                )
                continue
            checked = entry.checked
            items.append(
                pystray.MenuItem(
                    label,
                    self._on_click(entry.action),
                    checked=None if checked is None else (lambda _item, v=checked: v),
                    radio=entry.radio,
                    default=entry.default,
                    enabled=entry.enabled,
                )
            )
        return pystray.Menu(*items)

    def _on_click(self, action: Action | None) -> Callable[[Any, Any], None]:
        def on_click(_icon: Any, _item: Any) -> None:
            if action is not None:
                self._actions.put(action)

        return on_click

    # -- running ----------------------------------------------------------------------

    def setup(self, icon: Any) -> None:
        """pystray's setup callback (its own thread): show the icon, start the workers."""
        icon.visible = True
        for name, target in (("refresh", self._refresh_loop), ("actions", self._action_loop)):
            t = threading.Thread(target=target, name=f"traceagent-tray-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        self.engine.add_listener(self._wake.set)
        if self.backend in GTK_BACKENDS:
            self.post(self._install_glib_hooks)
        self._wake.set()  # first refresh: notifications for a state we started in
        log.info("tray: icon shown (%s backend)", self.backend)

    def _install_glib_hooks(self) -> None:
        """UI thread: quit cleanly on SIGTERM/SIGINT; follow the panel's icon size (gtk)."""
        from gi.repository import GLib

        def on_signal() -> bool:
            log.info("tray: signal received, quitting")
            self.request_quit()
            return True

        for sig in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, on_signal)
        status_icon = getattr(self.icon, "_status_icon", None)  # pystray's Gtk.StatusIcon
        if status_icon is not None:
            with contextlib.suppress(Exception):
                status_icon.connect("size-changed", lambda _si, size: self._on_size(int(size)))
                self._on_size(int(status_icon.get_size()))

    def _on_size(self, size: int) -> bool:
        """UI thread: the panel told us its icon size; redraw at that size if it is new."""
        if size > 0 and size != self._icon_size:
            log.debug("tray: panel icon size %d px", size)
            self._icon_size = size
            if self._shown is not None:
                self.icon.icon = self._image(self._shown.icon)
                self._shown_size = size
        return True

    def _refresh_loop(self) -> None:
        last = 0.0
        while not self._stopping.is_set():
            self._wake.wait(TICK_SECONDS)
            if self._stopping.is_set():
                break
            delay = last + MIN_UPDATE_INTERVAL - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                break
            self._wake.clear()
            last = time.monotonic()
            if self.quit_requested.is_set():
                break  # the engine is stopping: its state is closing, and the icon goes next
            try:
                self.refresh()
            except Exception:
                if self.quit_requested.is_set():
                    # Quit closed the engine's state under a refresh already under way.
                    log.debug("tray: status read during Quit", exc_info=True)
                    break
                log.exception("tray: reading the engine's status failed")

    def refresh(self) -> None:
        """Rebuild the model; post it to the UI only if it changed; notify new causes."""
        inputs = traymodel.read_inputs(self.engine)
        model = traymodel.build_model(inputs)
        if model != self._computed:
            self._computed = model
            self.post(lambda: self._apply(model))
        causes = {n.cause: n for n in traymodel.notices(inputs.status)}
        for cause, notice in causes.items():
            if cause not in self._active_causes:
                self.notify(notice.title, notice.message)
        self._active_causes = set(causes)

    def _apply(self, model: TrayModel) -> None:
        """UI thread: push what changed into pystray."""
        icon, shown = self.icon, self._shown
        if self._stopping.is_set() or icon is None:
            return
        if shown is None or shown.icon != model.icon or self._shown_size != self._icon_size:
            icon.icon = self._image(model.icon)
            self._shown_size = self._icon_size
        if shown is None or shown.tooltip != model.tooltip:
            icon.title = model.tooltip
            status_icon = getattr(icon, "_status_icon", None)  # gtk: pystray sets no tooltip
            if status_icon is not None:
                with contextlib.suppress(Exception):
                    status_icon.set_tooltip_text(model.tooltip)
        if shown is None or shown.menu != model.menu:
            icon.menu = self.to_pystray_menu(model.menu)  # the setter rebuilds the native menu
        self._shown = model

    def notify(self, title: str, message: str) -> None:
        """Show a desktop notification if the backend can (logged either way)."""
        log.info("notification: %s: %s", title, message)
        icon = self.icon
        if icon is None or not getattr(icon, "HAS_NOTIFICATION", False):
            return

        def show() -> None:
            try:
                icon.notify(message, title)
            except Exception as exc:  # no notification daemon, D-Bus trouble
                log.warning("tray: notification not shown: %s", exc)

        self.post(show)

    def _action_loop(self) -> None:
        while True:
            action = self._actions.get()
            if action is None:
                break
            try:
                if action.kind is ActionKind.QUIT:
                    self._quit()
                    break
                if action.kind is ActionKind.SIGN_IN:
                    self._start_sign_in()
                else:
                    log.info("tray: %s %s", action.kind.value, "" if action.arg is None else action.arg)
                    traymodel.perform(self.engine, action)
            except Exception as exc:
                log.exception("tray: %s failed", action.kind.value)
                self.notify("traceagent", f"That did not work: {exc}")
            self._wake.set()

    def request_quit(self) -> None:
        """Quit as the menu's Quit does (thread-safe): stop the engine, then the icon."""
        self._actions.put(Action(ActionKind.QUIT))

    def _quit(self) -> None:
        """Action thread: finish the upload in flight, then end the tray loop."""
        log.info("tray: quitting (waiting for the upload in flight)")
        self.quit_requested.set()
        self._close_dialog()
        try:
            self.engine.stop()
        except Exception:
            log.exception("tray: engine.stop() failed")
        self._stopping.set()
        self._wake.set()
        icon = self.icon
        self.post(icon.stop)

    def shutdown(self) -> None:
        """After the loop ended: stop the worker threads (idempotent)."""
        self._stopping.set()
        self._wake.set()
        self._actions.put(None)
        self._close_dialog()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=2)

    # -- sign in ----------------------------------------------------------------------

    def _start_sign_in(self) -> None:
        if not self._signin_lock.acquire(blocking=False):
            log.info("tray: the sign-in window is already open")
            return
        threading.Thread(target=self._sign_in_flow, name="traceagent-tray-signin", daemon=True).start()

    def _sign_in_flow(self) -> None:
        """Ask for a token until the engine accepts one or the user cancels."""
        try:
            error: str | None = None
            while not self._stopping.is_set():
                token, code = self._ask_token(error)
                if code == 2:
                    self.notify(
                        "Cannot open the sign-in window",
                        "Run “traceagent login” in a terminal to sign in to Hugging Face.",
                    )
                    return
                if not token:
                    return
                try:
                    name = self.engine.sign_in(token)
                except Exception as exc:  # traceagent.errors.UserError: message is user-facing
                    error = str(getattr(exc, "message", "") or exc)
                    log.warning("tray: sign-in rejected: %s", error)
                    continue
                self.notify("Signed in", f"Signed in to Hugging Face as {name}.")
                self._wake.set()
                return
        except Exception as exc:
            log.exception("tray: sign-in failed")
            self.notify("Sign-in failed", str(exc))
        finally:
            self._signin_lock.release()

    def _ask_token(self, error: str | None) -> tuple[str | None, int]:
        """Run the dialog subprocess: (token or None, exit code)."""
        cmd = [sys.executable, "-m", SIGNIN_DIALOG]
        if error:
            cmd += ["--error", error]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self._dialog = proc
        try:
            out, _ = proc.communicate()
        finally:
            self._dialog = None
        token = out.strip() if proc.returncode == 0 else ""
        return (token or None), proc.returncode

    def _close_dialog(self) -> None:
        proc = self._dialog
        if proc is not None and proc.poll() is None:
            proc.terminate()


def run_tray(
    engine: TrayEngine, *, host_wait: float = TRAY_HOST_WAIT, stop_requested: Callable[[], bool] | None = None
) -> bool:
    """Show the tray icon and run its loop on this (the main) thread until Quit.

    Returns True when the user quit from the tray (or a SIGTERM/SIGINT arrived): the engine
    has been stopped. Returns False, after one log line saying why, when no usable tray
    exists or the tray loop failed; the engine is left running, so the caller can carry
    on headless.
    """
    global _current
    backend, reason = choose_backend()
    if backend is None:
        log.warning("no tray icon: %s; traceagent keeps syncing without one", reason)
        return False
    if backend in GTK_BACKENDS and not wait_for_tray_host(backend, host_wait):
        hint = " (on GNOME, enable the AppIndicator extension)" if backend == "appindicator" else ""
        log.warning("no tray icon: no system tray is running%s; traceagent keeps syncing without one", hint)
        return False
    os.environ["PYSTRAY_BACKEND"] = backend  # pystray reads it once, at import
    try:
        if backend in GTK_BACKENDS:
            from gi.repository import GLib

            GLib.set_prgname("traceagent")  # WM_CLASS of the tray window
            GLib.set_application_name("traceagent")
        import pystray
    except Exception as exc:
        log.warning("no tray icon: pystray cannot start its %s backend (%s)", backend, exc)
        return False
    if not getattr(pystray.Icon, "HAS_MENU", False):
        log.warning("no tray icon: pystray's %s backend has no menu", backend)
        return False

    app = TrayApp(engine, pystray, backend)
    try:
        icon = app.build_icon()
    except Exception:
        log.exception("no tray icon: building it failed")
        return False
    log.info(
        "tray: pystray backend %s (%s, %s; default action %s, notifications %s)",
        backend,
        type(icon).__module__,
        reason,
        getattr(icon, "HAS_DEFAULT_ACTION", "?"),
        getattr(icon, "HAS_NOTIFICATION", "?"),
    )
    _current = app
    if stop_requested is not None and stop_requested():
        # SIGTERM arrived while the tray was starting (its own handlers were not there yet).
        app.request_quit()
    try:
        icon.run(setup=app.setup)
    except Exception as exc:
        # pystray's GTK backends close their notification at exit and raise when no
        # notification daemon exists (minimal window managers, CI): harmless then.
        if NOTIFICATIONS_SERVICE not in str(exc):
            log.exception("tray: the icon's loop failed")
            app.shutdown()
            return app.quit_requested.is_set()
        log.debug("tray: no notification daemon at exit (%s)", exc)
    finally:
        _current = None
    app.shutdown()
    if not app.quit_requested.is_set():
        log.warning("tray: the icon's loop ended without Quit")
    return app.quit_requested.is_set()


def request_quit() -> bool:
    """Ask the running tray to quit as its menu would (thread-safe); False if none runs."""
    app = _current
    if app is None:
        return False
    app.request_quit()
    return True
