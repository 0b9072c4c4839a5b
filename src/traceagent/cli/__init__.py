"""``traceagent``: the command line, a thin view over the engine and the running daemon.

This module holds the parser and the command table; the commands are in :mod:`.daemon` (the
sync and the daemon) and :mod:`.setup` (account and machine set-up), what they share in
:mod:`.common`, the doctor's checks in :mod:`.doctor`. They ask the daemon only through
:class:`traceagent.app.client.DaemonClient`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence

from traceagent import __version__
from traceagent.cli import daemon, setup
from traceagent.cli.common import access_line
from traceagent.errors import UserError

__all__ = ["COMMANDS", "build_parser", "main"]

#: Every command and its handler (``args`` in, exit code out).
COMMANDS: Mapping[str, Callable[[argparse.Namespace], int]] = {
    "run": daemon.cmd_run,
    "sync": daemon.cmd_sync,
    "status": daemon.cmd_status,
    "agents": daemon.cmd_agents,
    "open-last": daemon.cmd_open_last,
    "pause": daemon.cmd_pause,
    "resume": daemon.cmd_resume,
    "login": setup.cmd_login,
    "logout": setup.cmd_logout,
    "doctor": setup.cmd_doctor,
    "autostart": setup.cmd_autostart,
    "redact": setup.cmd_redact,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    p = argparse.ArgumentParser(
        prog="traceagent",
        description="Mirror your coding agents' session traces to a Hugging Face bucket.",
    )
    p.add_argument("--version", action="version", version=f"traceagent {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="the daemon: tray icon when a desktop is available, else headless")
    run.add_argument("--headless", action="store_true", help="never show a tray icon")
    run.add_argument(
        "--if-not-running",
        action="store_true",
        help="exit 0 quietly when traceagent already runs (start at login)",
    )
    s = sub.add_parser("sync", help="one catch-up pass in the foreground")
    s.add_argument("--dry-run", action="store_true", help="list what would be uploaded, upload nothing")
    s.add_argument(
        "--verify",
        action="store_true",
        help="also list the destination and send again every file missing there or of another size",
    )
    st = sub.add_parser("status", help="destination, state, counts, last upload, last trace")
    st.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    sub.add_parser("agents", help="detected agents, their session folders and session counts")
    ol = sub.add_parser("open-last", help="open the viewer page of the most recently updated trace")
    ol.add_argument("--print", action="store_true", help="print the link instead of opening a browser")
    pa = sub.add_parser("pause", help="pause uploads of the running daemon")
    pa.add_argument(
        "--for", dest="duration", metavar="DURATION", help="e.g. 30m, 1h, 4h (default: until resumed)"
    )
    sub.add_parser("resume", help="resume uploads")
    li = sub.add_parser("login", help="store a Hugging Face token (write access) for traceagent")
    li.add_argument("--token-stdin", action="store_true", help="read the token from standard input")
    sub.add_parser("logout", help="remove traceagent's stored token")
    sub.add_parser("doctor", help="check token, bucket privacy and access, keyring, tray and watch limits")
    au = sub.add_parser("autostart", help="start traceagent at login")
    au.add_argument("action", choices=["enable", "disable", "status"])
    au.add_argument("--headless", action="store_true", help="with enable: start without a tray icon")
    rd = sub.add_parser("redact", help="preview what redaction would hide in a file (nothing is changed)")
    rd.add_argument("file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``traceagent`` command."""
    import multiprocessing

    multiprocessing.freeze_support()  # a frozen (PyInstaller) app is also the upload worker
    args = build_parser().parse_args(argv)
    handler = COMMANDS[args.command or "run"]
    try:
        return int(handler(args))
    except UserError as e:
        print(f"traceagent: {e.message}", file=sys.stderr)
        return 1
    except PermissionError as e:
        # A root-owned, read-only or immutable file or folder (say after `sudo traceagent run`):
        # one line with the path and the command that fixes it, never a traceback.
        print(f"traceagent: {access_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `traceagent status | head`: the reader left; not an error worth a traceback.
        sys.stderr.close()
        return 0
