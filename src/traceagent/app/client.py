"""The one client of the daemon, with an offline fallback (Maestral's ``MaestralProxy(fallback=True)``).

Every front end that is not the daemon (the CLI) asks through :class:`DaemonClient`. When a daemon
runs, a call goes over the control channel (:mod:`traceagent.app.control`). When none runs, the
same call is answered from a read-only view of ``state.db`` (``status``, ``recent``), or performed
on ``state.db`` through its typed accessors (a pause, a resume, a sign-out), so the daemon finds
it when it starts. Nothing here reaches into the engine's private state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from traceagent.app import control
from traceagent.app.wiring import Context, view_sink
from traceagent.errors import UserError
from traceagent.paths import access_problem

if TYPE_CHECKING:
    from traceagent.sync.engine import Engine
    from traceagent.sync.state import StateDB

_T = TypeVar("_T")

__all__ = ["DaemonClient"]


class DaemonClient:
    """Talks to the running daemon; with ``fallback``, answers from ``state.db`` when none runs."""

    def __init__(self, ctx: Context, *, fallback: bool = True) -> None:
        self.ctx = ctx
        self.fallback = fallback

    # -- the channel ------------------------------------------------------------------------------

    def request(self, cmd: str, **kw: Any) -> dict[str, Any] | None:
        """Ask the running daemon ``cmd``; None when none runs (no fallback here).

        Raises :class:`UserError` (one line) when a daemon runs but cannot be asked or refuses."""
        paths = self.ctx.paths
        pid = control.running_pid(paths)
        if pid is None:
            return None
        deadline = time.monotonic() + 10
        while True:
            try:
                reply = control.request(paths, cmd, **kw)
                break
            except PermissionError as e:
                # A daemon started with sudo: its control key is root's.
                raise UserError(
                    f"traceagent is running (pid {pid}) as another user: stop it (sudo kill {pid}), then "
                    f"{access_problem(Path(e.filename or paths.control_address), paths)}"
                ) from None
            except (ConnectionRefusedError, FileNotFoundError) as e:
                # The daemon holds its lock a moment before its channel opens (start-up).
                if time.monotonic() > deadline or control.running_pid(paths) is None:
                    raise UserError(f"traceagent is running but did not answer ({e}).") from None
                time.sleep(0.1)
            except (OSError, EOFError) as e:
                raise UserError(f"traceagent is running but did not answer ({e}).") from None
        if "error" in reply:
            raise UserError(str(reply["error"]))
        return reply

    # -- reads: the daemon's answer, else state.db's ------------------------------------------

    def status(self) -> dict[str, Any]:
        """``status --json``'s object: the daemon's, else what ``state.db`` says (not running)."""
        reply = self.request("status")
        if reply is not None:
            return dict(reply["status"])
        self._need_fallback("status")
        st = self._offline(lambda view: view.status().to_json())
        st["running"] = False
        st["pid"] = None
        return st

    def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        """The most recently updated uploaded traces (``TraceInfo.to_json()``), newest first."""
        reply = self.request("recent", limit=limit)
        if reply is not None:
            return list(reply["traces"])
        self._need_fallback("recent")
        return self._offline(lambda view: [t.to_json() for t in view.recent_traces(limit)])

    # -- writes: the daemon applies them, else state.db keeps them for its start ----------------

    def pause(self, until: float | None) -> bool:
        """Pause uploads until ``until`` (Unix time; None: until resumed). False: no daemon ran,
        the pause was stored and applies when it starts."""
        if self.request("pause", until=until) is not None:
            return True
        self._need_fallback("pause")
        self._write(_store_pause(until))
        return False

    def resume(self) -> bool:
        """Resume uploads. False: no daemon ran; the stored pause was lifted."""
        if self.request("resume") is not None:
            return True
        self._need_fallback("resume")
        self._write(_lift_pause)
        return False

    def signed_out(self) -> bool:
        """The user signed out on purpose (the local folder is fine from now on). False: no
        daemon ran; ``state.db`` remembers it for the next start."""
        if self.request("signed_out") is not None:
            return True
        self._need_fallback("signed_out")
        self._write(_store_signed_out)
        return False

    def reload(self) -> bool:
        """A new token: the daemon builds its sink again. False: none runs (it reads the token at start)."""
        return self.request("reload") is not None

    # -- the offline side -------------------------------------------------------------------------

    def _need_fallback(self, cmd: str) -> None:
        if not self.fallback:
            raise UserError(f"traceagent is not running (asked '{cmd}').")

    def _offline(self, read: Callable[[Engine], _T]) -> _T:
        """``read(view)`` on a read-only engine view of ``state.db`` (no network, nothing written)."""
        from traceagent.sync.engine import Engine

        ctx = self.ctx
        # The destination is the configured one, else the one the daemon used last (for links).
        view = Engine.read_only_view(
            ctx.paths, ctx.settings, lambda used_last: view_sink(ctx, used_last), environ=ctx.environ
        )
        try:
            return read(view)
        finally:
            view.db.close()

    def _write(self, change: Callable[[StateDB], None]) -> None:
        """``change(db)`` on ``state.db`` (no daemon runs, so no engine holds it)."""
        from traceagent.sync.state import StateDB

        db = StateDB(self.ctx.paths.state_db)
        try:
            change(db)
        finally:
            db.close()


def _store_pause(until: float | None) -> Callable[[StateDB], None]:
    def change(db: StateDB) -> None:
        db.paused_until = float("inf") if until is None else until

    return change


def _lift_pause(db: StateDB) -> None:
    db.paused_until = None


def _store_signed_out(db: StateDB) -> None:
    db.signed_out = True
