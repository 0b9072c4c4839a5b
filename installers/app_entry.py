"""Entry point of the frozen builds: the macOS .app (py2app) and the Windows folder app (PyInstaller).

Double-clicking the app runs the tray (``traceagent run``); with arguments it is the ``traceagent`` CLI,
e.g. ``traceagent.app/Contents/MacOS/traceagent autostart enable``. Start-at-login entries written from a
frozen build point at the build's own executable (see ``traceagent.autostart.executable_command``).

In a frozen build ``sys.executable`` is this app, so what traceagent starts as ``[sys.executable, "-m",
NAME]`` (the tray's sign-in window) arrives here: a module of :data:`traceagent.entrypoints.RUN_AS_MAIN`
after ``-m`` is run as ``python -m`` would run it.
"""

import multiprocessing
import runpy
import sys

from traceagent.cli import main
from traceagent.entrypoints import RUN_AS_MAIN

if __name__ == "__main__":
    multiprocessing.freeze_support()
    # Finder used to pass a -psn_<process serial number> argument to apps it launched.
    args = [a for a in sys.argv[1:] if not a.startswith("-psn_")]
    if len(args) >= 2 and args[0] == "-m" and args[1] in RUN_AS_MAIN:
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        raise SystemExit(0)
    raise SystemExit(main(args or None))
