"""Start traceagent at login: write, check, repair and remove the native entry of the running OS.

One module serves ``traceagent autostart enable|disable|status``, the tray's *Start at login* check, the
daemon's start-up :func:`repair` and the installers (``python -m traceagent.autostart ...``):

=========  ==============================================================================================
Linux      tray: XDG autostart ``$XDG_CONFIG_HOME/autostart/traceagent.desktop``;
           headless: systemd user unit ``$XDG_CONFIG_HOME/systemd/user/traceagent.service``, enabled by
           the ``default.target.wants`` link that ``systemctl --user enable`` would make (no user bus needed).
           The app-menu launcher ``$XDG_DATA_HOME/applications/traceagent.desktop`` is handled here too.
macOS      ``~/Library/LaunchAgents/io.github.traceagent.plist`` (RunAtLoad, KeepAlive after a crash only).
Windows    ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run`` value ``traceagent``; a
           "disabled" mark that Task Manager / Settings leave in ``...\\Explorer\\StartupApproved\\Run``
           is reported as disabled.
=========  ==============================================================================================

The entry always points at the *installed* command (a ``~/.local/bin``, pipx or uv shim), never at a
temporary environment, and is read back to tell the truth: an entry the user turned off in the desktop's
settings is reported as disabled, one whose program vanished as stale. All locations come from the
environment (``HOME``, ``XDG_*``), so tests run against a temporary home (and an in-memory registry).
The file contents come from :mod:`traceagent.templates`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traceagent import entrypoints, templates
from traceagent.autostart._entries import (
    APP_NAME,
    Backend,
    Entry,
    LaunchAgent,
    RunKey,
    SystemdUser,
    XdgAutostart,
    home,
    icon_field,
    icon_path,
    launchagent_path,
    launchd_log_path,
    launcher_path,
    systemd_unit_path,
    unlink,
    write_file,
    xdg_autostart_path,
)

__all__ = [
    "AutostartStatus",
    "current_platform",
    "disable",
    "enable",
    "executable_command",
    "icon_path",
    "install_launcher",
    "launchagent_path",
    "launcher_path",
    "main",
    "remove_launcher",
    "render",
    "repair",
    "status",
    "systemd_unit_path",
    "xdg_autostart_path",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutostartStatus:
    """What starts traceagent at login, read back from the OS.

    Attributes:
        enabled: an entry exists and will run at the next login (not turned off by the user).
        path: the entry's file, or ``HKCU\\...\\Run\\traceagent`` on Windows; ``None`` when there is none.
        target: the program the entry runs (first word of its command line).
        target_exists: that program exists and can run (a shim whose interpreter vanished cannot).
        detail: one human sentence on the state.
    """

    enabled: bool
    path: str | None
    target: str | None
    target_exists: bool
    detail: str


def current_platform() -> str:
    """``"linux"``, ``"macos"`` or ``"windows"`` (other Unixes are treated as Linux: XDG + systemd)."""
    if sys.platform == "darwin":
        return "macos"
    if sys.platform in ("win32", "cygwin"):
        return "windows"
    return "linux"


# -- the installed command -------------------------------------------------------------------------------


def _is_under(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([os.path.abspath(path), os.path.abspath(root)]) == os.path.abspath(root)
    except ValueError:  # different drives on Windows
        return False


def _is_ephemeral(path: str) -> bool:
    """Whether ``path`` lives somewhere that is routinely wiped: a temp dir or a tool cache (uvx, pipx run)."""
    parts = Path(os.path.abspath(path)).parts
    if any(part in (".cache", "Caches", "cache", "Temp") for part in parts):
        return True
    tmp = tempfile.gettempdir()
    user_home = str(home())
    # A home inside the temp dir is deliberate (tests, throwaway accounts): trust what is under it.
    return _is_under(path, tmp) and not (_is_under(user_home, tmp) and _is_under(path, user_home))


_SH_EXEC_RE = re.compile(rb"""^'''exec' (?:"([^"]+)"|(\S+))""", re.MULTILINE)


def _is_runnable(path: str | os.PathLike[str]) -> bool:
    """An existing executable whose ``#!`` interpreter (pip shims name their venv's python) exists too."""
    p = Path(path)
    if not p.is_file():  # follows symlinks: a dangling pipx link is not runnable
        return False
    if current_platform() == "windows" or sys.platform == "win32":
        return True
    if not os.access(p, os.X_OK):
        return False
    try:
        with p.open("rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    if not head.startswith(b"#!"):
        return True
    interpreter = head[2:].split(b"\n", 1)[0].strip().split(b" ", 1)[0]
    match = _SH_EXEC_RE.search(head)  # pip's /bin/sh trampoline for interpreter paths with spaces
    if match:
        interpreter = match.group(1) or match.group(2)
    if interpreter.startswith(b"/"):
        return os.access(os.fsdecode(interpreter), os.X_OK)
    return True


def _bin_dirs() -> Iterator[Path]:
    """User bin folders that installers put shims in (pipx, uv tool, our own installer)."""
    for var in ("PIPX_BIN_DIR", "UV_TOOL_BIN_DIR", "XDG_BIN_HOME"):
        value = os.environ.get(var, "")
        if os.path.isabs(value):
            yield Path(value)
    yield home() / ".local" / "bin"


def _frozen_program() -> list[str]:
    exe = Path(sys.executable)
    if getattr(sys, "frozen", None) == "macosx_app" and os.environ.get("RESOURCEPATH"):
        # py2app: sys.executable is the bundled python; the bundle's own launcher keeps the app identity.
        launcher = Path(os.environ["RESOURCEPATH"]).parent / "MacOS" / APP_NAME
        if launcher.is_file():
            return [str(launcher)]
    if current_platform() == "windows":
        windowed = exe.with_name(f"{APP_NAME}w.exe")  # the PyInstaller build ships a no-console twin
        if windowed.is_file():
            return [str(windowed)]
    return [str(exe)]


def _python_program() -> list[str]:
    python = Path(sys.executable).absolute()  # not resolved: a venv's python must stay the venv's
    if current_platform() == "windows":
        pythonw = python.with_name("pythonw.exe")
        if pythonw.is_file():
            python = pythonw  # no console window at login
    if _is_ephemeral(str(python)):
        log.warning("autostart will run %s, which lives in a temporary place; install traceagent", python)
    return [str(python), "-m", entrypoints.CLI]


def _program() -> list[str]:
    if getattr(sys, "frozen", False):
        return _frozen_program()
    windows = current_platform() == "windows"
    # On Windows only a GUI-subsystem launcher avoids a console window at login.
    names = [f"{APP_NAME}w.exe"] if windows else [APP_NAME]
    candidates: list[Path] = [d / n for d in _bin_dirs() for n in names]
    candidates += [Path(found) for n in names if (found := shutil.which(n))]
    scripts = Path(sys.executable).parent
    candidates += [scripts / n for n in names]
    for candidate in candidates:
        path = str(candidate.absolute())
        if _is_runnable(path) and not _is_ephemeral(path):
            return [path]
    return _python_program()


def executable_command(*, headless: bool = False) -> list[str]:
    """The command a start-at-login entry should run: the installed ``traceagent`` and ``run``.

    Preference: a frozen app's own executable; a shim in the user's bin folder (``$PIPX_BIN_DIR``,
    ``$UV_TOOL_BIN_DIR``, ``$XDG_BIN_HOME``, ``~/.local/bin``); ``traceagent`` on ``PATH``; the script
    beside the running interpreter; finally ``<python> -m traceagent`` (``pythonw`` on Windows).
    Candidates that cannot run (dangling link, shim whose venv vanished) or live in a temp or cache
    folder (``uvx``, ``pipx run``) are skipped. Paths are absolute but symlinks are kept: the shim is
    the stable name, the venv behind it may be rebuilt.

    Example::

        >>> executable_command(headless=True)  # doctest: +SKIP
        ['/home/ada/.local/bin/traceagent', 'run', '--if-not-running', '--headless']
    """
    # --if-not-running: at login a second instance is not an error (launchd and systemd would
    # otherwise restart it over and over).
    return [*_program(), "run", "--if-not-running", *(["--headless"] if headless else [])]


def render(kind: str, **fields: Any) -> str:
    """Render an entry from :mod:`traceagent.templates`, filling what is not given for this machine.

    ``command`` defaults to :func:`executable_command` (headless for ``systemd``, or when
    ``headless=True`` is passed), ``icon`` to the installed icon's name (a stock icon when it is not
    installed), ``log_path`` to ``~/Library/Logs/traceagent-launchd.log``.

    Example::

        >>> render("systemd", command=["/usr/bin/traceagent", "run", "--headless"]).startswith("#")
        True
    """
    headless = bool(fields.pop("headless", kind == "systemd"))
    fields.setdefault("command", executable_command(headless=headless))
    if kind in ("desktop", "autostart-desktop"):
        fields.setdefault("icon", icon_field())
    if kind == "launchagent":
        fields.setdefault("log_path", str(launchd_log_path()))
    return templates.render(kind, **fields)


def _backends() -> list[Backend]:
    """This OS's backends; the first is the tray's, the last the headless one (may be the same)."""
    plat = current_platform()
    if plat == "macos":
        return [LaunchAgent()]
    if plat == "windows":
        return [RunKey()]
    return [XdgAutostart(), SystemdUser()]


# -- the API ---------------------------------------------------------------------------------------------


def _status_from(entry: Entry) -> AutostartStatus:
    target = entry.argv[0] if entry.argv else None
    exists = bool(target) and _is_runnable(target or "")
    detail = entry.detail if exists else f"{entry.detail}; its program {target!r} is missing (stale entry)"
    return AutostartStatus(entry.user_enabled, entry.path, target, exists, detail)


def status() -> AutostartStatus:
    """Read the start-at-login entry of this OS back, including the user's own off switch.

    Example::

        >>> status()  # doctest: +SKIP
        AutostartStatus(enabled=True, path='/home/ada/.config/autostart/traceagent.desktop',
                        target='/home/ada/.local/bin/traceagent', target_exists=True, detail='XDG ...')
    """
    entries = [e for e in (b.read() for b in _backends()) if e is not None]
    if not entries:
        return AutostartStatus(False, None, None, False, "no start-at-login entry")
    entries.sort(key=lambda e: not e.user_enabled)  # an enabled entry is the one that matters
    return _status_from(entries[0])


def enable(*, headless: bool = False) -> AutostartStatus:
    """Write the entry that starts ``traceagent run`` (``--headless``) at login, replacing any other one.

    On Linux the tray uses XDG autostart and headless mode a systemd user unit; only one of them is kept.
    An entry the user had turned off is turned back on: this is the user asking. The entry takes effect
    at the next login; nothing is started now.

    Raises:
        OSError: the entry could not be written.
        ValueError: the command cannot be expressed in this entry format (e.g. systemd and a program
            path containing a quote); the message says why.
    """
    command = executable_command(headless=headless)
    backends = _backends()
    chosen = backends[-1] if headless else backends[0]
    chosen.write(command, user_enabled=True)
    for backend in backends:
        if backend is not chosen:
            backend.remove()  # one entry only: tray and headless daemon must not both start
    log.info("start at login enabled: %s", " ".join(command))
    return status()


def disable() -> AutostartStatus:
    """Remove every start-at-login entry of traceagent on this OS (a running daemon keeps running)."""
    for backend in _backends():
        if backend.remove():
            log.info("start at login disabled")
    return status()


def _stale(argv: Sequence[str]) -> bool:
    return not argv or not _is_runnable(argv[0])


def repair() -> bool:
    """Rewrite an entry (and on Linux the launcher) whose program moved or vanished; never raises.

    Called at every daemon start. An entry the user turned off stays off; a missing entry stays missing;
    a working one is left alone even if it points at another install.

    Returns:
        True if something was rewritten.
    """
    repaired = False
    try:
        for backend in _backends():
            entry = backend.read()
            if entry is None or not entry.argv or not _stale(entry.argv):
                continue  # none, unreadable (never overwrite what we cannot read), or healthy
            command = executable_command(headless="--headless" in entry.argv)
            if _stale(command):
                log.warning(
                    "stale start-at-login entry %s, and no runnable traceagent to point at", entry.path
                )
                continue
            backend.write(command, user_enabled=entry.user_enabled)
            log.info("repaired start-at-login entry %s: now runs %s", entry.path, command[0])
            repaired = True
        if current_platform() == "linux" and launcher_path().exists():
            keys = templates.parse_desktop_entry(launcher_path().read_text(encoding="utf-8"))
            if _stale(templates.split_desktop_exec(keys.get("Exec", ""))):
                install_launcher()
                log.info("repaired launcher %s", launcher_path())
                repaired = True
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        log.warning("could not repair the start-at-login entry: %s", exc)
    return repaired


def install_launcher(icon: str | os.PathLike[str] | None = None) -> Path:
    """Linux: write the app-menu launcher and put the app icon in the user's hicolor theme.

    Args:
        icon: the PNG to install; by default the one shipped in the package (``traceagent.icons``),
            if any. Without an icon the launcher names a stock icon, never a missing one.

    Returns:
        The launcher's path.
    """
    if icon is None:
        from traceagent.icons import app_icon_path

        icon = app_icon_path()
    if icon is not None:
        write_file(icon_path(), Path(icon).read_bytes())
    # No update-desktop-database: the entry has no MimeType, and desktops watch the folder themselves.
    path = launcher_path()
    write_file(path, render("desktop", command=executable_command()))
    return path


def remove_launcher() -> list[Path]:
    """Linux: remove the launcher and its icon; returns what was removed."""
    return [p for p in (launcher_path(), icon_path()) if unlink(p)]
