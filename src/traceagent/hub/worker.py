"""Hugging Face traffic in a child process, so the daemon itself stays small.

``huggingface_hub`` with its HTTP client and the ``hf_xet`` runtime cost the daemon about
41 MB the first time they are used, and glibc keeps most of it after the upload is over
(``bench/README.md``, figure 1). A tray daemon is idle nearly all day, so the daemon never
imports them (at most ``huggingface_hub.constants``, for the default endpoint): a
:class:`HubWorker` child process does every Hub call — ``whoami``, creating and checking the
bucket, uploads — and exits after ``idle_exit_s`` seconds without work.
The next upload starts a new one (about half a second; an active session uploads at least
every ``max_delay_seconds``, so it keeps its worker). The child starts clean, with no copy
of the daemon's threads or memory: ``python -m traceagent.hub.worker_child`` on POSIX,
multiprocessing's *spawn* on Windows and in frozen apps.

This module is the daemon's side. It talks to the worker over one connection, one request
at a time: ``(operation, args)`` out; back come log records (re-emitted in the daemon's log,
so the log reads as if the upload ran in-process) and then exactly one answer. Errors travel
as plain tuples and are rebuilt as the same :class:`~traceagent.sinks.base.SinkError` /
:class:`~traceagent.hub.auth.AuthError` the in-process code raises; a worker that dies mid-call
(killed, out of memory) is a ``TRANSIENT`` error: the engine keeps the files queued and
retries with a new worker. Spool files are only read by the worker, so nothing is lost.

The token crosses the connection (process memory only): it is never in a command line, an
environment variable set by traceagent, or a log record.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Protocol

from traceagent.entrypoints import WORKER_CHILD
from traceagent.hub.auth import AuthError
from traceagent.hub.sink import HfSink
from traceagent.hub.whoami import WhoAmI
from traceagent.hub.worker_child import SinkSpec, serve
from traceagent.sinks.base import ErrorKind, Sink, SinkError, UploadItem

__all__ = ["IDLE_EXIT_S", "HubWorker", "WorkerSink"]

logger = logging.getLogger(__name__)

#: A worker with no request for this long is stopped (seconds).
IDLE_EXIT_S = 180.0
#: How long ``close`` waits for a worker to finish before terminating it (seconds).
STOP_TIMEOUT_S = 10.0


class HubWorker:
    """One child process that runs Hugging Face calls for the daemon, started on demand.

    Thread-safe: calls are serialized (the engine uploads from one thread; ``whoami`` may
    come from a status request). ``idle_exit_s`` after the last call the child is stopped.
    """

    def __init__(self, *, idle_exit_s: float = IDLE_EXIT_S, method: str | None = None) -> None:
        self.idle_exit_s = idle_exit_s
        #: "subprocess" (POSIX: ``python -m traceagent.hub.worker_child`` on a socketpair) or
        #: "spawn" (multiprocessing: Windows, where fds cannot be passed, and frozen apps,
        #: whose executable is not a Python). POSIX avoids multiprocessing's spawn because it
        #: starts a resource-tracker process that would live as long as the daemon (+10 MB).
        self.method = method or (
            "spawn" if os.name == "nt" or getattr(sys, "frozen", False) else "subprocess"
        )
        self._lock = threading.Lock()
        self._proc: _Child | None = None
        self._conn: Connection | None = None
        self._timer: threading.Timer | None = None
        self._generation = 0
        #: How many worker processes were started (tests check that one is reused).
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The live worker's process id, or ``None`` when none is running."""
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    def call(self, op: str, *args: Any) -> Any:
        """Run ``op`` in the worker and return its answer (``whoami``, ``ensure``, ``upload``,
        ``identity``, ``list``:
        see :mod:`traceagent.hub.worker_child`).

        Raises the :class:`SinkError` or :class:`AuthError` the operation raised there, or a
        ``TRANSIENT`` :class:`SinkError` when the worker could not be started or died.
        """
        with self._lock:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                conn = self._start()
            except OSError as e:
                raise SinkError(
                    f"Could not start the upload worker ({e.strerror or e}); will retry",
                    kind=ErrorKind.TRANSIENT,
                ) from None
            try:
                conn.send((op, args))
                while True:
                    msg = conn.recv()
                    if msg[0] == "log":
                        _relog(msg[1])
                        continue
                    return _answer(msg)
            except (EOFError, OSError) as e:
                code = self._reap()
                raise SinkError(
                    f"The upload worker stopped unexpectedly ({_exit_reason(code, e)}); the files stay queued",
                    kind=ErrorKind.TRANSIENT,
                ) from None
            finally:
                self._arm_timer()

    def close(self) -> None:
        """Stop the worker (waits for it to finish its current request)."""
        with self._lock:
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._stop()

    # ------------------------------------------------------------------ internals
    def _start(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            return self._conn
        self._reap()
        level = logging.getLogger("traceagent").getEffectiveLevel()
        if self.method == "spawn":
            ctx = multiprocessing.get_context("spawn")
            parent, child = ctx.Pipe(duplex=True)
            mp_proc = ctx.Process(target=serve, args=(child, level), name="traceagent-upload", daemon=True)
            mp_proc.start()
            proc: _Child = mp_proc
            child.close()  # the child owns its end now; EOF reaches us when it exits
        else:
            parent, proc = _launch_subprocess(level)
        self._proc, self._conn = proc, parent
        self.starts += 1
        logger.debug("started upload worker (pid %s)", proc.pid)
        return parent

    def _arm_timer(self) -> None:
        if self._proc is None:
            return
        generation = self._generation
        timer = threading.Timer(self.idle_exit_s, self._idle, args=(generation,))
        timer.daemon = True
        timer.name = "traceagent-upload-idle"
        self._timer = timer
        timer.start()

    def _idle(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:  # a call came in since this timer was armed
                return
            self._timer = None
            if self._proc is not None:
                logger.debug("upload worker idle for %.0f s; stopping it", self.idle_exit_s)
            self._stop()

    def _stop(self) -> None:
        conn, proc = self._conn, self._proc
        if conn is not None and proc is not None and proc.is_alive():
            try:
                conn.send(("exit", ()))
            except OSError:
                pass
            proc.join(STOP_TIMEOUT_S)
            if proc.is_alive():
                logger.warning("the upload worker did not stop within %.0f s; killing it", STOP_TIMEOUT_S)
                proc.kill()
                proc.join(STOP_TIMEOUT_S)
        self._reap()

    def _reap(self) -> int | None:
        """Forget the current worker; returns its exit code when it had one."""
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        code = None
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.join(1.0)
            code = proc.exitcode
            if proc.exitcode is not None:
                proc.close()
        return code


class _Child(Protocol):
    """What :class:`HubWorker` needs of a child process (``multiprocessing.Process`` has it)."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exitcode(self) -> int | None: ...

    def is_alive(self) -> bool: ...

    def join(self, timeout: float | None = None) -> None: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


class _Subprocess:
    """A :class:`subprocess.Popen` seen as a :class:`_Child`."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @property
    def pid(self) -> int | None:
        return self._popen.pid

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        self._popen.kill()

    def close(self) -> None:
        pass


def _launch_subprocess(level: int) -> tuple[Connection, _Child]:
    """Start ``python -m traceagent.hub.worker_child FD LEVEL`` with one end of a socketpair."""
    ours, theirs = socket.socketpair()
    try:
        popen = subprocess.Popen(
            [sys.executable, "-m", WORKER_CHILD, str(theirs.fileno()), str(level)],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()  # the child has its copy; EOF reaches us when it exits
    return Connection(ours.detach()), _Subprocess(popen)


class WorkerSink(Sink):
    """An :class:`HfSink` whose Hub calls run in a :class:`HubWorker`.

    Links (``url_for``, ``browse_url``) are built here from the shape huggingface_hub gave
    them in the worker, so showing a trace never starts a worker.
    """

    kind = HfSink.kind

    def __init__(self, worker: HubWorker, **spec: Any) -> None:
        self._worker = worker
        self._spec: SinkSpec = dict(spec)
        self._local = HfSink(**spec)  # checks the URI and template now, in the daemon

    def __repr__(self) -> str:
        return f"WorkerSink({self._local!r})"

    @property
    def location(self) -> str:
        """The destination URI as configured."""
        return self._local.location

    def ensure(self) -> None:
        """Create or check the bucket in the worker (see :meth:`HfSink.ensure`)."""
        routes = self._worker.call("ensure", self._spec)
        if routes is not None:
            self._local.adopt_viewer_routes(routes)

    def upload(self, items: Sequence[UploadItem]) -> None:
        """Upload in the worker (see :meth:`HfSink.upload`)."""
        if items:
            self._worker.call("upload", self._spec, list(items))

    def identity(self) -> str | None:
        """The bucket's identity, asked in the worker (see :meth:`HfSink.identity`)."""
        found: str | None = self._worker.call("identity", self._spec)
        return found

    def list_files(self) -> dict[str, int]:
        """The bucket's files, listed in the worker (see :meth:`HfSink.list_files`)."""
        found: dict[str, int] = self._worker.call("list", self._spec)
        return found

    def url_for(self, key: str) -> str:
        """The viewer page of ``key``."""
        return self._local.url_for(key)

    def browse_url(self) -> str:
        """The bucket's page."""
        return self._local.browse_url()


def whoami_in(worker: HubWorker) -> Callable[[str, str | None], WhoAmI]:
    """A ``fetch`` for :func:`traceagent.hub.whoami.whoami_cached` that asks in ``worker``."""

    def fetch(token: str, endpoint: str | None) -> WhoAmI:
        try:
            who: WhoAmI = worker.call("whoami", token, endpoint)
        except SinkError as e:  # the worker itself failed: to a sign-in, that is "could not check"
            raise AuthError(e.message, reason="network") from None
        return who

    return fetch


# ---------------------------------------------------------------------- the daemon side
def _answer(msg: tuple[Any, ...]) -> Any:
    kind = msg[0]
    if kind == "ok":
        return msg[1]
    if kind == "sink_error":
        _, message, err_kind, retry_after, failed = msg
        raise SinkError(message, kind=ErrorKind(err_kind), retry_after=retry_after, failed_keys=failed)
    if kind == "auth_error":
        raise AuthError(msg[1], reason=msg[2])
    raise SinkError(f"The upload worker failed: {msg[1]}", kind=ErrorKind.TRANSIENT)


def _relog(fields: dict[str, Any]) -> None:
    record = logging.makeLogRecord(fields)
    logging.getLogger(record.name).handle(record)


def _exit_reason(code: int | None, e: BaseException) -> str:
    if code is None:
        return type(e).__name__
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"
