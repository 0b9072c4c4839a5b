"""``python -m traceagent.autostart``: see :mod:`traceagent.autostart._cli`."""

from traceagent.autostart._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
