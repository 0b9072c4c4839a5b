"""Errors that carry a message meant for the user (no traceback is shown for these)."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; ``message`` is shown as is, without a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(UserError):
    """The configuration file is malformed or holds an invalid value."""


class AlreadyRunningError(UserError):
    """Another daemon already holds the lock for this configuration."""

    def __init__(self, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "unknown pid"
        super().__init__(f"traceagent is already running ({who}).")
        self.pid = pid
