"""Which root owns a path, and walking a root: the rules the watcher, the scans and the engine share.

The most specific (deepest) root owns a file, so one agent's folder inside another's is never
scanned, marked gone or uploaded twice. Symlinks that leave every root are followed (with a loop
guard); their targets are reported so the watcher can watch them (inotify does not follow links).
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from traceagent.agents.base import Root

log = logging.getLogger(__name__)

#: Called by a scan with (link path in a root, its resolved target, whether a folder) for a
#: symlink it follows: inotify does not follow links, so the watcher watches the target.
OnLink = Callable[[Path, Path, bool], None]


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


class RootMatch(NamedTuple):
    """A path located in a root (:func:`match_root`)."""

    root: Root
    #: The path relative to ``root.path``, in POSIX form (what the remote key is made from).
    rel: PurePosixPath


def match_root(roots: Iterable[Root], path: Path) -> RootMatch | None:
    """The root that owns ``path`` (:func:`owner_of`) and the path relative to it (POSIX form);
    None outside every root and for a root itself."""
    root = owner_of(roots, path)
    if root is None or path == root.path:
        return None
    return RootMatch(root, PurePosixPath(*path.relative_to(root.path).parts))


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
    agent = root.agent
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


def shallow_folders(root: Root) -> list[Path]:
    """The root and the sub-folders its agent would descend into (for shallow agents)."""
    agent = root.agent
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
