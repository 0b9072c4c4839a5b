"""``traceagent run | sync | status | agents | open-last | pause | resume``: the sync and the daemon."""

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traceagent.app.daemon import FrontEnd

from traceagent.cli.common import client, load_ctx
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
    daemon = client(ctx)
    if daemon.request("sync_now") is None:
        raise UserError("traceagent stopped while asked to sync; run `traceagent sync` again.")
    print("traceagent is running; asked it to sync now.")
    checked = None
    if verify:
        from traceagent.sync.engine import VERIFY_TIMEOUT, VerifyResult

        reply = daemon.request("verify", timeout=VERIFY_TIMEOUT + 30)
        if reply is None:
            raise UserError("traceagent stopped while verifying; run `traceagent sync --verify` again.")
        checked = VerifyResult.from_json(reply["verify"])
        if checked.error:
            raise UserError(f"Could not verify the destination: {checked.error}")
    deadline = time.monotonic() + 600
    time.sleep(1.0)  # let the daemon take the request (rescan) before judging its state
    while time.monotonic() < deadline:
        time.sleep(0.5)
        reply = daemon.request("status")
        if reply is None:
            raise UserError("traceagent stopped while syncing; run `traceagent sync` again.")
        st = reply["status"]
        if st["state"] in ("up_to_date",):
            missing = 0
            if checked is not None:
                # "Up to date" does not say a file that failed on its own landed: ask the ledger.
                from traceagent.sync.state import StateDB

                db = StateDB(ctx.paths.state_db, read_only=True)
                try:
                    landed = {p for p, _, _ in checked.resent if _landed(db.row(p))}
                finally:
                    db.close()
                _print_verify(checked, st["destination"], landed)
                missing = len(checked.resent) - len(landed)
            print(f"Up to date: {st['uploaded']} file(s) in {st['destination']}.")
            if missing:
                print(
                    f"traceagent: {missing} file(s) could not be re-sent yet; see `traceagent status`.",
                    file=sys.stderr,
                )
                return 1
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


def cmd_status(args: argparse.Namespace) -> int:
    """``traceagent status [--json]``."""
    st = client(load_ctx()).status()
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
    if not st["running"] and st["state"] == "up_to_date":
        # With no daemon, state.db tells how things stood when traceagent last ran, not now:
        # sessions may have changed since, so this is never a plain "Up to date".
        if st["last_upload_at"] is None and not st["uploaded"]:
            state_text = "Not synced yet (start it with `traceagent run`, or run `traceagent sync`)"
        else:
            state_text = "Up to date when it last ran (start it with `traceagent run` to keep it so)"
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
    st = client(load_ctx()).status()
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
    if not client(ctx).pause(until):
        print("traceagent is not running; the pause applies when it starts.")
    print(
        "Sync paused"
        + (f" until {_clock(until)}." if until else " until you resume it (`traceagent resume`).")
    )
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """``traceagent resume``."""
    if not client(load_ctx()).resume():
        print("traceagent is not running; it will sync when it starts.")
    else:
        print("Sync resumed.")
    return 0
