"""Event-driven watching of the agents' session roots (watchdog only; the rules of roots are
:mod:`traceagent.sync.roots`).

An idle daemon does no periodic scans: it blocks until the OS reports a change. A root
that does not exist yet (agent not installed) is watched through its nearest existing
parent, non-recursively, so installing an agent while the daemon runs is noticed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from traceagent.agents.base import Root
from traceagent.sync.roots import RootMatch, match_root, owner_of, shallow_folders

log = logging.getLogger(__name__)

#: Called with (root, absolute path) for a changed allow-listed file.
OnFile = Callable[[Root, Path], None]
#: Called with (root, absolute path) when a file vanished.
OnGone = Callable[[Root, Path], None]
#: Called with a root, or a folder inside one, that must be scanned (new folder, root appeared).
OnScan = Callable[[Root, Path], None]
#: Called when the OS dropped file events (the inotify queue overflowed): rescan everything.
OnLost = Callable[[], None]


class _Link(NamedTuple):
    """A followed symlink, filed under its resolved target."""

    path: Path  #: the link's path in a root (events under the target are reported under it)
    is_dir: bool


_EVENTS: list[Any] = []


class Watcher:
    """watchdog observers on the roots; reports changes through callbacks."""

    def __init__(
        self,
        roots: list[Root],
        on_file: OnFile,
        on_gone: OnGone,
        on_scan: OnScan,
        on_lost: OnLost | None = None,
        *,
        owners: list[Root] | None = None,
    ) -> None:
        self.roots = list(roots)
        #: Every root that owns files (:func:`owner_of`), the switched-off agents' too: a file
        #: in a switched-off agent's folder nested in another root is not the other's to sync.
        self.owners = list(roots if owners is None else owners)
        self._on_file = on_file
        self._on_gone = on_gone
        self._on_scan = on_scan
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._observer: Any = None
        self._watches: dict[Path, Any] = {}  # watched folder -> ObservedWatch
        self._recursive: set[Path] = set()
        self._covered: set[Path] = set()  # roots that exist and are watched
        #: Followed symlinks, by resolved target.
        #: Replaced, never changed in place, so the observer thread reads it without a lock.
        self._links: dict[Path, _Link] = {}

    def start(self) -> None:
        """Start the observer thread and schedule the watches."""
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        kind = os.environ.get("TRACEAGENT_OBSERVER", "native")
        self._observer = PollingObserver(timeout=1) if kind == "polling" else Observer()
        self._observer.daemon = True
        self._observer.start()
        self.refresh()

    def stop(self) -> None:
        """Stop the observer and wait for its thread."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def watch_link(self, link: Path, target: Path, is_dir: bool) -> None:
        """A scan followed the symlink ``link`` (in a root) to ``target``: watch the target
        (inotify does not follow links) and report its changes under ``link``. A linked
        folder is watched recursively, a linked file through its folder."""
        with self._lock:
            links = self._links
            if links.get(target) == _Link(link, is_dir):
                return
            held = links.get(target)
            if held is not None and held.path != link and os.path.realpath(held.path) == str(target):
                return  # another link reaches it too; the scans sync it under that one
            # One target per link: a re-pointed link drops its old target.
            new = {t: v for t, v in links.items() if v.path != link}
            new[target] = _Link(link, is_dir)
            self._links = new
        log.info("Following symlink %s -> %s", link, target)
        self.refresh()

    def _forget_links(self, path: Path) -> None:
        """``path`` (a link, or a folder holding links) was deleted or moved away."""
        with self._lock:
            links = self._links
            new = {t: v for t, v in links.items() if not v.path.is_relative_to(path)}
            if len(new) == len(links):
                return
            self._links = new
        self.refresh()

    def _local(self, path: Path, folder: bool = False) -> Path | None:
        """The path in a root that an event's path stands for: a path inside a link's target
        maps back to the link (the key is made from it); None for a file (not a ``folder``)
        that merely sits beside a linked file in its folder."""
        links = self._links
        if not links:
            return path
        hit = links.get(path)
        if hit is not None:
            return hit.path
        for parent in path.parents:  # the nearest (deepest) linked folder first
            hit = links.get(parent)
            if hit is not None and hit.is_dir:
                return hit.path / path.relative_to(parent)
        if (
            not folder
            and owner_of(self.owners, path) is None
            and any(not link.is_dir and t.parent == path.parent for t, link in links.items())
        ):
            return None
        return path

    def _match(self, path: Path) -> RootMatch | None:
        """The synced root that owns ``path`` and the path relative to it (see owner_of)."""
        matched = match_root(self.owners, path)
        return matched if matched is not None and matched.root in self.roots else None

    def refresh(self) -> None:
        """(Re)schedule watches: roots that exist recursively, missing ones via a parent,
        the targets of followed symlinks."""
        import watchdog.events
        from watchdog.events import (
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
            FileSystemEventHandler,
        )

        global _EVENTS
        # Only what changes a session: without a filter inotify also reports every open and
        # close, so any program reading the sessions (a backup, grep, our own snapshots)
        # would wake the daemon once per file.
        _EVENTS = [
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileMovedEvent,
            FileModifiedEvent,
        ]
        # The kernel's queue can overflow (a burst of writes while we are busy): watchdog then
        # reports the loss, delivered only to watches whose filter lists it (watchdog >= 7).
        lost = getattr(watchdog.events, "EventsLostEvent", None)
        if lost is not None:
            _EVENTS.append(lost)

        engine_handler = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                try:
                    engine_handler._dispatch(event)
                except Exception:  # a bad path must never kill the observer thread
                    log.exception("Error handling file event %r", event)

        observer = self._observer
        if observer is None:
            return
        # Lock order: watchdog's observer lock, then ours. The observer thread holds its lock
        # while it runs our handler (which may call refresh), so the other order deadlocks.
        with observer._lock, self._lock:
            if self._observer is None:
                return
            wanted: dict[Path, bool] = {}  # folder -> recursive
            covered: set[Path] = set()
            for root in self.roots:
                agent = root.agent
                if root.path.is_dir():
                    covered.add(root.path)
                    if agent.shallow:
                        # Only the folders that can hold sessions, one watch each: the agent's
                        # data folder may also hold caches, checkouts or a venv.
                        for folder in shallow_folders(root):
                            wanted.setdefault(folder, False)
                    else:
                        wanted[root.path] = True
                else:
                    parent = root.path.parent
                    while not parent.is_dir() and parent != parent.parent:
                        parent = parent.parent
                    wanted.setdefault(parent, False)
            for target, (_, is_dir) in self._links.items():
                folder = target if is_dir else target.parent
                if not folder.is_dir():
                    continue  # the link broke: the next scan of its folder names it
                if is_dir:
                    wanted[folder] = True
                else:
                    wanted.setdefault(folder, False)
            for folder in list(self._watches):
                if folder not in wanted or wanted[folder] != (folder in self._recursive):
                    watch = self._watches.pop(folder)
                    self._recursive.discard(folder)
                    try:
                        self._observer.unschedule(watch)
                    except (KeyError, OSError):
                        pass  # the folder is gone, and its watch with it
            for folder, recursive in wanted.items():
                if folder in self._watches:
                    continue
                try:
                    self._watches[folder] = self._observer.schedule(
                        Handler(), str(folder), recursive=recursive, event_filter=_EVENTS
                    )
                except OSError as e:
                    log.error("Cannot watch %s: %s%s", folder, e.strerror or e, _inotify_hint(e))
                    continue
                if recursive:
                    self._recursive.add(folder)
                if folder in covered:
                    log.info("Watching %s", folder)
                elif not recursive:
                    log.debug("Watching %s", folder)
            self._covered = covered

    def _dispatch(self, event: Any) -> None:
        etype = event.event_type
        if etype == "events_lost":
            # Its path is the watch's, not a changed file: any file may be stale now.
            if self._on_lost is not None:
                self._on_lost()
            return
        if etype in ("opened", "closed_no_write", "closed", "attrib"):
            # Our own reads cause these: SQLite opens a -wal read-write even for a read-only
            # connection (and chowns it when run as root), so reading a store would otherwise
            # re-trigger its export forever. A write always also reports "modified".
            return
        # Paths in a followed link's target stand for paths under the link (None: not ours);
        # ``raw`` is the path as reported, to tell a new link from a change in its target.
        reported = Path(os.fsdecode(event.src_path))
        src = self._local(reported, event.is_directory)
        raw: Path | None = reported
        raw_dest = Path(os.fsdecode(event.dest_path)) if etype == "moved" else None
        dest = self._local(raw_dest, event.is_directory) if raw_dest is not None else None
        if src is not None and src == raw and etype in ("deleted", "moved") and self._links:
            self._forget_links(src)  # a link itself (or a folder holding links) went away
        if event.is_directory:
            if (
                src is not None
                and etype in ("deleted", "moved")
                and any(r.path == src or src in r.path.parents for r in self.roots if r.path in self._covered)
            ):
                # A session folder (or a folder above it) went away: watch its parent again so
                # that a re-created folder is noticed.
                log.info("Session folder removed: %s (remote copies are kept)", src)
                self.refresh()
                if etype == "deleted":
                    return
            target = dest if etype == "moved" else src if etype == "created" else None
            if target is not None:
                self._root_or_folder_appeared(target)
            return
        if etype == "deleted":
            if src is not None:
                self._gone(src)
            return
        if etype == "moved":
            if src is not None:
                self._gone(src)
            src, raw = dest, raw_dest  # e.g. a linked file rewritten by a rename over it
        if src is None or raw is None:
            return
        matched = self._match(src)
        if matched is not None:
            root, rel = matched
            if etype in ("created", "moved") and src == raw and os.path.islink(src):
                # A new (or re-pointed) symlink: inotify reports the link, not its target.
                # A scan of its folder applies the link rules and asks for the target's watch.
                self._on_scan(root, src.parent)
            elif root.agent.is_transcript(rel):
                self._on_file(root, src)
        elif owner_of(self.owners, src) is None and any(r.path not in self._covered for r in self.roots):
            self._root_or_folder_appeared(src.parent)

    def _gone(self, path: Path) -> None:
        matched = self._match(path)
        if matched is not None and matched.root.agent.is_transcript(matched.rel):
            self._on_gone(matched.root, path)

    def _root_or_folder_appeared(self, folder: Path) -> None:
        """A folder was created: a whole root (agent installed) or a folder inside one."""
        missing = [r for r in self.roots if r.path not in self._covered]
        matched = self._match(folder)
        shallow = matched is not None and matched.root.agent.shallow
        if missing or shallow:
            # Watch closer (a parent of a missing root appeared, or a new folder of a shallow
            # root) until nothing moves: `mkdir -p` can outrun each new watch.
            for _ in range(8):
                before = dict.fromkeys(self._watches)
                self.refresh()
                if dict.fromkeys(self._watches) == before:
                    break
            for root in missing:
                if root.path in self._covered:
                    log.info("Session folder appeared: %s", root.path)
                    self._on_scan(root, root.path)
        if matched is not None and matched.root not in missing:
            # Files created before the new folder's watch existed would be missed otherwise.
            self._on_scan(matched.root, folder)


def _inotify_hint(e: OSError) -> str:
    if e.errno == 28:  # ENOSPC from inotify_add_watch: the watch limit
        return (
            " (inotify watch limit reached; raise it with `sudo sysctl fs.inotify.max_user_watches=524288`)"
        )
    return ""
