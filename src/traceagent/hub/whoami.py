"""Who a Hugging Face token belongs to: ``whoami``, checked at sign-in and cached.

The Hub rate-limits ``whoami`` strictly, so the daemon asks at most every
:data:`WHOAMI_TTL_S` per token; the cache is keyed by a sha256 digest of the token and
holds only the user name. In the daemon the question is asked in the upload worker process
(``fetch=``), so the daemon never imports huggingface_hub's client.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from traceagent.hub.auth import AuthError, clean_token, scrub, token_digest

__all__ = ["WHOAMI_TTL_S", "WhoAmI", "fetch_whoami", "validate_token", "whoami_cached"]

logger = logging.getLogger(__name__)

#: How long a cached ``whoami`` answer is trusted (the Hub rate-limits whoami strictly).
WHOAMI_TTL_S = 12 * 3600.0


@dataclasses.dataclass(frozen=True)
class WhoAmI:
    """What the Hub says about a token."""

    name: str
    #: ``"write"``, ``"read"``, ``"fineGrained"``... or ``""`` when the Hub did not say.
    role: str
    orgs: tuple[str, ...] = ()


def fetch_whoami(token: str, *, endpoint: str | None) -> WhoAmI:
    """Ask the Hub who ``token`` belongs to (no cache; whoami is rate-limited: prefer
    :func:`whoami_cached`). Raises :class:`AuthError`."""
    from huggingface_hub import HfApi

    from traceagent import __version__
    from traceagent.hub.api import hub_errors, install_http_timeouts

    install_http_timeouts()
    base = (endpoint or "").rstrip("/") or None
    api = HfApi(endpoint=base, library_name="traceagent", library_version=__version__)
    where = api.endpoint
    try:
        data = api.whoami(token=token)
    except hub_errors() as e:
        raise _auth_error(e, where, token) from None
    name = str(data.get("name") or "")
    if not name:
        raise AuthError(f"{where} answered whoami without a user name.", reason="server")
    role = str(((data.get("auth") or {}).get("accessToken") or {}).get("role") or "")
    orgs = tuple(str(o.get("name")) for o in data.get("orgs") or [] if isinstance(o, dict) and o.get("name"))
    return WhoAmI(name=name, role=role, orgs=orgs)


def _auth_error(e: BaseException, where: str, token: str) -> AuthError:
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status == 401:
        return AuthError(
            "Hugging Face rejected the token (401): it is invalid, expired or was revoked. "
            "Create a new one at https://huggingface.co/settings/tokens (with write access).",
            reason="invalid",
        )
    if status == 403:
        return AuthError("Hugging Face refused the token (403).", reason="forbidden")
    if status == 429:
        return AuthError(
            "Hugging Face is rate-limiting sign-in checks (429); wait a few minutes and try again.",
            reason="rate_limited",
        )
    if isinstance(status, int):
        return AuthError(
            f"Hugging Face answered {status} when checking the token; try again later.", reason="server"
        )
    detail = scrub(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", token).rstrip(": ")
    return AuthError(
        f"Could not reach Hugging Face at {where} ({detail}). Check the network connection and try again.",
        reason="network",
    )


def validate_token(
    token: str, endpoint: str | None, *, fetch: Callable[[str, str | None], WhoAmI] | None = None
) -> str:
    """Check ``token`` with the Hub and return the user name (``fetch`` as in
    :func:`whoami_cached`).

    Raises :class:`AuthError`: ``reason="invalid"`` on a 401, ``"network"`` when the Hub
    cannot be reached, ``"forbidden"`` for a read-only token (traceagent must write).
    """
    value = clean_token(token)
    if not value:
        raise AuthError("The token is empty.", reason="invalid")
    who = fetch(value, endpoint) if fetch is not None else fetch_whoami(value, endpoint=endpoint)
    if who.role == "read":
        raise AuthError(
            f"This token of {who.name} is read-only; traceagent needs a token with write access "
            "(https://huggingface.co/settings/tokens).",
            reason="forbidden",
        )
    return who.name


def whoami_cached(
    token: str,
    *,
    endpoint: str | None,
    cache_dir: Path,
    ttl: float = WHOAMI_TTL_S,
    fetch: Callable[[str, str | None], WhoAmI] | None = None,
) -> str:
    """The user name of ``token``, from a cache in ``cache_dir`` younger than ``ttl``
    seconds, else from the Hub (then cached). The cache file holds only sha256 digests and
    names. A 401 drops the cached entry and raises :class:`AuthError`. ``fetch(token,
    endpoint)`` asks the Hub (default :func:`fetch_whoami`; the daemon asks its upload
    worker)."""
    value = clean_token(token)
    if not value:
        raise AuthError("The token is empty.", reason="invalid")
    base = (endpoint or "").rstrip("/")
    if not base:
        from huggingface_hub import constants

        base = constants.ENDPOINT.rstrip("/")
    key = token_digest(value, salt=base)
    path = Path(cache_dir) / "whoami.json"
    entries = _load_cache(path)
    now = time.time()
    entry = entries.get(key)
    if (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and 0 <= now - float(entry.get("at", 0)) < ttl
    ):
        return str(entry["name"])
    try:
        who = fetch(value, base) if fetch is not None else fetch_whoami(value, endpoint=base)
    except AuthError as e:
        if e.reason == "invalid" and entries.pop(key, None) is not None:
            _save_cache(path, entries)
        raise
    entries = {k: v for k, v in entries.items() if isinstance(v, dict) and now - float(v.get("at", 0)) < ttl}
    entries[key] = {"name": who.name, "at": now}
    _save_cache(path, entries)
    return who.name


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_cache(path: Path, entries: Mapping[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".whoami-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entries, f)
        os.replace(tmp, path)
    except OSError as e:
        logger.debug("could not write the whoami cache %s: %s", path, type(e).__name__)
