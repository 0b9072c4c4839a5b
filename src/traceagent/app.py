"""Wiring: settings + paths → sink, redactor and engine; the daemon's life cycle.

This is the one place that decides the destination: the configured one, else the user's
``hf://buckets/<whoami>/agent-sessions`` when a token exists, else the embedded local
folder, so ``traceagent run`` works on a fresh machine with no account.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traceagent.config import Settings, load_settings
from traceagent.control import ControlServer, DaemonLock
from traceagent.errors import UserError
from traceagent.paths import AppPaths, app_paths
from traceagent.sinks.base import ErrorKind, Sink, SinkError
from traceagent.sinks.keys import parse_destination
from traceagent.sinks.local import LocalFolderSink
from traceagent.sync.engine import Engine
from traceagent.sync.snapshot import Transform

if TYPE_CHECKING:
    from traceagent.hub.whoami import WhoAmI
    from traceagent.hub.worker import HubWorker

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "agent-sessions"


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
    from traceagent.redact import RedactConfigError, Redactor

    try:
        Redactor.from_settings(
            extra_rules=settings.redact_rules, allowlist=settings.redact_allowlist, own_secrets=False
        )
    except RedactConfigError as e:
        raise ConfigError(f"{config_file}: [redaction]: {e}") from None


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
        self.signed_out = False
        self._adopt_tried = False

    def __call__(self) -> Sink:
        from traceagent.hub import auth, whoami

        ctx = self.ctx
        dest = ctx.settings.destination
        token_info = auth.find_token(ctx.environ)
        previous_hub = bool(self.previous and self.previous.startswith("hf://"))
        if token_info is None and previous_hub and not self._adopt_tried and not self.signed_out:
            # A Hub user signed in by an older traceagent: its keyring item has no marker yet.
            self._adopt_tried = True
            token_info = auth.adopt_keyring_token(ctx.environ)
        self.signed_in_as = None
        parsed = parse_destination(dest) if dest else None  # DestinationError: a ValueError
        if parsed is not None and parsed.folder is not None:
            return LocalFolderSink(parsed.folder)
        if token_info is None:
            if not dest and not self.signed_out and self.previous and self.previous.startswith("hf://"):
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
            "uri": dest or f"hf://buckets/{self.signed_in_as}/{DEFAULT_BUCKET}",
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


def transform_factory(ctx: Context) -> Any:
    """Per-agent redaction (on by default; ``redact = false`` globally or per agent)."""
    cache: dict[str, Any] = {}

    def make(agent: str) -> Transform | None:
        if not ctx.settings.redact or not ctx.settings.agent(agent).redact:
            log.info("Redaction is off for %s", agent)
            return None
        from traceagent.hub import auth
        from traceagent.redact import Redactor

        token = auth.find_token(ctx.environ)
        # The token in use is one of the user's own secrets: rebuild when it changes.
        fingerprint = token.fingerprint if token else ""
        redactor = cache.get(fingerprint)
        if redactor is None:
            cache.clear()
            redactor = cache[fingerprint] = Redactor.from_settings(
                extra_rules=ctx.settings.redact_rules,
                allowlist=ctx.settings.redact_allowlist,
                environ=ctx.environ,
                extra_values=[token.token] if token else [],
            )
            log.info("Redaction on (engine: %s)", redactor.engine_name)
        # The redactor itself: a transform that also streams long lines (``line_stream``).
        fn: Transform = redactor
        return fn

    return make


class DesktopEngine(Engine):
    """The engine plus what a desktop front end needs: sign-in, settings, browser, autostart."""

    def __init__(self, ctx: Context, factory: SinkFactory) -> None:
        super().__init__(
            ctx.paths,
            ctx.settings,
            self._tracked,
            environ=ctx.environ,
            transform_factory=transform_factory(ctx),
        )
        self.ctx = ctx
        self._factory = factory
        self.config_path: Path = ctx.paths.config_file
        self.log_path: Path = ctx.paths.log_file

    def _tracked(self) -> Sink:
        self._factory.previous = self.db.get("destination")
        self._factory.signed_out = self.db.get("signed_out") == "1"
        sink = self._factory()
        if self._factory.signed_in_as is not None:
            self.db.put("signed_out", None)
        self.signed_in_as = self._factory.signed_in_as
        return sink

    def credentials_fingerprint(self) -> str | None:
        """A digest of the token currently found (never the token itself)."""
        from traceagent.hub import auth

        token = auth.find_token(self.ctx.environ)
        return token.fingerprint if token else ""

    def set_agent_enabled(self, name: str, enabled: bool) -> None:
        """Turn one agent's sync on or off, and remember it in ``config.toml``."""
        from traceagent.config import update_config

        update_config(self.config_path, {f"agents.{name}.enabled": enabled})
        settings = load_settings(self.config_path, self.ctx.environ)
        self.ctx = dataclasses.replace(self.ctx, settings=settings)
        self._factory.ctx = self.ctx
        self.apply_settings(settings)

    def sign_in(self, token: str) -> str:
        """Check the token with the Hub, store it, and switch to the user's bucket."""
        from traceagent.hub import auth, whoami

        # AuthError is a UserError; the check runs in the upload worker when there is one.
        name = whoami.validate_token(token.strip(), hf_endpoint(self.ctx), fetch=self._factory.fetch_whoami())
        where = auth.store_token(token.strip(), self.ctx.environ)
        log.info("Signed in as %s (token stored in %s)", name, where)
        self.reload_sink()
        return name

    def sign_out(self) -> None:
        """Forget the stored token; uploads go to the local folder until the next sign-in."""
        from traceagent.hub import auth

        removed = auth.delete_token(self.ctx.environ)
        log.info("Signed out%s", f" (removed from {', '.join(removed)})" if removed else "")
        self.signed_out()

    def signed_out(self) -> None:
        """The user signed out on purpose: the local folder is the destination from now on."""
        self.db.put("signed_out", "1")
        self.reload_sink()

    def open_url(self, url: str) -> None:
        """Open a link or a file:// URL with the user's browser or file opener."""
        import webbrowser

        if url.startswith("file://") and not url.endswith(".jsonl"):
            if url == self.config_path.as_uri() and not self.config_path.exists():
                from traceagent.config import write_default_config

                write_default_config(self.config_path)
            _open_local(url)
            return
        if not webbrowser.open(url):
            log.warning("Could not open a browser for %s", url)

    def autostart_enabled(self) -> bool | None:
        """Whether start at login is on (None where unsupported)."""
        from traceagent import autostart

        try:
            return autostart.status().enabled
        except Exception:
            log.debug("Autostart status unavailable", exc_info=True)
            return None

    def set_autostart(self, enabled: bool) -> None:
        """Turn start at login on or off."""
        from traceagent import autostart

        st = autostart.enable() if enabled else autostart.disable()
        log.info("Start at login %s (%s)", "on" if st.enabled else "off", st.path or st.detail)


def _open_local(url: str) -> None:
    """Open a file or folder with the desktop's opener (xdg-open, open, startfile)."""
    import subprocess
    import sys
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(url).path)
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]
        return
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    try:
        subprocess.Popen([opener, path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as e:
        log.warning("Could not open %s: %s", path, e.strerror or e)


def build_engine(ctx: Context, *, worker: bool = False) -> tuple[DesktopEngine, SinkFactory]:
    """The engine for this context (not started); ``worker``: Hub calls in a child process."""
    factory = SinkFactory(ctx, worker=worker)
    return DesktopEngine(ctx, factory), factory


def handle_request(engine: Engine, stop: threading.Event, request: dict[str, Any]) -> dict[str, Any]:
    """The control channel's commands (used by ``traceagent status/pause/resume/...``)."""
    cmd = request.get("cmd")
    if cmd == "status":
        return {"status": engine.status().to_json()}
    if cmd == "recent":
        return {"traces": [t.to_json() for t in engine.recent_traces(int(request.get("limit", 10)))]}
    if cmd == "pause":
        until = request.get("until")
        engine.pause(None if until is None else float(until))
        return {"ok": True}
    if cmd == "resume":
        engine.resume()
        return {"ok": True}
    if cmd == "sync_now":
        engine.sync_now()
        return {"ok": True}
    if cmd == "verify":
        import concurrent.futures

        try:
            return {"verify": engine.request_verify().to_json()}
        except concurrent.futures.TimeoutError:
            return {"error": "the daemon is still verifying the destination; see `traceagent status`"}
        except concurrent.futures.CancelledError:
            return {"error": "traceagent stopped while verifying the destination"}
    if cmd == "reload":
        engine.reload_sink()
        return {"ok": True}
    if cmd == "signed_out":
        if isinstance(engine, DesktopEngine):
            engine.signed_out()
        else:
            engine.reload_sink()
        return {"ok": True}
    if cmd == "quit":
        stop.set()
        request_quit = getattr(sys.modules.get("traceagent.tray"), "request_quit", None)
        if request_quit is not None:
            request_quit()
        return {"ok": True}
    return {"error": f"unknown command {cmd!r}"}


def run_daemon(ctx: Context, *, headless: bool) -> int:
    """``traceagent run``: hold the lock, start the engine, serve the tray or wait headless."""
    lock = DaemonLock(ctx.paths.lock_file)
    lock.acquire()  # AlreadyRunningError → the CLI prints it and exits 1
    stop = threading.Event()
    engine, factory = build_engine(ctx, worker=True)
    server = ControlServer(ctx.paths, lambda req: handle_request(engine, stop, req))

    def on_signal(signum: int, _frame: object) -> None:
        log.info("Received %s; finishing the upload in flight", signal.Signals(signum).name)
        stop.set()
        # The tray module may still be importing (then its run_tray sees the stop event).
        request_quit = getattr(sys.modules.get("traceagent.tray"), "request_quit", None)
        if request_quit is not None:
            request_quit()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info("traceagent %s starting (pid %d); config %s", _version(), os.getpid(), ctx.paths.config_file)
        server.start()
        engine.start()
        _repair_autostart()
        shown = False
        if not headless:
            from traceagent import tray

            shown = not stop.is_set() and tray.run_tray(engine, stop_requested=stop.is_set)
        if not shown:
            if not headless:
                log.info(
                    "No tray available; running headless (use `traceagent status` and `traceagent pause`)"
                )
            while not stop.wait(3600):
                pass
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        server.close()
        engine.stop()
        factory.close()
        lock.release()
        log.info("traceagent stopped")
    return 0


def _repair_autostart() -> None:
    """A start-at-login entry that points at a moved executable is rewritten."""
    from traceagent import autostart

    try:
        if autostart.repair():
            log.info("Repaired the start-at-login entry (the traceagent executable had moved)")
    except Exception:
        log.warning("Could not check the start-at-login entry", exc_info=True)


def _version() -> str:
    from traceagent import __version__

    return __version__


__all__ = ["Context", "UserError", "build_engine", "load_context", "run_daemon"]
