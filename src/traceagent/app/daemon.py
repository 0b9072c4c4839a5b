"""``traceagent run``: hold the lock, start the engine, answer the control channel, show a front end.

The front end (the tray) is handed in by the caller as a loader, so this room never imports the
room above it; without one, or when no tray host answers, the daemon runs headless.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol

from traceagent.app.control import ControlServer, DaemonLock
from traceagent.app.desktop import DesktopEngine, build_engine
from traceagent.app.wiring import Context
from traceagent.sync.engine import Engine

log = logging.getLogger(__name__)


class FrontEnd(Protocol):
    """What the daemon needs of a front end (the module :mod:`traceagent.tray.icon` satisfies it)."""

    def run_tray(self, engine: Any, *, stop_requested: Callable[[], bool] | None = None) -> bool:
        """Show the front end on this (the main) thread until Quit; False when none can be shown."""
        ...

    def request_quit(self) -> bool:
        """Ask the running front end to quit (thread-safe); False when none runs."""
        ...


#: Loads the front end (lazily: the tray imports pystray, which a headless daemon never needs).
FrontEndLoader = Callable[[], FrontEnd]


def handle_request(
    engine: Engine,
    stop: threading.Event,
    request: dict[str, Any],
    quit_front_end: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """The control channel's commands (used by ``traceagent status/pause/resume/...``).

    ``quit_front_end`` asks the front end, when one runs, to close on ``quit``."""
    cmd = request.get("cmd")
    if cmd == "status":
        return {"status": engine.status().to_json()}
    if cmd == "recent":
        return {"traces": [t.to_json() for t in engine.recent_traces(int(request.get("limit", 10)))]}
    if cmd == "pause":
        until = request.get("until")
        engine.pause(None if until is None else float(until))
        return {"ok": True}
    if cmd == "resume":
        engine.resume()
        return {"ok": True}
    if cmd == "sync_now":
        engine.sync_now()
        return {"ok": True}
    if cmd == "verify":
        import concurrent.futures

        try:
            return {"verify": engine.request_verify().to_json()}
        except concurrent.futures.TimeoutError:
            return {"error": "the daemon is still verifying the destination; see `traceagent status`"}
        except concurrent.futures.CancelledError:
            return {"error": "traceagent stopped while verifying the destination"}
    if cmd == "reload":
        engine.reload_sink()
        return {"ok": True}
    # The command keeps its old name: `traceagent logout` from a newer CLI must still reach a daemon
    # started before an upgrade (an unknown command would leave that daemon on the Hub destination).
    if cmd == "signed_out":
        if isinstance(engine, DesktopEngine):
            engine.mark_signed_out()
        else:
            engine.reload_sink()
        return {"ok": True}
    if cmd == "quit":
        stop.set()
        if quit_front_end is not None:
            quit_front_end()
        return {"ok": True}
    return {"error": f"unknown command {cmd!r}"}


def run_daemon(ctx: Context, *, headless: bool, front_end: FrontEndLoader | None = None) -> int:
    """``traceagent run``: hold the lock, start the engine, serve the front end or wait headless."""
    lock = DaemonLock(ctx.paths.lock_file)
    lock.acquire()  # AlreadyRunningError → the CLI prints it and exits 1
    stop = threading.Event()
    engine, factory = build_engine(ctx, worker=True)
    shown_front: list[FrontEnd] = []  # set once loaded (signals may come while it imports)

    def quit_front_end() -> None:
        for front in shown_front:
            front.request_quit()

    server = ControlServer(ctx.paths, lambda req: handle_request(engine, stop, req, quit_front_end))

    def on_signal(signum: int, _frame: object) -> None:
        log.info("Received %s; finishing the upload in flight", signal.Signals(signum).name)
        stop.set()
        # A front end still importing sees the stop event when it starts.
        quit_front_end()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info("traceagent %s starting (pid %d); config %s", _version(), os.getpid(), ctx.paths.config_file)
        server.start()
        engine.start()
        _repair_autostart()
        shown = False
        if not headless and front_end is not None:
            front = front_end()
            shown_front.append(front)
            shown = not stop.is_set() and front.run_tray(engine, stop_requested=stop.is_set)
        if not shown:
            if not headless:
                log.info(
                    "No tray available; running headless (use `traceagent status` and `traceagent pause`)"
                )
            while not stop.wait(3600):
                pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        server.close()
        engine.stop()
        factory.close()
        lock.release()
        log.info("traceagent stopped")
    return 0


def _repair_autostart() -> None:
    """A start-at-login entry that points at a moved executable is rewritten."""
    from traceagent import autostart

    try:
        if autostart.repair():
            log.info("Repaired the start-at-login entry (the traceagent executable had moved)")
    except Exception:
        log.warning("Could not check the start-at-login entry", exc_info=True)


def _version() -> str:
    from traceagent import __version__

    return __version__


__all__ = ["FrontEnd", "FrontEndLoader", "handle_request", "run_daemon"]
