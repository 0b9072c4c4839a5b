"""The start-at-login entries as files: golden copies, quoting round trips, and the real validators.

Set ``TRACEAGENT_UPDATE_GOLDEN=1`` to rewrite ``tests/golden/`` after an intended template change
(then review the diff). The validators are the real tools: ``desktop-file-validate`` (Debian
``desktop-file-utils``), ``systemd-analyze verify`` (Debian ``systemd``) and ``plistlib``; without
them the tests skip locally and fail under ``CI``.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from traceagent import templates
from traceagent.templates import MACOS_LABEL, render

GOLDEN = Path(__file__).parents[1] / "golden"

HOME_CMD = ["/home/ada/.local/bin/traceagent", "run"]
# Every character that needs quoting somewhere: space, quotes, %, $, backtick, backslash, shell metas.
TRICKY_DIR = '/home/Ada Lovelace/it\'s "100%" $HOME `x` a\\b;&|<>~*?#()'
TRICKY_CMD = [f"{TRICKY_DIR}/bin/traceagent", "run", "--tag=a b", "50%", "$X", ""]
WIN_CMD = [
    r"C:\Users\Ada Lovelace\AppData\Local\traceagent\venv\Scripts\pythonw.exe",
    "-m",
    "traceagent",
    "run",
]
WIN_TRICKY = [r"C:\Program Files\traceagent\traceagentw.exe", "run", 'say "hi"', "trail\\", "a b\\", ""]

#: golden file -> how to render it
CASES: dict[str, dict[str, object]] = {
    "launcher.desktop": {"kind": "desktop", "command": HOME_CMD},
    "launcher-tricky.desktop": {
        "kind": "desktop",
        "command": TRICKY_CMD,
        "icon": "/opt/icons/trace agent.png",
    },
    "autostart.desktop": {"kind": "autostart-desktop", "command": HOME_CMD},
    "autostart-user-disabled.desktop": {"kind": "autostart-desktop", "command": HOME_CMD, "enabled": False},
    "traceagent.service": {"kind": "systemd", "command": [*HOME_CMD, "--headless"]},
    "traceagent-tricky.service": {
        "kind": "systemd",
        "command": ["/opt/Ada Lovelace/100%/$x;y/traceagent", "run", "--headless", 'it\'s "q" a\\b', "$HOME"],
    },
    "io.github.traceagent.plist": {
        "kind": "launchagent",
        "command": ["/Users/ada/.local/bin/traceagent", "run"],
        "log_path": "/Users/ada/Library/Logs/traceagent-launchd.log",
    },
    "io.github.traceagent-tricky.plist": {
        "kind": "launchagent",
        "command": [
            "/Users/Ada & <Co>/Application Support/traceagent/venv/bin/traceagent",
            "run",
            "--headless",
        ],
        "log_path": "/Users/Ada & <Co>/Library/Logs/traceagent-launchd.log",
    },
    "windows-run.txt": {"kind": "windows-run", "command": WIN_CMD},
    "windows-run-tricky.txt": {"kind": "windows-run", "command": WIN_TRICKY},
}


def _render_case(name: str) -> str:
    fields = dict(CASES[name])
    kind = str(fields.pop("kind"))
    return render(kind, **fields)  # type: ignore[arg-type]


def require_tool(name: str, package: str) -> str:
    """The tool's path; skip when missing, but fail under CI (a skipped validation is not a pass)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found: apt-get install -y --no-install-recommends {package}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# -- golden files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    text = _render_case(name)
    path = GOLDEN / name
    if os.environ.get("TRACEAGENT_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.read_text(encoding="utf-8") == text, f"{name} changed; TRACEAGENT_UPDATE_GOLDEN=1 to accept"


def test_every_kind_has_a_golden_file() -> None:
    assert {str(c["kind"]) for c in CASES.values()} == set(templates.KINDS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_reads_back_to_its_command(name: str) -> None:
    case = CASES[name]
    text = (GOLDEN / name).read_text(encoding="utf-8")
    kind = case["kind"]
    if kind in ("desktop", "autostart-desktop"):
        got = templates.split_desktop_exec(templates.parse_desktop_entry(text)["Exec"])
    elif kind == "systemd":
        got = templates.split_systemd_exec(templates.parse_unit(text)["Service"]["ExecStart"])
    elif kind == "launchagent":
        got = plistlib.loads(text.encode())["ProgramArguments"]
    else:
        got = templates.split_windows_cmdline(text)
    assert got == case["command"]


def test_autostart_entry_user_switches() -> None:
    on = templates.parse_desktop_entry(render("autostart-desktop", command=HOME_CMD))
    off = templates.parse_desktop_entry(render("autostart-desktop", command=HOME_CMD, enabled=False))
    assert (on["X-GNOME-Autostart-enabled"], on["Hidden"]) == ("true", "false")
    assert (off["X-GNOME-Autostart-enabled"], off["Hidden"]) == ("false", "true")


def test_unit_restarts_on_failure_only_and_runs_headless() -> None:
    unit = templates.parse_unit(render("systemd", command=[*HOME_CMD, "--headless"]))
    assert unit["Service"]["Restart"] == "on-failure"
    assert unit["Service"]["ExecStart"].endswith("run --headless")
    assert unit["Install"]["WantedBy"] == "default.target"


def test_windows_program_is_always_quoted() -> None:
    assert render("windows-run", command=[r"C:\x\traceagentw.exe", "run"]) == r'"C:\x\traceagentw.exe" run'


@pytest.mark.parametrize(
    ("kind", "command"),
    [
        ("desktop", ["/opt/a=b/traceagent", "run"]),  # '=' is not allowed in the program of Exec
        ("systemd", ["traceagent", "run"]),  # systemd wants an absolute path
        ("systemd", ["/opt/it's/traceagent", "run"]),  # systemd rejects quotes in the program path
        ("desktop", ["/bin/traceagent", "line\nbreak"]),
        ("windows-run", ['C:\\a"b\\x.exe']),
        ("launchagent", []),
        ("nonsense", ["/bin/true"]),
    ],
)
def test_unrepresentable_commands_are_refused(kind: str, command: list[str]) -> None:
    with pytest.raises(ValueError):
        render(kind, command=command, log_path="/tmp/x.log")


# -- quoting round trips ------------------------------------------------------------------------------------

_arg = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=12)
_segment = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="/\x7f"), max_size=8
)


@settings(max_examples=300, deadline=None)
@given(_segment, st.lists(_arg, max_size=5))
def test_desktop_exec_round_trip(seg: str, args: list[str]) -> None:
    argv = [f"/opt/{seg.replace('=', '')}/traceagent", *args]
    assert templates.split_desktop_exec(templates.desktop_exec(argv)) == argv


@settings(max_examples=300, deadline=None)
@given(_segment, st.lists(_arg, max_size=5))
def test_systemd_exec_round_trip(seg: str, args: list[str]) -> None:
    program = "/opt/" + "".join(ch for ch in seg if ch not in "'\"\\") + "/traceagent"
    argv = [program, *args]
    assert templates.split_systemd_exec(templates.systemd_exec(argv)) == argv


@settings(max_examples=300, deadline=None)
@given(_segment, st.lists(_arg, max_size=5))
def test_windows_cmdline_round_trip(seg: str, args: list[str]) -> None:
    argv = ["C:\\" + seg.replace('"', "") + "\\traceagentw.exe", *args]
    assert templates.split_windows_cmdline(templates.windows_cmdline(argv)) == argv


@settings(max_examples=40, deadline=None)
@given(_segment, st.lists(_arg, max_size=4))
def test_desktop_exec_means_the_same_to_a_real_shell(seg: str, args: list[str]) -> None:
    """GLib parses Exec (after the string escapes and %%) with g_shell_parse_argv: sh quoting rules."""
    argv = [f"/opt/{seg.replace('=', '')}/traceagent", *args]
    value = templates.desktop_exec(argv)
    line = templates._desktop_unstring(value).replace("%%", "%")
    out = subprocess.run(["sh", "-c", f"printf '%s\\0' {line}"], capture_output=True, check=True).stdout
    assert out.decode().split("\0")[:-1] == argv


# -- the real validators ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n in CASES if n.endswith(".desktop")))
def test_desktop_file_validate(name: str, tmp_path: Path) -> None:
    tool = require_tool("desktop-file-validate", "desktop-file-utils")
    path = tmp_path / "traceagent.desktop"
    path.write_text(_render_case(name), encoding="utf-8")
    result = subprocess.run([tool, str(path)], check=False, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def _systemd_verify(tool: str, unit: Path, runtime: Path) -> subprocess.CompletedProcess[str]:
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        [tool, "--user", "verify", str(unit)], check=False, capture_output=True, text=True, env=env
    )


def working_systemd_analyze(tmp_path: Path) -> str:
    """``systemd-analyze``, checked to work here: a good unit passes and a broken one fails."""
    tool = require_tool("systemd-analyze", "systemd")
    probe = tmp_path / "probe"
    probe.mkdir()
    good = probe / "good.service"
    good.write_text("[Service]\nExecStart=/bin/true\n")
    bad = probe / "bad.service"
    bad.write_text("[Service]\nExecStart=relative/true\n")
    ok = _systemd_verify(tool, good, tmp_path / "rt")
    broken = _systemd_verify(tool, bad, tmp_path / "rt")
    if ok.returncode != 0 or broken.returncode == 0:
        message = f"systemd-analyze --user verify does not work here: {ok.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return tool


@pytest.fixture
def systemd_analyze(tmp_path: Path) -> str:
    return working_systemd_analyze(tmp_path)


@pytest.mark.parametrize("tricky", [False, True])
def test_systemd_analyze_verify(systemd_analyze: str, tmp_path: Path, tricky: bool) -> None:
    # verify checks that the program exists and is executable, so render one that does.
    folder = tmp_path / ("Ada Lovelace/100%/$x;y" if tricky else "bin")
    folder.mkdir(parents=True)
    program = folder / "traceagent"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    extra = ['it\'s "q" a\\b', "$HOME", "50%"] if tricky else []
    unit = tmp_path / "traceagent.service"
    unit.write_text(render("systemd", command=[str(program), "run", "--headless", *extra]))
    result = _systemd_verify(systemd_analyze, unit, tmp_path / "rt")
    assert result.returncode == 0, result.stderr
    assert "traceagent.service" not in result.stderr, result.stderr  # no warnings about our unit


@pytest.mark.parametrize("name", sorted(n for n in CASES if n.endswith(".plist")))
def test_plist_round_trip(name: str) -> None:
    case = CASES[name]
    text = _render_case(name)
    data = plistlib.loads(text.encode("utf-8"))
    assert data == {
        "Label": MACOS_LABEL,
        "ProgramArguments": case["command"],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Interactive",
        "EnvironmentVariables": {"LC_CTYPE": "UTF-8", "PYTHONUTF8": "1"},
        "StandardErrorPath": case["log_path"],
    }
    assert plistlib.loads(plistlib.dumps(data)) == data
    assert plistlib.loads(plistlib.dumps(data, fmt=plistlib.FMT_BINARY)) == data
