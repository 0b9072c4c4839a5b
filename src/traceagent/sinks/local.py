"""A folder with the bucket layout: the embedded default, and handy for a NAS or synced folder.

Writes are atomic: the spool file is renamed into place when it is on the same disk, else
copied to a temp file beside the target and renamed, so a reader (or a crash) never sees a
half-written transcript.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from traceagent.sinks.base import ErrorKind, Sink, SinkError, UploadItem
from traceagent.sinks.keys import InvalidKeyError, check_key

log = logging.getLogger(__name__)

TMP_DIR = ".traceagent-tmp"


def folder_from_destination(destination: str) -> Path:
    """``/path``, ``~/path`` or ``file:///path`` to a folder path."""
    if destination.startswith("file://"):
        return Path(unquote(urlsplit(destination).path))
    return Path(destination).expanduser()


class LocalFolderSink(Sink):
    """Mirror into ``root/<key>``."""

    kind = "local folder"

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    @property
    def location(self) -> str:
        """The folder path."""
        return str(self.root)

    def ensure(self) -> None:
        """Create the folder; clear temp files a crash may have left."""
        self._probe()
        shutil.rmtree(self.root / TMP_DIR, ignore_errors=True)

    def _probe(self) -> None:
        """Check that the destination folder exists (or can be made) and takes a new file.

        Raises :class:`SinkError` for the destination as a whole: ``TRANSIENT`` when it comes
        back by itself (a NAS unmounted, full or read-only for a while), ``DESTINATION`` when
        the user must act (permissions, a file in the way); both are retried on a short backoff.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".traceagent-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            transient = e.errno in (
                errno.EROFS,
                errno.ENOSPC,
                errno.EIO,
                errno.ENOTCONN,
                errno.ESTALE,
                errno.EDQUOT,
            )
            reason = e.strerror or str(e)
            if isinstance(e, FileExistsError) or (self.root.exists() and not self.root.is_dir()):
                reason = os.strerror(errno.ENOTDIR)  # a file where the folder should be
            raise SinkError(
                f"Cannot write to the destination folder {self.root}: {reason}",
                kind=ErrorKind.TRANSIENT if transient else ErrorKind.DESTINATION,
            ) from None

    def upload(self, items: Sequence[UploadItem]) -> None:
        """Move (or copy) each spool file to its key; per-file failures are collected."""
        failed: list[str] = []
        messages: dict[str, str] = {}
        probed = False
        for item in items:
            try:
                check_key(item.key)
                self._place(item)
            except InvalidKeyError as e:
                failed.append(item.key)
                messages[item.key] = f"{item.key}: {e}"
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                    # The whole destination is unusable right now: retry the queue later.
                    raise SinkError(
                        f"Destination folder {self.root}: {e.strerror}", kind=ErrorKind.TRANSIENT
                    ) from None
                if not probed:
                    # One file failing may be the whole folder refusing writes: ask the folder
                    # itself, so that is one destination state, not one error per file.
                    self._probe()
                    probed = True
                failed.append(item.key)
                messages[item.key] = f"cannot write {self.root / item.key}: {e.strerror or e}"
        tmp = self.root / TMP_DIR
        with contextlib.suppress(OSError):  # tidying up is best effort
            if tmp.exists() and not any(tmp.iterdir()):
                tmp.rmdir()
        if failed:
            raise SinkError(
                "; ".join(messages.values()),
                kind=ErrorKind.PER_FILE,
                failed_keys=failed,
                key_messages=messages,
            )

    def _place(self, item: UploadItem) -> None:
        target = self.root / item.key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.utime(item.spool_path, (item.mtime, item.mtime))
        try:
            os.replace(item.spool_path, target)
            return
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
        # Different disk: copy next to the target, then rename atomically.
        tmp_dir = self.root / TMP_DIR
        tmp_dir.mkdir(exist_ok=True)
        tmp = tmp_dir / f"{os.getpid()}-{target.name}"
        shutil.copy2(item.spool_path, tmp)
        os.replace(tmp, target)
        item.spool_path.unlink(missing_ok=True)

    def url_for(self, key: str) -> str:
        """A ``file://`` URL of the copy."""
        return (self.root / key).as_uri()

    def browse_url(self) -> str:
        """A ``file://`` URL of the folder."""
        return self.root.as_uri()
