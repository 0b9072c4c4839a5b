"""Logging: a rotating file in the log folder, plus stderr when a terminal is attached."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(log_file: Path, level: str = "INFO", *, stderr: bool = True) -> None:
    """Send traceagent's logs to ``log_file`` (5 × 2 MB, rotated) and optionally stderr."""
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    pkg = logging.getLogger("traceagent")
    pkg.setLevel(level)
    for h in list(pkg.handlers):
        pkg.removeHandler(h)
        root.removeHandler(h)
    problem = None
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=2_000_000, backupCount=5, encoding="utf-8"
        )
    except OSError as e:
        # An unwritable log (root-owned after `sudo traceagent run`) is no reason to stop:
        # log to stderr instead and say once how to fix the file.
        from traceagent.paths import access_problem, app_paths

        problem = access_problem(log_file, app_paths()) if isinstance(e, PermissionError) else str(e)
        stderr = True
    else:
        fh.setFormatter(logging.Formatter(FORMAT))
        pkg.addHandler(fh)
    if stderr:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        pkg.addHandler(sh)
    pkg.propagate = False
    # Libraries' warnings (watchdog's "Inotify queue overflowed", ...) go to the same log: under
    # a service manager nobody reads stderr, and Python's last-resort handler writes only there.
    for h in pkg.handlers:
        root.addHandler(h)
    if problem:
        pkg.warning("Logging to stderr only: %s", problem)
    # Libraries below us log too much at INFO for a daemon's file.
    for noisy in ("huggingface_hub", "httpx", "httpx2", "watchdog", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
