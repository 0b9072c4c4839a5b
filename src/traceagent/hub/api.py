"""Talking to the Hub through ``huggingface_hub``: the error funnel, HTTP timeouts, and the bucket
URI split into the parts the Hub client wants (the key and destination rules themselves are
:mod:`traceagent.sinks.keys`). Used by the sink (:mod:`traceagent.hub.sink`),
:mod:`traceagent.hub.whoami` and :mod:`traceagent.cli.doctor`.

Every failure becomes one :class:`~traceagent.sinks.base.SinkError` with an
:class:`~traceagent.sinks.base.ErrorKind` the engine acts on:

=====================================================  ====================================
what happened                                          kind
=====================================================  ====================================
401 / 403 (Hub or Xet token route)                     ``AUTH`` (stop until the token changes)
429 (``Retry-After`` / ``RateLimit`` kept), 408, 5xx,  ``TRANSIENT``
409, network errors, hf_xet ``ConnectionError``
bucket vanished (404)                                  re-created once, then ``TRANSIENT``
bad key, file too large, 413, other 4xx on upload      ``PER_FILE`` (``failed_keys``)
``BucketBatchError`` (some operations refused)         ``PER_FILE`` or ``TRANSIENT``
public bucket without ``allow_public``                 ``FATAL``
=====================================================  ====================================

``huggingface_hub`` is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from traceagent.hub.auth import scrub
from traceagent.sinks.base import ErrorKind, SinkError
from traceagent.sinks.keys import Destination, DestinationError, key_problem, parse_destination

__all__ = [
    "HTTP_TIMEOUT",
    "ParsedBucketUri",
    "bucket_vanished",
    "classify_error",
    "hub_errors",
    "install_http_timeouts",
    "key_problem",
    "parse_bucket_uri",
]

logger = logging.getLogger(__name__)

#: (connect, read) timeouts in seconds for the Hub's HTTP calls. huggingface_hub 2.x builds
#: its shared client with ``timeout=None``: a stalled connection would block the sync thread
#: forever. hf_xet's CAS traffic has its own timeouts.
HTTP_TIMEOUT: tuple[float, float] = (15.0, 60.0)
_timeouts_installed = False

_XET_STATUS_RE = re.compile(r"\((\d{3}) [A-Za-z]")
_RATELIMIT_RE = re.compile(r";\s*r\s*=\s*(\d+)\s*;\s*t\s*=\s*(\d+)")


# --------------------------------------------------------------------------- keys and URIs
#: ``hf://buckets/<namespace>/<bucket>[/<prefix>]`` split into its parts (the one parser is
#: :func:`traceagent.sinks.keys.parse_destination`).
ParsedBucketUri = Destination


def parse_bucket_uri(uri: str) -> ParsedBucketUri:
    """Parse a bucket destination (``hf://buckets/...`` or a bucket's web page).

    Raises :class:`ValueError` with a message meant for the user when ``uri`` is not one.
    """
    parsed = parse_destination(uri)
    if not parsed.is_hub:
        raise DestinationError(
            f"not a Hugging Face bucket URI (expected hf://buckets/<namespace>/<bucket>): {uri!r}"
        )
    return parsed


# --------------------------------------------------------------------------- error funnel
def _status_of(exc: BaseException) -> int | None:
    """The HTTP status behind ``exc``: from its response, or from hf_xet's message text."""
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    if isinstance(code, int):
        return code
    if isinstance(exc, (ConnectionError, RuntimeError, OSError)):
        m = _XET_STATUS_RE.search(str(exc))
        if m:
            return int(m.group(1))
    return None


def _retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` or ``RateLimit: ...;t=N``)."""
    response = getattr(exc, "response", None)
    headers: Mapping[str, str] | None = getattr(response, "headers", None)
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    m = _RATELIMIT_RE.search(lower.get("ratelimit", ""))
    if m and int(m.group(1)) == 0:  # '"api";r=0;t=55': quota exhausted, resets in t seconds
        return float(m.group(2))
    value = lower.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(exc: BaseException, token: str | None) -> str:
    """A one-line, token-free description of ``exc`` for messages."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    first = scrub(first, token)
    if len(first) > 300:
        first = first[:297] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def classify_error(
    exc: BaseException, *, bucket_id: str, token: str | None, during: str = "upload"
) -> SinkError:
    """Map an exception from ``huggingface_hub``/``hf_xet``/``httpx2`` to a :class:`SinkError`.

    ``during`` is ``"upload"`` or ``"ensure"``: an unexpected 4xx is a per-file problem
    while uploading, but makes the destination unusable while setting it up.
    The message never contains the token.
    """
    status = _status_of(exc)
    detail = _short(exc, token)
    if status == 401:
        return SinkError(
            "Hugging Face rejected the token (401): it is invalid, expired or was revoked. "
            "Sign in again with `traceagent login` (or set HF_TOKEN).",
            kind=ErrorKind.AUTH,
        )
    if status == 403 or type(exc).__name__ == "XetAuthenticationError":
        return SinkError(
            f"Hugging Face refused access to bucket {bucket_id} (403): the token has no write permission "
            "there. Sign in with a token that has write access (`traceagent login`).",
            kind=ErrorKind.AUTH,
        )
    if status == 429:
        return SinkError(
            f"Hugging Face is rate-limiting requests (429) for bucket {bucket_id}; will retry later.",
            kind=ErrorKind.TRANSIENT,
            retry_after=_retry_after(exc),
        )
    if status is not None and (status >= 500 or status in (408, 409, 425)):
        return SinkError(
            f"Hugging Face answered {status} for bucket {bucket_id}; will retry later ({detail}).",
            kind=ErrorKind.TRANSIENT,
            retry_after=_retry_after(exc),
        )
    if status == 404:
        return SinkError(
            f"Bucket {bucket_id} was not found (404) and could not be created: check the name, "
            "and that the token may create buckets in that namespace.",
            kind=ErrorKind.FATAL if during == "ensure" else ErrorKind.TRANSIENT,
        )
    if status == 413:
        return SinkError(
            f"Hugging Face refused the upload as too large (413) ({detail}).", kind=ErrorKind.PER_FILE
        )
    if status is not None and 400 <= status < 500:
        return SinkError(
            f"Hugging Face refused the request ({status}) for bucket {bucket_id} ({detail}).",
            kind=ErrorKind.FATAL if during == "ensure" else ErrorKind.PER_FILE,
        )
    return SinkError(
        f"Could not reach Hugging Face for bucket {bucket_id}; will retry later ({detail}).",
        kind=ErrorKind.TRANSIENT,
    )


def bucket_vanished(exc: BaseException) -> bool:
    """True for a 404 meaning "this bucket does not exist (any more)"."""
    if type(exc).__name__ == "BucketNotFoundError":
        return True
    return _status_of(exc) == 404


def hub_errors() -> tuple[type[BaseException], ...]:
    """What a Hub call raises besides our own errors: ``OSError`` (``HfHubHTTPError``,
    hf_xet's ``ConnectionError``), the HTTP library's errors (``httpx2`` in huggingface_hub
    2.x, ``httpx`` in 1.x: network errors are not wrapped) and hf_xet's ``RuntimeError``."""
    errors: list[type[BaseException]] = [OSError, RuntimeError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def install_http_timeouts() -> None:
    """Make huggingface_hub's shared HTTP client use :data:`HTTP_TIMEOUT` (read when the
    client is built; ``huggingface_hub.close_session()`` rebuilds it). Idempotent; leaves
    a client factory that someone else installed alone."""
    global _timeouts_installed
    if _timeouts_installed:
        return
    from huggingface_hub.utils import _http

    _timeouts_installed = True
    if not hasattr(_http, "default_client_factory"):
        return
    default = _http.default_client_factory
    if getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) is not default:
        return

    def factory() -> Any:
        client = default()
        timeout_cls = importlib.import_module(type(client).__module__.split(".")[0]).Timeout
        connect, read = HTTP_TIMEOUT
        client.timeout = timeout_cls(read, connect=connect)
        return client

    _http.set_client_factory(factory)
