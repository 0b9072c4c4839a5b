"""The engine: one object that the tray and the CLI share (Maestral's facade).

Data flows one way: watcher → debouncer → state (durable queue) → uploader → sink → index.
The engine owns one worker thread that sleeps on a condition variable until something is
due (a debounce deadline, a retry time, the end of a timed pause); it never polls.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from traceagent.agents import agent_roots, all_roots, enabled_agents, enabled_roots
from traceagent.agents.base import Root, SessionMeta
from traceagent.config import Settings
from traceagent.memory import release_memory
from traceagent.paths import AppPaths
from traceagent.sinks.base import ErrorKind, Sink, SinkError
from traceagent.sinks.keys import DestinationError, parse_destination
from traceagent.status import AgentInfo, Status, TraceInfo, record_time
from traceagent.sync.debounce import Debouncer
from traceagent.sync.health import Health
from traceagent.sync.roots import RootMatch, match_root
from traceagent.sync.scan import changed_files, pending_items, utf8_name, vanished
from traceagent.sync.snapshot import Transform
from traceagent.sync.state import FileRow, StateDB
from traceagent.sync.uploader import NEVER, PassResult, SpoolError, Uploader
from traceagent.sync.watcher import Watcher

log = logging.getLogger(__name__)

#: Lost file events (an inotify overflow) are logged once per burst: again only after this quiet.
LOST_EVENTS_QUIET = 10.0

#: A write to the state folder failed (disk full, read-only, I/O error).
STATE_ERRORS = (sqlite3.Error, SpoolError)

#: How long a verification asked over the control channel may take (seconds).
VERIFY_TIMEOUT = 570.0

SinkFactory = Callable[[], Sink]
#: A sink for links only, from the destination last used (``state.db``) or None: built without
#: credentials or network, so front ends can show links before the engine thread connected.
LinkSinkFactory = Callable[[str | None], "Sink | None"]
TransformFactory = Callable[[str], "Transform | None"]
Listener = Callable[[], None]


@dataclasses.dataclass
class VerifyResult:
    """What ``traceagent sync --verify`` found when it compared the destination with the ledger."""

    #: Files whose copy the destination should hold.
    checked: int = 0
    #: ``(path, key, why)`` of each file queued to be sent again (missing, or another size).
    resent: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    #: The same for files that cannot be sent again: the local file is gone.
    lost: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    #: Why the destination could not be listed (nothing was checked).
    error: str | None = None
    #: The destination was found replaced (its identity changed): every file is sent again.
    replaced: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the control channel)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> VerifyResult:
        """The inverse of :meth:`to_json`."""
        return cls(
            checked=int(d.get("checked", 0)),
            resent=[(str(p), str(k), str(w)) for p, k, w in d.get("resent", [])],
            lost=[(str(p), str(k), str(w)) for p, k, w in d.get("lost", [])],
            error=d.get("error"),
            replaced=bool(d.get("replaced", False)),
        )


def state_error_message(e: Exception, paths: AppPaths, *, foreground: bool = False) -> str:
    """One line for a failed write to the state folder: the path, and what to do.

    ``e`` is one of :data:`STATE_ERRORS` (or an ``OSError`` naming a file of the state folder,
    such as ``daemon.lock``). ``foreground``: said by a one-shot command (``traceagent sync``),
    which does not retry by itself; the daemon does.
    """
    if isinstance(e, SpoolError):
        where: Path | str = paths.spool_dir
        reason, full = e.strerror or str(e), e.errno in (errno.ENOSPC, errno.EDQUOT)
    elif isinstance(e, OSError):
        where = e.filename or paths.state_dir
        reason, full = e.strerror or str(e), e.errno in (errno.ENOSPC, errno.EDQUOT)
    else:
        where, reason = paths.state_db, str(e)
        name = str(getattr(e, "sqlite_errorname", ""))
        # A full disk also shows as an I/O error (the WAL index cannot grow): ask the disk.
        full = name == "SQLITE_FULL" or (name.startswith("SQLITE_IOERR") and _no_space(paths.state_dir))
    if foreground:
        kept = "changes are kept; run `traceagent sync` again then"
    else:
        kept = "changes are kept and sync resumes by itself"
    if full:  # what matters first, for the tray's short line
        return f"The disk is full: cannot write {where}; free some space on it ({kept})"
    return f"Cannot write {where}: {reason}; check that it is writable ({kept})"


def _no_space(folder: Path) -> bool:
    """Whether the file system of ``folder`` has no block left for this user."""
    try:
        return os.statvfs(folder).f_bavail == 0
    except (OSError, AttributeError):  # statvfs is POSIX only
        return False


@dataclasses.dataclass(frozen=True)
class SinkView:
    """What front ends show of a sink: its location, kind and links (never the sink itself).

    Published by the thread that owns the sink (the engine thread) each time it builds one;
    front ends only read it, so they never build a sink (a keyring lookup, a ``whoami``) or
    race the engine thread for it. The links are pure functions of the destination.
    """

    location: str
    kind: str
    url_for: Callable[[str], str]
    browse_url: Callable[[], str]

    @classmethod
    def of(cls, sink: Sink) -> SinkView:
        """The view of ``sink`` (its links stay those it renders, learned routes included)."""
        return cls(sink.location, sink.kind, sink.url_for, sink.browse_url)


def _same_destination(a: str, b: str) -> bool:
    """Two spellings of one destination (``hf://buckets/a/b/`` and ``hf://buckets/a/b``)."""
    try:
        return parse_destination(a) == parse_destination(b)
    except DestinationError:
        return False


class Engine:
    """Sync engine facade. Thread-safe; front ends call it from any thread."""

    def __init__(
        self,
        paths: AppPaths,
        settings: Settings,
        sink_factory: SinkFactory,
        *,
        environ: Mapping[str, str] | None = None,
        transform_factory: TransformFactory | None = None,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
        link_sink: LinkSinkFactory | None = None,
    ) -> None:
        self.paths = paths
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self._sink_factory = sink_factory
        self._transform_factory = transform_factory
        self._clock = clock
        self.roots = enabled_roots(settings, self.environ)
        self._owners = all_roots(settings, self.environ)  # who owns a file (roots.owner_of)
        if not read_only:  # a read-only view (`status`) creates and changes nothing
            paths.ensure()
        self.db = StateDB(paths.state_db, read_only=read_only)
        self._cond = threading.Condition()
        self._debouncer: Debouncer[Path] = Debouncer(settings.debounce_seconds, settings.max_delay_seconds)
        self._info: dict[Path, RootMatch] = {}
        self._scan_requests: list[tuple[Root, Path]] = []
        self._wake = False
        self._stopping = False
        self._closed = False
        self._caught_up = False
        #: Catch-up requests so far (a lost event burst, a failed state write): a catch-up
        #: that started before the latest request leaves ``_caught_up`` False.
        self._catch_up_requests = 0
        self._lost_events_at = float("-inf")
        #: Changed paths that could not be queued in ``state.db`` yet (a failed write).
        self._unsaved: dict[Path, None] = {}
        self._thread: threading.Thread | None = None
        self._watcher: Watcher | None = None
        self._listeners: list[Listener] = []
        #: The sink: built, used, replaced and closed by the engine thread only (the thread
        #: that runs the engine: the worker, or the caller of the foreground ``run_pass``).
        self._sink: Sink | None = None
        self._sink_ready = False
        #: ``reload_sink`` was asked (from any thread): the engine thread drops the old sink.
        self._sink_stale = False
        #: What front ends read of the sink (see :class:`SinkView`).
        self._view: SinkView | None = None
        #: A new sink is being built after a sign-in or a new destination: "Syncing", not "Up to
        #: date" (the old destination's counts would say that until the uploads are reset).
        self._connecting = False
        #: The destination's identity must be checked before the next pass even if nothing is
        #: due (start, "Sync now", a new sink); ``_identity_checked``: done in this pass.
        self._identity_due = False
        self._identity_checked = False
        self._verify_requests: list[Future[VerifyResult]] = []
        #: How often the destination turned out to be replaced (a verification reports it).
        self._replaced = 0
        self._uploading = 0
        #: The error reaction (backoff, waiting for a new token, fatal stop, what to show).
        self._health = Health(self.db.last_error)
        self._transforms: dict[str, Transform | None] = {}
        self._transforms_generation = 0
        self.uploader = Uploader(
            self.db,
            paths.spool_dir,
            transform_for=self._transform,
            on_sink_error=self._handle_sink_error,
            on_progress=self._set_uploading,
            clock=clock,
        )
        self.signed_in_as: str | None = None
        self._paused_until = self._load_pause()
        if link_sink is not None:
            self.show_destination(link_sink(self.db.destination))

    @classmethod
    def read_only_view(
        cls,
        paths: AppPaths,
        settings: Settings,
        sink_for: Callable[[str | None], Sink],
        *,
        environ: Mapping[str, str] | None = None,
    ) -> Engine:
        """What ``state.db`` says, when no daemon runs: nothing on disk changes, nothing scans or
        uploads. ``sink_for(destination used last)`` gives the sink whose location and links it
        shows. Close it with ``view.db.close()``."""

        def no_connect() -> Sink:  # a read-only view shows links; it never uploads
            raise SinkError("The offline status does not connect.", kind=ErrorKind.FATAL)

        view = cls(paths, settings, no_connect, environ=environ, read_only=True, link_sink=sink_for)
        view._caught_up = True  # nothing is scanning: the state is what state.db says
        return view

    # -- life cycle ----------------------------------------------------------------------------

    def _clear_spool(self) -> None:
        """Snapshots left by a crash are stale: they are taken again from the sources."""
        for stale in self.paths.spool_dir.glob("snap-*.part"):
            stale.unlink(missing_ok=True)

    def start(self) -> None:
        """Start watching and uploading in background threads."""
        self._clear_spool()
        self._identity_due = True
        self._watcher = Watcher(
            self.roots, self._on_file, self._on_gone, self._on_scan, self._on_lost, owners=self._owners
        )
        self._watcher.start()
        self._thread = threading.Thread(target=self._run, name="traceagent-engine", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> None:
        """Stop after the upload in flight; pending work stays queued in ``state.db``."""
        if self._closed:
            return
        self._closed = True
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._watcher is not None:
            self._watcher.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._cond:
            unanswered, self._verify_requests = self._verify_requests, []
        for future in unanswered:
            future.cancel()
        if self._sink is not None:
            self._sink.close()
        self.db.close()
        log.info("Engine stopped")

    def add_listener(self, callback: Listener) -> None:
        """``callback()`` runs (in an engine thread) whenever the status may have changed."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for cb in list(self._listeners):
            try:
                cb()
            except Exception:
                log.exception("Status listener failed")

    # -- controls ------------------------------------------------------------------------------

    def pause(self, until: float | None = None) -> None:
        """Stop uploading (changes are still recorded). ``until`` is a Unix time, or None."""
        self._paused_until = float("inf") if until is None else until
        self.db.paused_until = self._paused_until
        log.info(
            "Sync paused%s",
            "" if until is None else f" until {time.strftime('%H:%M', time.localtime(until))}",
        )
        self._poke()

    def resume(self) -> None:
        """Resume uploading at once."""
        was = self._paused_until
        self._paused_until = None
        self.db.paused_until = None
        if was is not None:
            log.info("Sync resumed")
        self.db.release_all()
        self._poke()

    def sync_now(self) -> None:
        """Upload everything that changed now: flush the debouncer, rescan, retry errors."""
        with self._cond:
            ready = self._debouncer.pop_all()
            self._scan_requests.extend((r, r.path) for r in self.roots)
            self._health.sync_now()
            self._sink_ready = self._sink_ready and not self._health.waiting_for_token
            self._identity_due = True  # "Sync now" also asks whether the destination is still ours
        try:
            self._enqueue(ready)
            self.db.release_all()
        except STATE_ERRORS as e:
            self._state_failed(e)  # the paths are kept; the worker retries and catches up
        self._poke()

    def reload_sink(self) -> None:
        """The token or destination changed: build the sink again and retry everything."""
        with self._cond:
            self._sink_stale = True  # the engine thread drops the old sink (it may be uploading)
            self._sink_ready = False
            self._connecting = True
            self._transforms.clear()
            self._transforms_generation += 1
            self._health.reload()
            self._identity_due = True
        self.db.release_all()
        self._poke()

    def apply_settings(self, settings: Settings) -> None:
        """New settings (an agent switched on or off): re-watch and rescan the roots."""
        with self._cond:
            self.settings = settings
            self.roots = enabled_roots(settings, self.environ)
            self._owners = all_roots(settings, self.environ)
            self._scan_requests.extend((r, r.path) for r in self.roots if r.path.is_dir())
        if self._watcher is not None:
            self._watcher.roots = list(self.roots)
            self._watcher.owners = list(self._owners)
            self._watcher.refresh()
        self._poke()

    def _enabled_agents(self) -> list[str]:
        return [a.name for a in enabled_agents(self.settings)]

    def _poke(self) -> None:
        with self._cond:
            self._wake = True
            self._cond.notify_all()
        self._changed()

    def _load_pause(self) -> float | None:
        until = self.db.paused_until
        return None if until is None or until <= self._clock() else until

    @property
    def paused(self) -> bool:
        """True while a pause is in force."""
        until = self._paused_until
        return until is not None and until > self._clock()

    # -- watcher callbacks (observer thread) ---------------------------------------------------

    def _on_file(self, root: Root, path: Path) -> None:
        matched = match_root(self._owners, path)
        if matched is None or matched.root != root:
            return  # a more specific root owns it (the watcher routes by owner_of too)
        with self._cond:
            self._info[path] = matched
            self._debouncer.touch(path, self._clock())
            self._cond.notify_all()

    def _on_gone(self, root: Root, path: Path) -> None:
        if not utf8_name(path):
            return
        with self._cond:
            if path in self._debouncer:
                self._debouncer.touch(path, self._clock())  # the worker will find it gone
                self._cond.notify_all()
                return
        try:
            if self.db.row(str(path)) is not None:
                log.info("Local file vanished, its remote copy is kept: %s", path)
                self.db.mark_gone([str(path)])
                self._changed()
        except STATE_ERRORS as e:
            self._state_failed(e)  # the catch-up once writes work finds it vanished

    def _on_lost(self) -> None:
        """The OS dropped file events (inotify queue overflow): any file may be stale."""
        with self._cond:
            now = time.monotonic()
            quiet = now - self._lost_events_at > LOST_EVENTS_QUIET
            self._lost_events_at = now
            self._request_catch_up()
        if quiet:
            log.warning(
                "File events were lost (the inotify queue overflowed); rescanning every session folder"
            )
        self._changed()

    def _request_catch_up(self) -> None:
        """Make the worker scan every root again (call with ``_cond`` held)."""
        self._catch_up_requests += 1
        self._caught_up = False
        self._cond.notify_all()

    def _on_scan(self, root: Root, folder: Path) -> None:
        with self._cond:
            self._scan_requests.append((root, folder))
            self._cond.notify_all()

    # -- the worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                self._recover()
                self._loop()
                if self._stopping:
                    return
                continue  # a catch-up was requested
            except STATE_ERRORS as e:
                # state.db (or the spool) cannot be written: keep what was seen, say so, retry.
                self._state_failed(e)
                with self._cond:
                    delay = self._health.state_retry_delay()
            except Exception:
                # A bug must not end syncing for good: log it, back off, carry on.
                log.exception("Unexpected error in the sync engine; retrying")
                with self._cond:
                    delay = self._health.crashed()
                    self._request_catch_up()  # what it was doing may be lost: look again
                self._changed()
            if self._pause_worker(delay):
                return

    def _pause_worker(self, delay: float) -> bool:
        """Wait ``delay`` seconds (file events do not cut it short; a poke does). True: stop."""
        end = time.monotonic() + delay
        with self._cond:
            while not self._stopping and not self._wake:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._wake = False
            return self._stopping

    def _recover(self) -> None:
        """Before the loop: check that state writes work again, then catch up if asked to."""
        if self._health.state_error is not None:
            # Real writes, so recovery is not claimed while the disk is still full.
            self.db.check_writes(self._clock())
            probe = self.paths.spool_dir / ".write-check"
            try:
                probe.write_bytes(b"\n")
                probe.unlink()
            except OSError as e:
                raise SpoolError(e.errno, e.strerror, str(self.paths.spool_dir)) from e
            self._enqueue([])  # the paths kept in memory meanwhile
        if not self._caught_up:
            self.catch_up()
        if self._health.state_error is not None:
            with self._cond:
                self._health.state_recovered()
            log.info("The state folder %s can be written again; caught up", self.paths.state_dir)
            self._changed()

    def _state_failed(self, e: Exception) -> None:
        """A write to the state folder failed: say so (once), and catch up once it works."""
        message = state_error_message(e, self.paths)
        with self._cond:
            first = self._health.state_failed(message)
            self._request_catch_up()
        if first:
            log.error("%s", message)
        self._changed()

    def _loop(self) -> None:
        """Work until stopped, or until a catch-up is requested (after one pass, so a storm of
        requests cannot starve the uploads)."""
        first = True
        while True:
            with self._cond:
                if self._stopping or (not first and not self._caught_up):
                    return
                first = False
                timeout = self._sleep_time()
                idle = not self._wake and not self._scan_requests and self._caught_up
                if idle and (timeout is None or timeout > 0):
                    self._cond.wait(timeout)
                self._wake = False
                if self._stopping:
                    return
                ready = self._debouncer.pop_ready(self._clock())
                scans, self._scan_requests = self._scan_requests, []
                verifies, self._verify_requests = self._verify_requests, []
            self._auth_recheck()
            if ready:
                self._enqueue(ready)
            for root, folder in scans:
                self._scan(root, folder)
            if ready or scans:
                self._changed()
            for request in verifies:
                self._answer_verify(request)
            self._drain()

    def credentials_fingerprint(self) -> str | None:
        """A fingerprint of the credentials in use (None: no credentials concept).

        While the token is rejected, the engine looks at this every ``AUTH_RECHECK`` seconds
        and retries as soon as it changes (``hf auth login`` in a terminal, a new HF_TOKEN file).
        """
        return None

    def _auth_recheck(self) -> None:
        if not self._health.watching_token:
            return
        if self._health.token_changed(self.credentials_fingerprint()):
            log.info("The Hugging Face token changed; retrying")
            self.reload_sink()

    def _sleep_time(self) -> float | None:
        """Seconds until something is due; None means sleep until an event (idle)."""
        now = self._clock()
        deadlines = [
            d for d in (self._debouncer.next_deadline(), self._health.recheck_at(now)) if d is not None
        ]
        if self._paused_until is not None and self._paused_until != float("inf"):
            deadlines.append(self._paused_until)
        if self._identity_due and self._can_upload(now, ignore_backoff=True):
            # At start and after "Sync now" the destination is checked even with nothing due
            # (after a failed check: once the backoff is over).
            deadlines.append(self._health.next_attempt())
        if self._can_upload(now, ignore_backoff=True):
            due = self.db.next_due_time(self._enabled_agents())
            if due is not None and due < NEVER:
                deadlines.append(max(due, self._health.next_attempt()))
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def _can_upload(self, now: float, *, ignore_backoff: bool = False) -> bool:
        if self._paused_until is not None:
            if self._paused_until > now:
                return False
            self._paused_until = None
            self.db.paused_until = None
            log.info("Timed pause ended; sync resumed")
        if self._health.blocked() or self._stopping:
            return False
        return ignore_backoff or self._health.may_upload(now)

    def catch_up(self) -> None:
        """Scan every root and queue what differs from what was uploaded (start-up, resume)."""
        started = time.monotonic()
        with self._cond:
            requests = self._catch_up_requests
        for root in self.roots:
            if root.path.is_dir():
                self._scan(root, root.path, forget_missing=True)
        log.info("Catch-up scan of %d folder(s) took %.2f s", len(self.roots), time.monotonic() - started)
        with self._cond:
            # A request made while this scan ran may concern a folder it had already passed.
            self._caught_up = self._catch_up_requests == requests
        self._changed()

    def _scan(self, root: Root, folder: Path, *, forget_missing: bool = False) -> None:
        known = self.db.checked_stats()
        watcher = self._watcher
        queue, seen = changed_files(
            root, folder, known, roots=self._owners, on_link=watcher.watch_link if watcher else None
        )
        if queue:
            located = [(p, match_root([root], p)) for p in queue]
            with self._cond:
                for p, m in located:
                    if m is not None:
                        self._info[p] = m
            self._enqueue(queue)
        if forget_missing:
            missing = vanished(root, known, seen, self._owners)
            if missing:
                log.info(
                    "%d file(s) under %s vanished locally; their remote copies are kept",
                    len(missing),
                    root.path,
                )
                self.db.mark_gone(missing)

    def _enqueue(self, paths: list[Path]) -> None:
        """Queue changed paths in ``state.db``; if that fails they are kept for the next try."""
        with self._cond:
            batch = list(dict.fromkeys([*self._unsaved, *paths]))
            self._unsaved.clear()
        try:
            items = pending_items(batch, lambda p: self._info.pop(p, None) or match_root(self._owners, p))
            if items:
                self.db.mark_pending(items)
        except BaseException:
            with self._cond:
                self._unsaved.update(dict.fromkeys(batch))
            raise

    def _drain(self) -> PassResult:
        """Upload due files in batches until none is due (or we must stop)."""
        result = self._drain_batches()
        if result.uploaded or result.unchanged:
            release_memory()
        return result

    def _drain_batches(self) -> PassResult:
        result = PassResult()
        self._identity_checked = False
        while self._can_upload(self._clock()) and self._next_batch(result):
            self._changed()
            with self._cond:
                if self._stopping:
                    break
        return result

    def _next_batch(self, result: PassResult) -> bool:
        """Send one batch of due files; False when there was nothing to send (or no sink)."""
        if not self._ensure_sink():
            return False
        rows = self.db.due(self._clock(), self.settings.batch_size, agents=self._enabled_agents())
        if not self._identity_checked and (rows or self._identity_due):
            # Once per pass, before the first upload: is the destination still the one the
            # ledger describes? (An idle pass with nothing due asks nothing.)
            if not self._check_identity():
                return False
            rows = self.db.due(self._clock(), self.settings.batch_size, agents=self._enabled_agents())
        if not rows:
            return False
        assert self._sink is not None
        if self.uploader.upload_batch(self._sink, rows, result):
            with self._cond:
                # Uploads work again: an old sink error is history, not the current state.
                forget = self._health.uploaded(files=bool(result.uploaded))
            if forget:
                self.db.last_error = None
        return True

    def _ensure_sink(self) -> bool:
        if self._sink_ready and not self._sink_stale:
            return True
        try:
            ready = self._connect()
        finally:
            self._connecting = False
        if ready:
            with self._cond:
                healed = self._health.connected()
            if healed:
                assert self._sink is not None
                log.info("The destination %s accepts writes again", self._sink.location)
        return ready

    def _connect(self) -> bool:
        with self._cond:
            stale, self._sink_stale = self._sink_stale, False
        if stale and self._sink is not None:
            old, self._sink = self._sink, None
            old.close()
        try:
            if self._sink is None:
                self._sink = self._sink_factory()
                self._view = SinkView.of(self._sink)
            self._sink.ensure()
        except SinkError as e:
            self._handle_sink_error(e, [])
            return False
        except ValueError as e:  # e.g. a malformed destination that slipped past the config check
            self._handle_sink_error(
                SinkError(f"The destination is not usable: {e}", kind=ErrorKind.FATAL), []
            )
            return False
        previous = self.db.destination
        if previous != self._sink.location:
            if previous is not None and not _same_destination(previous, self._sink.location):
                log.info(
                    "Destination changed from %s to %s: every file will be uploaded again",
                    previous,
                    self._sink.location,
                )
                self.db.reset_uploads()
                self.db.destination_identity = None  # the old destination's
            self.db.destination = self._sink.location
        if not self._check_identity():
            return False
        self._sink_ready = True  # the caller tells the health (``_ensure_sink``)
        return True

    def _check_identity(self) -> bool:
        """Compare the destination's identity with the one the ledger's uploads went to; when
        it changed (a folder deleted or remounted empty, a bucket deleted and created again),
        every file is sent again. False when the destination could not be asked."""
        assert self._sink is not None
        try:
            current = self._sink.identity()
        except SinkError as e:
            self._handle_sink_error(e, [])
            return False
        self._identity_checked = True
        self._identity_due = False
        if current is None:
            return True
        stored = self.db.destination_identity
        if stored != current:
            if stored is not None:
                gone = self.db.counts().get("gone", 0)
                log.warning(
                    "The destination %s is not the one the uploads went to (deleted, re-created or "
                    "remounted empty?): sending every file again%s",
                    self._sink.location,
                    f" ({gone} file(s) deleted locally cannot be sent again)" if gone else "",
                )
                self.db.reset_uploads()
                self._replaced += 1
                self._changed()
            self.db.destination_identity = current
        return True

    def _set_uploading(self, n: int) -> None:
        with self._cond:
            self._uploading = n
        self._changed()

    def _transform(self, agent: str) -> Transform | None:
        if self._transform_factory is None:
            return None
        # reload_sink() clears the cache from another thread (a new token is a new secret to
        # redact): build outside the lock, and cache only if no clear came meanwhile.
        with self._cond:
            if agent in self._transforms:
                return self._transforms[agent]
            generation = self._transforms_generation
        built = self._transform_factory(agent)
        with self._cond:
            if generation == self._transforms_generation:
                self._transforms[agent] = built
        return built

    def _handle_sink_error(self, e: SinkError, paths: list[str]) -> None:
        self.db.last_error = e.message
        # The fingerprint of the rejected token: a new one found later means "retry".
        fingerprint = self.credentials_fingerprint() if e.kind is ErrorKind.AUTH else None
        with self._cond:
            reaction = self._health.sink_failed(
                e.kind, e.message, self._clock(), retry_after=e.retry_after, fingerprint=fingerprint
            )
            if reaction.sink_unusable:
                self._sink_ready = False
        if reaction.log is not None:
            log.log(reaction.level, "%s", reaction.log)
        if reaction.defer_until is not None and paths:
            self.db.defer(paths, reaction.defer_until)
        self._changed()

    # -- what the front ends show --------------------------------------------------------------

    def status(self) -> Status:
        """A consistent snapshot of everything the tray and ``status`` show."""
        counts = self.db.counts(self._enabled_agents())
        with self._cond:
            # Paths a failed state write could not queue yet are waiting too.
            debouncing = len(self._debouncer) + len(self._unsaved)
            uploading = self._uploading
        pending = debouncing + counts.get("pending", 0)
        paused = self.paused
        busy = bool(uploading or pending or not self._caught_up or self._connecting or self._identity_due)
        health = self._health
        state = health.state(paused=paused, busy=busy)
        last = self.db.last_upload_at
        recent = self.recent_traces(1)
        view = self._view
        return Status(
            state=state,
            paused=paused,
            paused_until=None if not paused or self._paused_until == float("inf") else self._paused_until,
            pending=pending,
            uploading=uploading,
            uploaded=counts.get("ok", 0) + counts.get("gone", 0),
            destination=view.location if view else (self.settings.destination or ""),
            destination_kind=view.kind if view else "",
            destination_url=self._browse_url(view),
            agents=tuple(self.agents()),
            last_upload_at=last,
            last_error=health.shown_error(self.uploader.last_file_error if counts.get("error") else None),
            last_trace=recent[0] if recent else None,
            signed_in_as=self.signed_in_as,
            redactions=self.db.redaction_counts(),
            issues=counts.get("error", 0),
            next_retry_at=health.next_retry_at(),
            pid=os.getpid(),
            running=self._thread is not None and self._thread.is_alive(),
        )

    def agents(self) -> list[AgentInfo]:
        """Every known agent with its roots, whether detected (a root exists) or enabled."""
        sessions = self.db.sessions_per_agent()
        out = []
        for entry in agent_roots(self.settings, self.environ):
            agent, roots = entry.agent, entry.roots
            if not any(r.path.is_dir() for r in roots) and not sessions.get(agent.name):
                continue  # not installed: simply absent
            out.append(
                AgentInfo(
                    name=agent.name,
                    display_name=agent.display_name,
                    roots=tuple(str(r.path) for r in roots),
                    sessions=sessions.get(agent.name, 0),
                    enabled=entry.enabled,
                )
            )
        return out

    def recent_traces(self, limit: int = 10) -> list[TraceInfo]:
        """The most recently updated uploaded traces, newest first.

        "Updated" is the time of the session's last record (else its modification time),
        capped at the upload that saw it: a session stamped in the future would otherwise
        stay the "last trace" for good.
        """
        # The ledger's latest by mtime (and any stamped in the future), re-ranked here.
        now = self._clock()
        rows = self.db.recent(max(4 * limit, 40), self._enabled_agents(), now=now)

        def when(row: FileRow) -> float:
            seen = row.uploaded_at if row.uploaded_at is not None else now
            recorded = record_time(SessionMeta.from_json(row.meta).last_ts)
            if recorded is None:
                recorded = (row.ck_mtime_ns or 0) / 1e9
            return min(recorded, seen, now)

        rows = sorted(rows, key=when, reverse=True)[:limit]
        out = []
        for row in rows:
            meta = SessionMeta.from_json(row.meta)
            out.append(
                TraceInfo(
                    agent=row.agent,
                    title=meta.display_title,
                    local_path=row.path,
                    remote_key=row.key,
                    url=self._url_for(row.key),
                    session_id=meta.session_id,
                    cwd=meta.cwd,
                    git_branch=meta.git_branch,
                    model=meta.model,
                    first_ts=meta.first_ts,
                    last_ts=meta.last_ts,
                    uploaded_at=row.uploaded_at,
                )
            )
        return out

    @staticmethod
    def _browse_url(view: SinkView | None) -> str:
        try:
            return view.browse_url() if view else ""
        except (ValueError, KeyError, IndexError):
            return ""

    def _url_for(self, key: str) -> str:
        # Read only what the engine thread published: building the sink here would run the
        # factory (keyring, whoami) on the caller's thread and race the engine thread.
        view = self._view
        if view is None:
            return ""
        try:
            return view.url_for(key)
        except (ValueError, KeyError, IndexError):  # a broken viewer_url_template
            return ""

    def show_destination(self, sink: Sink | None) -> None:
        """Show ``sink``'s location and links until the engine thread builds its own sink (a
        link-only sink: the offline ``status``, or the destination last used before the first
        connect). Uploads never go through it; None leaves things as they are."""
        if sink is not None:
            self._view = SinkView.of(sink)

    # -- verification (``traceagent sync --verify``) ---------------------------------------------

    def verify(self) -> VerifyResult:
        """List the destination and queue every file whose copy is missing there or whose size
        differs from what was uploaded (a copy overwritten by hand, a folder emptied). Runs
        in the calling thread: the foreground ``sync``, or the engine thread for
        :meth:`request_verify`. Remote copies are never deleted or changed otherwise."""
        replaced = self._replaced
        if not self._ensure_sink() or not self._check_identity():
            h = self._health
            error = h.auth_error or h.fatal_error or h.offline_error
            return VerifyResult(error=error or "the destination is not usable right now")
        assert self._sink is not None
        try:
            listing = self._sink.list_files()
        except SinkError as e:  # reported to the one who asked; uploads go on as they were
            log.warning("Could not list %s to verify it: %s", self._sink.location, e.message)
            return VerifyResult(error=e.message)
        result = VerifyResult(replaced=self._replaced != replaced)
        for path, key, out_size, gone in self.db.uploaded_rows(self._enabled_agents()):
            result.checked += 1
            there = listing.get(key)
            if there is not None and there == out_size:
                continue
            if there is None:
                why = "missing"
            elif out_size is None:
                why = f"{there:,} bytes there; the size sent was not recorded"
            else:
                why = f"{there:,} bytes there, {out_size:,} sent"
            (result.lost if gone else result.resent).append((path, key, why))
        for _, key, why in result.resent:
            log.warning("Verify: %s at %s is %s; sending it again", key, self._sink.location, why)
        for _, key, why in result.lost:
            log.warning("Verify: %s at %s is %s, and its local file is gone", key, self._sink.location, why)
        self.db.resend(p for p, _, _ in result.resent)
        log.info(
            "Verified %d file(s) at %s: %d to send again",
            result.checked,
            self._sink.location,
            len(result.resent),
        )
        self._changed()
        return result

    def request_verify(self, timeout: float = VERIFY_TIMEOUT) -> VerifyResult:
        """:meth:`verify` in the engine thread (the daemon's own sink and state), waiting for it
        (the engine must have been started). Raises ``TimeoutError`` after ``timeout`` seconds,
        ``CancelledError`` when the engine stops first."""
        future: Future[VerifyResult] = Future()
        with self._cond:
            self._verify_requests.append(future)
            self._wake = True
            self._cond.notify_all()
        return future.result(timeout)

    def _answer_verify(self, future: Future[VerifyResult]) -> None:
        try:
            future.set_result(self.verify())
        except Exception as e:  # the caller gets the error; the engine carries on
            log.exception("Verification failed")
            future.set_exception(e)

    # -- foreground use (``traceagent sync``) --------------------------------------------------

    def run_pass(self, progress: Callable[[int, int], None] | None = None) -> PassResult:
        """Scan and upload everything now, in this thread; the daemon must not be running."""
        self._clear_spool()
        self.catch_up()
        total = self.db.counts(self._enabled_agents()).get("pending", 0)
        result = PassResult()
        self.db.release_all()
        self._identity_checked = False
        self._identity_due = True
        while self._next_batch(result):
            if progress is not None:
                progress(result.uploaded + result.unchanged + result.failed, total)
            if self._health.stop_error():
                break
        result.error = result.error or self._health.stop_error()
        result.pending = self.db.counts(self._enabled_agents()).get("pending", 0)
        return result
