"""``traceagent.autostart`` against a temporary home: enable, status, disable and repair on each OS.

Linux runs for real (files under the temp HOME, checked with the real validators where present);
macOS and Windows run their file/registry logic here with the platform switched and an in-memory
registry, since what they write is plain data (their formats are covered by test_autostart.py).
"""

from __future__ import annotations

import json
import os
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest
from test_autostart import _systemd_verify, require_tool, working_systemd_analyze

from traceagent import autostart, templates
from traceagent.autostart import _entries
from traceagent.autostart._cli import main as autostart_cli_main

SHIM = "#!/bin/sh\nexit 0\n"


def make_exe(path: Path, text: str = SHIM) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp HOME with an installed ``~/.local/bin/traceagent`` and nothing else that could leak in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in (
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_BIN_HOME",
        "XDG_RUNTIME_DIR",  # no user bus: systemctl is never called
        "PIPX_BIN_DIR",
        "UV_TOOL_BIN_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(autostart, "current_platform", lambda: "linux")
    make_exe(home / ".local/bin/traceagent")
    return home


def shim(home: Path) -> str:
    return str(home / ".local/bin/traceagent")


# -- the installed command ------------------------------------------------------------------------------


def test_command_prefers_the_user_shim(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = make_exe(home / "elsewhere/traceagent")
    monkeypatch.setenv("PATH", f"{other.parent}:/usr/bin:/bin")
    assert autostart.executable_command() == [shim(home), "run", "--if-not-running"]
    assert autostart.executable_command(headless=True) == [
        shim(home),
        "run",
        "--if-not-running",
        "--headless",
    ]


def test_command_honours_pipx_and_uv_bin_dirs(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipx_bin = make_exe(home / "pipx-bin/traceagent")
    monkeypatch.setenv("PIPX_BIN_DIR", str(pipx_bin.parent))
    assert autostart.executable_command()[0] == str(pipx_bin)


def test_command_skips_temporary_and_cache_locations(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / ".local/bin/traceagent").unlink()
    uvx = make_exe(home / ".cache/uv/archive-v0/abc/bin/traceagent")
    outside = make_exe(tmp_path / "throwaway-venv/bin/traceagent")  # in the temp dir, not under HOME
    monkeypatch.setenv("PATH", f"{uvx.parent}:{outside.parent}:/usr/bin:/bin")
    python = make_exe(home / "venv/bin/python")
    monkeypatch.setattr(sys, "executable", str(python))
    assert autostart.executable_command() == [str(python), "-m", "traceagent", "run", "--if-not-running"]


def test_command_falls_back_to_the_script_beside_the_interpreter(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / ".local/bin/traceagent").unlink()
    python = make_exe(home / "venv/bin/python")
    script = make_exe(home / "venv/bin/traceagent")
    monkeypatch.setattr(sys, "executable", str(python))
    assert autostart.executable_command() == [str(script), "run", "--if-not-running"]


def test_shim_whose_interpreter_vanished_is_not_used(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_exe(home / ".local/bin/traceagent", "#!/gone/venv/bin/python\nimport traceagent\n")
    spaced = make_exe(
        home / "pipx bin/traceagent",
        "#!/bin/sh\n'''exec' \"/gone/with space/python\" \"$0\" \"$@\"\n' '''\nimport traceagent\n",
    )
    monkeypatch.setenv("PIPX_BIN_DIR", str(spaced.parent))
    python = make_exe(home / "venv/bin/python")
    monkeypatch.setattr(sys, "executable", str(python))
    assert autostart.executable_command()[0] == str(python)
    # ...and a dangling pipx link neither
    (home / ".local/bin/traceagent").unlink()
    (home / ".local/bin/traceagent").symlink_to(home / "nowhere")
    assert autostart.executable_command()[0] == str(python)


def test_frozen_app_runs_itself(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_exe(home / "Apps/traceagent/traceagent.exe")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(app))
    assert autostart.executable_command() == [str(app), "run", "--if-not-running"]
    windowed = make_exe(app.with_name("traceagentw.exe"))
    monkeypatch.setattr(autostart, "current_platform", lambda: "windows")
    assert autostart.executable_command() == [str(windowed), "run", "--if-not-running"]


def test_py2app_bundle_runs_its_launcher(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contents = home / "Applications/traceagent.app.wiring/Contents"
    launcher = make_exe(contents / "MacOS/traceagent")
    monkeypatch.setattr(sys, "frozen", "macosx_app", raising=False)
    monkeypatch.setattr(sys, "executable", str(contents / "MacOS/python"))
    monkeypatch.setenv("RESOURCEPATH", str(contents / "Resources"))
    assert autostart.executable_command() == [str(launcher), "run", "--if-not-running"]


# -- Linux: XDG autostart and systemd user unit ---------------------------------------------------------------


def test_linux_enable_status_disable(home: Path, tmp_path: Path) -> None:
    assert autostart.status() == autostart.AutostartStatus(
        False, None, None, False, "no start-at-login entry"
    )
    st = autostart.enable()
    entry = home / ".config/autostart/traceagent.desktop"
    assert st.enabled and st.path == str(entry) and st.target == shim(home) and st.target_exists
    keys = templates.parse_desktop_entry(entry.read_text())
    assert templates.split_desktop_exec(keys["Exec"]) == [shim(home), "run", "--if-not-running"]
    assert keys["TryExec"] == shim(home)
    assert entry.stat().st_mode & 0o777 == 0o644
    tool = require_tool("desktop-file-validate", "desktop-file-utils")
    assert subprocess.run([tool, str(entry)], check=False, capture_output=True, text=True).stdout == ""

    st = autostart.disable()
    assert not st.enabled and st.path is None and not entry.exists()


def test_linux_headless_uses_a_systemd_user_unit(home: Path) -> None:
    autostart.enable()
    st = autostart.enable(headless=True)
    unit = home / ".config/systemd/user/traceagent.service"
    wants = home / ".config/systemd/user/default.target.wants/traceagent.service"
    assert st.enabled and st.path == str(unit) and st.target == shim(home)
    assert wants.is_symlink() and wants.resolve() == unit.resolve()
    assert not (home / ".config/autostart/traceagent.desktop").exists(), "tray and daemon must not both start"
    exec_start = templates.parse_unit(unit.read_text())["Service"]["ExecStart"]
    assert templates.split_systemd_exec(exec_start) == [shim(home), "run", "--if-not-running", "--headless"]

    # back to the tray: the unit goes away
    autostart.enable()
    assert not unit.exists() and not os.path.lexists(wants)
    assert autostart.disable().enabled is False
    assert not any(p.name.startswith("traceagent") for p in home.rglob("*") if ".local" not in p.parts)


def test_linux_installed_unit_passes_systemd_analyze(home: Path, tmp_path: Path) -> None:
    tool = working_systemd_analyze(tmp_path)
    autostart.enable(headless=True)
    result = _systemd_verify(tool, home / ".config/systemd/user/traceagent.service", tmp_path / "rt")
    assert result.returncode == 0, result.stderr


def test_linux_unit_disabled_with_systemctl_reads_as_off(home: Path) -> None:
    autostart.enable(headless=True)
    (home / ".config/systemd/user/default.target.wants/traceagent.service").unlink()
    st = autostart.status()
    assert not st.enabled and st.path and "not enabled" in st.detail


@pytest.mark.parametrize(
    ("key", "value"), [("X-GNOME-Autostart-enabled", "false"), ("Hidden", "true")], ids=["gnome", "hidden"]
)
def test_linux_entry_turned_off_by_the_user(home: Path, key: str, value: str) -> None:
    autostart.enable()
    entry = home / ".config/autostart/traceagent.desktop"
    text = entry.read_text()
    text = "\n".join(f"{key}={value}" if line.startswith(f"{key}=") else line for line in text.splitlines())
    entry.write_text(text + "\n")
    st = autostart.status()
    assert not st.enabled and st.path == str(entry) and st.target_exists
    assert autostart.enable().enabled, "an explicit enable turns it back on"


def test_xdg_dirs_come_from_the_environment(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    st = autostart.enable()
    assert st.path == str(tmp_path / "cfg/autostart/traceagent.desktop")
    assert autostart.launcher_path() == home / ".local/share/applications/traceagent.desktop"


# -- repair ----------------------------------------------------------------------------------------------------


def _point_entry_at(path: Path, program: str, kind: str, **fields: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(templates.render(kind, command=[program, "run", "--headless"], **fields))  # type: ignore[arg-type]


def test_repair_rewrites_a_moved_executable(home: Path) -> None:
    entry = home / ".config/autostart/traceagent.desktop"
    _point_entry_at(entry, str(home / "old-venv/bin/traceagent"), "autostart-desktop")
    before = autostart.status()
    assert before.enabled and not before.target_exists and "stale" in before.detail
    assert autostart.repair() is True
    after = autostart.status()
    assert after.target == shim(home) and after.target_exists and after.enabled
    keys = templates.parse_desktop_entry(entry.read_text())
    assert templates.split_desktop_exec(keys["Exec"]) == [
        shim(home),
        "run",
        "--if-not-running",
        "--headless",
    ]  # mode kept
    assert autostart.repair() is False, "a healthy entry is left alone"


def test_repair_keeps_an_entry_the_user_turned_off_off(home: Path) -> None:
    entry = home / ".config/autostart/traceagent.desktop"
    _point_entry_at(entry, "/gone/traceagent", "autostart-desktop", enabled=False)
    assert autostart.repair() is True
    st = autostart.status()
    assert st.target == shim(home) and not st.enabled


def test_repair_systemd_unit(home: Path) -> None:
    autostart.enable(headless=True)
    unit = home / ".config/systemd/user/traceagent.service"
    _point_entry_at(unit, "/gone/traceagent", "systemd")
    assert autostart.repair() is True
    st = autostart.status()
    assert st.enabled and st.target == shim(home) and st.path == str(unit)


def test_repair_without_an_entry_writes_nothing(home: Path) -> None:
    assert autostart.repair() is False
    assert not (home / ".config").exists()


def test_repair_never_raises(home: Path) -> None:
    (home / ".config/autostart/traceagent.desktop").mkdir(parents=True)  # a folder where the file should be
    assert autostart.repair() is False
    st = autostart.status()
    assert not st.enabled and "cannot be read" in st.detail


def test_repair_with_nothing_runnable_leaves_the_entry(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = home / ".config/autostart/traceagent.desktop"
    _point_entry_at(entry, "/gone/traceagent", "autostart-desktop")
    before = entry.read_text()
    monkeypatch.setattr(autostart, "executable_command", lambda **kw: ["/also/gone", "run"])
    assert autostart.repair() is False
    assert entry.read_text() == before


def test_launcher_install_repair_remove(home: Path, tmp_path: Path) -> None:
    icon = tmp_path / "icon.png"
    icon.write_bytes(b"\x89PNG fake")
    launcher = autostart.install_launcher(icon)
    assert launcher == home / ".local/share/applications/traceagent.desktop"
    assert (home / ".local/share/icons/hicolor/256x256/apps/traceagent.png").read_bytes() == icon.read_bytes()
    keys = templates.parse_desktop_entry(launcher.read_text())
    assert keys["Icon"] == "traceagent" and templates.split_desktop_exec(keys["Exec"]) == [
        shim(home),
        "run",
        "--if-not-running",
    ]

    _point_entry_at(launcher, "/gone/traceagent", "desktop")
    assert autostart.repair() is True
    assert templates.parse_desktop_entry(launcher.read_text())["TryExec"] == shim(home)

    assert set(autostart.remove_launcher()) == {launcher, autostart.icon_path()}
    assert not launcher.exists()


def test_launcher_without_icon_names_a_stock_icon(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import traceagent.icons

    monkeypatch.setattr(traceagent.icons, "app_icon_path", lambda: None)
    keys = templates.parse_desktop_entry(autostart.install_launcher().read_text())
    assert keys["Icon"] == templates.FALLBACK_ICON


# -- macOS -------------------------------------------------------------------------------------------------------


@pytest.fixture
def macos(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(autostart, "current_platform", lambda: "macos")
    return home


def test_macos_launchagent(macos: Path) -> None:
    st = autostart.enable()
    plist = macos / "Library/LaunchAgents/io.github.traceagent.plist"
    assert st.enabled and st.path == str(plist) and st.target == shim(macos) and st.target_exists
    data = plistlib.loads(plist.read_bytes())
    assert data["Label"] == "io.github.traceagent"
    assert data["ProgramArguments"] == [shim(macos), "run", "--if-not-running"]
    assert data["RunAtLoad"] is True and data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["StandardErrorPath"] == str(macos / "Library/Logs/traceagent-launchd.log")
    assert plistlib.loads(plist.read_bytes())["ProgramArguments"] == autostart.executable_command()

    assert plistlib.loads(plist.read_bytes()) == plistlib.loads(plistlib.dumps(data))
    assert autostart.enable(headless=True).target == shim(macos)
    assert plistlib.loads(plist.read_bytes())["ProgramArguments"][-1] == "--headless"
    assert not autostart.disable().enabled and not plist.exists()


def test_macos_repair_and_disabled_key(macos: Path) -> None:
    plist = macos / "Library/LaunchAgents/io.github.traceagent.plist"
    plist.parent.mkdir(parents=True)
    plist.write_text(
        templates.render("launchagent", command=["/gone/traceagent", "run"], log_path="/tmp/l.log")
    )
    assert autostart.repair() is True
    assert plistlib.loads(plist.read_bytes())["ProgramArguments"] == [shim(macos), "run", "--if-not-running"]
    data = plistlib.loads(plist.read_bytes())
    plist.write_bytes(plistlib.dumps({**data, "Disabled": True}))
    assert not autostart.status().enabled


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('disabled services = {\n\t"io.github.traceagent" => disabled\n}', True),
        ('disabled services = {\n\t"io.github.traceagent" => enabled\n}', False),
        ('disabled services = {\n\t"io.github.traceagent" => true\n}', True),
        ('disabled services = {\n\t"com.other" => disabled\n}', None),
    ],
)
def test_parse_launchctl_disabled(output: str, expected: bool | None) -> None:
    assert _entries.parse_launchctl_disabled(output, "io.github.traceagent") is expected


# -- Windows -----------------------------------------------------------------------------------------------------


class FakeRegistry:
    """HKEY_CURRENT_USER in a dict."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], object] = {}

    def get(self, key: str, name: str) -> object | None:
        return self.values.get((key, name))

    def set(self, key: str, name: str, value: str) -> None:
        self.values[(key, name)] = value

    def delete(self, key: str, name: str) -> None:
        self.values.pop((key, name), None)


@pytest.fixture
def windows(home: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    monkeypatch.setattr(autostart, "current_platform", lambda: "windows")
    registry = FakeRegistry()
    monkeypatch.setattr(_entries, "_registry", registry)
    python = make_exe(home / "AppData/venv/Scripts/python.exe")
    make_exe(home / "AppData/venv/Scripts/pythonw.exe")
    monkeypatch.setattr(sys, "executable", str(python))
    return registry


RUN = (_entries.RUN_KEY, "traceagent")
APPROVED = (_entries.APPROVED_KEY, "traceagent")


def test_windows_run_key(windows: FakeRegistry, home: Path) -> None:
    st = autostart.enable()
    pythonw = str(home / "AppData/venv/Scripts/pythonw.exe")  # no console window at login
    assert windows.values[RUN] == f'"{pythonw}" -m traceagent run --if-not-running'
    assert st.enabled and st.target == pythonw and st.target_exists
    assert st.path == "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\traceagent"
    assert not autostart.disable().enabled and RUN not in windows.values


def test_windows_prefers_a_windowed_launcher(windows: FakeRegistry, home: Path) -> None:
    launcher = make_exe(home / ".local/bin/traceagentw.exe")
    autostart.enable()
    assert windows.values[RUN] == f'"{launcher}" run --if-not-running'


@pytest.mark.parametrize("flag", [b"\x03" + bytes(11), b"\x07" + bytes(11), b"\x63\x60\x60\x60" + bytes(8)])
def test_windows_task_manager_disable_is_respected(windows: FakeRegistry, flag: bytes) -> None:
    autostart.enable()
    windows.values[APPROVED] = flag
    st = autostart.status()
    assert not st.enabled and "Task Manager" in st.detail
    windows.values[APPROVED] = b"\x02" + bytes(11)
    assert autostart.status().enabled
    windows.values[APPROVED] = flag
    assert autostart.enable().enabled and APPROVED not in windows.values, "explicit enable lifts it"
    windows.values[APPROVED] = flag
    autostart.disable()
    assert APPROVED not in windows.values


def test_windows_repair_keeps_task_manager_choice(windows: FakeRegistry, home: Path) -> None:
    windows.values[RUN] = '"C:\\gone\\pythonw.exe" -m traceagent run'
    windows.values[APPROVED] = b"\x03" + bytes(11)
    assert autostart.repair() is True
    assert str(home / "AppData/venv/Scripts/pythonw.exe") in str(windows.values[RUN])
    assert windows.values[APPROVED] == b"\x03" + bytes(11)


# -- python -m traceagent.autostart ----------------------------------------------------------------------------------


def test_main_render_status_command(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "unit.service"
    assert autostart_cli_main(["render", "systemd", "--out", str(out)]) == 0
    assert f"ExecStart={shim(home)} run --if-not-running --headless" in out.read_text()
    assert autostart_cli_main(["command", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [shim(home), "run", "--if-not-running"]
    assert autostart_cli_main(["enable"]) == 0
    capsys.readouterr()
    assert autostart_cli_main(["status", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["enabled"] and st["target"] == shim(home) and st["target_exists"]
    assert autostart_cli_main(["disable"]) == 0
    assert autostart_cli_main(["launcher", "install"]) == 0
    assert autostart_cli_main(["launcher", "remove"]) == 0
    capsys.readouterr()
    assert autostart_cli_main(["render", "launchagent"]) == 0
    assert "<key>RunAtLoad</key>" in capsys.readouterr().out


def test_module_runs_and_import_is_cheap(home: Path) -> None:
    code = (
        "import sys, traceagent.autostart; "
        "heavy = [m for m in ('pystray', 'huggingface_hub', 'PIL', 'keyring') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
    result = subprocess.run(
        [sys.executable, "-m", "traceagent.autostart", "status", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    assert json.loads(result.stdout)["enabled"] is False
