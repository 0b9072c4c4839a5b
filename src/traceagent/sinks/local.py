"""A folder with the bucket layout: the embedded default, and handy for a NAS or synced folder.

Whole copies are atomic: the spool file is renamed into place when it is on the same disk,
else copied to a temp file beside the target and renamed, so a reader (or a crash) never sees
a half-written transcript. An append (an item with ``append_at``) adds complete lines to the
copy in place, only when the copy is exactly the size traceagent left it; a crash in the
middle leaves a copy of another size, which the next upload replaces whole (never truncated).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import stat
import uuid
from collections.abc import Sequence
from pathlib import Path

from traceagent.sinks.base import ErrorKind, Sink, SinkError, UploadItem
from traceagent.sinks.keys import META_DIR, DestinationError, InvalidKeyError, check_key, parse_destination

log = logging.getLogger(__name__)

TMP_DIR = ".traceagent-tmp"
#: An append up to this size goes in one ``write`` (a reader sees all new lines or none).
APPEND_ONE_WRITE = 16 << 20
#: The folder's identity marker (a random id), beside the copies but outside every agent folder.
MARKER = f"{META_DIR}/destination-id"
_MARKER_RE = re.compile(r"^[0-9a-f]{32}$")
#: Errors that a NAS, a full or a read-only disk give for a while and then stop giving.
_PASSING_ERRNOS = (errno.EROFS, errno.ENOSPC, errno.EIO, errno.ENOTCONN, errno.ESTALE, errno.EDQUOT)


def folder_from_destination(destination: str) -> Path:
    """``/path``, ``~/path`` or ``file:///path`` to a folder path (raises
    :class:`~traceagent.sinks.keys.DestinationError` for anything else)."""
    parsed = parse_destination(destination)
    if parsed.folder is None:
        raise DestinationError(f"not a folder: {destination!r}")
    return parsed.folder


class LocalFolderSink(Sink):
    """Mirror into ``root/<key>``."""

    kind = "local folder"
    can_append = True

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
            raise self._error(e) from None

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

    def append_size(self, key: str) -> int | None:
        """The copy's size (a stat): new lines go after it if it is what we left there."""
        try:
            check_key(key)
            st = os.lstat(self.root / key)
        except (InvalidKeyError, OSError):
            return None
        # A symlink or anything but a plain file is replaced by a whole copy, as before.
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def _append(self, item: UploadItem, target: Path) -> None:
        """Write the new lines after the copy's last byte: I/O in proportion to the append."""
        assert item.append_at is not None
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size != item.append_at:
                # Changed since we asked (by hand, or a torn append): the retry sends it whole.
                raise OSError(
                    f"the copy is {st.st_size} bytes, not the {item.append_at} traceagent left; "
                    "it will be sent whole"
                )
            try:
                with open(item.spool_path, "rb") as src:
                    while data := src.read(APPEND_ONE_WRITE):
                        view = memoryview(data)
                        while view:
                            view = view[os.write(fd, view) :]
            except BaseException:
                # A write that stopped part-way (the disk filled up) would leave a torn line:
                # take back exactly the bytes written here, so the copy is as traceagent left it.
                os.ftruncate(fd, item.append_at)
                raise
        finally:
            os.close(fd)
        os.utime(target, (item.mtime, item.mtime))
        item.spool_path.unlink(missing_ok=True)

    def _place(self, item: UploadItem) -> None:
        target = self.root / item.key
        if item.append_at is not None:
            self._append(item, target)
            return
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
        # Short, whatever the target's name: a 255-byte name plus a prefix is too long to create.
        tmp = tmp_dir / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.part"
        try:
            shutil.copy2(item.spool_path, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a partial copy on a full disk would eat the space freed
            raise
        item.spool_path.unlink(missing_ok=True)

    def identity(self) -> str:
        """The random id in ``_traceagent/destination-id``, written when the folder has none
        (first use, or the folder was deleted or a share remounted empty: then the new id
        tells the engine that the copies are gone)."""
        marker = self.root / MARKER
        try:
            text = marker.read_text(encoding="ascii").strip()
            if _MARKER_RE.match(text):
                return text
            log.warning("The marker %s is unreadable; writing a new one", marker)
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as e:
            if isinstance(e, OSError) and e.errno not in (errno.ENOTDIR, errno.EISDIR):
                raise self._error(e) from None
        new = secrets.token_hex(16)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
            tmp.write_text(new + "\n", encoding="ascii")
            os.replace(tmp, marker)
        except OSError as e:
            raise self._error(e) from None
        return new

    def _error(self, e: OSError) -> SinkError:
        """The destination as a whole refuses: one message and kind for every check of it."""
        reason = e.strerror or str(e)
        if isinstance(e, FileExistsError) or (self.root.exists() and not self.root.is_dir()):
            reason = os.strerror(errno.ENOTDIR)  # a file where the folder should be
        return SinkError(
            f"Cannot write to the destination folder {self.root}: {reason}",
            kind=ErrorKind.TRANSIENT if e.errno in _PASSING_ERRNOS else ErrorKind.DESTINATION,
        )

    def list_files(self) -> dict[str, int]:
        """``key -> size`` of every file in the folder (traceagent's own folders left out)."""
        found: dict[str, int] = {}
        if not self.root.is_dir():
            return found

        def failed(e: OSError) -> None:
            raise self._error(e)

        for dirpath, dirs, names in os.walk(self.root, onerror=failed):
            rel = Path(dirpath).relative_to(self.root)
            if rel == Path("."):
                dirs[:] = [d for d in dirs if d not in (META_DIR, TMP_DIR)]
            for name in names:
                try:
                    st = os.stat(os.path.join(dirpath, name), follow_symlinks=False)
                except OSError:
                    continue
                found[(rel / name).as_posix()] = st.st_size
        return found

    def url_for(self, key: str) -> str:
        """A ``file://`` URL of the copy."""
        return (self.root / key).as_uri()

    def browse_url(self) -> str:
        """A ``file://`` URL of the folder."""
        return self.root.as_uri()
