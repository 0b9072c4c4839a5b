"""``traceagent``: the command line, a thin view over the engine and the running daemon."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import re
import sys
import time
import webbrowser
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traceagent.app.daemon import FrontEnd

from traceagent import __version__
from traceagent.errors import UserError

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNITS = {"": 60.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``30m``, ``1h``, ``90s``, ``2d`` (a bare number means minutes) to seconds."""
    m = _DURATION.match(text)
    if not m:
        raise UserError(f"Cannot read the duration {text!r}: use e.g. 30m, 1h, 4h or 1d.")
    seconds = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if seconds <= 0:
        raise UserError("The pause must be longer than zero.")
    return seconds


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    delta = max(0.0, time.time() - ts)
    if delta < 60:
        return "just now"
    if delta < 3600:
        return f"{int(delta // 60)} min ago"
    if delta < 86400:
        return f"{int(delta // 3600)} h ago"
    return f"{int(delta // 86400)} d ago"


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%a %H:%M")


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
    command = args.command or "run"
    name = f"cmd_{command.replace('-', '_')}"
    if name in globals():
        handler = globals()[name]
    else:  # account and machine set-up: login, logout, doctor, autostart, redact
        from traceagent import cli_setup

        handler = getattr(cli_setup, name)
    try:
        return int(handler(args))
    except UserError as e:
        print(f"traceagent: {e.message}", file=sys.stderr)
        return 1
    except PermissionError as e:
        # A root-owned, read-only or immutable file or folder (say after `sudo traceagent run`):
        # one line with the path and the command that fixes it, never a traceback.
        print(f"traceagent: {_access_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `traceagent status | head`: the reader left; not an error worth a traceback.
        sys.stderr.close()
        return 0


def _access_line(e: PermissionError, default: Any = None) -> str:
    """One line for ``e``: its file (else ``default``) and the command that fixes it."""
    from pathlib import Path

    from traceagent.paths import access_problem, app_paths

    filename = e.filename or default
    if not filename:
        return f"{e.strerror or e}: check the permissions of traceagent's folders."
    try:
        paths = app_paths()
    except Exception:  # the folders cannot be resolved: name the file alone
        paths = None
    return access_problem(Path(filename), paths)


# -- commands ------------------------------------------------------------------------------------


def load_ctx() -> Any:
    """Settings, paths and environment for this invocation."""
    from traceagent.app.wiring import load_context

    return load_context()


def ask_daemon(ctx: Any, cmd: str, **kw: Any) -> dict[str, Any] | None:
    """Ask the running daemon; None when it is not running."""
    from traceagent.app import control

    pid = control.running_pid(ctx.paths)
    if pid is None:
        return None
    deadline = time.monotonic() + 10
    while True:
        try:
            reply = control.request(ctx.paths, cmd, **kw)
            break
        except PermissionError as e:
            # A daemon started with sudo: its control key is root's.
            raise UserError(
                f"traceagent is running (pid {pid}) as another user: stop it (sudo kill {pid}), then "
                f"{_access_line(e, ctx.paths.control_address)}"
            ) from None
        except (ConnectionRefusedError, FileNotFoundError) as e:
            # The daemon holds its lock a moment before its channel opens (start-up).
            if time.monotonic() > deadline or control.running_pid(ctx.paths) is None:
                raise UserError(f"traceagent is running but did not answer ({e}).") from None
            time.sleep(0.1)
        except (OSError, EOFError) as e:
            raise UserError(f"traceagent is running but did not answer ({e}).") from None
    if "error" in reply:
        raise UserError(str(reply["error"]))
    return reply


def _tray_front_end() -> FrontEnd:
    """The tray, imported only when a desktop daemon shows it (pystray is heavy)."""
    from traceagent.tray import icon as tray

    return tray


def cmd_run(args: argparse.Namespace) -> int:
    """``traceagent run [--headless] [--if-not-running]``."""
    from traceagent.app.daemon import run_daemon
    from traceagent.errors import AlreadyRunningError
    from traceagent.logsetup import setup_logging

    ctx = load_ctx()
    ctx.paths.ensure()
    setup_logging(ctx.paths.log_file, ctx.settings.log_level, stderr=sys.stderr.isatty() or args.headless)
    try:
        return run_daemon(ctx, headless=bool(getattr(args, "headless", False)), front_end=_tray_front_end)
    except AlreadyRunningError as e:
        if getattr(args, "if_not_running", False):
            log.info("%s Nothing to do.", e.message)
            return 0
        raise


def cmd_sync(args: argparse.Namespace) -> int:
    """``traceagent sync [--dry-run] [--verify]``: one pass in the foreground (or via the daemon)."""
    from traceagent.app.control import DaemonLock
    from traceagent.app.desktop import build_engine
    from traceagent.errors import AlreadyRunningError
    from traceagent.logsetup import setup_logging
    from traceagent.sync.engine import STATE_ERRORS

    ctx = load_ctx()
    ctx.paths.ensure()
    setup_logging(ctx.paths.log_file, ctx.settings.log_level, stderr=False)
    verify = bool(getattr(args, "verify", False))
    if args.dry_run:
        if verify:
            raise UserError("--dry-run and --verify cannot be combined.")
        return _dry_run(ctx)
    lock = DaemonLock(ctx.paths.lock_file)
    try:
        lock.acquire()
    except AlreadyRunningError:
        return _sync_via_daemon(ctx, verify=verify)
    except PermissionError:
        raise  # main() names the path and the command that fixes it
    except OSError as e:
        raise _state_error(e, ctx) from None
    engine = None
    try:
        engine, _ = build_engine(ctx)
        checked = engine.verify() if verify else None
        if checked is not None and checked.error:
            raise UserError(f"Could not verify the destination: {checked.error}")
        bar = _Progress() if sys.stdout.isatty() else None
        result = engine.run_pass(progress=bar.update if bar else None)
        if bar:
            bar.done()
        dest = engine.status().destination
        if checked is not None:
            landed = {p for p, _, _ in checked.resent if _landed(engine.db.row(p))}
            _print_verify(checked, dest, landed)
    except STATE_ERRORS as e:
        # The state disk is full (or read-only): what was seen stays queued or is found again
        # by the next pass's scan, so one line and a non-zero exit lose nothing.
        raise _state_error(e, ctx) from None
    finally:
        if engine is not None:
            with contextlib.suppress(*STATE_ERRORS):
                engine.stop()
        lock.release()
    print(f"Uploaded {result.uploaded} file(s), {result.unchanged} unchanged, to {dest}.")
    if result.error:
        print(f"traceagent: {result.error}", file=sys.stderr)
    if result.failed or result.pending:
        print(
            f"{result.failed + result.pending} file(s) not uploaded yet; see `traceagent status`.",
            file=sys.stderr,
        )
        return 1
    return 0


def _state_error(e: Exception, ctx: Any) -> UserError:
    """The engine's one line for a state folder that cannot be written, logged too."""
    from traceagent.sync.engine import state_error_message

    message = state_error_message(e, ctx.paths, foreground=True)
    log.error("%s", message)
    return UserError(message)


def _dry_run(ctx: Any) -> int:
    """What ``sync`` would send: the same comparison with the ledger as the daemon's scans."""
    from traceagent.agents import all_roots, enabled_roots
    from traceagent.sinks.keys import make_key
    from traceagent.sync.roots import match_root
    from traceagent.sync.scan import changed_files
    from traceagent.sync.state import StateDB

    db = StateDB(ctx.paths.state_db, read_only=True)  # a preview changes nothing
    known = db.checked_stats()
    n = 0
    owners = all_roots(ctx.settings, ctx.environ)
    for root in enabled_roots(ctx.settings, ctx.environ):
        if not root.path.is_dir():
            continue
        queue, _ = changed_files(root, root.path, known, roots=owners)
        for path in queue:
            m = match_root([root], path)
            assert m is not None
            if root.agent.exports:
                # Stores are converted, never uploaded: say what happens to them.
                print(f"export {root.remote}/ sessions from {path}")
            else:
                row = db.row(str(path))
                what = "update" if row is not None and row.up_size else "new"
                try:
                    size = f"{path.stat().st_size:,} bytes"
                except OSError:
                    size = "vanished"
                print(f"{what:6} {make_key(root.remote, m.rel)}  ({size})")
            n += 1
    db.close()
    print(f"{n} file(s) would be uploaded.")
    return 0


def _landed(row: Any) -> bool:
    """Whether a ledger row says its file is at the destination now."""
    return row is not None and row.status == "ok" and row.up_hash is not None


def _print_verify(checked: Any, dest: str, landed: set[str]) -> None:
    """What ``sync --verify`` found and what it sent again, one line per file."""
    if checked.replaced:
        print(
            f"{dest} is not the destination the uploads went to (deleted or re-created): every file is sent again."
        )
    print(
        f"Verified {checked.checked} file(s) in {dest}: {len(checked.resent) + len(checked.lost)} missing or changed."
    )
    for path, key, why in checked.resent:
        print(f"  {'re-sent' if path in landed else 'not yet re-sent'}: {key} ({why})")
    for _, key, why in checked.lost:
        print(f"  cannot re-send: {key} ({why}; the local file is gone)")


def _sync_via_daemon(ctx: Any, *, verify: bool = False) -> int:
    if ask_daemon(ctx, "sync_now") is None:
        raise UserError("traceagent stopped while asked to sync; run `traceagent sync` again.")
    print("traceagent is running; asked it to sync now.")
    checked = None
    if verify:
        from traceagent.sync.engine import VERIFY_TIMEOUT, VerifyResult

        reply = ask_daemon(ctx, "verify", timeout=VERIFY_TIMEOUT + 30)
        if reply is None:
            raise UserError("traceagent stopped while verifying; run `traceagent sync --verify` again.")
        checked = VerifyResult.from_json(reply["verify"])
        if checked.error:
            raise UserError(f"Could not verify the destination: {checked.error}")
    deadline = time.monotonic() + 600
    time.sleep(1.0)  # let the daemon take the request (rescan) before judging its state
    while time.monotonic() < deadline:
        time.sleep(0.5)
        reply = ask_daemon(ctx, "status")
        if reply is None:
            raise UserError("traceagent stopped while syncing; run `traceagent sync` again.")
        st = reply["status"]
        if st["state"] in ("up_to_date",):
            if checked is not None:  # up to date: every file queued again has landed
                _print_verify(checked, st["destination"], {p for p, _, _ in checked.resent})
            print(f"Up to date: {st['uploaded']} file(s) in {st['destination']}.")
            return 0
        if st["state"] in ("error", "signin_needed", "paused"):
            print(f"traceagent: {st['state']}: {st.get('last_error') or ''}", file=sys.stderr)
            return 1
    print("traceagent: still syncing after 10 minutes; see `traceagent status`.", file=sys.stderr)
    return 1


class _Progress:
    """A one-line progress bar for large backfills on a terminal."""

    def __init__(self) -> None:
        self._last = 0.0

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        total = max(total, done, 1)
        width = 30
        filled = int(width * done / total)
        sys.stdout.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} files")
        sys.stdout.flush()

    def done(self) -> None:
        sys.stdout.write("\n")


def _status_offline(ctx: Any) -> dict[str, Any]:
    """Status from ``state.db`` when no daemon runs (read-only view, no network)."""
    from traceagent.sinks.base import ErrorKind, SinkError
    from traceagent.sinks.keys import DestinationError, parse_destination
    from traceagent.sinks.local import LocalFolderSink
    from traceagent.sync.engine import Engine

    def current_sink() -> Any:  # never asked: a read-only view shows links, it uploads nothing
        raise SinkError("The offline status does not connect.", kind=ErrorKind.FATAL)

    engine = Engine(ctx.paths, ctx.settings, current_sink, environ=ctx.environ, read_only=True)
    engine._caught_up = True  # nothing is scanning: the state is what state.db says
    try:
        # The destination is the configured one, else the one the daemon used last (for links).
        dest = ctx.settings.destination or engine.db.get("destination")
        try:
            parsed = parse_destination(dest) if dest else None
        except DestinationError:  # a value an older version stored: shown as it is, with no links
            parsed = None
        if parsed is not None and parsed.is_hub:
            from traceagent.app.wiring import hf_endpoint
            from traceagent.hub.sink import HfSink

            sink = HfSink(
                parsed.uri,
                token=None,
                endpoint=hf_endpoint(ctx),
                url_template=ctx.settings.viewer_url_template,
            )
            sink.learn_viewer_routes()  # links exactly as huggingface_hub renders them
            engine.show_destination(sink)
        else:
            folder = parsed.folder if parsed is not None else None
            engine.show_destination(LocalFolderSink(folder or ctx.paths.default_bucket_dir))
        st = engine.status().to_json()
    finally:
        engine.db.close()
    st["running"] = False
    st["pid"] = None
    return st


def cmd_status(args: argparse.Namespace) -> int:
    """``traceagent status [--json]``."""
    ctx = load_ctx()
    reply = ask_daemon(ctx, "status")
    st = reply["status"] if reply else _status_offline(ctx)
    if args.json:
        print(json.dumps(st, indent=2, ensure_ascii=False))
        return 0
    state_text = {
        "up_to_date": "Up to date",
        "syncing": "Syncing",
        "paused": "Paused",
        "offline": "Offline (retrying)",
        "error": "Error",
        "signin_needed": "Sign-in needed",
    }[st["state"]]
    print(f"traceagent {'running (pid ' + str(st['pid']) + ')' if st['running'] else 'not running'}")
    if st["paused"] and st.get("paused_until"):
        state_text += f" until {_clock(st['paused_until'])}"
    print(f"  State:        {state_text}")
    print(f"  Destination:  {st['destination']} ({st['destination_kind'] or 'not connected yet'})")
    if st.get("signed_in_as"):
        print(f"  Signed in as: {st['signed_in_as']}")
    print(f"  Files:        {st['uploaded']} in step, {st['pending']} waiting, {st['issues']} with issues")
    print(f"  Last upload:  {_ago(st['last_upload_at'])}")
    if st.get("last_error"):
        print(f"  Last error:   {st['last_error']}")
    if st.get("redactions"):
        total = sum(st["redactions"].values())
        detail = ", ".join(f"{r} {n}" for r, n in sorted(st["redactions"].items()))
        print(f"  Redacted:     {total} secret(s) ({detail})")
    for a in st["agents"]:
        flag = "" if a["enabled"] else " (sync off)"
        print(f"  {a['display_name']}: {a['sessions']} session(s){flag}")
    lt = st.get("last_trace")
    if lt:
        print(f"  Last trace:   [{lt['agent']}] {lt['title']}")
        print(f"                {lt['url']}")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    """``traceagent agents``: what is detected where."""
    from pathlib import Path

    from traceagent.agents import AGENTS, agent_roots, all_roots
    from traceagent.sync.roots import scan_root

    ctx = load_ctx()
    owners = all_roots(ctx.settings, ctx.environ)
    found = False
    for entry in agent_roots(ctx.settings, ctx.environ):
        agent, roots = entry.agent, entry.roots
        existing = [r for r in roots if Path(r.path).is_dir()]
        if not existing:
            continue
        found = True
        state = "sync on" if entry.enabled else "sync off"
        print(f"{agent.display_name} ({agent.name}, {state})")
        for r in roots:
            if r.path.is_dir():
                n = sum(1 for _ in scan_root(r, roots=owners))
                print(f"  {r.path}  →  {r.remote}/  ({n} file(s))")
            else:
                print(f"  {r.path}  (not present)")
    if not found:
        names = ", ".join(a.display_name for a in AGENTS)
        print(f"No coding agent sessions found (looked for {names}).")
    return 0


def cmd_open_last(args: argparse.Namespace) -> int:
    """``traceagent open-last [--print]``."""
    ctx = load_ctx()
    reply = ask_daemon(ctx, "status")
    st = reply["status"] if reply else _status_offline(ctx)
    lt = st.get("last_trace")
    if not lt:
        raise UserError("No trace has been uploaded yet. Run `traceagent sync` or `traceagent run` first.")
    if args.print:
        print(lt["url"])
        return 0
    if not webbrowser.open(lt["url"]):
        print(lt["url"])
        raise UserError("Could not open a browser; the link is printed above.")
    print(f"Opened [{lt['agent']}] {lt['title']}")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    """``traceagent pause [--for DURATION]``."""
    ctx = load_ctx()
    until = time.time() + parse_duration(args.duration) if args.duration else None
    if ask_daemon(ctx, "pause", until=until) is None:
        from traceagent.sync.state import StateDB

        db = StateDB(ctx.paths.state_db)
        db.put("paused_until", repr(float("inf") if until is None else until))
        db.close()
        print("traceagent is not running; the pause applies when it starts.")
    print(
        "Sync paused"
        + (f" until {_clock(until)}." if until else " until you resume it (`traceagent resume`).")
    )
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """``traceagent resume``."""
    ctx = load_ctx()
    if ask_daemon(ctx, "resume") is None:
        from traceagent.sync.state import StateDB

        db = StateDB(ctx.paths.state_db)
        db.put("paused_until", None)
        db.close()
        print("traceagent is not running; it will sync when it starts.")
    else:
        print("Sync resumed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
