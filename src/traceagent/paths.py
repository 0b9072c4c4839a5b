"""Where traceagent keeps its configuration, state, logs and the default local bucket.

``TRACEAGENT_HOME`` puts everything in one folder (tests, portable installs); otherwise
the platform's conventional folders from platformdirs are used.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

APP_NAME = "traceagent"


@dataclasses.dataclass(frozen=True)
class AppPaths:
    """The folders traceagent uses. Nothing is created until :meth:`ensure` is called."""

    config_dir: Path
    state_dir: Path
    log_dir: Path
    data_dir: Path

    @property
    def config_file(self) -> Path:
        """``config.toml``: what the user chose."""
        return self.config_dir / "config.toml"

    @property
    def state_db(self) -> Path:
        """``state.db``: what the machine learned (SQLite, WAL)."""
        return self.state_dir / "state.db"

    @property
    def spool_dir(self) -> Path:
        """Snapshots waiting to be uploaded live here (same disk as the state)."""
        return self.state_dir / "spool"

    @property
    def lock_file(self) -> Path:
        """Held (flock) by the running daemon; holds its pid."""
        return self.state_dir / "daemon.lock"

    @property
    def control_address(self) -> Path:
        """Unix socket of the control channel (POSIX)."""
        return self.state_dir / "control.sock"

    @property
    def control_key(self) -> Path:
        """Auth key of the control channel, readable only by the user."""
        return self.state_dir / "control.key"

    @property
    def log_file(self) -> Path:
        """The rotating log."""
        return self.log_dir / "traceagent.log"

    @property
    def default_bucket_dir(self) -> Path:
        """The embedded default destination: a local folder with the bucket layout."""
        return self.data_dir / "bucket"

    def ensure(self) -> None:
        """Create the folders (private to the user where the OS supports it)."""
        for d in (self.config_dir, self.state_dir, self.log_dir, self.data_dir, self.spool_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)

    def foreign_owned(self) -> list[Path]:
        """traceagent's folders that hold something owned by another user (a ``sudo traceagent``
        run leaves root-owned files): the folders and their direct entries, never deeper."""
        return [d for d in _outermost(self.folders()) if _has_foreign_entry(d)]

    def folders(self) -> tuple[Path, ...]:
        """Every folder traceagent writes to."""
        return (self.config_dir, self.state_dir, self.log_dir, self.data_dir)


def app_paths(environ: Mapping[str, str] | None = None) -> AppPaths:
    """Resolve the folders, honouring ``TRACEAGENT_HOME``."""
    env = os.environ if environ is None else environ
    home = env.get("TRACEAGENT_HOME")
    if home:
        base = Path(home).expanduser()
        return AppPaths(
            config_dir=base, state_dir=base / "state", log_dir=base / "logs", data_dir=base / "data"
        )
    import platformdirs

    return AppPaths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        state_dir=Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)),
        log_dir=Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
    )


# -- permission problems: one line that names the path and the command that fixes it -------------

#: Linux ``FS_IOC_GETFLAGS`` and its immutable / append-only bits (``chattr +i`` / ``+a``).
_FS_IOC_GETFLAGS = 0x80086601
_FS_IMMUTABLE_FL = 0x10
_FS_APPEND_FL = 0x20


def _owner_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


def _chattr_flags(path: Path) -> int:
    """The file's ``chattr`` flags (0 where they cannot be read or the OS has none)."""
    if not sys.platform.startswith("linux"):
        return 0
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return 0
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf)
        return int.from_bytes(buf[:4], sys.byteorder)
    except OSError:
        return 0
    finally:
        os.close(fd)


def _has_foreign_entry(folder: Path) -> bool:
    if not hasattr(os, "geteuid"):
        return False
    uid = os.geteuid()
    try:
        if folder.stat().st_uid != uid:
            return True
        with os.scandir(folder) as it:
            return any(e.stat(follow_symlinks=False).st_uid != uid for e in it)
    except OSError:
        return False


def _outermost(folders: Iterable[Path]) -> list[Path]:
    """``folders`` without those inside another one of them (``chown -R`` covers those)."""
    unique = list(dict.fromkeys(folders))
    return [d for d in unique if not any(o != d and d.is_relative_to(o) for o in unique)]


def access_problem(path: Path, paths: AppPaths | None = None, *, what: str = "write") -> str:
    """One line for a permission problem with ``path``: what is wrong and the command that fixes it.

    Looks at ``path`` and its folder: owned by another user (a ``sudo traceagent run``: the fix
    is ``chown``, of every traceagent folder in ``paths`` that holds such files), immutable or
    append-only (``chattr -i``), or without write permission (``chmod``).
    """
    path = Path(path)
    candidates = [path, path.parent] if path.exists() else [path.parent]
    while not candidates[-1].exists() and candidates[-1] != candidates[-1].parent:
        candidates.append(candidates[-1].parent)
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    for p in candidates:
        try:
            st = p.stat()
        except OSError:
            continue
        is_dir = p.is_dir()
        if uid is not None and st.st_uid != uid:
            folders = [p if is_dir else p.parent]
            if paths is not None:
                folders += paths.foreign_owned()
            targets = " ".join(shlex.quote(str(d)) for d in _outermost(folders))
            return (
                f"Cannot {what} {path}: {p} is owned by {_owner_name(st.st_uid)}. "
                f"Fix: sudo chown -R $USER {targets}"
            )
        flags = _chattr_flags(p)
        if flags & (_FS_IMMUTABLE_FL | _FS_APPEND_FL):
            letter = "i" if flags & _FS_IMMUTABLE_FL else "a"
            return (
                f"Cannot {what} {path}: {p} is {'immutable' if letter == 'i' else 'append-only'} "
                f"(chattr +{letter}). Fix: sudo chattr -{letter} {shlex.quote(str(p))}"
            )
        need = os.W_OK | os.X_OK if is_dir else os.W_OK
        if what == "read":
            need = os.R_OK | os.X_OK if is_dir else os.R_OK
        if not os.access(p, need):
            mode = ("u+rwx" if is_dir else "u+rw") if what == "write" else ("u+rx" if is_dir else "u+r")
            able = "writable" if what == "write" else "readable"
            return f"Cannot {what} {path}: {p} is not {able}. Fix: chmod {mode} {shlex.quote(str(p))}"
    return f"Cannot {what} {path}: permission denied; check the permissions of {path.parent}."


def is_access_error(e: BaseException) -> bool:
    """A permission problem (as opposed to a missing file or a full disk)."""
    return isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM)
