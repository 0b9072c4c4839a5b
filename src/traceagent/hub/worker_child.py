"""The upload worker's side: answers the daemon's requests (see :mod:`traceagent.hub.worker`).

Started as ``python -m traceagent.hub.worker_child FD LEVEL`` (POSIX) or as
multiprocessing's spawn target :func:`serve` (Windows, frozen apps). It holds one
:class:`~traceagent.hub.sink.HfSink` for the current token and destination, sends its log
records to the daemon, and exits when told to or when the daemon is gone.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from traceagent.hub.auth import AuthError, scrub
from traceagent.hub.sink import HfSink, ViewerRoutes
from traceagent.memory import release_memory
from traceagent.sinks.base import SinkError

__all__ = ["main", "serve"]

logger = logging.getLogger(__name__)

#: The keyword arguments of :class:`HfSink` the daemon sends.
SinkSpec = dict[str, Any]


class _PipeLogHandler(logging.Handler):
    """Sends formatted log records to the daemon (the logging cookbook's queue pattern)."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                # The type only: a traceback may quote request headers or arguments.
                message += f" ({record.exc_info[0].__name__ if record.exc_info[0] else 'error'})"
            fields = {
                "name": record.name,
                "levelno": record.levelno,
                "levelname": record.levelname,
                "msg": message,
                "created": record.created,
                "msecs": record.msecs,
                "process": record.process,
                "threadName": record.threadName,
            }
            self._send(("log", fields))
        except Exception:
            self.handleError(record)


def serve(conn: Connection, level: int) -> None:
    """The worker's main loop: answer requests until told to exit or the daemon is gone."""
    # Ctrl-C in the daemon's terminal reaches the whole process group, and `systemctl stop`
    # the whole cgroup: the daemon finishes the upload in flight and then tells us to exit,
    # so the worker must not die first. Should the daemon itself die, recv() sees EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGTERM") and os.name != "nt":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    send_lock = threading.Lock()

    def send(msg: tuple[Any, ...]) -> None:
        with send_lock:  # library threads may log while the main thread answers
            conn.send(msg)

    logging.raiseExceptions = False  # a log line sent after the daemon died is dropped silently
    handler = _PipeLogHandler(send)
    pkg = logging.getLogger("traceagent")
    pkg.handlers[:] = [handler]
    pkg.setLevel(level)
    pkg.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for noisy in ("huggingface_hub", "httpx", "httpx2", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    sinks: dict[tuple[tuple[str, Any], ...], HfSink] = {}
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return  # the daemon is gone
        if op == "exit":
            return
        token = _token_of(op, args)
        reply: tuple[Any, ...]
        try:
            reply = ("ok", _run(op, args, sinks))
        except SinkError as e:
            reply = ("sink_error", scrub(e.message, token), e.kind.value, e.retry_after, list(e.failed_keys))
        except AuthError as e:
            reply = ("auth_error", scrub(e.message, token), e.reason)
        except Exception as e:  # a bug, not a Hub answer: keep the worker alive, say what it was
            logger.error("upload worker: %s in %s", type(e).__name__, op)
            reply = ("error", f"{type(e).__name__}: {scrub(str(e), token)}")
        except BaseException:
            os._exit(1)  # KeyboardInterrupt etc.: the daemon sees EOF and retries
        try:
            send(reply)
        except OSError:
            return  # the daemon went away while we worked


def _token_of(op: str, args: tuple[Any, ...]) -> str | None:
    if op == "whoami":
        return str(args[0])
    if args and isinstance(args[0], dict):
        token = args[0].get("token")
        return str(token) if token else None
    return None


def _run(op: str, args: tuple[Any, ...], sinks: dict[tuple[tuple[str, Any], ...], HfSink]) -> Any:
    if op == "whoami":
        from traceagent.hub.whoami import fetch_whoami

        token, endpoint = args
        return fetch_whoami(token, endpoint=endpoint)
    spec: SinkSpec = args[0]
    key = tuple(sorted(spec.items()))
    sink = sinks.get(key)
    if sink is None:
        sinks.clear()  # a new token or destination: the old sink is not used again
        sink = sinks[key] = HfSink(**spec)
    if op == "ensure":
        sink.ensure()
        routes: ViewerRoutes | None = sink.viewer_routes
        return routes
    if op == "identity":
        return sink.identity()
    if op == "list":
        return sink.list_files()
    if op == "upload":
        sink.upload(args[1])
        release_memory()  # the worker may live on for a while after a backfill
        return None
    raise ValueError(f"unknown operation {op!r}")


def main(argv: Sequence[str]) -> int:
    """``python -m traceagent.hub.worker_child FD LEVEL``: serve the daemon on socket ``FD``."""
    fd, level = int(argv[0]), int(argv[1])
    serve(Connection(fd), level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
