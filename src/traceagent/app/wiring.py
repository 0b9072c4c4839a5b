"""Wiring: settings + paths → sink and redactor, for the engine (:mod:`traceagent.app.desktop`).

This is the one place that decides the destination: the configured one, else the user's
``hf://buckets/<whoami>/agent-sessions`` when a token exists, else the embedded local
folder, so ``traceagent run`` works on a fresh machine with no account.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traceagent.config import Settings, load_settings
from traceagent.errors import UserError
from traceagent.paths import AppPaths, app_paths
from traceagent.sinks.base import ErrorKind, Sink, SinkError
from traceagent.sinks.keys import DestinationError, parse_destination
from traceagent.sinks.local import LocalFolderSink
from traceagent.sync.snapshot import Transform

if TYPE_CHECKING:
    from traceagent.hub.whoami import WhoAmI
    from traceagent.hub.worker import HubWorker
    from traceagent.redact import Redactor

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "agent-sessions"


def decide_destination(configured: str | None, signed_in_as: str | None, default_folder: Path) -> str:
    """THE destination rule: the configured one, else the user's private
    ``hf://buckets/<user>/agent-sessions`` when signed in, else the embedded local folder."""
    if configured:
        return configured
    if signed_in_as:
        return f"hf://buckets/{signed_in_as}/{DEFAULT_BUCKET}"
    return str(default_folder)


@dataclasses.dataclass(frozen=True)
class Context:
    """Everything a command needs: folders, settings, environment."""

    paths: AppPaths
    settings: Settings
    environ: Mapping[str, str]


def load_context(environ: Mapping[str, str] | None = None) -> Context:
    """Resolve folders and load ``config.toml`` (raises ConfigError with file/line/key)."""
    env = dict(os.environ if environ is None else environ)
    paths = app_paths(env)
    settings = load_settings(paths.config_file, env)
    if settings.redact_rules or settings.redact_allowlist:
        _check_redaction_settings(settings, paths.config_file)
    return Context(paths=paths, settings=settings, environ=env)


def _check_redaction_settings(settings: Settings, config_file: Path) -> None:
    """User rules and allow-list entries are compiled at load, so a bad one is named at once."""
    from traceagent.errors import ConfigError
    from traceagent.redact import RedactConfigError

    try:
        build_redactor(settings, own_secrets=False)
    except RedactConfigError as e:
        raise ConfigError(f"{config_file}: [redaction]: {e}") from None


def build_redactor(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    token: str | None = None,
    own_secrets: bool = True,
) -> Redactor:
    """The redactor for ``settings``: the one factory (uploads, ``traceagent redact``, the config check).

    The built-in rules plus the user's ``[redaction]`` rules and allow-list; with
    ``own_secrets``, also the exact values of the secrets found in ``environ`` and the local
    credential files, and ``token`` (the Hugging Face token traceagent itself uses).
    Raises :class:`traceagent.redact.RedactConfigError` for a rule that does not compile.
    """
    from traceagent.redact import Redactor

    return Redactor.from_settings(
        extra_rules=settings.redact_rules,
        allowlist=settings.redact_allowlist,
        own_secrets=own_secrets,
        environ=environ,
        extra_values=[token] if token else [],
    )


def hf_endpoint(ctx: Context) -> str | None:
    """The Hub endpoint: config ``endpoint``, else ``HF_ENDPOINT``, else the library default."""
    return ctx.settings.endpoint or ctx.environ.get("HF_ENDPOINT") or None


class SinkFactory:
    """Builds the sink for the current settings and token (called again after sign-in)."""

    def __init__(self, ctx: Context, *, worker: bool = False) -> None:
        self.ctx = ctx
        #: With ``worker``, Hub calls run in a child process (the daemon: see hub/worker.py);
        #: one-shot commands keep them in-process.
        self.worker: HubWorker | None = None
        if worker:
            from traceagent.hub.worker import HubWorker

            self.worker = HubWorker(idle_exit_s=ctx.settings.upload_worker_idle_seconds)
        self.signed_in_as: str | None = None
        #: The destination in use before (from state.db): a Hugging Face user whose token
        #: cannot be read right now (locked keyring) must not be switched to the local folder.
        self.previous: str | None = None
        #: Set after an explicit sign-out: then the local folder is what the user wants.
        self.explicitly_signed_out = False
        self._adopt_tried = False

    def __call__(self) -> Sink:
        from traceagent.hub import auth, whoami

        ctx = self.ctx
        dest = ctx.settings.destination
        token_info = auth.find_token(ctx.environ)
        previous_hub = bool(self.previous and self.previous.startswith("hf://"))
        if token_info is None and previous_hub and not self._adopt_tried and not self.explicitly_signed_out:
            # A Hub user signed in by an older traceagent: its keyring item has no marker yet.
            self._adopt_tried = True
            token_info = auth.adopt_keyring_token(ctx.environ)
        self.signed_in_as = None
        parsed = parse_destination(dest) if dest else None  # DestinationError: a ValueError
        if parsed is not None and parsed.folder is not None:
            return LocalFolderSink(parsed.folder)
        if token_info is None:
            if not dest and not self.explicitly_signed_out and previous_hub:
                raise SinkError(
                    f"No Hugging Face token was found for {self.previous} (is the keyring locked?). "
                    "Sign in again, or run `traceagent logout` to keep traces in the local folder.",
                    kind=ErrorKind.AUTH,
                )
            if dest:
                raise SinkError(
                    f"The destination {dest} needs a Hugging Face token: run `traceagent login` "
                    "or use Sign in from the tray.",
                    kind=ErrorKind.AUTH,
                )
            return LocalFolderSink(ctx.paths.default_bucket_dir)
        try:
            self.signed_in_as = whoami.whoami_cached(
                token_info.token,
                endpoint=hf_endpoint(ctx),
                cache_dir=ctx.paths.state_dir,
                fetch=self.fetch_whoami(),
            )
        except auth.AuthError as e:
            kind = ErrorKind.AUTH if e.reason in ("invalid", "forbidden") else ErrorKind.TRANSIENT
            raise SinkError(e.message, kind=kind) from None
        spec: dict[str, Any] = {
            "uri": decide_destination(dest, self.signed_in_as, ctx.paths.default_bucket_dir),
            "token": token_info.token,
            "endpoint": hf_endpoint(ctx),
            "allow_public": ctx.settings.allow_public,
            "url_template": ctx.settings.viewer_url_template,
        }
        if self.worker is not None:
            from traceagent.hub.worker import WorkerSink

            return WorkerSink(self.worker, **spec)
        from traceagent.hub.sink import HfSink

        return HfSink(**spec)

    def link_sink(self, previous: str | None) -> Sink | None:
        """A sink for links only (see :func:`link_sink`), so the engine can show the traces'
        links before its thread has connected."""
        return link_sink(self.ctx, previous)

    def fetch_whoami(self) -> Callable[[str, str | None], WhoAmI] | None:
        """How to ask the Hub who a token is: in the worker, or ``None`` for in-process."""
        if self.worker is None:
            return None
        from traceagent.hub.worker import whoami_in

        return whoami_in(self.worker)

    def close(self) -> None:
        """Stop the upload worker, if one runs."""
        if self.worker is not None:
            self.worker.close()


def link_sink(ctx: Context, used_last: str | None, *, exact_routes: bool = False) -> Sink | None:
    """A sink for links only: the configured destination, else ``used_last`` (the one used last,
    from ``state.db``). No token lookup, no ``whoami``, no network; None when neither is known
    or the value is one an older version stored. ``exact_routes``: Hub links exactly as
    huggingface_hub renders them (imports it: for one-shot commands, not the daemon)."""
    dest = ctx.settings.destination or used_last
    try:
        parsed = parse_destination(dest) if dest else None
    except DestinationError:
        return None
    if parsed is None:
        return None
    if parsed.folder is not None:
        return LocalFolderSink(parsed.folder)
    from traceagent.hub.sink import HfSink

    sink = HfSink(
        parsed.uri, token=None, endpoint=hf_endpoint(ctx), url_template=ctx.settings.viewer_url_template
    )
    if exact_routes:
        sink.learn_viewer_routes()
    return sink


def view_sink(ctx: Context, used_last: str | None) -> Sink:
    """The sink a read-only status shows (no token, no network): :func:`link_sink`, else the
    embedded local folder."""
    return link_sink(ctx, used_last, exact_routes=True) or LocalFolderSink(ctx.paths.default_bucket_dir)


def transform_factory(ctx: Context) -> Any:
    """Per-agent redaction (on by default; ``redact = false`` globally or per agent)."""
    cache: dict[str, Any] = {}

    def make(agent: str) -> Transform | None:
        if not ctx.settings.redact or not ctx.settings.agent(agent).redact:
            log.info("Redaction is off for %s", agent)
            return None
        from traceagent.hub import auth

        token = auth.find_token(ctx.environ)
        # The token in use is one of the user's own secrets: rebuild when it changes.
        fingerprint = token.fingerprint if token else ""
        redactor = cache.get(fingerprint)
        if redactor is None:
            cache.clear()
            redactor = cache[fingerprint] = build_redactor(
                ctx.settings, ctx.environ, token=token.token if token else None
            )
            log.info("Redaction on (engine: %s)", redactor.engine_name)
        # The redactor itself: a transform that also streams long lines (``line_stream``).
        fn: Transform = redactor
        return fn

    return make


__all__ = [
    "DEFAULT_BUCKET",
    "Context",
    "SinkFactory",
    "UserError",
    "build_redactor",
    "decide_destination",
    "hf_endpoint",
    "link_sink",
    "load_context",
    "transform_factory",
    "view_sink",
]
