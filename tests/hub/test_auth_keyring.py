"""A real Secret Service (gnome-keyring on a private D-Bus session bus) stores, reads and
deletes the token. Fails, never skips, when gnome-keyring or dbus is missing."""

from __future__ import annotations

import subprocess
import sys

import keyring
from keyring.backends import SecretService

from hfsupport import Isolated, isolated_env, secret_service
from traceagent.hub.auth import KEYRING_SERVICE, KEYRING_USERNAME, delete_token, find_token, store_token

__all__ = ["isolated_env", "secret_service"]

SECRET = "hf_keyringSecretToken0123456789abcdef"


def test_store_read_delete_in_secret_service(secret_service: dict[str, str], isolated_env: Isolated) -> None:
    assert isinstance(keyring.get_keyring(), SecretService.Keyring)
    where = store_token(SECRET)
    assert where == "system keyring (SecretService Keyring)"
    # really in the Secret Service, read through a fresh backend object
    assert SecretService.Keyring().get_password(KEYRING_SERVICE, KEYRING_USERNAME) == SECRET
    assert not isolated_env.token_file.exists()  # and nowhere else
    found = find_token()
    assert found is not None
    assert found.token == SECRET
    assert found.source == "system keyring (SecretService Keyring)"
    assert delete_token() == ["system keyring (SecretService Keyring)"]
    assert SecretService.Keyring().get_password(KEYRING_SERVICE, KEYRING_USERNAME) is None
    assert find_token() is None


def test_a_fresh_process_picks_secret_service_by_itself(secret_service: dict[str, str]) -> None:
    code = (
        "import sys; from traceagent.hub.auth import store_token, find_token;"
        "print(store_token(sys.stdin.read())); print(find_token().source)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=SECRET,
        env=secret_service,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("system keyring (SecretService"), out.stdout
    assert lines[1].startswith("system keyring (SecretService"), out.stdout
    assert SecretService.Keyring().get_password(KEYRING_SERVICE, KEYRING_USERNAME) == SECRET
    assert SECRET not in out.stdout + out.stderr
