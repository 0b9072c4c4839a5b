"""Destinations, without any network client: the :class:`~traceagent.sinks.base.Sink` interface and its
errors (``base``), THE key and destination rules (``keys``, pure), and the local folder (``local``). The
Hugging Face bucket sink lives in :mod:`traceagent.hub`; ``traceagent.app.wiring`` picks one.
"""

from __future__ import annotations

from traceagent.sinks.base import ErrorKind, Sink, SinkError, UploadItem
from traceagent.sinks.local import LocalFolderSink, folder_from_destination

__all__ = [
    "ErrorKind",
    "LocalFolderSink",
    "Sink",
    "SinkError",
    "UploadItem",
    "folder_from_destination",
]
