"""Token lookup, storage (keyring or the 0600 token file), whoami cache and validation.

The real Secret Service tests are in test_auth_keyring.py; here the keyring is either
keyring's own ``fail`` backend (no keyring, the headless-Linux case) or small in-memory
backends registered with keyring (a working one, a locked one).
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.errors
import pytest

from hfsupport import (
    READ_TOKEN,
    TOKEN,
    FakeHub,
    Isolated,
    LockedKeyring,
    MemoryKeyring,
    fake_hub,
    isolated_env,
)
from traceagent.hub import auth, whoami
from traceagent.hub.auth import AuthError, TokenInfo, delete_token, find_token, store_token

__all__ = ["fake_hub", "isolated_env"]

SECRET = "hf_authSecretToken0123456789abcdefXYZ"
pytestmark = pytest.mark.usefixtures("isolated_env")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend  # isolated_env restores the previous keyring


# --------------------------------------------------------------------------- lookup order
def test_lookup_order(memory_keyring: MemoryKeyring, isolated_env: Isolated) -> None:
    assert find_token() is None
    isolated_env.token_file.write_text("hf_fromTheHfTokenFile000000\n")
    found = find_token()
    assert found is not None and found.token == "hf_fromTheHfTokenFile000000"
    assert found.source == f"huggingface_hub token file ({isolated_env.token_file})"
    memory_keyring.set_password("traceagent", "huggingface", "hf_fromTheKeyring0000000000")
    # the keyring is asked only where a sign-in stored the token (issue 11, case 11)
    found = find_token()
    assert found is not None and found.token == "hf_fromTheHfTokenFile000000"
    store_token("hf_fromTheKeyring0000000000")
    found = find_token()
    assert found is not None and found.token == "hf_fromTheKeyring0000000000"
    assert found.source == "system keyring (Memory Keyring)"
    found = find_token({**os.environ, "HF_TOKEN": " hf_fromTheEnvironment00000 \n"})
    assert found is not None and found.token == "hf_fromTheEnvironment00000"
    assert found.source == "HF_TOKEN environment variable"


def test_legacy_environment_variable() -> None:
    found = find_token({"HUGGING_FACE_HUB_TOKEN": SECRET})
    assert found is not None and found.source == "HUGGING_FACE_HUB_TOKEN environment variable"


def test_token_path_rules(isolated_env: Isolated) -> None:
    assert auth.hf_token_path({"HF_TOKEN_PATH": "/x/tok", "HF_HOME": "/y"}) == Path("/x/tok")
    assert auth.hf_token_path({"HF_HOME": "/y"}) == Path("/y/token")
    assert auth.hf_token_path({"XDG_CACHE_HOME": "/c"}) == Path("/c/huggingface/token")
    assert auth.hf_token_path({"HOME": "/h"}) == Path("/h/.cache/huggingface/token")
    assert auth.hf_token_path() == isolated_env.token_file


def test_environ_argument_selects_the_token_file(tmp_path: Path) -> None:
    other = tmp_path / "other-hf-home"
    other.mkdir()
    (other / "token").write_text(SECRET)
    found = find_token({"HF_HOME": str(other)})
    assert found is not None and found.token == SECRET


def test_token_info_never_shows_the_token() -> None:
    info = TokenInfo(SECRET, "HF_TOKEN environment variable")
    for text in (repr(info), str(info), f"{info}", f"{info!r}", repr([info])):
        assert SECRET not in text
    assert "HF_TOKEN environment variable" in repr(info)
    assert len(info.fingerprint) == 12 and info.fingerprint != TokenInfo("hf_other", "x").fingerprint


def test_locked_keyring_falls_back_to_the_token_file(
    isolated_env: Isolated, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keyring.set_keyring(LockedKeyring())
    isolated_env.token_file.write_text(SECRET)
    marker = auth._keyring_marker(os.environ)  # a sign-in stored the token there before it locked
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("{}\n")
    found = find_token()
    assert found is not None and found.source.startswith("huggingface_hub token file")
    assert "KeyringLocked" in caplog.text
    where = store_token("hf_newTokenWhileLocked0000000")
    assert where.startswith(f"huggingface_hub token file ({isolated_env.token_file})")
    assert SECRET not in caplog.text and "hf_newTokenWhileLocked0000000" not in caplog.text


# --------------------------------------------------------------------------- storage
def test_store_in_a_working_keyring(memory_keyring: MemoryKeyring, isolated_env: Isolated) -> None:
    assert store_token(f"  {SECRET}\n") == "system keyring (Memory Keyring)"
    assert memory_keyring.items == {("traceagent", "huggingface"): SECRET}
    assert not isolated_env.token_file.exists()  # the token is in one place only
    found = find_token()
    assert found is not None and found.token == SECRET
    assert delete_token() == ["system keyring (Memory Keyring)"]
    assert find_token() is None
    assert delete_token() == []


def test_fallback_writes_the_hf_token_file_0600(
    isolated_env: Isolated, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = isolated_env.token_file
    where = store_token(SECRET)
    assert where == f"huggingface_hub token file ({path}), mode 0600: no system keyring is available"
    assert path.read_text() == SECRET
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    found = find_token()
    assert found is not None and found.token == SECRET
    assert found.source == f"huggingface_hub token file ({path})"
    # huggingface_hub itself (and so `hf`) sees the same token
    from huggingface_hub import get_token

    assert get_token() == SECRET
    assert SECRET not in caplog.text
    # traceagent wrote it, so logout removes it
    assert delete_token() == [f"huggingface_hub token file ({path})"]
    assert not path.exists()
    assert find_token() is None


def test_fallback_in_a_process_configured_with_the_fail_backend(isolated_env: Isolated) -> None:
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    code = (
        "import sys, keyring; from traceagent.hub.auth import store_token, find_token;"
        "print(type(keyring.get_keyring()).__module__);"
        "print(store_token(sys.stdin.read()));"
        "print(find_token().source)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=SECRET,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "keyring.backends.fail"
    assert lines[1].endswith("mode 0600: no system keyring is available")
    assert lines[2] == f"huggingface_hub token file ({isolated_env.token_file})"
    assert isolated_env.token_file.read_text() == SECRET
    assert stat.S_IMODE(isolated_env.token_file.stat().st_mode) == 0o600
    assert SECRET not in out.stdout + out.stderr


def test_logout_keeps_a_token_file_written_by_hf_auth_login(isolated_env: Isolated) -> None:
    isolated_env.token_file.write_text(SECRET)  # `hf auth login` wrote this one
    assert delete_token() == []
    assert isolated_env.token_file.read_text() == SECRET
    assert delete_token(hf_token_file=True) == [f"huggingface_hub token file ({isolated_env.token_file})"]
    assert not isolated_env.token_file.exists()


def test_logout_keeps_a_token_file_replaced_by_hf_after_our_login(isolated_env: Isolated) -> None:
    store_token(SECRET)  # fallback: traceagent writes the file
    isolated_env.token_file.write_text("hf_laterWrittenByHfAuthLogin00")  # then the user ran `hf auth login`
    assert delete_token() == []
    assert isolated_env.token_file.exists()


def test_empty_token_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        store_token("  \n")


# --------------------------------------------------------------------------- whoami and validation
def test_validate_token(fake_hub: FakeHub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert whoami.validate_token(TOKEN, fake_hub.endpoint) == "alice"
    with pytest.raises(AuthError) as e:
        whoami.validate_token(SECRET, fake_hub.endpoint)
    assert e.value.reason == "invalid"
    assert e.value.message.startswith("Hugging Face rejected the token (401)")
    with pytest.raises(AuthError) as e:
        whoami.validate_token(READ_TOKEN, fake_hub.endpoint)
    assert e.value.reason == "forbidden" and "read-only" in e.value.message
    assert SECRET not in caplog.text and TOKEN not in caplog.text


def test_validate_token_network_down() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AuthError) as e:
        whoami.validate_token(SECRET, f"http://127.0.0.1:{port}")
    assert e.value.reason == "network"
    assert e.value.message.startswith(f"Could not reach Hugging Face at http://127.0.0.1:{port}")
    assert SECRET not in e.value.message


@pytest.mark.parametrize(("status", "reason"), [(429, "rate_limited"), (500, "server"), (403, "forbidden")])
def test_validate_token_other_answers(fake_hub: FakeHub, status: int, reason: str) -> None:
    fake_hub.fail_next("whoami", status)
    with pytest.raises(AuthError) as e:
        whoami.validate_token(TOKEN, fake_hub.endpoint)
    assert e.value.reason == reason


def test_whoami_is_cached_by_digest(fake_hub: FakeHub, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert whoami.whoami_cached(TOKEN, endpoint=fake_hub.endpoint, cache_dir=cache) == "alice"
    assert whoami.whoami_cached(TOKEN, endpoint=fake_hub.endpoint, cache_dir=cache) == "alice"
    assert fake_hub.count("whoami-v2") == 1
    files = list(cache.iterdir())
    assert [f.name for f in files] == ["whoami.json"]
    text = files[0].read_text()
    assert TOKEN not in text and "alice" in text
    # a different token is a different entry
    fake_hub.add_token(SECRET, user="bob")
    assert whoami.whoami_cached(SECRET, endpoint=fake_hub.endpoint, cache_dir=cache) == "bob"
    assert fake_hub.count("whoami-v2") == 2
    assert SECRET not in files[0].read_text()
    # expired entries are asked again
    assert whoami.whoami_cached(TOKEN, endpoint=fake_hub.endpoint, cache_dir=cache, ttl=0) == "alice"
    assert fake_hub.count("whoami-v2") == 3


def test_whoami_cache_drops_a_revoked_token(fake_hub: FakeHub, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    fake_hub.add_token(SECRET)
    assert whoami.whoami_cached(SECRET, endpoint=fake_hub.endpoint, cache_dir=cache) == "alice"
    fake_hub.revoke(SECRET)
    with pytest.raises(AuthError) as e:
        whoami.whoami_cached(SECRET, endpoint=fake_hub.endpoint, cache_dir=cache, ttl=0)
    assert e.value.reason == "invalid"
    assert (cache / "whoami.json").read_text() == "{}"


def test_whoami_cache_survives_an_unwritable_folder(fake_hub: FakeHub, tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    assert whoami.whoami_cached(TOKEN, endpoint=fake_hub.endpoint, cache_dir=blocker / "sub") == "alice"


@pytest.mark.parametrize("oauth", [False, True])
def test_a_plain_token_file_is_read_without_importing_huggingface_hub(
    isolated_env: Isolated, oauth: bool
) -> None:
    """huggingface_hub is consulted only for a browser-login token it may need to refresh:
    importing it costs the daemon 18 MB (bench/README.md, figure 1)."""
    path = isolated_env.token_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SECRET)
    if oauth:  # what `hf auth login` (browser flow) writes beside the token, far from expiry
        (path.parent / "stored_tokens").write_text(
            f"[laptop]\nhf_token = {SECRET}\nrefresh_token = hf_oauth_refresh_0123\nexpires_at = 4102444800\n"
        )
    code = (
        "import sys; from traceagent.hub.auth import find_token; t = find_token();"
        "print(t.source if t else None); print('huggingface_hub' in sys.modules)"
    )
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    r = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    source, imported = r.stdout.split("\n")[:2]
    assert source == f"huggingface_hub token file ({path})"
    assert imported == str(oauth)
    assert SECRET not in r.stdout + r.stderr
