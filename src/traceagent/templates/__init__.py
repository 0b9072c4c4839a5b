"""The start-at-login and launcher entries, rendered from the one set of templates in this folder.

Every file traceagent writes outside its own folders comes from here: the Linux app launcher and XDG
autostart ``.desktop`` entries, the systemd ``--user`` unit, the macOS LaunchAgent plist and the Windows
``Run``-key command line. ``traceagent.autostart`` and the installers (through
``python -m traceagent.autostart render``) both call :func:`render`, so there is never a second copy.

Each format has its own quoting rules for a command line, and a path with a space, ``%``, ``$`` or a
quote in it is where start-at-login entries usually break. The quoting functions here have exact
inverses (``split_*``), which :mod:`traceagent.autostart` uses to read an entry back and check where it
points.

Example::

    >>> print(render("windows-run", command=[r"C:\\Apps\\traceagentw.exe", "run"]))
    "C:\\Apps\\traceagentw.exe" run
"""

from __future__ import annotations

import re
import string
import subprocess
from collections.abc import Sequence
from importlib import resources
from xml.sax.saxutils import escape as _xml_escape

__all__ = [
    "DEFAULT_ICON",
    "FALLBACK_ICON",
    "KINDS",
    "MACOS_LABEL",
    "desktop_exec",
    "parse_desktop_entry",
    "parse_unit",
    "render",
    "split_desktop_exec",
    "split_systemd_exec",
    "split_windows_cmdline",
    "systemd_exec",
    "template_text",
    "windows_cmdline",
]

#: Icon name of the launcher entry; the installers put ``traceagent.png`` in the hicolor theme.
DEFAULT_ICON = "traceagent"
#: A freedesktop standard icon name every theme has, used when traceagent's own icon is not installed.
FALLBACK_ICON = "network-transmit-receive"
#: launchd label and file name (``~/Library/LaunchAgents/<label>.plist``); also the .app bundle id.
MACOS_LABEL = "io.github.traceagent"

#: kind -> template file in this package.
KINDS: dict[str, str] = {
    "desktop": "launcher.desktop.in",
    "autostart-desktop": "autostart.desktop.in",
    "systemd": "traceagent.service.in",
    "launchagent": "launchagent.plist.in",
    "windows-run": "windows-run.txt.in",
}

# Characters that force an argument of a desktop-entry Exec key into double quotes (desktop entry spec,
# "The Exec key"; "=" and "%" are added: "=" is not allowed bare in the program, "%" starts a field code).
_DESKTOP_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`=%")
_SYSTEMD_SPECIAL = frozenset(" \t\n\"'\\;")


def _check_no_controls(arg: str, *, allow: str = "") -> None:
    for ch in arg:
        if (ord(ch) < 32 or ord(ch) == 127) and ch not in allow:
            raise ValueError(f"control character {ch!r} in command argument {arg!r}")


# -- desktop entries ----------------------------------------------------------------------------------


def _desktop_string(value: str) -> str:
    """Escape a value of type *string* (``\\\\``, ``\\n``, ``\\t``, ``\\r``, leading ``\\s``)."""
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if out.startswith(" "):
        out = "\\s" + out[1:]
    return out


def _desktop_unstring(value: str) -> str:
    """Inverse of :func:`_desktop_string`."""
    table = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in table:
            out.append(table[value[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def desktop_exec(argv: Sequence[str]) -> str:
    """Quote ``argv`` as the value of a desktop entry's ``Exec`` key, as written in the file.

    Arguments with reserved characters are double-quoted with ``"`` ``\\`` ``$`` and backtick escaped, a
    literal ``%`` becomes ``%%``, and then the string-value escaping doubles every backslash once more.

    >>> desktop_exec(["/home/Ada L/bin/traceagent", "run"])
    '"/home/Ada L/bin/traceagent" run'
    """
    if not argv:
        raise ValueError("empty command")
    if "=" in argv[0]:
        raise ValueError(f"a desktop entry cannot run a program whose path contains '=': {argv[0]!r}")
    parts: list[str] = []
    for arg in argv:
        _check_no_controls(arg)
        word = arg.replace("%", "%%")
        if word == "" or any(ch in _DESKTOP_RESERVED for ch in word):
            word = '"' + re.sub(r'(["`$\\])', r"\\\1", word) + '"'
        parts.append(word)
    return _desktop_string(" ".join(parts))


def split_desktop_exec(value: str) -> list[str]:
    """Split an ``Exec`` value (as written in the file) back into argv; field codes (``%U``...) are dropped."""
    text = _desktop_unstring(value)
    args: list[str] = []
    cur: list[str] = []
    in_arg = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            in_arg = True
            i += 1
            while i < len(text) and text[i] != '"':
                if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '"`$\\':
                    i += 1
                cur.append(text[i])
                i += 1
            i += 1  # closing quote
            continue
        if ch == " ":
            if in_arg:
                args.append("".join(cur))
                cur, in_arg = [], False
            i += 1
            continue
        cur.append(ch)
        in_arg = True
        i += 1
    if in_arg:
        args.append("".join(cur))
    result: list[str] = []
    for arg in args:
        if re.fullmatch(r"%[fFuUdDnNickvm]", arg):
            continue
        result.append(arg.replace("%%", "%"))
    return result


def parse_desktop_entry(text: str) -> dict[str, str]:
    """The keys of the ``[Desktop Entry]`` group, values as written (not unescaped)."""
    entries: dict[str, str] = {}
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
            continue
        if group == "Desktop Entry" and "=" in line:
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), value.strip())
    return entries


# -- systemd ------------------------------------------------------------------------------------------


def systemd_exec(argv: Sequence[str]) -> str:
    """Quote ``argv`` for ``ExecStart=``: ``%`` doubled (``$`` too in arguments), special words double-quoted.

    >>> systemd_exec(["/opt/trace agent/bin/traceagent", "run", "--headless"])
    '"/opt/trace agent/bin/traceagent" run --headless'
    """
    if not argv:
        raise ValueError("empty command")
    if not argv[0].startswith("/"):
        raise ValueError(f"systemd needs an absolute program path, got {argv[0]!r}")
    if any(ch in "'\"\\" for ch in argv[0]):
        # systemd refuses these in the program path however they are quoted ("special characters").
        raise ValueError(f"systemd cannot run a program whose path contains quotes or '\\': {argv[0]!r}")
    parts: list[str] = []
    for index, arg in enumerate(argv):
        _check_no_controls(arg)
        word = arg.replace("%", "%%")
        if index:  # $VAR is expanded in arguments only, not in the program path
            word = word.replace("$", "$$")
        if word == "" or any(ch in _SYSTEMD_SPECIAL for ch in word):
            word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(word)
    return " ".join(parts)


def split_systemd_exec(value: str) -> list[str]:
    """Inverse of :func:`systemd_exec` (for the quoting it writes: double quotes, ``\\\\``, ``\\"``)."""
    args: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == " ":
            i += 1
            continue
        cur: list[str] = []
        if value[i] == '"':
            i += 1
            while i < len(value) and value[i] != '"':
                if value[i] == "\\" and i + 1 < len(value):
                    i += 1
                cur.append(value[i])
                i += 1
            i += 1
        else:
            while i < len(value) and value[i] != " ":
                cur.append(value[i])
                i += 1
        word = "".join(cur).replace("%%", "%")
        args.append(word.replace("$$", "$") if args else word)
    return args


def parse_unit(text: str) -> dict[str, dict[str, str]]:
    """Sections and keys of a systemd unit file (last assignment wins, as in systemd)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return sections


# -- Windows ------------------------------------------------------------------------------------------


def windows_cmdline(argv: Sequence[str]) -> str:
    """The ``Run``-key command line: the program always in quotes, arguments by the MSVC rules.

    An unquoted program path with a space makes Windows try ``C:\\Program.exe`` first, so it is always quoted.
    """
    if not argv:
        raise ValueError("empty command")
    program = argv[0]
    if '"' in program:
        raise ValueError(f"a Windows program path cannot contain '\"': {program!r}")
    for arg in argv:
        _check_no_controls(arg)
    rest = subprocess.list2cmdline(list(argv[1:]))
    return f'"{program}"' + (" " + rest if rest else "")


def split_windows_cmdline(value: str) -> list[str]:
    """Split a command line the way ``CommandLineToArgvW`` and the MSVC runtime do."""
    args: list[str] = []
    i, n = 0, len(value)
    # The program name: quotes toggle, backslashes are literal.
    prog: list[str] = []
    quoted = False
    while i < n and (quoted or value[i] not in " \t"):
        if value[i] == '"':
            quoted = not quoted
        else:
            prog.append(value[i])
        i += 1
    args.append("".join(prog))
    while True:
        while i < n and value[i] in " \t":
            i += 1
        if i >= n:
            return args
        cur: list[str] = []
        quoted = False
        while i < n and (quoted or value[i] not in " \t"):
            if value[i] == "\\":
                j = i
                while j < n and value[j] == "\\":
                    j += 1
                count = j - i
                if j < n and value[j] == '"':
                    cur.append("\\" * (count // 2))
                    if count % 2:
                        cur.append('"')
                        j += 1
                    i = j
                else:
                    cur.append("\\" * count)
                    i = j
                continue
            if value[i] == '"':
                if quoted and i + 1 < n and value[i + 1] == '"':
                    cur.append('"')
                    i += 2
                    continue
                quoted = not quoted
                i += 1
                continue
            cur.append(value[i])
            i += 1
        args.append("".join(cur))


# -- rendering ----------------------------------------------------------------------------------------


def _plist_string(value: str) -> str:
    _check_no_controls(value, allow="\t\n")
    return _xml_escape(value)


def _fields(
    kind: str, command: Sequence[str], *, icon: str, label: str, log_path: str | None, enabled: bool
) -> dict[str, str]:
    if kind in ("desktop", "autostart-desktop"):
        _check_no_controls(icon)
        return {
            "exec": desktop_exec(command),
            "try_exec": _desktop_string(command[0]),
            "icon": _desktop_string(icon),
            "gnome_autostart_enabled": "true" if enabled else "false",
            "hidden": "false" if enabled else "true",
        }
    if kind == "systemd":
        return {"exec_start": systemd_exec(command)}
    if kind == "launchagent":
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", label):
            raise ValueError(f"not a reverse-DNS launchd label: {label!r}")
        if not log_path or not log_path.startswith("/"):
            raise ValueError(f"launchd needs an absolute log path, got {log_path!r}")
        if not command:
            raise ValueError("empty command")
        args = "\n".join(f"\t\t<string>{_plist_string(arg)}</string>" for arg in command)
        return {"label": label, "program_arguments": args, "log_path": _plist_string(log_path)}
    if kind == "windows-run":
        return {"command_line": windows_cmdline(command)}
    raise ValueError(f"unknown entry kind {kind!r}; one of {', '.join(KINDS)}")


def template_text(kind: str) -> str:
    """The raw template of ``kind`` (with ``${field}`` placeholders)."""
    if kind not in KINDS:
        raise ValueError(f"unknown entry kind {kind!r}; one of {', '.join(KINDS)}")
    return resources.files(__name__).joinpath(KINDS[kind]).read_text(encoding="utf-8")


def render(
    kind: str,
    *,
    command: Sequence[str],
    icon: str = DEFAULT_ICON,
    label: str = MACOS_LABEL,
    log_path: str | None = None,
    enabled: bool = True,
) -> str:
    """Render the entry ``kind`` for ``command`` (the full argv, program first, e.g. ``[".../traceagent", "run"]``).

    Args:
        kind: one of :data:`KINDS`: ``desktop`` (app launcher), ``autostart-desktop`` (XDG autostart),
            ``systemd`` (user unit), ``launchagent`` (macOS plist), ``windows-run`` (``Run`` value).
        command: program and arguments; the program should be an absolute path.
        icon: icon name or absolute path (desktop entries only).
        label: launchd label (``launchagent`` only).
        log_path: where launchd sends the program's stderr (``launchagent`` only, required there; absolute).
        enabled: ``False`` keeps an XDG autostart entry the user turned off turned off
            (``X-GNOME-Autostart-enabled=false``, ``Hidden=true``).

    Returns:
        The file content (for ``windows-run``: the one-line registry value, no newline).

    Raises:
        ValueError: unknown kind, or a command the format cannot express (control characters, ``=`` in a
            desktop-entry program path, a relative program for systemd).

    Example::

        >>> "ExecStart=/usr/bin/traceagent run --headless" in render(
        ...     "systemd", command=["/usr/bin/traceagent", "run", "--headless"])
        True
    """
    command = list(command)
    if not command:
        raise ValueError("empty command")
    fields = _fields(kind, command, icon=icon, label=label, log_path=log_path, enabled=enabled)
    text = string.Template(template_text(kind)).substitute(fields)
    return text.rstrip("\n") if kind == "windows-run" else text
