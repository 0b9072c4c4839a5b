"""The small interface every destination implements.

A sink receives *snapshots*: files in traceagent's spool folder that already hold exactly
the bytes to publish (complete lines only, secrets redacted). The sink never reads the
agent's live file, so an append racing with an upload can never be sent half-written.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Mapping, Sequence
from pathlib import Path


class ErrorKind(enum.Enum):
    """How the engine should react to a failure (Maestral's "one error funnel")."""

    #: Network down, timeout, 429, 5xx: back off for the whole queue and retry.
    TRANSIENT = "transient"
    #: The token was rejected or lacks write access: stop until the token changes.
    AUTH = "auth"
    #: Something about this one file (bad key, too large): record it, keep the others going.
    PER_FILE = "per_file"
    #: The destination itself is unusable and only the user can change that (public bucket refused).
    FATAL = "fatal"
    #: The whole destination refuses writes right now (a folder that is not writable, or a file
    #: in its place): an error state with the reason, retried on the destination's own short
    #: backoff (the sink's ``ensure`` is the probe), so it heals soon after the user fixes it.
    DESTINATION = "destination"


class SinkError(Exception):
    """A failure classified for the engine.

    ``message`` is user-facing and must never contain a token. ``retry_after`` is the
    server's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        retry_after: float | None = None,
        failed_keys: Sequence[str] = (),
        key_messages: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retry_after = retry_after
        #: For partial batch failures: the remote keys that did not land (the rest did).
        self.failed_keys = tuple(failed_keys)
        #: For partial batch failures: each failed key's own reason, when the sink knows it
        #: (else ``message`` applies to every failed key).
        self.key_messages = dict(key_messages or {})


@dataclasses.dataclass(frozen=True)
class UploadItem:
    """One file to publish: ``spool_path`` holds the bytes, ``key`` is the remote path.

    ``mtime`` (seconds) is the source file's modification time, so the remote copy keeps
    the same mtime that ``hf sync`` would give it. ``append_at`` (only for a sink that
    :attr:`~Sink.can_append`): the spool file holds complete lines to add to the remote copy,
    which must be exactly ``append_at`` bytes long; None: the spool file is the whole copy.
    """

    spool_path: Path
    key: str
    size: int
    mtime: float
    append_at: int | None = None


class Sink(abc.ABC):
    """A destination: a local folder, a Hugging Face bucket, ..."""

    #: Short name shown in status output ("local folder", "Hugging Face bucket").
    kind: str = "sink"
    #: The sink takes items with ``append_at`` (a folder can append in place; a bucket cannot,
    #: and Xet already sends only the new chunks of a whole file).
    can_append: bool = False

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """The destination as the user wrote it (``hf://buckets/...`` or a folder path)."""

    @abc.abstractmethod
    def ensure(self) -> None:
        """Create or check the destination before the first upload.

        Raises :class:`SinkError` (``FATAL`` for a refused destination, ``DESTINATION`` for
        one that refuses writes until the user fixes it, ``AUTH`` for a rejected token,
        ``TRANSIENT`` when the network is down). The engine calls it again as the probe
        before retrying after a ``DESTINATION`` error.
        """

    @abc.abstractmethod
    def upload(self, items: Sequence[UploadItem]) -> None:
        """Publish a batch. Spool files may be consumed (moved) by the sink.

        On success every item is at its key. On a partial failure raise
        :class:`SinkError` with ``failed_keys`` naming the items that did not land.
        """

    @abc.abstractmethod
    def url_for(self, key: str) -> str:
        """A link a browser can open for ``key`` (the trace viewer, or a file:// URL)."""

    @abc.abstractmethod
    def browse_url(self) -> str:
        """A link to the destination as a whole (the bucket page, or the folder)."""

    def append_size(self, key: str) -> int | None:
        """The size of the remote copy at ``key`` if new lines can be appended to it, else None.

        Asked before an append is prepared: a copy that is missing or not the size we left it
        is sent whole instead. Only sinks that :attr:`can_append` answer.
        """
        return None

    def identity(self) -> str | None:
        """What makes this destination *this* one: it changes when the destination is replaced
        (a folder deleted or a share remounted empty, a bucket deleted and created again), so
        the engine knows the ledger no longer describes what it holds. ``None``: no identity.

        Cheap (one small read or one API call): the engine asks once per upload pass. Raises
        :class:`SinkError` like :meth:`ensure`.
        """
        return None

    def list_files(self) -> dict[str, int]:
        """``key -> size`` of every file the destination holds (``traceagent sync --verify``).

        Raises :class:`SinkError`.
        """
        raise SinkError(f"A {self.kind} cannot be listed.", kind=ErrorKind.FATAL)

    def close(self) -> None:  # noqa: B027 - optional hook, most sinks hold nothing
        """Release resources held by the sink."""
