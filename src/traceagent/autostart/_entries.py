"""Where each OS keeps its start-at-login entry, and how traceagent reads, writes and removes it.

Internal to :mod:`traceagent.autostart`: one small class per mechanism (XDG autostart, systemd user
unit, LaunchAgent, Windows ``Run`` key), each with ``read()`` (what is there, including the user's own
off switch), ``write()`` and ``remove()``. Every location derives from the environment (``HOME``,
``XDG_*``), so tests run against a temporary home; the Windows registry is reached through
:data:`_registry`, which tests replace.
"""

from __future__ import annotations

import logging
import os
import plistlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from traceagent import templates
from traceagent.templates import FALLBACK_ICON, MACOS_LABEL

log = logging.getLogger("traceagent.autostart")

APP_NAME = "traceagent"
ICON_NAME = templates.DEFAULT_ICON
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
APPROVED_KEY = r"Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run"
#: Windows' Run key ignores longer command lines.
_RUN_VALUE_MAX = 260


def home() -> Path:
    """The user's home, from ``HOME`` (``USERPROFILE`` on Windows)."""
    return Path(os.environ.get("HOME") or os.environ.get("USERPROFILE") or Path.home())


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var, "")
    # The XDG spec: relative values are invalid and must be ignored.
    return Path(value) if os.path.isabs(value) else home() / default


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


def systemd_wants_path() -> Path:
    """The ``default.target.wants`` link that enables the unit."""
    return systemd_unit_path().parent / "default.target.wants" / systemd_unit_path().name


def launchagent_path() -> Path:
    """``~/Library/LaunchAgents/io.github.traceagent.plist``."""
    return home() / "Library" / "LaunchAgents" / f"{MACOS_LABEL}.plist"


def launchd_log_path() -> Path:
    """Where launchd writes the program's stderr (``~/Library/Logs`` always exists; launchd makes no folders)."""
    # ~/Library/Logs always exists; launchd does not create missing folders.
    return home() / "Library" / "Logs" / f"{APP_NAME}-launchd.log"


def icon_field() -> str:
    """traceagent's icon name when it is installed, else a stock icon (never a dangling name)."""
    return ICON_NAME if icon_path().is_file() else FALLBACK_ICON


def write_file(path: Path, text: str | bytes) -> None:
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


def unlink(path: Path) -> bool:
    """Remove ``path``; False if it was not there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class Entry:
    """An entry as found: where, the command it runs, whether the user left it on, and a sentence."""

    path: str
    argv: list[str]
    user_enabled: bool
    detail: str


def unreadable(path: Path | str, exc: Exception) -> Entry:
    """An entry that exists but cannot be read: reported (off), never rewritten."""
    return Entry(str(path), [], False, f"start-at-login entry cannot be read: {exc}")


class Backend(Protocol):
    """One start-at-login mechanism."""

    def read(self) -> Entry | None:
        """The entry, or None when there is none."""

    def write(self, argv: list[str], *, user_enabled: bool = True) -> None:
        """Write the entry for ``argv``; ``user_enabled=False`` keeps a user's "off" where it can."""

    def remove(self) -> bool:
        """Remove the entry; False if there was none."""


class XdgAutostart:
    """``~/.config/autostart/traceagent.desktop``: the tray, started inside the graphical session."""

    def read(self) -> Entry | None:
        path = xdg_autostart_path()
        try:
            keys = templates.parse_desktop_entry(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            return unreadable(path, exc)
        argv = templates.split_desktop_exec(keys.get("Exec", ""))
        if keys.get("Hidden", "").lower() == "true":
            return Entry(
                str(path), argv, False, "XDG autostart entry present but deleted by the user (Hidden)"
            )
        if keys.get("X-GNOME-Autostart-enabled", "true").lower() == "false":
            return Entry(str(path), argv, False, "XDG autostart entry turned off in the desktop's settings")
        return Entry(str(path), argv, True, "XDG autostart entry: the tray starts at graphical login")

    def write(self, argv: list[str], *, user_enabled: bool = True) -> None:
        text = templates.render("autostart-desktop", command=argv, icon=icon_field(), enabled=user_enabled)
        write_file(xdg_autostart_path(), text)

    def remove(self) -> bool:
        return unlink(xdg_autostart_path())


def _systemctl_user(*args: str) -> None:
    """Best effort: tell a running user manager about the change (no-op without one, e.g. over SSH)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if not shutil.which("systemctl") or not runtime or not os.path.exists(os.path.join(runtime, "bus")):
        return
    try:
        subprocess.run(["systemctl", "--user", *args], check=False, capture_output=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("systemctl --user %s failed: %s", " ".join(args), exc)


class SystemdUser:
    """``~/.config/systemd/user/traceagent.service``: headless, restarted on failure."""

    def read(self) -> Entry | None:
        unit = systemd_unit_path()
        try:
            sections = templates.parse_unit(unit.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            return unreadable(unit, exc)
        argv = templates.split_systemd_exec(sections.get("Service", {}).get("ExecStart", ""))
        if os.path.lexists(systemd_wants_path()):
            return Entry(str(unit), argv, True, "systemd user unit enabled: headless daemon starts at login")
        return Entry(
            str(unit), argv, False, "systemd user unit installed but not enabled (systemctl --user disable)"
        )

    def write(self, argv: list[str], *, user_enabled: bool = True) -> None:
        unit = systemd_unit_path()
        write_file(unit, templates.render("systemd", command=argv))
        wants = systemd_wants_path()
        if user_enabled and not os.path.lexists(wants):
            wants.parent.mkdir(parents=True, exist_ok=True)
            wants.symlink_to(unit)  # what `systemctl --user enable` makes, without needing a user bus
        _systemctl_user("daemon-reload")

    def remove(self) -> bool:
        removed = unlink(systemd_wants_path())
        removed = unlink(systemd_unit_path()) or removed
        for folder in (systemd_wants_path().parent, systemd_unit_path().parent):
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


class LaunchAgent:
    """``~/Library/LaunchAgents/io.github.traceagent.plist``."""

    def read(self) -> Entry | None:
        path = launchagent_path()
        try:
            data = plistlib.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, plistlib.InvalidFileException, ValueError) as exc:
            return unreadable(path, exc)
        argv = [str(a) for a in data.get("ProgramArguments", [])] if isinstance(data, dict) else []
        if isinstance(data, dict) and data.get("Disabled") is True:
            return Entry(str(path), argv, False, "LaunchAgent present but marked Disabled")
        if _launchctl_disabled(MACOS_LABEL):
            return Entry(str(path), argv, False, "LaunchAgent turned off in Login Items (launchctl disabled)")
        return Entry(str(path), argv, True, "LaunchAgent: starts at login, restarted after a crash")

    def write(self, argv: list[str], *, user_enabled: bool = True) -> None:
        # user_enabled cannot be kept in the file: the Login Items switch lives in launchd, not the plist.
        write_file(
            launchagent_path(),
            templates.render("launchagent", command=argv, log_path=str(launchd_log_path())),
        )

    def remove(self) -> bool:
        return unlink(launchagent_path())


class Registry(Protocol):
    """The few HKEY_CURRENT_USER operations needed (a fake replaces it in tests)."""

    def get(self, key: str, name: str) -> object | None: ...
    def set(self, key: str, name: str, value: str) -> None: ...
    def delete(self, key: str, name: str) -> None: ...


class WinReg:
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
_registry: Registry | None = None


def _reg() -> Registry:
    return _registry if _registry is not None else WinReg()


class RunKey:
    """``HKCU\\...\\Run`` value ``traceagent``, honouring Task Manager's ``StartupApproved`` mark."""

    def read(self) -> Entry | None:
        value = _reg().get(RUN_KEY, APP_NAME)
        if not isinstance(value, str):
            return None
        where = f"HKCU\\{RUN_KEY}\\{APP_NAME}"
        argv = templates.split_windows_cmdline(value)
        approved = _reg().get(APPROVED_KEY, APP_NAME)
        # First byte even (02, 06) = enabled; odd (03, 07) = disabled by Task Manager or Settings.
        if isinstance(approved, bytes) and approved and approved[0] & 1:
            return Entry(where, argv, False, "Run-key entry turned off in Task Manager / Settings > Startup")
        return Entry(where, argv, True, "Run-key entry: the tray starts at login")

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
