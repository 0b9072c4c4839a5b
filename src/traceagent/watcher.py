"""Event-driven watching of the agents' session roots (watchdog), plus the catch-up scan.

An idle daemon does no periodic scans: it blocks until the OS reports a change. A root
that does not exist yet (agent not installed) is watched through its nearest existing
parent, non-recursively, so installing an agent while the daemon runs is noticed.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from traceagent.agents import BY_NAME
from traceagent.agents.base import Root

log = logging.getLogger(__name__)

#: Called with (root, absolute path) for a changed allow-listed file.
OnFile = Callable[[Root, Path], None]
#: Called with (root, absolute path) when a file vanished.
OnGone = Callable[[Root, Path], None]
#: Called with a root, or a folder inside one, that must be scanned (new folder, root appeared).
OnScan = Callable[[Root, Path], None]
#: Called when the OS dropped file events (the inotify queue overflowed): rescan everything.
OnLost = Callable[[], None]


_EVENTS: list[Any] = []


def match_root(roots: list[Root], path: Path) -> tuple[Root, PurePosixPath] | None:
    """The root ``path`` lies under and the path relative to it (POSIX form)."""
    for root in roots:
        try:
            rel = path.relative_to(root.path)
        except ValueError:
            continue
        if rel.parts:
            return root, PurePosixPath(*rel.parts)
    return None


def scan_root(
    root: Root,
    start: Path | None = None,
    *,
    unchanged: Callable[[str, os.stat_result], bool] | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """Every allow-listed file under ``root`` (or its sub-folder ``start``) with its stat.

    ``unchanged(path, stat)`` lets the caller skip a known file from its path string and its
    one ``stat`` before any other work: a restart over 10,000 unchanged files is then little
    more than the ``stat`` calls. Symlinked folders are not followed (no loops); unreadable
    folders are logged and skipped.
    """
    agent = BY_NAME[root.agent]
    top = start or root.path
    root_str = str(root.path)

    def onerror(e: OSError) -> None:
        log.warning("Cannot read folder %s: %s (skipped; the rest syncs)", e.filename, e.strerror or e)

    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root_str)
        rel_parts = () if rel_dir == "." else tuple(rel_dir.split(os.sep))
        # Hidden folders never hold transcripts; the agent may rule out more (caches, venvs).
        dirnames[:] = [
            d for d in dirnames if not d.startswith(".") and agent.descend(PurePosixPath(*rel_parts, d))
        ]
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError as e:
                log.warning("Cannot stat %s: %s", full, e.strerror or e)
                continue
            if not stat_module.S_ISREG(st.st_mode):
                continue  # FIFOs, sockets, devices: never opened
            if unchanged is not None and unchanged(full, st):
                continue
            if agent.is_transcript(PurePosixPath(*rel_parts, name)):
                yield Path(full), st


class Watcher:
    """watchdog observers on the roots; reports changes through callbacks."""

    def __init__(
        self,
        roots: list[Root],
        on_file: OnFile,
        on_gone: OnGone,
        on_scan: OnScan,
        on_lost: OnLost | None = None,
    ) -> None:
        self.roots = list(roots)
        self._on_file = on_file
        self._on_gone = on_gone
        self._on_scan = on_scan
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._observer: Any = None
        self._watches: dict[Path, Any] = {}  # watched folder -> ObservedWatch
        self._recursive: set[Path] = set()
        self._covered: set[Path] = set()  # roots that exist and are watched

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

    def refresh(self) -> None:
        """(Re)schedule watches: roots that exist recursively, missing ones via a parent."""
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
                agent = BY_NAME[root.agent]
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
        src = Path(os.fsdecode(event.src_path))
        if event.is_directory:
            if etype in ("deleted", "moved") and any(
                r.path == src or src in r.path.parents for r in self.roots if r.path in self._covered
            ):
                # A session folder (or a folder above it) went away: watch its parent again so
                # that a re-created folder is noticed.
                log.info("Session folder removed: %s (remote copies are kept)", src)
                self.refresh()
                if etype == "deleted":
                    return
            if etype in ("created", "moved"):
                target = Path(os.fsdecode(event.dest_path)) if etype == "moved" else src
                self._root_or_folder_appeared(target)
            return
        if etype == "deleted":
            self._gone(src)
            return
        if etype == "moved":
            self._gone(src)
            src = Path(os.fsdecode(event.dest_path))
        matched = match_root(self.roots, src)
        if matched is not None:
            root, rel = matched
            if BY_NAME[root.agent].is_transcript(rel):
                self._on_file(root, src)
        elif any(r.path not in self._covered for r in self.roots):
            self._root_or_folder_appeared(src.parent)

    def _gone(self, path: Path) -> None:
        matched = match_root(self.roots, path)
        if matched is not None and BY_NAME[matched[0].agent].is_transcript(matched[1]):
            self._on_gone(matched[0], path)

    def _root_or_folder_appeared(self, folder: Path) -> None:
        """A folder was created: a whole root (agent installed) or a folder inside one."""
        missing = [r for r in self.roots if r.path not in self._covered]
        matched = match_root(self.roots, folder)
        shallow = matched is not None and BY_NAME[matched[0].agent].shallow
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
        if matched is not None and matched[0] not in missing:
            # Files created before the new folder's watch existed would be missed otherwise.
            self._on_scan(matched[0], folder)


def shallow_folders(root: Root) -> list[Path]:
    """The root and the sub-folders its agent would descend into (for shallow agents)."""
    agent = BY_NAME[root.agent]
    out = [root.path]
    stack = [root.path]
    while stack:
        top = stack.pop()
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                rel = PurePosixPath(*Path(entry.path).relative_to(root.path).parts)
                if agent.descend(rel):
                    out.append(Path(entry.path))
                    stack.append(Path(entry.path))
    return out


def _inotify_hint(e: OSError) -> str:
    if e.errno == 28:  # ENOSPC from inotify_add_watch: the watch limit
        return (
            " (inotify watch limit reached; raise it with `sudo sysctl fs.inotify.max_user_watches=524288`)"
        )
    return ""
