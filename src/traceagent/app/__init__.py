"""The application: wiring settings to a sink (``wiring``), the desktop engine (``desktop``), the
daemon's life cycle (``daemon``) and the lock and control channel between it and other commands
(``control``). Front ends (``traceagent.tray``, ``traceagent.cli``) sit above this room.
"""
