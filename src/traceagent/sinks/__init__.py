"""Destinations. ``make_sink`` turns a destination string into a sink."""

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
