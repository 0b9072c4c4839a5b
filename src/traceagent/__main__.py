"""``python -m traceagent`` is the same as the ``traceagent`` command."""

from traceagent.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
