"""The modules traceagent starts by name (``python -m NAME``): the one place that spells them.

A dotted module name written as a string is invisible to imports, mypy and ruff, so a move breaks it
silently (the sign-in window only fails when a user clicks *Sign in*). Every such name lives here,
and ``tests/test_entrypoints.py`` imports each one and checks that the installers, templates and
benchmarks name only modules that exist. This module imports nothing, so any room may use it.
"""

from __future__ import annotations

__all__ = ["AUTOSTART", "CLI", "CONSOLE_SCRIPT", "RUN_AS_MAIN", "SIGNIN_DIALOG", "WORKER_CHILD"]

#: ``python -m traceagent`` is the ``traceagent`` command. Start-at-login entries written on users'
#: machines run ``<python> -m traceagent run``, so this name must never change.
CLI = "traceagent"
#: The installers' way in (``python -m traceagent.autostart enable``), spelled again in
#: ``installers/`` (shell and PowerShell cannot import it; the test checks they agree).
AUTOSTART = "traceagent.autostart"
#: The tray's sign-in window, run as its own process so Tk never shares one with the tray's loop.
SIGNIN_DIALOG = "traceagent.tray.signin_dialog"
#: The upload worker's child process on POSIX (Windows and frozen apps spawn its ``serve`` instead).
WORKER_CHILD = "traceagent.hub.worker_child"

#: Every module above: each must run as ``python -m NAME``.
RUN_AS_MAIN: tuple[str, ...] = (CLI, AUTOSTART, SIGNIN_DIALOG, WORKER_CHILD)

#: ``[project.scripts]`` and ``[project.gui-scripts]`` in pyproject.toml (``module:function``).
CONSOLE_SCRIPT = "traceagent.cli:main"
