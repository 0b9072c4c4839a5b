"""Where traceagent keeps its configuration, state, logs and the default local bucket.

``TRACEAGENT_HOME`` puts everything in one folder (tests, portable installs); otherwise
the platform's conventional folders from platformdirs are used.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
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
