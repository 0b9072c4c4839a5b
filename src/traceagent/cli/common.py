"""What several command groups share: the invocation's context, the daemon client, error lines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traceagent.app.client import DaemonClient
    from traceagent.app.wiring import Context


def load_ctx() -> Context:
    """Settings, paths and environment for this invocation."""
    from traceagent.app.wiring import load_context

    return load_context()


def client(ctx: Context) -> DaemonClient:
    """The client of the running daemon, answering from ``state.db`` when none runs."""
    from traceagent.app.client import DaemonClient

    return DaemonClient(ctx, fallback=True)


def access_line(e: PermissionError, default: Any = None) -> str:
    """One line for ``e``: its file (else ``default``) and the command that fixes it."""
    from traceagent.paths import access_problem, app_paths

    filename = e.filename or default
    if not filename:
        return f"{e.strerror or e}: check the permissions of traceagent's folders."
    try:
        paths = app_paths()
    except Exception:  # the folders cannot be resolved: name the file alone
        paths = None
    return access_problem(Path(filename), paths)
