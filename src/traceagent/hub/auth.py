"""The Hugging Face token: where it is found and where it is stored (who it belongs to:
:mod:`traceagent.hub.whoami`).

Lookup order (:func:`find_token`): the ``HF_TOKEN`` environment variable, the system keyring
(service ``traceagent``, username ``huggingface``), then huggingface_hub's own token file
(``$HF_TOKEN_PATH`` or ``$HF_HOME/token``), so ``hf auth login`` users need nothing more.

Storage (:func:`store_token`): the system keyring when a *secure* backend works (Secret
Service, KWallet, macOS Keychain, Windows Credential Locker; ``keyrings.alt`` backends do
not count); otherwise huggingface_hub's token file, written like ``hf auth login`` does
(file mode 0600, folder 0700), and the caller is told so.

The token never appears in a log line, an exception message or a ``repr``; the only files
holding it are the keyring and the token file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from traceagent.errors import UserError

__all__ = [
    "KEYRING_SERVICE",
    "KEYRING_USERNAME",
    "AuthError",
    "TokenInfo",
    "adopt_keyring_token",
    "clean_token",
    "delete_token",
    "find_token",
    "hf_token_path",
    "keyring_backend_name",
    "scrub",
    "secure_keyring",
    "store_token",
    "token_digest",
]

logger = logging.getLogger(__name__)

KEYRING_SERVICE = "traceagent"
KEYRING_USERNAME = "huggingface"
#: Suffix of the file next to the token file that says traceagent wrote it (sha256 only).
_OWNER_SUFFIX = ".traceagent-sha256"
_TOKEN_LIKE = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")
#: In the state folder: "a sign-in stored the token in the keyring" (which backend; no secret).
KEYRING_MARKER = "token-in-keyring.json"
_locked_warned = False


class AuthError(UserError):
    """The token could not be checked or was refused. ``reason`` is one of ``"invalid"``
    (401), ``"forbidden"`` (no write access), ``"rate_limited"``, ``"network"`` (the Hub
    could not be reached), ``"server"`` (5xx or an unexpected answer)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True, repr=False)
class TokenInfo:
    """A token and where it came from (``source`` is shown to the user; the token never is)."""

    token: str
    source: str

    @property
    def fingerprint(self) -> str:
        """A short, non-reversible id of the token (to notice that it changed)."""
        return token_digest(self.token)[:12]

    def __repr__(self) -> str:
        return f"TokenInfo(token='***', source={self.source!r})"

    __str__ = __repr__


# --------------------------------------------------------------------------- helpers
def token_digest(token: str, salt: str = "") -> str:
    """sha256 of ``token`` (with ``salt``): how caches and owner marks name a token."""
    return hashlib.sha256(f"{salt}\n{token}".encode() if salt else token.encode()).hexdigest()


def clean_token(token: str | None) -> str | None:
    """``token`` without line breaks and surrounding blanks (``None`` when nothing is left)."""
    if token is None:
        return None
    return token.replace("\r", "").replace("\n", "").strip() or None


def scrub(text: str, token: str | None = None) -> str:
    """``text`` with ``token`` and anything shaped like a Hugging Face token masked."""
    if token:
        text = text.replace(token, "hf_***")
    return _TOKEN_LIKE.sub("hf_***", text)


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _expand(path: str, env: Mapping[str, str]) -> Path:
    if path.startswith("~"):
        home = env.get("HOME") or os.path.expanduser("~")
        path = home + path[1:]
    return Path(path)


def hf_token_path(environ: Mapping[str, str] | None = None) -> Path:
    """huggingface_hub's token file, by its own rules: ``$HF_TOKEN_PATH``, else
    ``$HF_HOME/token``, else ``$XDG_CACHE_HOME/huggingface/token``, else
    ``~/.cache/huggingface/token``. Computed from ``environ`` each call."""
    env = _env(environ)
    if env.get("HF_TOKEN_PATH"):
        return _expand(env["HF_TOKEN_PATH"], env)
    if env.get("HF_HOME"):
        return _expand(env["HF_HOME"], env) / "token"
    cache = env.get("XDG_CACHE_HOME") or "~/.cache"
    return _expand(cache, env) / "huggingface" / "token"


def _write_secret(path: Path, content: str) -> None:
    """Write ``content`` the way huggingface_hub writes its token (file 0600, folder 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)
    with contextlib.suppress(OSError, NotImplementedError):
        os.chmod(path, 0o600)


# --------------------------------------------------------------------------- keyring
def secure_keyring() -> Any | None:
    """The keyring backend traceagent would use, or ``None`` when none is secure.

    "Secure" means keyring's priority >= 1 (Secret Service, KWallet, macOS Keychain,
    Windows Credential Locker); ``fail`` and ``keyrings.alt`` backends are below that.
    """
    try:
        import keyring
        from keyring.backends import chainer
    except ImportError:  # pragma: no cover - keyring is a dependency
        return None
    try:
        kr = keyring.get_keyring()
    except Exception as e:  # a broken backend configuration must not stop the daemon
        logger.warning("keyring unavailable: %s", scrub(f"{type(e).__name__}: {e}"))
        return None
    members = list(kr.backends) if isinstance(kr, chainer.ChainerBackend) else [kr]
    for backend in members:
        try:
            if float(backend.priority) >= 1:
                return backend
        except Exception:
            continue
    return None


def keyring_backend_name(backend: Any | None = None) -> str:
    """A readable name for ``backend`` (default: the one keyring chose), e.g.
    ``"SecretService Keyring"`` or ``"fail Keyring (keyring.backends.fail)"``."""
    try:
        if backend is None:
            import keyring

            backend = keyring.get_keyring()
        name = str(getattr(backend, "name", "") or type(backend).__name__)
    except Exception as e:
        return f"unavailable ({type(e).__name__})"
    module = type(backend).__module__
    if "fail" in module.split(".") or name.startswith(("fail", "chainer")):
        return f"{name} ({module})"
    return name


def _keyring_marker(env: Mapping[str, str]) -> Path:
    from traceagent.paths import app_paths

    return app_paths(env).state_dir / KEYRING_MARKER


def _write_keyring_marker(env: Mapping[str, str], backend: Any) -> None:
    import json

    marker = _keyring_marker(env)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        info = {"backend": f"{type(backend).__module__}.{type(backend).__name__}"}
        info.update(service=KEYRING_SERVICE, username=KEYRING_USERNAME)
        marker.write_text(json.dumps(info) + "\n", encoding="utf-8")
    except OSError as e:
        logger.warning("could not write %s (%s): traceagent will not look in the keyring", marker, e)


def _is_secret_service(backend: Any) -> bool:
    return type(backend).__module__ == "keyring.backends.SecretService"


class _KeyringLockedError(Exception):
    """The item is there, in a locked collection (reading it would need an unlock prompt)."""


def _secret_service_items(conn: Any) -> list[Any]:
    import secretstorage

    # SearchItems looks in every collection and unlocks nothing: no collection is created
    # (keyring's get_password would create a missing default one) and no prompt is shown.
    attributes = {"service": KEYRING_SERVICE, "username": KEYRING_USERNAME}
    return list(secretstorage.search_items(conn, attributes))


def _secret_service_read() -> str | None:
    """The token from the Secret Service, read without creating or unlocking anything."""
    import secretstorage

    conn = secretstorage.dbus_init()
    try:
        items = _secret_service_items(conn)
        for item in items:
            if not item.is_locked():
                return bytes(item.get_secret()).decode("utf-8")
        if items:
            raise _KeyringLockedError
        return None
    finally:
        conn.close()


def _secret_service_delete() -> bool:
    """Delete traceagent's items from the Secret Service's unlocked collections."""
    import secretstorage

    conn = secretstorage.dbus_init()
    try:
        items = _secret_service_items(conn)
        unlocked = [item for item in items if not item.is_locked()]
        for item in unlocked:
            item.delete()
        if items and not unlocked:
            raise _KeyringLockedError
        return bool(unlocked)
    finally:
        conn.close()


def _keyring_get() -> tuple[str, str] | None:
    global _locked_warned
    backend = secure_keyring()
    if backend is None:
        return None
    name = keyring_backend_name(backend)
    try:
        if _is_secret_service(backend):
            value = _secret_service_read()
        else:
            value = backend.get_password(KEYRING_SERVICE, KEYRING_USERNAME)
    except _KeyringLockedError:
        # The daemon looks again every 30 s while signed out: say it once.
        (logger.debug if _locked_warned else logger.warning)(
            "the system keyring (%s) is locked: traceagent does not unlock it by itself; "
            "unlock it or sign in again",
            name,
        )
        _locked_warned = True
        return None
    except Exception as e:  # D-Bus trouble, a dismissed prompt: a miss, not a crash
        logger.warning("could not read the token from the keyring (%s): %s", name, type(e).__name__)
        return None
    token = clean_token(value)
    return (token, name) if token else None


def adopt_keyring_token(environ: Mapping[str, str] | None = None) -> TokenInfo | None:
    """A token a sign-in stored in the keyring before the marker existed (an older traceagent).

    Called only for a user whose last destination was on the Hub. Reads like
    :func:`find_token` (no collection created or unlocked) and, when found, writes the marker.
    """
    env = _env(environ)
    found = _keyring_get()
    if found is None:
        return None
    backend = secure_keyring()
    if backend is not None:
        _write_keyring_marker(env, backend)
    return TokenInfo(found[0], f"system keyring ({found[1]})")


# --------------------------------------------------------------------------- public API
def find_token(environ: Mapping[str, str] | None = None) -> TokenInfo | None:
    """Find the Hugging Face token: ``HF_TOKEN``, then the keyring, then the token file.

    ``environ`` defaults to ``os.environ``. Returns ``None`` when there is no token.
    """
    env = _env(environ)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = clean_token(env.get(var))
        if value:
            return TokenInfo(value, f"{var} environment variable")
    # Only where a sign-in put it: asking a keyring that holds nothing may prompt (see above).
    found = _keyring_get() if _keyring_marker(env).is_file() else None
    if found:
        return TokenInfo(found[0], f"system keyring ({found[1]})")
    path = hf_token_path(env)
    token = _read_hf_token_file(path, env)
    if token:
        return TokenInfo(token, f"huggingface_hub token file ({path})")
    return None


def _read_hf_token_file(path: Path, env: Mapping[str, str]) -> str | None:
    try:
        if not path.is_file():
            return None
    except OSError:
        return None
    if env is os.environ and not env.get("HF_OIDC_RESOURCE") and _has_refresh_token(path):
        # Same file huggingface_hub reads: let it refresh an OAuth token close to expiry. Only
        # for a browser-login token (it has a refresh token beside it): importing
        # huggingface_hub costs the daemon 18 MB, and a plain token needs no refresh.
        try:
            from huggingface_hub import constants, get_token

            if os.path.abspath(constants.HF_TOKEN_PATH) == os.path.abspath(path):
                token = clean_token(get_token())
                if token:
                    return token
        except Exception as e:
            logger.debug("huggingface_hub.get_token() failed: %s", type(e).__name__)
    try:
        return clean_token(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        logger.warning("could not read the token file %s: %s", path, type(e).__name__)
        return None


def _has_refresh_token(token_path: Path) -> bool:
    """Whether huggingface_hub's ``stored_tokens`` file (beside ``token_path``) holds an
    OAuth refresh token (written by the browser-based ``hf auth login``)."""
    try:
        return "refresh_token" in (token_path.parent / "stored_tokens").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def store_token(token: str, environ: Mapping[str, str] | None = None) -> str:
    """Store ``token`` and say where it went.

    Returns ``"system keyring (<backend>)"``, or, where no secure keyring works,
    ``"huggingface_hub token file (<path>), mode 0600: no system keyring is available"``.
    Raises :class:`ValueError` for an empty token and :class:`OSError` when even the file
    cannot be written.
    """
    value = clean_token(token)
    if not value:
        raise ValueError("the token is empty")
    backend = secure_keyring()
    if backend is not None:
        name = keyring_backend_name(backend)
        try:
            # An explicit sign-in: here (only) the keyring may create or unlock a collection.
            backend.set_password(KEYRING_SERVICE, KEYRING_USERNAME, value)
            _write_keyring_marker(_env(environ), backend)
            logger.info("stored the Hugging Face token in the system keyring (%s)", name)
            return f"system keyring ({name})"
        except Exception as e:
            logger.warning(
                "could not store the token in the keyring (%s): %s; using the token file instead",
                name,
                scrub(type(e).__name__, value),
            )
    _keyring_marker(_env(environ)).unlink(missing_ok=True)  # the token is not in the keyring
    path = hf_token_path(environ)
    _write_secret(path, value)
    with contextlib.suppress(OSError):
        _write_secret(path.with_name(path.name + _OWNER_SUFFIX), token_digest(value) + "\n")
    logger.warning("no system keyring is available: stored the Hugging Face token in %s (mode 0600)", path)
    return f"huggingface_hub token file ({path}), mode 0600: no system keyring is available"


def delete_token(environ: Mapping[str, str] | None = None, *, hf_token_file: bool | None = None) -> list[str]:
    """Remove the stored token; returns where it was removed from (possibly nothing).

    The keyring item goes (from the Secret Service: from unlocked collections only; nothing
    is created or unlocked), and so does the marker. huggingface_hub's token file goes when
    ``hf_token_file`` is true, or, by default (``None``), only when traceagent wrote it
    (so ``traceagent logout`` does not log the user out of ``hf``).
    """
    removed: list[str] = []
    env = _env(environ)
    marker = _keyring_marker(env)
    backend = secure_keyring()
    if backend is not None:
        name = keyring_backend_name(backend)
        try:
            if _is_secret_service(backend):
                # Removes items in unlocked collections; creates and unlocks nothing.
                if _secret_service_delete():
                    removed.append(f"system keyring ({name})")
            elif backend.get_password(KEYRING_SERVICE, KEYRING_USERNAME) is not None:
                backend.delete_password(KEYRING_SERVICE, KEYRING_USERNAME)
                removed.append(f"system keyring ({name})")
        except _KeyringLockedError:
            logger.warning("the system keyring (%s) is locked: its traceagent item stays there", name)
        except Exception as e:
            logger.warning("could not remove the token from the keyring (%s): %s", name, type(e).__name__)
    with contextlib.suppress(OSError):
        marker.unlink(missing_ok=True)  # signed out: never ask the keyring again until a sign-in
    path = hf_token_path(environ)
    owner = path.with_name(path.name + _OWNER_SUFFIX)
    if hf_token_file is not False and path.is_file():
        ours = False
        try:
            current = clean_token(path.read_text(encoding="utf-8"))
            ours = current is not None and owner.read_text(encoding="utf-8").strip() == token_digest(current)
        except OSError:
            pass
        if hf_token_file or ours:
            try:
                path.unlink()
                removed.append(f"huggingface_hub token file ({path})")
            except OSError as e:
                logger.warning("could not remove %s: %s", path, type(e).__name__)
    with contextlib.suppress(OSError):
        if not path.exists():
            owner.unlink(missing_ok=True)
    return removed
