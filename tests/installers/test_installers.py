"""The installers: static checks of every script, and the Linux install/uninstall run for real.

The slow test installs the checkout into a fresh temporary HOME with ``installers/linux/install.sh``
(venv method: pip builds the wheel and installs the dependencies from PyPI, reusing pip's cache),
checks the ``traceagent`` command, the launcher and the start-at-login entry with the real validators,
then runs ``uninstall.sh`` and checks that nothing is left.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_autostart import _systemd_verify, require_tool

from traceagent import __version__, templates

REPO = Path(__file__).resolve().parents[2]
INSTALLERS = REPO / "installers"
SHELL_SCRIPTS = sorted(INSTALLERS.rglob("*.sh"))
ICON = REPO / "assets/icons/traceagent-256.png"


def test_the_expected_installers_exist() -> None:
    names = {p.relative_to(INSTALLERS).as_posix() for p in INSTALLERS.rglob("*") if p.is_file()}
    assert {
        "README.md",
        "app_entry.py",
        "lib/common.sh",
        "linux/install.sh",
        "linux/uninstall.sh",
        "macos/install.sh",
        "macos/uninstall.sh",
        "macos/build-app.sh",
        "macos/setup_py2app.py",
        "windows/install.ps1",
        "windows/uninstall.ps1",
        "windows/build.ps1",
        "windows/traceagent.spec",
    } <= names
    for script in SHELL_SCRIPTS:
        if script.parent.name != "lib":
            assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.relative_to(INSTALLERS).as_posix())
def test_shell_syntax(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_shellcheck() -> None:
    tool = require_tool("shellcheck", "shellcheck")
    result = subprocess.run(
        [tool, "-x", *(str(p.relative_to(REPO)) for p in SHELL_SCRIPTS)],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", ["app_entry.py", "macos/setup_py2app.py", "windows/traceagent.spec"])
def test_python_recipes_parse(name: str) -> None:
    ast.parse((INSTALLERS / name).read_text(), filename=name)


_PS_TOKENS = re.compile(r"<#.*?#>|@'.*?'@|@\".*?\"@|'(?:[^']|'')*'|\"(?:`.|[^\"`])*\"|#[^\n]*", re.S)


def _ps_code(text: str) -> str:
    """PowerShell source with comments and string literals blanked out (for structure checks).

    One left-to-right pass, so a quote inside a comment or a string does not confuse it.
    """
    return _PS_TOKENS.sub(lambda m: "''" if m.group(0)[0] in "'\"@" else "", text)


@pytest.mark.parametrize("script", sorted(INSTALLERS.rglob("*.ps1")), ids=lambda p: p.name)
def test_powershell_structure(script: Path) -> None:
    """No PowerShell on Debian: check what we can without it (balanced blocks, errors stop
    the script). The scripts run for real on Windows."""
    code = _ps_code(script.read_text(encoding="utf-8"))
    pairs = {"}": "{", ")": "(", "]": "["}
    stack: list[str] = []
    for n, ch in enumerate(code):
        if ch in "{([":
            stack.append(ch)
        elif ch in pairs:
            assert stack and stack[-1] == pairs[ch], f"{script.name}: unbalanced {ch!r} at offset {n}"
            stack.pop()
    assert not stack, f"{script.name}: unclosed {stack}"
    text = script.read_text(encoding="utf-8")
    assert "$ErrorActionPreference = 'Stop'" in text or '$ErrorActionPreference = "Stop"' in text


def test_templates_live_in_one_place() -> None:
    """No installer carries its own copy of an entry: they all go through traceagent.autostart."""
    markers = [
        "[Desktop Entry]",
        "ExecStart=",
        "<key>ProgramArguments</key>",
        "X-GNOME-Autostart",
        "RunAtLoad",
    ]
    for path in INSTALLERS.rglob("*"):
        if path.is_file() and path.suffix in (".sh", ".ps1", ".py", ".spec"):
            text = path.read_text()
            found = [m for m in markers if m in text]
            assert not found, f"{path.relative_to(REPO)} has its own entry template: {found}"
    for name in ("linux/install.sh", "macos/install.sh", "windows/install.ps1"):
        assert (
            "traceagent.autostart" in (INSTALLERS / name).read_text()
            or "ta_autostart" in (INSTALLERS / name).read_text()
        )


def test_readme_covers_every_os() -> None:
    readme = (INSTALLERS / "README.md").read_text()
    for needle in (
        "linux/install.sh",
        "macos/install.sh",
        "build-app.sh",
        "install.ps1",
        "build.ps1",
        "uninstall",
    ):
        assert needle in readme


# -- the Linux installer, for real -------------------------------------------------------------------------------


def _installer_env(home: Path) -> dict[str, str]:
    """A clean login-like environment with HOME replaced, keeping how this machine reaches PyPI."""
    real_home = Path.home()
    env = {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHON": sys.executable,  # any Python >= 3.10; a venv's python makes a venv from its base
        # pip's own cache outside the temp HOME, so repeated runs do not download everything again.
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or str(real_home / ".cache" / "pip"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    passthrough = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
    for var, value in os.environ.items():
        if var.startswith("PIP_") or var.upper() in passthrough:
            env.setdefault(var, value)
    user_config = real_home / ".config" / "pip" / "pip.conf"  # pip would not find it under the temp HOME
    if "PIP_CONFIG_FILE" not in env and user_config.is_file():
        env["PIP_CONFIG_FILE"] = str(user_config)
    return env


def _run(args: list[str], env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, check=False, env=env, capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


def _leftovers(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if "traceagent" in p.name)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_linux_install_and_uninstall(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _installer_env(home)
    install = _run(["bash", str(INSTALLERS / "linux/install.sh"), "--method", "venv", "--no-start"], env)
    log = install.stdout + install.stderr

    # a working command
    command = home / ".local/bin/traceagent"
    assert command.is_symlink()
    version = _run([str(command), "--version"], env).stdout
    assert version.strip() == f"traceagent {__version__}", log
    python = home / ".local/share/traceagent/venv/bin/python"
    assert _run(
        [str(python), "-c", "import traceagent, sys; print(traceagent.__file__)"], env
    ).stdout.startswith(str(home)), "the installed package must not be the checkout"

    # the launcher, with the icon
    launcher = home / ".local/share/applications/traceagent.desktop"
    keys = templates.parse_desktop_entry(launcher.read_text())
    assert templates.split_desktop_exec(keys["Exec"]) == [str(command), "run", "--if-not-running"]
    icon = home / ".local/share/icons/hicolor/256x256/apps/traceagent.png"
    assert keys["Icon"] == "traceagent" and icon.is_file()
    if ICON.is_file():
        assert icon.read_bytes() == ICON.read_bytes()

    # the start-at-login entry, read back by the installed code
    entry = home / ".config/autostart/traceagent.desktop"
    status = json.loads(_run([str(python), "-m", "traceagent.autostart", "status", "--json"], env).stdout)
    assert status == {
        "enabled": True,
        "path": str(entry),
        "target": str(command),
        "target_exists": True,
        "detail": status["detail"],
    }
    tool = require_tool("desktop-file-validate", "desktop-file-utils")
    _run([tool, str(launcher), str(entry)], env)

    # headless through the installed CLI: the unit replaces the XDG entry and passes systemd's checks
    _run([str(command), "autostart", "enable", "--headless"], env)
    unit = home / ".config/systemd/user/traceagent.service"
    assert unit.is_file() and not entry.exists()
    analyze = shutil.which("systemd-analyze")  # its own health is checked in test_autostart.py
    if analyze:
        result = _systemd_verify(analyze, unit, tmp_path / "rt")
        assert result.returncode == 0, result.stderr
    elif os.environ.get("CI"):
        pytest.fail("systemd-analyze not found: apt-get install -y --no-install-recommends systemd")

    _run(["bash", str(INSTALLERS / "linux/uninstall.sh")], env)
    assert _leftovers(home) == []
    assert not command.exists() and not command.is_symlink()


def test_linux_uninstall_cleans_up_after_a_broken_install(tmp_path: Path) -> None:
    """The venv is gone already: the entries are still removed, from their known paths."""
    home = tmp_path / "home"
    home.mkdir()
    env = _installer_env(home)
    dev = {**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    (home / ".local/bin").mkdir(parents=True)
    venv = home / ".local/share/traceagent/venv"
    (home / ".local/bin/traceagent").symlink_to(venv / "bin/traceagent")
    unit = home / ".config/systemd/user/traceagent.service"
    _run([sys.executable, "-m", "traceagent.autostart", "render", "systemd", "--out", str(unit)], dev)
    _run([sys.executable, "-m", "traceagent.autostart", "enable"], dev)
    _run([sys.executable, "-m", "traceagent.autostart", "launcher", "install"], dev)
    (home / ".local/share/traceagent").mkdir(parents=True, exist_ok=True)
    (home / ".local/share/traceagent/installer.env").write_text(
        f"METHOD=venv\nPY={venv}/bin/python\nBIN={home}/.local/bin/traceagent\nVENV={venv}\n"
    )
    assert _leftovers(home)
    _run(["bash", str(INSTALLERS / "linux/uninstall.sh")], env)
    assert _leftovers(home) == []
