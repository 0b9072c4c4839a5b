"""What differs between the session folders and the ledger: the engine's scans.

Nothing here opens a session file: a file is compared with what ``state.db`` last recorded by
its ``stat`` alone (a store that agents export, by its change token), which is why a
restart with nothing changed reads nothing (``bench/README.md``, figure 3).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from traceagent.agents.base import Root
from traceagent.sinks.keys import InvalidKeyError, make_key
from traceagent.sync.roots import OnLink, RootMatch, match_root, owner_of, scan_root
from traceagent.sync.state import Checked, PendingItem

__all__ = ["Known", "changed_files", "pending_items", "utf8_name", "vanished"]

log = logging.getLogger(__name__)

#: ``path -> what the ledger last read of it``: ``StateDB.checked_stats()``.
Known = Mapping[str, Checked]

_warned_names: set[str] = set()


def utf8_name(path: Path) -> bool:
    """Paths that are not valid UTF-8 cannot be keys (nor rows): skipped with one warning."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        if text not in _warned_names:
            _warned_names.add(text)
            log.warning("Skipping %r: its name is not valid UTF-8 (rename it to sync it)", text)
        return False
    return True


def _in_step(ck: Checked | None, size: int, mtime_ns: int) -> bool:
    """Whether the ledger's last read of a file matches this stat (and the read settled it)."""
    return ck is not None and ck.size == size and ck.mtime_ns == mtime_ns and ck.status in ("ok", "error")


def changed_files(
    root: Root,
    folder: Path,
    known: Known,
    *,
    roots: list[Root] | None = None,
    on_link: OnLink | None = None,
) -> tuple[list[Path], set[str]]:
    """The files under ``folder`` (in ``root``) that differ from ``known``, and every path
    seen (for :func:`vanished`). For an exporting agent the path is its store, once.
    ``roots`` (every root) keeps the scan out of more specific roots; ``on_link`` hears of
    the symlinks it follows (:func:`scan_root`)."""
    queue: list[Path] = []
    agent = root.agent
    seen: set[str] = set()

    def unchanged(path: str, st: os.stat_result) -> bool:
        # The restart fast path: a known file whose stat is what we last read is skipped
        # with no further work (exported stores compare their own change token below).
        if agent.exports or not _in_step(known.get(path), st.st_size, st.st_mtime_ns):
            return False
        seen.add(path)
        return True

    for found, st in scan_root(root, folder, unchanged=unchanged, roots=roots, on_link=on_link):
        path = found
        if agent.exports:
            # A store (database, JSON) and its -wal file: what changes is the store.
            where = match_root([root], found)
            if where is None:
                continue
            path = root.path / agent.source_of(where.rel)
            try:
                size, mtime_ns = agent.change_token(path)
            except OSError:
                continue
        else:
            size, mtime_ns = st.st_size, st.st_mtime_ns
        key = str(path)
        if key in seen:
            continue
        seen.add(key)
        if not _in_step(known.get(key), size, mtime_ns):
            queue.append(path)  # new or changed; an unchanged file is not even opened
    return queue, seen


def vanished(root: Root, known: Known, seen: set[str], roots: list[Root] | None = None) -> list[str]:
    """Files the ledger knows under ``root`` that a whole-root scan did not see. Only the
    files ``root`` owns: a more specific root's files (``roots``) are not its scan's to see."""
    prefix = str(root.path) + os.sep
    owners = [root, *(r for r in roots or () if r is not root)]
    return [
        p
        for p, ck in known.items()
        if p.startswith(prefix)
        and p not in seen
        and ck.status != "gone"
        and owner_of(owners, Path(p)) is root
    ]


def pending_items(paths: list[Path], locate: Callable[[Path], RootMatch | None]) -> list[PendingItem]:
    """Queue rows for changed ``paths``; ``locate`` says which root each is under. Paths
    outside every root, with names that are not UTF-8 or that make no valid key are skipped."""
    items: list[PendingItem] = []
    for changed in paths:
        info = locate(changed)
        if info is None or not utf8_name(changed):
            continue
        root, rel = info
        agent = root.agent
        path = changed
        if agent.exports:
            rel = agent.source_of(rel)
            path = root.path / rel
        try:
            key = make_key(root.remote, rel)
        except InvalidKeyError as e:
            log.warning("Skipping %s: %s", path, e)
            continue
        is_trace = not agent.exports and not agent.is_subagent(rel) and rel.suffix == ".jsonl"
        items.append(PendingItem(str(path), agent.name, key, is_trace))
    return items
