"""How the engine reacts to errors: backoff, the wait for a new token, the fatal stop, last error.

One small state machine, pure: it takes events (a sink error of some kind, an upload that
worked, a failed or recovered state write, a changed token, "Sync now", a new sink) and answers
whether an upload may start now, when the next attempt is due, which :class:`SyncState` and
which error to show, and what to log (returned, never logged here). The caller passes the
clock (``now``) and may pass the jitter, so tests drive it directly; the engine keeps the
effects (logging, ``state.db`` writes, deferring rows).

The policy, in one place:

* ``TRANSIENT`` (network, 429, 5xx): the whole queue backs off, full jitter, 2 s doubling up to
  10 minutes, never sooner than the server's ``Retry-After``; "Offline (retrying)".
* ``DESTINATION`` (the folder refuses writes): an error state probed again on a short backoff
  (2 s doubling, jittered, at most 20 s), so it heals within seconds of the fix.
* ``AUTH`` (token rejected): no upload until the token's fingerprint changes (looked at every
  30 s) or the sink is rebuilt (sign-in); "Sign-in needed".
* ``FATAL`` (only the user can fix it): no upload until "Sync now" or a new sink.
* A failed write to the state folder: an error state, retried on a backoff up to 30 s.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable

from traceagent.sinks.base import ErrorKind
from traceagent.status import SyncState

#: Queue-wide backoff after network errors: full jitter, 2 s doubling up to 10 minutes.
BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0
#: While the token is rejected: how often to look whether it changed (cheap, local).
AUTH_RECHECK = 30.0
#: A destination that refuses writes (permissions, a file in the way) is probed again on this
#: short backoff (2 s doubling, jittered, at most this): it heals within seconds of the fix.
DESTINATION_RETRY_CAP = 20.0
#: While ``state.db`` (or the spool beside it) cannot be written: a write is tried again on this
#: backoff (2 s doubling up to this), then a catch-up rescan finds whatever changed meanwhile.
STATE_RETRY_CAP = 30.0
#: Shown after an unexpected error in the engine (a bug): the log has the traceback.
UNEXPECTED_ERROR = "Unexpected error in the sync engine; see the log."

#: ``uniform(low, high)``: the jitter (``random.uniform``; tests pass their own).
Jitter = Callable[[float, float], float]


def backoff_delay(failures: int, cap: float, base: float = BACKOFF_BASE) -> float:
    """The upper bound of the wait after ``failures`` consecutive failures (>= 1)."""
    return float(min(cap, base * 2.0 ** (max(failures, 1) - 1)))


@dataclasses.dataclass(frozen=True)
class Reaction:
    """What the engine should do about one sink error (the effects stay with the engine)."""

    #: Log this (at ``level``) — None when it was already said.
    log: str | None = None
    level: int = logging.ERROR
    #: The sink cannot be used until it is checked again (``ensure``) or rebuilt.
    sink_unusable: bool = False
    #: Defer the failed batch's rows until this time (queue-wide backoff), else None.
    defer_until: float | None = None


class Health:
    """The error state of one engine. Not thread-safe: the engine calls it under its lock or
    from its own thread; readers only read the fields (each a single assignment)."""

    def __init__(self, last_error: str | None = None, *, jitter: Jitter = random.uniform) -> None:
        self._jitter = jitter
        #: The queue-wide backoff: no upload before this time (network errors, a destination
        #: that refuses writes).
        self.backoff_until = 0.0
        self._backoff_failures = 0
        #: Why the Hub (or the network) is unreachable right now.
        self.offline_error: str | None = None
        #: Why the destination refuses writes right now (None: it accepts them).
        self.destination_error: str | None = None
        self._destination_failures = 0
        #: Why the token was rejected, and the fingerprint of that token (None: none known).
        self.auth_error: str | None = None
        self.auth_fingerprint: str | None = None
        #: Why uploads stopped until the user acts ("Sync now", a new sink).
        self.fatal_error: str | None = None
        #: Why ``state.db`` cannot be written right now (None: it can).
        self.state_error: str | None = None
        self._state_failures = 0
        self._crashes = 0
        #: The last error seen (persisted by the engine as ``last_error``): history, shown last.
        self.last_error = last_error

    # -- events --------------------------------------------------------------------------------

    def sink_failed(
        self,
        kind: ErrorKind,
        message: str,
        now: float,
        *,
        retry_after: float | None = None,
        fingerprint: str | None = None,
    ) -> Reaction:
        """A sink call failed with ``kind``; ``fingerprint``: of the credentials in use (AUTH)."""
        self.last_error = message
        if kind is ErrorKind.AUTH:
            first = self.auth_error is None
            self.auth_error, self.auth_fingerprint = message, fingerprint
            return Reaction(log=message if first else None, sink_unusable=True)
        if kind is ErrorKind.FATAL:
            first = self.fatal_error != message
            self.fatal_error = message
            return Reaction(log=message if first else None, sink_unusable=True)
        if kind is ErrorKind.DESTINATION:
            # The whole destination refuses writes: one state, named once, probed again soon
            # (the sink's ensure() runs before the next upload); files keep no per-file error.
            first = self.destination_error != message
            self.destination_error = message
            self._destination_failures += 1
            delay = backoff_delay(self._destination_failures, DESTINATION_RETRY_CAP)
            self.backoff_until = now + self._jitter(delay / 2, delay)
            said = f"{message}; retrying until it accepts writes" if first else None
            return Reaction(log=said, sink_unusable=True)
        # TRANSIENT (and anything else that reaches the queue as a whole): back off.
        self._backoff_failures += 1
        delay = backoff_delay(self._backoff_failures, BACKOFF_CAP)
        delay = self._jitter(delay / 2, delay)
        if retry_after:
            delay = max(delay, retry_after)
        self.backoff_until = now + delay
        self.offline_error = message
        return Reaction(
            log=f"{message}; retrying in {delay:.0f} s",
            level=logging.WARNING,
            defer_until=self.backoff_until,
        )

    def connected(self) -> bool:
        """The sink is ready (checked or rebuilt): not offline, and the destination accepts
        writes. True: it had refused them (log that it accepts them again)."""
        self.offline_error = None
        was = self.destination_error is not None
        self.destination_error = None
        self._destination_failures = 0
        return was

    def uploaded(self, *, files: bool) -> bool:
        """A batch went through (``files``: at least one file was uploaded). True: forget
        the stored last error too (uploads work again: an old error is history)."""
        self._backoff_failures = 0
        self.offline_error = None
        if files and self.last_error is not None:
            self.last_error = None
            return True
        return False

    def state_failed(self, message: str) -> bool:
        """A write to the state folder failed. True: the first time with this message (log it)."""
        first = self.state_error != message
        self.state_error = message
        return first

    def state_retry_delay(self) -> float:
        """The worker's wait before it tries state writes again (grows with each failure)."""
        self._state_failures += 1
        return backoff_delay(self._state_failures, STATE_RETRY_CAP)

    def state_recovered(self) -> bool:
        """State writes work again. True: they had failed (log that they work)."""
        was = self.state_error is not None
        self.state_error = None
        self._state_failures = 0
        return was

    def crashed(self) -> float:
        """An unexpected error (a bug) in the worker: the wait before it carries on."""
        self._crashes += 1
        self.last_error = UNEXPECTED_ERROR
        return backoff_delay(self._crashes + 1, BACKOFF_CAP)

    def token_changed(self, fingerprint: str | None) -> bool:
        """While the token is rejected: True when the credentials found now (``fingerprint``)
        differ from the rejected ones, so the sink should be rebuilt."""
        return self.watching_token and fingerprint != self.auth_fingerprint

    def sync_now(self) -> None:
        """The user asked to sync now: retry at once, and lift a fatal stop."""
        self.backoff_until = 0.0
        self.fatal_error = None

    def reload(self) -> None:
        """A new sink (sign-in, a new token or destination): start from a clean slate."""
        self.auth_error = None
        self.fatal_error = None
        self.destination_error = None
        self._destination_failures = 0
        self.backoff_until = 0.0

    # -- answers -------------------------------------------------------------------------------

    @property
    def waiting_for_token(self) -> bool:
        """The token was rejected: nothing is sent until it changes (or a sign-in)."""
        return self.auth_error is not None

    @property
    def watching_token(self) -> bool:
        """Waiting for the rejected token to change, and its fingerprint is known (so the
        engine looks at the credentials every :data:`AUTH_RECHECK` seconds)."""
        return self.auth_error is not None and self.auth_fingerprint is not None

    def blocked(self) -> bool:
        """No upload until the user (or a new token) acts: a rejected token, a fatal stop."""
        return self.auth_error is not None or self.fatal_error is not None

    def may_upload(self, now: float) -> bool:
        """Whether an upload may start at ``now``."""
        return not self.blocked() and now >= self.backoff_until

    def next_attempt(self) -> float:
        """When the backoff ends (0: no backoff)."""
        return self.backoff_until

    def recheck_at(self, now: float) -> float | None:
        """When to look again whether the rejected token changed (None: not waiting)."""
        if self.watching_token:
            return now + AUTH_RECHECK
        return None

    def next_retry_at(self) -> float | None:
        """The time shown for the next retry (while offline or the destination refuses)."""
        if self.offline_error or self.destination_error:
            return self.backoff_until
        return None

    def stop_error(self) -> str | None:
        """Why a pass must stop now (a one-shot ``sync`` ends with it), else None."""
        return self.auth_error or self.fatal_error or self.destination_error or self.offline_error

    def state(self, *, paused: bool, busy: bool) -> SyncState:
        """The state to show; ``busy``: something is queued, uploading, scanning or connecting."""
        if self.auth_error:
            return SyncState.SIGNIN_NEEDED
        if self.fatal_error or self.state_error or self.destination_error:
            return SyncState.ERROR
        if paused:
            return SyncState.PAUSED
        if self.offline_error:
            return SyncState.OFFLINE
        if busy:
            return SyncState.SYNCING
        return SyncState.UP_TO_DATE

    def shown_error(self, file_error: str | None = None) -> str | None:
        """The one error to show: what stops everything first, then the destination, the
        network, a file's own error (``file_error``, when some file has one), then history."""
        return (
            self.auth_error
            or self.fatal_error
            or self.state_error
            or self.destination_error
            or self.offline_error
            or file_error
            or self.last_error
        )


__all__ = [
    "AUTH_RECHECK",
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "DESTINATION_RETRY_CAP",
    "STATE_RETRY_CAP",
    "UNEXPECTED_ERROR",
    "Health",
    "Reaction",
    "backoff_delay",
]
