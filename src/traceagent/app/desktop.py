"""The desktop engine: the sync engine plus sign-in, settings, the browser and start at login.

The tray and the CLI drive this object; it wires the engine to :class:`~traceagent.app.wiring.SinkFactory`
(the destination decision) and the redactor.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path

from traceagent.app.wiring import Context, SinkFactory, hf_endpoint, transform_factory
from traceagent.config import load_settings
from traceagent.sinks.base import Sink
from traceagent.sync.engine import Engine

log = logging.getLogger(__name__)


class DesktopEngine(Engine):
    """The engine plus what a desktop front end needs: sign-in, settings, browser, autostart."""

    def __init__(self, ctx: Context, factory: SinkFactory) -> None:
        super().__init__(
            ctx.paths,
            ctx.settings,
            self._make_sink,
            environ=ctx.environ,
            transform_factory=transform_factory(ctx),
            link_sink=factory.link_sink,
        )
        self.ctx = ctx
        self._factory = factory
        self.config_path: Path = ctx.paths.config_file
        self.log_path: Path = ctx.paths.log_file

    def _make_sink(self) -> Sink:
        """The engine's sink factory: the destination decision, fed what state.db remembers."""
        self._factory.previous = self.db.destination
        # "signed_out" is a key in users' state.db files: it keeps its name.
        self._factory.explicitly_signed_out = self.db.signed_out
        sink = self._factory()
        if self._factory.signed_in_as is not None:
            self.db.signed_out = False
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
        self.mark_signed_out()

    def mark_signed_out(self) -> None:
        """The user signed out on purpose: the local folder is the destination from now on."""
        self.db.signed_out = True
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


__all__ = ["DesktopEngine", "build_engine"]
