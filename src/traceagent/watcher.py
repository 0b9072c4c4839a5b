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
from collections.abc import Callable, Iterable, Iterator
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
#: Called by a scan with (link path in a root, its resolved target, whether a folder) for a
#: symlink it follows: inotify does not follow links, so the watcher watches the target.
OnLink = Callable[[Path, Path, bool], None]
#: Called when the OS dropped file events (the inotify queue overflowed): rescan everything.
OnLost = Callable[[], None]


_EVENTS: list[Any] = []


def owner_of(roots: Iterable[Root], path: Path) -> Root | None:
    """The root that owns ``path`` (a file or folder in it, or the root itself): the most
    specific one, so that a root nested in another (``CLAUDE_CONFIG_DIR`` inside
    ``$CODEX_HOME/sessions``, or the reverse) keeps its files. Ties go to the first root.

    The one ownership rule: the watcher routes events with it, scans stop at the folders it
    gives to another root, and the vanish check and the engine's queue use it too.
    """
    text = str(path)
    best: Root | None = None
    best_len = -1
    for root in roots:
        folder = str(root.path)
        # String prefixes, not pathlib: this runs for every file event (``str`` is cached).
        if len(folder) > best_len and (text == folder or text.startswith(folder.rstrip(os.sep) + os.sep)):
            best, best_len = root, len(folder)
    return best


def match_root(roots: Iterable[Root], path: Path) -> tuple[Root, PurePosixPath] | None:
    """The root that owns ``path`` (:func:`owner_of`) and the path relative to it (POSIX form);
    None outside every root and for a root itself."""
    root = owner_of(roots, path)
    if root is None or path == root.path:
        return None
    return root, PurePosixPath(*path.relative_to(root.path).parts)


#: What the log last said about a link (each thing once, until the link is followed again).
_told_links: dict[str, str] = {}


def _tell_once(level: int, link: str, msg: str, *args: object) -> None:
    if _told_links.get(link) != msg:
        _told_links[link] = msg
        log.log(level, msg, link, *args)


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies under it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _LinkGuard:
    """Which symlinks found in a root a scan follows, and the guard against loops.

    A link is followed when its target lies outside every root: a link that points back into
    a root (this one or another) is not, since that root syncs the target under its own path,
    and following it would upload the same session twice under two keys. Folders reached
    through links are remembered by device and inode, so a loop ends and a second link to the
    same folder (or file) adds nothing; the first one found, in name order, is synced.
    """

    def __init__(self, roots: list[Root], on_link: OnLink | None) -> None:
        self._roots = roots
        self._real: list[str] | None = None
        self._on_link = on_link
        self.folders: set[tuple[int, int]] = set()
        self.files: set[tuple[int, int]] = set()

    def follow(self, link: str, st: os.stat_result) -> bool:
        """Whether to follow ``link`` (whose target's stat is ``st``); logs why not, once."""
        if self._real is None:
            self._real = [os.path.realpath(r.path) for r in self._roots]
        real = os.path.realpath(link)
        for root_real in self._real:
            if _inside(real, root_real) or _inside(root_real, real):
                _tell_once(
                    logging.INFO,
                    link,
                    "Not following symlink %s: it points to %s, inside the session folder %s, which owns its files",
                    real,
                    root_real,
                )
                return False
        ident = (st.st_dev, st.st_ino)
        is_dir = stat_module.S_ISDIR(st.st_mode)
        if is_dir:
            if _inside(os.path.realpath(os.path.dirname(link)), real):
                _tell_once(
                    logging.INFO,
                    link,
                    "Not following symlink %s: it points to %s, a folder above it (a loop)",
                    real,
                )
                return False
            if ident in self.folders:
                return False  # a loop, or a second link to a folder already synced
            self.folders.add(ident)
        else:
            if ident in self.files:
                return False
            self.files.add(ident)
        _told_links.pop(link, None)  # a link that breaks again is named again
        if self._on_link is not None:
            self._on_link(Path(link), Path(real), is_dir)
        return True


def scan_root(
    root: Root,
    start: Path | None = None,
    *,
    unchanged: Callable[[str, os.stat_result], bool] | None = None,
    roots: list[Root] | None = None,
    on_link: OnLink | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """Every allow-listed file under ``root`` (or its sub-folder ``start``) with its stat.

    ``unchanged(path, stat)`` lets the caller skip a known file from its path string and its
    one ``stat`` before any other work: a restart over 10,000 unchanged files is then little
    more than the ``stat`` calls. ``roots`` are all the roots (:func:`owner_of`): the scan
    never enters a folder that a more specific one owns. Symlinked folders and files are
    followed when they point outside every root (:class:`_LinkGuard`; ``on_link`` hears of
    each, for the watcher) and yielded under their path in the root, which makes the key.
    Unreadable folders and links whose target is gone are logged and skipped.
    """
    agent = BY_NAME[root.agent]
    top = start or root.path
    owners = [root, *(r for r in roots or () if r is not root)]
    if owner_of(owners, top) is not root:
        return  # a folder of a more specific root: its own scans cover it
    # Folders owned by a more specific root, by path (the scan stops there).
    inner = {str(r.path) for r in owners if r.path != root.path and r.path.is_relative_to(root.path)}
    guard = _LinkGuard(owners, on_link)

    def target_stat(full: str, rel: PurePosixPath) -> os.stat_result | None:
        try:
            return os.stat(full)
        except OSError as e:
            # Named only if it could hold something to sync, and once (not at every scan).
            if not rel.name.startswith(".") and (agent.is_transcript(rel) or agent.descend(rel)):
                _tell_once(
                    logging.WARNING,
                    full,
                    "Skipping symlink %s: its target cannot be read (%s); fix or remove the link to sync it",
                    e.strerror or e,
                )
            return None

    rel_top = tuple(top.relative_to(root.path).parts)
    linked_top = bool(rel_top) and os.path.islink(top)
    if linked_top:
        # A scan of a link just created (or re-pointed): the same rules as inside the walk.
        st_top = target_stat(str(top), PurePosixPath(*rel_top))
        if st_top is None or not stat_module.S_ISDIR(st_top.st_mode) or not guard.follow(str(top), st_top):
            return
    # Depth first, in name order (which link wins when two reach the same folder).
    stack: list[tuple[str, tuple[str, ...], bool]] = [(str(top), rel_top, linked_top)]
    while stack:
        dirpath, rel_parts, linked = stack.pop()
        try:
            with os.scandir(dirpath) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            if linked:  # a link's unreadable target: named once, not at every scan
                _tell_once(
                    logging.WARNING,
                    dirpath,
                    "Cannot read folder %s: %s (skipped; the rest syncs)",
                    e.strerror or e,
                )
            else:
                log.warning("Cannot read folder %s: %s (skipped; the rest syncs)", dirpath, e.strerror or e)
            continue
        folders: list[tuple[str, tuple[str, ...], bool]] = []
        for entry in entries:
            full = entry.path
            try:
                is_link = entry.is_symlink()
                is_dir = not is_link and entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if not is_dir and not is_link:
                # A plain file, by far the most common entry: no pathlib before ``unchanged``
                # (the restart fast path, bench/README.md figure 3).
                try:
                    st = os.stat(full)
                except OSError as e:
                    log.warning("Cannot stat %s: %s", full, e.strerror or e)
                    continue
                if not stat_module.S_ISREG(st.st_mode):
                    continue  # FIFOs, sockets, devices: never opened
                if linked:
                    if (st.st_dev, st.st_ino) in guard.files:
                        continue  # the same file through another link
                    guard.files.add((st.st_dev, st.st_ino))
                if unchanged is not None and unchanged(full, st):
                    continue
                if agent.is_transcript(PurePosixPath(*rel_parts, entry.name)):
                    yield Path(full), st
                continue
            rel = PurePosixPath(*rel_parts, entry.name)
            # Hidden folders never hold transcripts; the agent may rule out more (caches, venvs).
            wanted_dir = not entry.name.startswith(".") and full not in inner and agent.descend(rel)
            if is_dir:
                if not wanted_dir:
                    continue
                if linked:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if (st.st_dev, st.st_ino) in guard.folders:
                        continue  # also reached through another link
                    guard.folders.add((st.st_dev, st.st_ino))
                folders.append((full, (*rel_parts, entry.name), linked))
                continue
            st_link = target_stat(full, rel)
            if st_link is None:
                continue
            if stat_module.S_ISDIR(st_link.st_mode):
                if wanted_dir and guard.follow(full, st_link):
                    folders.append((full, (*rel_parts, entry.name), True))
                continue
            if not stat_module.S_ISREG(st_link.st_mode) or not agent.is_transcript(rel):
                continue
            if not guard.follow(full, st_link) or (unchanged is not None and unchanged(full, st_link)):
                continue
            yield Path(full), st_link
        stack.extend(reversed(folders))


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
        #: Followed symlinks, by resolved target: (the link's path in a root, is a folder).
        #: Replaced, never changed in place, so the observer thread reads it without a lock.
        self._links: dict[Path, tuple[Path, bool]] = {}

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
            if links.get(target) == (link, is_dir):
                return
            held = links.get(target)
            if held is not None and held[0] != link and os.path.realpath(held[0]) == str(target):
                return  # another link reaches it too; the scans sync it under that one
            # One target per link: a re-pointed link drops its old target.
            new = {t: v for t, v in links.items() if v[0] != link}
            new[target] = (link, is_dir)
            self._links = new
        log.info("Following symlink %s -> %s", link, target)
        self.refresh()

    def _forget_links(self, path: Path) -> None:
        """``path`` (a link, or a folder holding links) was deleted or moved away."""
        with self._lock:
            links = self._links
            new = {t: v for t, v in links.items() if not v[0].is_relative_to(path)}
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
            return hit[0]
        for parent in path.parents:  # the nearest (deepest) linked folder first
            hit = links.get(parent)
            if hit is not None and hit[1]:
                return hit[0] / path.relative_to(parent)
        if (
            not folder
            and owner_of(self.owners, path) is None
            and any(not is_dir and t.parent == path.parent for t, (_, is_dir) in links.items())
        ):
            return None
        return path

    def _match(self, path: Path) -> tuple[Root, PurePosixPath] | None:
        """The synced root that owns ``path`` and the path relative to it (see owner_of)."""
        matched = match_root(self.owners, path)
        return matched if matched is not None and matched[0] in self.roots else None

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
            elif BY_NAME[root.agent].is_transcript(rel):
                self._on_file(root, src)
        elif owner_of(self.owners, src) is None and any(r.path not in self._covered for r in self.roots):
            self._root_or_folder_appeared(src.parent)

    def _gone(self, path: Path) -> None:
        matched = self._match(path)
        if matched is not None and BY_NAME[matched[0].agent].is_transcript(matched[1]):
            self._on_gone(matched[0], path)

    def _root_or_folder_appeared(self, folder: Path) -> None:
        """A folder was created: a whole root (agent installed) or a folder inside one."""
        missing = [r for r in self.roots if r.path not in self._covered]
        matched = self._match(folder)
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
