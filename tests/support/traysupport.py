"""A throwaway desktop for real-tray tests: Xvfb, a private D-Bus session, trayer, dunst.

The recipe is ``shared/docs/testing-tray.md`` (verified on Debian 12): pystray's gtk
backend (Gtk.StatusIcon over XEmbed) under Xvfb, with ``trayer`` as the tray host, a
private ``dbus-daemon`` started *with* DISPLAY (so D-Bus-activated ``dunst`` can open the
display), screenshots through Pillow's ``ImageGrab`` and clicks through ``xdotool``.

Everything is started here and stopped in :meth:`Desktop.close`, so a test needs no
wrapper script and display numbers never collide (``Xvfb -displayfd``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

#: Debian packages the tray tests need (installed by .ci/run).
TOOLS = {
    "Xvfb": "xvfb",
    "trayer": "trayer",
    "xdotool": "xdotool",
    "dbus-daemon": "dbus",
    "dbus-monitor": "dbus",
    "dunst": "dunst",
}
TRAYER = [
    "trayer",
    "--edge",
    "top",
    "--align",
    "right",
    "--widthtype",
    "request",
    "--height",
    "32",
    "--SetDockType",
    "true",
    "--transparent",
    "false",
]
#: A session bus with no service folders (so no notification daemon can be activated).
BARE_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir=/tmp</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def missing_requirements() -> list[str]:
    """What this machine lacks to run a real tray (empty when all is there)."""
    missing = [f"{tool} (apt: {pkg})" for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    if importlib.util.find_spec("gi") is None:
        missing.append('PyGObject (pip install "PyGObject<3.51")')
    return missing


def wait_for(
    pred: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``pred`` until it returns something truthy; raise TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or pred}")
        time.sleep(interval)


def _stop(procs: list[subprocess.Popen[Any]]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Desktop:
    """A running Xvfb + session bus + trayer (+ dunst on demand) and helpers to drive it."""

    def __init__(
        self, workdir: Path, *, notifications: bool = True, width: int = 800, height: int = 600
    ) -> None:
        self.workdir = workdir
        self.notifications = notifications
        self.procs: list[subprocess.Popen[Any]] = []
        self._logs: list[Any] = []
        try:
            self._start(width, height)
        except BaseException:
            self.close()
            raise

    def _log(self, name: str) -> Any:
        f = (self.workdir / name).open("w")
        self._logs.append(f)
        return f

    def _start(self, width: int, height: int) -> None:
        from Xlib import display as xdisplay

        rfd, wfd = os.pipe()
        self.procs.append(
            subprocess.Popen(
                ["Xvfb", "-displayfd", str(wfd), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
                pass_fds=[wfd],
                stdout=subprocess.DEVNULL,
                stderr=self._log("xvfb.log"),
            )
        )
        os.close(wfd)
        with os.fdopen(rfd) as f:
            num = f.readline().strip()  # written once the server accepts connections
        if not num:
            raise RuntimeError("Xvfb did not start: " + (self.workdir / "xvfb.log").read_text())
        self.display = f":{num}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "WAYLAND_", "PYSTRAY_"))}
        self.env: dict[str, str] = {**base, "DISPLAY": self.display, "NO_AT_BRIDGE": "1"}
        self.dpy = xdisplay.Display(self.display)
        # the bus gets DISPLAY so that dunst, activated through it, can open the display;
        # without notifications, a bus with no service folders: nothing can be activated
        config = ["--session"]
        if not self.notifications:
            conf = self.workdir / "bus-no-services.conf"
            conf.write_text(BARE_BUS_CONFIG)
            config = [f"--config-file={conf}"]
        bus = subprocess.Popen(
            ["dbus-daemon", *config, "--nofork", "--print-address=1"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self._log("dbus.log"),
        )
        self.procs.append(bus)
        assert bus.stdout is not None
        self.env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().decode().strip()
        self.monitor_log = self.workdir / "notifications.log"
        self.procs.append(
            subprocess.Popen(
                ["dbus-monitor", "--session", "interface='org.freedesktop.Notifications',member='Notify'"],
                env=self.env,
                stdout=self.monitor_log.open("w"),
                stderr=subprocess.STDOUT,
            )
        )
        self.procs.append(
            subprocess.Popen(TRAYER, env=self.env, stdout=subprocess.DEVNULL, stderr=self._log("trayer.log"))
        )
        wait_for(self.tray_manager_present, 10, what="trayer to own _NET_SYSTEM_TRAY_S0")

    def close(self) -> None:
        """Stop everything started here (idempotent)."""
        with contextlib.suppress(Exception):
            self.dpy.close()
        _stop(self.procs)
        self.procs.clear()
        for f in self._logs:
            f.close()
        self._logs.clear()

    # -- looking --------------------------------------------------------------------------

    def grab(self, box: tuple[int, int, int, int] | None = None) -> Any:
        """A screenshot (PIL image) of the whole screen, or of ``box`` = (x0, y0, x1, y1)."""
        from PIL import ImageGrab

        img = ImageGrab.grab(xdisplay=self.display)
        return img.crop(box) if box else img

    def tray_manager_present(self) -> bool:
        from Xlib import X

        atom = self.dpy.intern_atom("_NET_SYSTEM_TRAY_S0")
        return bool(self.dpy.get_selection_owner(atom) != X.NONE)

    def _walk(self) -> Iterator[Any]:
        stack = [self.dpy.screen().root]
        while stack:
            w = stack.pop()
            yield w
            with contextlib.suppress(Exception):
                stack.extend(w.query_tree().children)

    def windows_of_class(self, name: str) -> list[tuple[int, int, int, int]]:
        """Viewable windows whose WM_CLASS contains ``name``: (x, y, width, height) on screen."""
        from Xlib import X

        found = []
        for w in self._walk():
            try:
                cls = w.get_wm_class() or ()
                if not any(name in c for c in cls):
                    continue
                if w.get_attributes().map_state != X.IsViewable:
                    continue
                g = w.get_geometry()
                pos = w.translate_coords(self.dpy.screen().root, 0, 0)
                found.append((-pos.x, -pos.y, g.width, g.height))
            except Exception:
                continue  # the window went away meanwhile
        return found

    def popup_windows(self) -> list[tuple[int, int, int, int]]:
        """Mapped override-redirect top-level windows bigger than 40 px: GTK menus are these
        (dunst's notification windows are too, so they are left out)."""
        from Xlib import X

        found = []
        for w in self.dpy.screen().root.query_tree().children:
            try:
                a = w.get_attributes()
                if any("dunst" in c.lower() for c in (w.get_wm_class() or ())):
                    continue
                if a.map_state == X.IsViewable and a.override_redirect:
                    g = w.get_geometry()
                    if g.width > 40 and g.height > 40:
                        found.append((g.x, g.y, g.width, g.height))
            except Exception:
                continue
        return found

    def notify_calls(self) -> list[str]:
        """The summaries of Notify calls seen on the bus so far."""
        calls, lines = [], self.monitor_log.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if "member=Notify" in line and "method call" in line:
                strings = [ln.strip() for ln in lines[i + 1 : i + 8] if ln.strip().startswith("string ")]
                # Notify(app_name, replaces_id, app_icon, summary, body, ...): summary is the 3rd string
                calls.append(strings[2][len("string ") :].strip('"') if len(strings) > 2 else "?")
        return calls

    # -- acting ---------------------------------------------------------------------------

    def xdotool(self, *args: object) -> None:
        subprocess.run(["xdotool", *map(str, args)], env=self.env, check=True, timeout=10)

    def click(self, x: int, y: int, button: int = 1) -> None:
        self.xdotool("mousemove", x, y, "click", button)


def text_rows(img: Any, box: tuple[int, int, int, int], threshold: int = 200) -> list[tuple[int, int]]:
    """Rows of text in a light-themed menu: bands holding pixels darker than ``threshold``.

    ``box`` is (x, y, width, height) on screen; returns (top, bottom) screen rows. The
    default threshold also catches the grey text of disabled items, not separators.
    """
    x, y, w, h = box
    crop = img.crop((x + 2, y + 2, x + w - 2, y + h - 2)).convert("L")
    px = crop.load()
    rows: list[list[int]] = []
    start = None
    for yy in range(crop.height):
        dark = any(px[xx, yy] < threshold for xx in range(crop.width))
        if dark and start is None:
            start = yy
        elif not dark and start is not None:
            rows.append([start, yy - 1])
            start = None
    if start is not None:
        rows.append([start, crop.height - 1])
    merged: list[list[int]] = []
    for r in rows:  # one line of text can split into bands (e.g. "·" or accents)
        if merged and r[0] - merged[-1][1] <= 4:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    return [(y + 2 + a, y + 2 + b) for a, b in merged]
