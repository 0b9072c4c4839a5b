"""The engine room: from changed session files to uploads, knowing sinks but never the Hub client.

``watcher`` (watchdog) and ``roots`` (which root owns a path; walking one) find changes; ``debounce``
waits for quiet; ``scan`` compares folders with the ledger; ``state`` is the ledger and durable queue
(SQLite); ``snapshot`` and ``uploader`` turn queued files into complete, redacted bytes for a sink;
``engine`` is the facade the front ends share.
"""
