"""One daemon per configuration, and the channel other front ends use to talk to it.

The daemon holds an exclusive lock on ``daemon.lock`` (which records its pid) and serves a
``multiprocessing.connection`` listener (a Unix socket, or a named pipe on Windows) with a
per-user auth key. ``traceagent status/pause/resume`` are clients of it: they never start a
second engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import secrets
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import IO, Any

from traceagent.errors import AlreadyRunningError
from traceagent.paths import AppPaths

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class DaemonLock:
    """An exclusive, crash-safe lock: the OS releases it when the process dies (even kill -9)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`AlreadyRunningError` with the holder's pid.

        Raises ``OSError`` naming the lock file when it cannot record the pid (a full disk).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="ascii")  # noqa: SIM115 - held for the process lifetime
        if not _take(fh):
            fh.seek(0)
            text = fh.read().strip()
            fh.close()
            raise AlreadyRunningError(int(text) if text.isdigit() else None)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
        except OSError as e:
            # A full state disk: no lock without the pid that tells others who holds it.
            with contextlib.suppress(OSError):
                fh.close()
            raise OSError(e.errno, e.strerror, str(self.path)) from e
        self._fh = fh

    def release(self) -> None:
        """Release the lock."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                self._fh.truncate()
            self._fh.close()
            self._fh = None


#: How long a starting daemon waits for ``running_pid`` probes to let go of the lock (seconds).
PROBE_WAIT = 5.0


def _take(fh: IO[str]) -> bool:
    """Take the exclusive lock; False when a daemon holds it.

    A probe (:func:`running_pid`: ``status``, ``sync``...) holds a *shared* lock for a moment.
    It must not make a daemon that starts at that moment think another one runs: when the
    exclusive lock is refused but a shared one is granted, only probes hold it (a daemon's
    exclusive lock would refuse both), so try again shortly.
    """
    deadline = time.monotonic() + PROBE_WAIT
    while True:
        try:
            _lock_file(fh)
            return True
        except OSError:
            pass
        if sys.platform == "win32" or time.monotonic() > deadline:
            return False  # (Windows has no shared lock: a probe there takes the exclusive one)
        try:
            _lock_file(fh, shared=True)
        except OSError:
            return False  # a daemon holds it
        _unlock_file(fh)
        time.sleep(random.uniform(0.005, 0.02))  # two daemons starting together: one wins


def _lock_file(fh: IO[str], *, shared: bool = False) -> None:
    """Lock ``fh`` without waiting (``shared``: POSIX only); raises ``OSError`` when held."""
    if sys.platform == "win32":
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh.fileno(), (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)


def _unlock_file(fh: IO[str]) -> None:
    import fcntl  # POSIX only (see _take)

    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def running_pid(paths: AppPaths) -> int | None:
    """The pid of the running daemon, or None when none holds the lock.

    Read-only: asking (``status``, ``open-last``...) never creates or writes the lock file.
    """
    try:
        fh = open(paths.lock_file, encoding="ascii")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None  # no daemon ever ran with these folders
    with fh:
        try:
            _lock_file(fh, shared=True)  # shared: a daemon starting meanwhile still gets it
        except OSError:
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
    return None


def _address(paths: AppPaths) -> tuple[str, str]:
    if sys.platform == "win32":
        tag = hashlib.sha256(str(paths.state_dir).encode()).hexdigest()[:16]
        return rf"\\.\pipe\traceagent-{tag}", "AF_PIPE"
    return str(paths.control_address), "AF_UNIX"


def _authkey(paths: AppPaths, *, create: bool) -> bytes:
    key_file = paths.control_key
    if create:
        key = secrets.token_bytes(32)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key
    return key_file.read_bytes()


class ControlServer:
    """Serves requests ``{"cmd": ...}`` from clients in a background thread."""

    def __init__(self, paths: AppPaths, handler: Handler) -> None:
        self.paths = paths
        self._handler = handler
        address, family = _address(paths)
        if family == "AF_UNIX":
            Path(address).unlink(missing_ok=True)
        self._listener = Listener(address, family=family, authkey=_authkey(paths, create=True))
        if family == "AF_UNIX":
            os.chmod(address, 0o600)
        self._thread = threading.Thread(target=self._serve, name="traceagent-control", daemon=True)
        self._closed = False

    def start(self) -> None:
        """Start accepting clients."""
        self._thread.start()

    def close(self) -> None:
        """Stop accepting clients and remove the socket."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        address, family = _address(self.paths)
        if family == "AF_UNIX":
            Path(address).unlink(missing_ok=True)

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError):
                if self._closed:
                    return
                log.debug("Control connection failed", exc_info=True)
                continue
            except Exception:  # e.g. AuthenticationError from a stale client
                log.warning("Rejected a control connection", exc_info=True)
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: Connection) -> None:
        with conn:
            try:
                request = conn.recv()
                reply = self._handler(request) if isinstance(request, dict) else {"error": "bad request"}
            except EOFError:
                return
            except Exception as e:
                log.exception("Control request failed")
                reply = {"error": str(e)}
            with contextlib.suppress(OSError):
                conn.send(reply)


def request(paths: AppPaths, cmd: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
    """Send one request to the running daemon. Raises ``OSError`` when none answers."""
    address, family = _address(paths)
    try:
        key = _authkey(paths, create=False)
    except FileNotFoundError:
        raise ConnectionRefusedError("traceagent is not running") from None
    conn = Client(address, family=family, authkey=key)
    with conn:
        conn.send({"cmd": cmd, **args})
        if not conn.poll(timeout):
            raise TimeoutError(f"traceagent did not answer '{cmd}' within {timeout:.0f} s")
        reply = conn.recv()
    if not isinstance(reply, dict):
        raise OSError("unexpected reply from the daemon")
    return reply
