"""``python -m traceagent.autostart``: enable, disable, inspect and render start-at-login entries.

The installers call this through the installed interpreter, so they work before (and without) the
``traceagent autostart`` subcommand, and they render entries from the one set of templates.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from traceagent import autostart, templates
from traceagent.autostart import AutostartStatus
from traceagent.autostart._entries import write_file
from traceagent.entrypoints import AUTOSTART


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
        prog=f"python -m {AUTOSTART}",
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
            _print_status(autostart.enable(headless=args.headless), False)
        elif args.action == "disable":
            _print_status(autostart.disable(), False)
        elif args.action == "status":
            _print_status(autostart.status(), args.json)
        elif args.action == "repair":
            print("repaired" if autostart.repair() else "nothing to repair")
        elif args.action == "render":
            text = autostart.render(args.kind, **({"headless": True} if args.headless else {}))
            if args.out:
                write_file(args.out, text)
            else:
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
        elif args.action == "command":
            command = autostart.executable_command(headless=args.headless)
            windows = autostart.current_platform() == "windows"
            shown = subprocess.list2cmdline(command) if windows else shlex.join(command)
            print(json.dumps(command) if args.json else shown)
        elif args.launcher_action == "install":
            print(autostart.install_launcher(args.icon))
        else:
            for path in autostart.remove_launcher():
                print(f"removed {path}")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
