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
environment (``HOME``, ``XDG_*``, ``APPDATA``), so tests run against a temporary home. The file contents
come from :mod:`traceagent.templates`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import plistlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from traceagent import templates
from traceagent.templates import FALLBACK_ICON, MACOS_LABEL

__all__ = [
    "AutostartStatus",
    "current_platform",
    "disable",
    "enable",
    "executable_command",
    "install_launcher",
    "main",
    "remove_launcher",
    "render",
    "repair",
    "status",
]

log = logging.getLogger(__name__)

APP_NAME = "traceagent"
ICON_NAME = templates.DEFAULT_ICON
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
#: Windows' Run key ignores longer command lines.
_RUN_VALUE_MAX = 260


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


# -- where things live ---------------------------------------------------------------------------------


def _home() -> Path:
    return Path(os.environ.get("HOME") or os.environ.get("USERPROFILE") or Path.home())


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var, "")
    # The XDG spec: relative values are invalid and must be ignored.
    return Path(value) if os.path.isabs(value) else _home() / default


def xdg_autostart_path() -> Path:
    """``$XDG_CONFIG_HOME/autostart/traceagent.desktop``."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "autostart" / f"{APP_NAME}.desktop"


def launcher_path() -> Path:
    """``$XDG_DATA_HOME/applications/traceagent.desktop`` (the app-menu entry)."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "applications" / f"{APP_NAME}.desktop"


def icon_path() -> Path:
    """Where the launcher's icon is installed (hicolor theme of ``$XDG_DATA_HOME``)."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "icons/hicolor/256x256/apps" / f"{ICON_NAME}.png"


def systemd_unit_path() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user/traceagent.service``."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "systemd" / "user" / f"{APP_NAME}.service"


def _systemd_wants_path() -> Path:
    return systemd_unit_path().parent / "default.target.wants" / systemd_unit_path().name


def launchagent_path() -> Path:
    """``~/Library/LaunchAgents/io.github.traceagent.plist``."""
    return _home() / "Library" / "LaunchAgents" / f"{MACOS_LABEL}.plist"


def _launchd_log_path() -> Path:
    # ~/Library/Logs always exists; launchd does not create missing folders.
    return _home() / "Library" / "Logs" / f"{APP_NAME}-launchd.log"


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
    home = str(_home())
    # A home inside the temp dir is deliberate (tests, throwaway accounts): trust what is under it.
    return _is_under(path, tmp) and not (_is_under(home, tmp) and _is_under(path, home))


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
    yield _home() / ".local" / "bin"


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
    return [str(python), "-m", APP_NAME]


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
        ['/home/ada/.local/bin/traceagent', 'run', '--headless']
    """
    return [*_program(), "run", *(["--headless"] if headless else [])]


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
        fields.setdefault("icon", _icon_field())
    if kind == "launchagent":
        fields.setdefault("log_path", str(_launchd_log_path()))
    return templates.render(kind, **fields)


def _icon_field() -> str:
    return ICON_NAME if icon_path().is_file() else FALLBACK_ICON


def _write(path: Path, text: str | bytes) -> None:
    """Atomic write (temp file + rename), 0644."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


# -- backends --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    path: str
    argv: list[str]
    user_enabled: bool
    detail: str


class _Backend(Protocol):
    def read(self) -> _Entry | None: ...
    def write(self, argv: list[str], *, user_enabled: bool = True) -> None: ...
    def remove(self) -> bool: ...


class _XdgAutostart:
    """``~/.config/autostart/traceagent.desktop``: the tray, started inside the graphical session."""

    def read(self) -> _Entry | None:
        path = xdg_autostart_path()
        try:
            keys = templates.parse_desktop_entry(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        argv = templates.split_desktop_exec(keys.get("Exec", ""))
        if keys.get("Hidden", "").lower() == "true":
            return _Entry(
                str(path), argv, False, "XDG autostart entry present but deleted by the user (Hidden)"
            )
        if keys.get("X-GNOME-Autostart-enabled", "true").lower() == "false":
            return _Entry(str(path), argv, False, "XDG autostart entry turned off in the desktop's settings")
        return _Entry(str(path), argv, True, "XDG autostart entry: the tray starts at graphical login")

    def write(self, argv: list[str], *, user_enabled: bool = True) -> None:
        text = templates.render("autostart-desktop", command=argv, icon=_icon_field(), enabled=user_enabled)
        _write(xdg_autostart_path(), text)

    def remove(self) -> bool:
        return _unlink(xdg_autostart_path())


def _systemctl_user(*args: str) -> None:
    """Best effort: tell a running user manager about the change (no-op without one, e.g. over SSH)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if not shutil.which("systemctl") or not runtime or not os.path.exists(os.path.join(runtime, "bus")):
        return
    try:
        subprocess.run(["systemctl", "--user", *args], check=False, capture_output=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("systemctl --user %s failed: %s", " ".join(args), exc)


class _SystemdUser:
    """``~/.config/systemd/user/traceagent.service``: headless, restarted on failure."""

    def read(self) -> _Entry | None:
        unit = systemd_unit_path()
        try:
            sections = templates.parse_unit(unit.read_text(encoding="utf-8"))
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        argv = templates.split_systemd_exec(sections.get("Service", {}).get("ExecStart", ""))
        if os.path.lexists(_systemd_wants_path()):
            return _Entry(str(unit), argv, True, "systemd user unit enabled: headless daemon starts at login")
        return _Entry(
            str(unit), argv, False, "systemd user unit installed but not enabled (systemctl --user disable)"
        )

    def write(self, argv: list[str], *, user_enabled: bool = True) -> None:
        unit = systemd_unit_path()
        _write(unit, templates.render("systemd", command=argv))
        wants = _systemd_wants_path()
        if user_enabled and not os.path.lexists(wants):
            wants.parent.mkdir(parents=True, exist_ok=True)
            wants.symlink_to(unit)  # what `systemctl --user enable` makes, without needing a user bus
        _systemctl_user("daemon-reload")

    def remove(self) -> bool:
        removed = _unlink(_systemd_wants_path())
        removed = _unlink(systemd_unit_path()) or removed
        for folder in (_systemd_wants_path().parent, systemd_unit_path().parent):
            try:
                folder.rmdir()
            except OSError:
                pass
        if removed:
            _systemctl_user("daemon-reload")
        return removed


def _launchctl_disabled(label: str) -> bool | None:
    """Whether launchd has ``label`` disabled for this user (Login Items switch); ``None`` if unknown."""
    if sys.platform != "darwin" or not shutil.which("launchctl"):
        return None
    try:
        out = subprocess.run(
            ["launchctl", "print-disabled", f"gui/{os.getuid()}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_launchctl_disabled(out, label)


def parse_launchctl_disabled(output: str, label: str) -> bool | None:
    """Read ``launchctl print-disabled`` output: ``"label" => disabled|enabled`` (or ``true|false``)."""
    match = re.search(rf'"{re.escape(label)}"\s*=>\s*(\w+)', output)
    if not match:
        return None
    return match.group(1) in ("disabled", "true")


class _LaunchAgent:
    """``~/Library/LaunchAgents/io.github.traceagent.plist``."""

    def read(self) -> _Entry | None:
        path = launchagent_path()
        try:
            data = plistlib.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (plistlib.InvalidFileException, ValueError):
            return _Entry(str(path), [], False, "LaunchAgent plist is unreadable")
        argv = [str(a) for a in data.get("ProgramArguments", [])] if isinstance(data, dict) else []
        if isinstance(data, dict) and data.get("Disabled") is True:
            return _Entry(str(path), argv, False, "LaunchAgent present but marked Disabled")
        if _launchctl_disabled(MACOS_LABEL):
            return _Entry(
                str(path), argv, False, "LaunchAgent turned off in Login Items (launchctl disabled)"
            )
        return _Entry(str(path), argv, True, "LaunchAgent: starts at login, restarted after a crash")

    def write(self, argv: list[str], *, user_enabled: bool = True) -> None:
        # user_enabled cannot be kept in the file: the Login Items switch lives in launchd, not the plist.
        _write(launchagent_path(), render("launchagent", command=argv))

    def remove(self) -> bool:
        return _unlink(launchagent_path())


class _Registry(Protocol):
    """The few HKEY_CURRENT_USER operations needed (a fake replaces it in tests)."""

    def get(self, key: str, name: str) -> object | None: ...
    def set(self, key: str, name: str, value: str) -> None: ...
    def delete(self, key: str, name: str) -> None: ...


class _WinReg:
    """``winreg`` on HKEY_CURRENT_USER; imported on first use, and only on Windows."""

    def get(self, key: str, name: str) -> object | None:
        if sys.platform != "win32":
            raise OSError("the Windows registry is only available on Windows")
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as handle:
                value: object = winreg.QueryValueEx(handle, name)[0]
                return value
        except FileNotFoundError:
            return None

    def set(self, key: str, name: str, value: str) -> None:
        if sys.platform != "win32":
            raise OSError("the Windows registry is only available on Windows")
        import winreg

        with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as handle:
            winreg.SetValueEx(handle, name, 0, winreg.REG_SZ, value)

    def delete(self, key: str, name: str) -> None:
        if sys.platform != "win32":
            raise OSError("the Windows registry is only available on Windows")
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key, 0, winreg.KEY_SET_VALUE) as handle:
                winreg.DeleteValue(handle, name)
        except FileNotFoundError:
            pass


#: Replaced by tests with an in-memory registry.
_registry: _Registry | None = None


def _reg() -> _Registry:
    return _registry if _registry is not None else _WinReg()


class _RunKey:
    """``HKCU\\...\\Run`` value ``traceagent``, honouring Task Manager's ``StartupApproved`` mark."""

    def read(self) -> _Entry | None:
        value = _reg().get(RUN_KEY, APP_NAME)
        if not isinstance(value, str):
            return None
        where = f"HKCU\\{RUN_KEY}\\{APP_NAME}"
        argv = templates.split_windows_cmdline(value)
        approved = _reg().get(APPROVED_KEY, APP_NAME)
        # First byte even (02, 06) = enabled; odd (03, 07) = disabled by Task Manager or Settings.
        if isinstance(approved, bytes) and approved and approved[0] & 1:
            return _Entry(where, argv, False, "Run-key entry turned off in Task Manager / Settings > Startup")
        return _Entry(where, argv, True, "Run-key entry: the tray starts at login")

    def write(self, argv: list[str], *, user_enabled: bool = True) -> None:
        line = templates.render("windows-run", command=argv)
        if len(line) > _RUN_VALUE_MAX:
            log.warning("start-at-login command is %d characters; Windows may ignore it", len(line))
        _reg().set(RUN_KEY, APP_NAME, line)
        if user_enabled:
            _reg().delete(APPROVED_KEY, APP_NAME)  # an explicit enable lifts Task Manager's "disabled"

    def remove(self) -> bool:
        existed = _reg().get(RUN_KEY, APP_NAME) is not None
        _reg().delete(RUN_KEY, APP_NAME)
        _reg().delete(APPROVED_KEY, APP_NAME)
        return existed


def _backends() -> list[_Backend]:
    """This OS's backends; the first is the tray's, the last the headless one (may be the same)."""
    plat = current_platform()
    if plat == "macos":
        return [_LaunchAgent()]
    if plat == "windows":
        return [_RunKey()]
    return [_XdgAutostart(), _SystemdUser()]


# -- the API ---------------------------------------------------------------------------------------------


def _status_from(entry: _Entry) -> AutostartStatus:
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
    """
    command = executable_command(headless=headless)
    backends = _backends()
    chosen = backends[-1] if headless else backends[0]
    for backend in backends:
        if backend is not chosen:
            backend.remove()
    chosen.write(command, user_enabled=True)
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
            if entry is None or not _stale(entry.argv):
                continue
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
    """Linux: write the app-menu launcher, copying ``icon`` (a PNG) into the user's hicolor theme.

    Returns:
        The launcher's path.
    """
    if icon is not None:
        target = icon_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        _write(target, Path(icon).read_bytes())
    path = launcher_path()
    _write(path, render("desktop", command=executable_command()))
    if shutil.which("update-desktop-database"):
        subprocess.run(["update-desktop-database", str(path.parent)], check=False, capture_output=True)
    return path


def remove_launcher() -> list[Path]:
    """Linux: remove the launcher and its icon; returns what was removed."""
    removed = [p for p in (launcher_path(), icon_path()) if _unlink(p)]
    if removed and shutil.which("update-desktop-database") and launcher_path().parent.is_dir():
        subprocess.run(
            ["update-desktop-database", str(launcher_path().parent)], check=False, capture_output=True
        )
    return removed


# -- python -m traceagent.autostart ----------------------------------------------------------------------


def _print_status(st: AutostartStatus, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(st), indent=2))
        return
    print(f"start at login: {'on' if st.enabled else 'off'}")
    if st.path:
        print(f"entry:  {st.path}")
        print(f"runs:   {st.target} ({'ok' if st.target_exists else 'MISSING'})")
    print(st.detail)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m traceagent.autostart``: the installers' way in (same code as ``traceagent autostart``).

    Subcommands: ``enable [--headless]``, ``disable``, ``status [--json]``, ``repair``,
    ``render KIND [--headless] [--out PATH]``, ``command [--headless] [--json]``,
    ``launcher install [--icon PNG]``, ``launcher remove``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m traceagent.autostart",
        description="Start traceagent at login (installers' entry point).",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    p_enable = sub.add_parser("enable", help="start traceagent at login")
    p_enable.add_argument("--headless", action="store_true", help="no tray (Linux: systemd user unit)")
    sub.add_parser("disable", help="remove the start-at-login entry")
    p_status = sub.add_parser("status", help="show the start-at-login entry")
    p_status.add_argument("--json", action="store_true")
    sub.add_parser("repair", help="re-point a stale entry at the installed command")
    p_render = sub.add_parser("render", help="print or write one entry from the templates")
    p_render.add_argument("kind", choices=list(templates.KINDS))
    p_render.add_argument("--headless", action="store_true")
    p_render.add_argument("--out", type=Path, help="write here instead of printing")
    p_cmd = sub.add_parser("command", help="print the installed command an entry would run")
    p_cmd.add_argument("--headless", action="store_true")
    p_cmd.add_argument("--json", action="store_true", help="as a JSON list")
    p_launcher = sub.add_parser("launcher", help="Linux app-menu launcher")
    p_launcher.add_argument("launcher_action", choices=["install", "remove"])
    p_launcher.add_argument("--icon", type=Path, help="PNG to install as the launcher icon")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.action == "enable":
            _print_status(enable(headless=args.headless), False)
        elif args.action == "disable":
            _print_status(disable(), False)
        elif args.action == "status":
            _print_status(status(), args.json)
        elif args.action == "repair":
            print("repaired" if repair() else "nothing to repair")
        elif args.action == "render":
            text = render(args.kind, **({"headless": True} if args.headless else {}))
            if args.out:
                _write(args.out, text)
            else:
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
        elif args.action == "command":
            command = executable_command(headless=args.headless)
            windows = current_platform() == "windows"
            shown = subprocess.list2cmdline(command) if windows else shlex.join(command)
            print(json.dumps(command) if args.json else shown)
        elif args.launcher_action == "install":
            print(install_launcher(args.icon))
        else:
            for path in remove_launcher():
                print(f"removed {path}")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
