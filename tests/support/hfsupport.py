"""Shared fixtures and helpers for the Hugging Face sink, auth and doctor tests.

Import the fixtures into a test module (``from hfsupport import isolated_env, fake_hub``).

Importing this module tunes the *process* for fast, offline hf_xet runs (the hf_xet session
is global and reads its settings once, when first created): few, short Xet retries, no Xet
telemetry, no progress bars, and Xet's cache and logs in a throwaway folder rather than
``~/.cache/huggingface/xet``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring.errors
import pytest
from keyring.backend import KeyringBackend

from fakehub import READ_TOKEN, TOKEN, USER, FakeHub
from traceagent.sinks.base import UploadItem

CORPUS = Path(__file__).parents[1] / "fixtures" / "corpus"

_XET_SCRATCH = tempfile.mkdtemp(prefix="traceagent-tests-xet-")
atexit.register(shutil.rmtree, _XET_SCRATCH, ignore_errors=True)
_PROCESS_ENV = {
    "HF_XET_CLIENT_RETRY_MAX_ATTEMPTS": "2",
    "HF_XET_CLIENT_RETRY_BASE_DELAY": "50ms",
    "HF_XET_CLIENT_RETRY_MAX_DURATION": "3s",
    "HF_XET_TELEMETRY_ENABLED": "false",
    "HF_XET_CACHE": os.path.join(_XET_SCRATCH, "xet"),
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}
for _k, _v in _PROCESS_ENV.items():
    os.environ.setdefault(_k, _v)

__all__ = [
    "CORPUS",
    "READ_TOKEN",
    "TOKEN",
    "USER",
    "FakeHub",
    "Isolated",
    "LockedKeyring",
    "MemoryKeyring",
    "corpus_items",
    "fake_hub",
    "isolated_env",
    "make_item",
    "secret_service",
]


class MemoryKeyring(KeyringBackend):
    """A working, "secure" keyring (priority 1) kept in memory."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    @property
    def name(self) -> str:  # type: ignore[override]
        return "Memory Keyring"

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("not found")


class LockedKeyring(MemoryKeyring):
    """A Secret Service whose collection stays locked."""

    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.KeyringLocked("Failed to unlock the collection!")


@dataclass
class Isolated:
    """The throwaway folders a test runs in."""

    root: Path
    home: Path
    hf_home: Path
    cache: Path

    @property
    def token_file(self) -> Path:
        """huggingface_hub's token file under this HF_HOME."""
        return self.hf_home / "token"


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Isolated]:
    """HOME, HF_HOME, XDG_* and traceagent's own folders inside ``tmp_path``; no token in
    the environment; no session bus; keyring forced to its ``fail`` backend (so neither the
    real keyring nor the real ~/.cache is ever touched)."""
    import keyring
    from huggingface_hub import constants
    from keyring.backends import fail

    root = tmp_path / "iso"
    dirs = {
        "HOME": root / "home",
        "HF_HOME": root / "hf_home",
        "XDG_CACHE_HOME": root / "xdg_cache",
        "XDG_CONFIG_HOME": root / "xdg_config",
        "XDG_DATA_HOME": root / "xdg_data",
        "XDG_STATE_HOME": root / "xdg_state",
        "XDG_RUNTIME_DIR": root / "xdg_runtime",
        "TRACEAGENT_HOME": root / "traceagent",
    }
    for name, path in dirs.items():
        path.mkdir(parents=True, mode=0o700)
        monkeypatch.setenv(name, str(path))
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_ENDPOINT",
        "HF_OIDC_RESOURCE",
        "DBUS_SESSION_BUS_ADDRESS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    # huggingface_hub computed these at import time, from the real environment
    monkeypatch.setattr(constants, "HF_HOME", str(dirs["HF_HOME"]))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(dirs["HF_HOME"] / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(dirs["HF_HOME"] / "stored_tokens"))
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        yield Isolated(root=root, home=dirs["HOME"], hf_home=dirs["HF_HOME"], cache=root / "cache")
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def fake_hub(tmp_path: Path) -> Iterator[FakeHub]:
    """A fake Hub on 127.0.0.1 (ephemeral port) with a ``local://`` Xet CAS in tmp_path."""
    with FakeHub(tmp_path / "cas") as hub:
        yield hub


def make_item(spool_dir: Path, key: str, data: bytes, mtime: float = 1_700_000_000.5) -> UploadItem:
    """Write ``data`` to a spool file and describe it as an :class:`UploadItem`."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=spool_dir, prefix="snap-", suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return UploadItem(spool_path=Path(name), key=key, size=len(data), mtime=mtime)


def corpus_items(spool_dir: Path) -> list[UploadItem]:
    """Every file of the test corpus copied to the spool, keyed by its path in the corpus,
    with the corpus file's mtime (the sink stamps the spool copies, never the fixtures)."""
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    if not files:
        pytest.fail(f"the test corpus is missing: {CORPUS} has no files")
    items = []
    for path in files:
        key = path.relative_to(CORPUS).as_posix()
        items.append(make_item(spool_dir, key, path.read_bytes(), mtime=path.stat().st_mtime))
    return items


@pytest.fixture
def secret_service(isolated_env: Isolated, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A real Secret Service: a private D-Bus session bus plus an unlocked gnome-keyring,
    with every XDG folder in tmp_path. Yields the environment a child process needs.

    Fails (does not skip) when gnome-keyring or dbus is missing: CI installs them
    (``apt-get install --no-install-recommends gnome-keyring dbus libsecret-1-0``).
    """
    missing = [b for b in ("dbus-daemon", "gnome-keyring-daemon") if shutil.which(b) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install them with "
            "`apt-get install -y --no-install-recommends gnome-keyring dbus libsecret-1-0`"
        )
    import keyring
    from keyring.backends import SecretService

    env = dict(os.environ)
    env.pop("DISPLAY", None)
    env.pop("PYTHON_KEYRING_BACKEND", None)
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        if not address:
            pytest.fail("dbus-daemon did not print its address")
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        # creates $XDG_DATA_HOME/keyrings/login.keyring, unlocked with this password; the
        # daemon forks into the background and exits when the bus goes away
        subprocess.run(
            ["gnome-keyring-daemon", "--unlock", "--components=secrets"],
            input=b"ci-password",
            env=env,
            check=True,
            timeout=30,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
        keyring.set_keyring(SecretService.Keyring())  # keyring caches its choice per process
        yield env
    finally:
        bus.terminate()
        try:
            bus.wait(5)
        except subprocess.TimeoutExpired:
            bus.kill()
            bus.wait(5)
