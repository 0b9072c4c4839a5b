"""Which pystray backend can show traceagent's tray here, and whether a tray host is up.

Kept apart from :mod:`traceagent.tray.icon` so it can decide without importing pystray (which
picks a backend for the whole process on import, and raises without a display).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["choose_backend", "tray_host_present", "wait_for_tray_host"]


def _has_session_bus(env: Mapping[str, str]) -> bool:
    if env.get("DBUS_SESSION_BUS_ADDRESS"):
        return True
    runtime = env.get("XDG_RUNTIME_DIR")
    return runtime is not None and Path(runtime, "bus").exists()  # systemd's per-user bus


def _typelib_available(namespace: str, version: str) -> bool:
    try:
        import gi

        gi.require_version(namespace, version)
    except (ImportError, ValueError):
        return False
    return True


def choose_backend(
    env: Mapping[str, str] | None = None,
    platform: str | None = None,
    *,
    gi_available: bool | None = None,
    typelib: Callable[[str, str], bool] = _typelib_available,
) -> tuple[str | None, str]:
    """The pystray backend to use, or None and why no usable tray can be shown.

    Refuses what would leave the user without a menu or hang the process: ``xorg`` (no
    menu), ``dummy`` (its ``run()`` hangs), a GTK backend without a display, without a
    D-Bus session (pystray then hangs at start) or without PyGObject. ``PYSTRAY_BACKEND``
    is honoured when it names a usable backend. On Linux AppIndicator is preferred when its
    typelib is installed (GNOME and KDE host it; libayatana falls back to an XEmbed tray),
    else GTK's status icon.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    forced = env.get("PYSTRAY_BACKEND", "").strip()
    if forced in ("dummy", "xorg"):
        return None, f"PYSTRAY_BACKEND={forced} has no usable menu"
    if forced and forced not in ("gtk", "appindicator", "darwin", "win32"):
        return None, f"unknown PYSTRAY_BACKEND={forced}"
    if forced in ("darwin", "win32") or (not forced and platform in ("darwin", "win32")):
        return forced or platform, "native"
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return None, "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    if not _has_session_bus(env):
        return None, "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)"
    if gi_available is None:
        gi_available = importlib.util.find_spec("gi") is not None
    if not gi_available:
        return None, "PyGObject is not installed (pip install 'traceagent[gtk]'); pystray would have no menu"
    if not typelib("Gtk", "3.0"):
        return None, "GTK 3 introspection data is missing (install gir1.2-gtk-3.0)"
    if forced:
        backend = forced
    elif typelib("AyatanaAppIndicator3", "0.1") or typelib("AppIndicator3", "0.1"):
        backend = "appindicator"
    else:
        backend = "gtk"
    if backend == "gtk" and not env.get("DISPLAY"):
        return None, "GTK's status icon needs X11 (Wayland-only session); install AppIndicator support"
    return backend, "forced by PYSTRAY_BACKEND" if forced else "detected"


def _xembed_tray_present(display: str) -> bool | None:
    """Whether an XEmbed system tray owns ``_NET_SYSTEM_TRAY_S<n>``; None if unknown."""
    try:  # python-xlib: pystray's own dependency on Linux (untyped, hence import_module)
        xlib_x = importlib.import_module("Xlib.X")
        xdisplay = importlib.import_module("Xlib.display")
    except ImportError:
        return None
    try:
        dpy = xdisplay.Display(display)
    except Exception:
        return None
    try:
        atom = dpy.intern_atom(f"_NET_SYSTEM_TRAY_S{dpy.get_default_screen()}")
        return bool(dpy.get_selection_owner(atom) != xlib_x.NONE)
    except Exception:
        return None
    finally:
        dpy.close()


def _sni_watcher_present() -> bool | None:
    """Whether a StatusNotifierWatcher (AppIndicator host) is on the session bus; None if unknown."""
    try:
        from gi.repository import Gio, GLib

        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        reply = bus.call_sync(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            GLib.Variant("(s)", ("org.kde.StatusNotifierWatcher",)),
            None,
            Gio.DBusCallFlags.NONE,
            2000,
            None,
        )
        return bool(reply.unpack()[0])
    except Exception:
        return None


def tray_host_present(backend: str, env: Mapping[str, str] | None = None) -> bool | None:
    """Whether something will show our icon: True, False, or None when it can't be told."""
    env = os.environ if env is None else env
    xembed = _xembed_tray_present(env["DISPLAY"]) if env.get("DISPLAY") else False
    if backend == "gtk":
        return xembed
    sni = _sni_watcher_present()
    if sni or xembed:
        return True
    if sni is None or xembed is None:
        return None
    return False


def wait_for_tray_host(backend: str, timeout: float) -> bool:
    """Wait up to ``timeout`` s for a tray host (the panel may start after us at login)."""
    deadline = time.monotonic() + timeout
    while True:
        present = tray_host_present(backend)
        if present is None or present:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)
