"""Entry point of the frozen builds: the macOS .app (py2app) and the Windows folder app (PyInstaller).

Double-clicking the app runs the tray (``traceagent run``); with arguments it is the ``traceagent`` CLI,
e.g. ``traceagent.app/Contents/MacOS/traceagent autostart enable``. Start-at-login entries written from a
frozen build point at the build's own executable (see ``traceagent.autostart.executable_command``).
"""

import multiprocessing
import sys

from traceagent.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    # Finder used to pass a -psn_<process serial number> argument to apps it launched.
    args = [a for a in sys.argv[1:] if not a.startswith("-psn_")]
    raise SystemExit(main(args or None))
