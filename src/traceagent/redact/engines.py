"""Prefilter engines: which lines of a chunk can match which rules.

The prefilter only has to be a *superset*: for every line and rule where the Python confirm
step would find a span, the line must be returned with that rule's index. Then the output
does not depend on the engine. Three engines keep that promise:

- ``hyperscan``: all rule patterns in one Hyperscan (Vectorscan) database, one scan per line.
- ``re2``: all rule patterns in one ``re2.Set`` (Latin-1, so bytes are bytes), one match per line.
- ``stdlib``: each rule's *anchors* (literal-first regexes that every match contains) are
  searched over the whole chunk with ``re``, which runs at GB/s for a literal prefix.

Set engines scan each line on its own (a match never crosses a line), after a first scan of
the whole chunk that skips clean chunks at once.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any, Protocol

from .rules import Rule

log = logging.getLogger(__name__)

ENGINE_ENV = "TRACEAGENT_REDACT_ENGINE"
ENGINE_NAMES = ("hyperscan", "re2", "stdlib")
#: (line start, line end without its newline, indices of rules that may match).
Candidates = list[tuple[int, int, list[int]]]
#: Placeholder pattern for an empty rule list (its hits map to -1 and are ignored).
_NEVER = b"\\x00traceagent-no-rules\\x00"


class EngineUnavailable(RuntimeError):
    """The requested engine's wheel is not installed or cannot compile the rules."""


class Prefilter(Protocol):
    name: str

    def candidates(self, data: bytes) -> Candidates: ...


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


class _SetPrefilter:
    """Shared per-line loop for the set engines: ``_match`` returns rule indices or ``None``."""

    name = "set"

    def _match(self, text: bytes) -> list[int] | None:
        raise NotImplementedError

    def candidates(self, data: bytes) -> Candidates:
        match = self._match
        if not data or match(data) is None:
            return []
        out: Candidates = []
        pos = 0
        for line in _lines(data):
            n = len(line)
            if n:
                ids = match(line)
                if ids is not None:
                    out.append((pos, pos + n, ids))
            pos += n + 1
        return out


class Re2Prefilter(_SetPrefilter):
    name = "re2"

    def __init__(self, rules: Sequence[Rule]) -> None:
        try:
            import re2
        except ImportError as exc:  # pragma: no cover - depends on the wheel
            raise EngineUnavailable("google-re2 is not installed") from exc
        opts = re2.Options()
        opts.encoding = re2.Options.Encoding.LATIN1
        opts.max_mem = 256 << 20
        self._set: Any = re2.Set.SearchSet(opts)
        self._ids: list[int] = []
        for i, rule in enumerate(rules):
            if rule.always:
                continue
            try:
                self._set.Add(rule.prefilter_source)
            except re2.error as exc:
                raise EngineUnavailable(f"RE2 cannot compile rule {rule.name!r}") from exc
            self._ids.append(i)
        if not self._ids:
            self._set.Add(_NEVER)  # a Set needs one pattern; its hits are dropped
            self._ids.append(-1)
        self._set.Compile()
        self._raw_match = self._set.Match

    def _match(self, text: bytes) -> list[int] | None:
        hits = self._raw_match(text)
        if hits is None:
            return None
        ids = self._ids
        return sorted(ids[h] for h in hits if ids[h] >= 0) or None


class HyperscanPrefilter(_SetPrefilter):
    name = "hyperscan"

    def __init__(self, rules: Sequence[Rule]) -> None:
        try:
            import hyperscan
        except ImportError as exc:  # pragma: no cover - depends on the wheel
            raise EngineUnavailable("hyperscan is not installed") from exc
        exprs: list[bytes] = []
        flags: list[int] = []
        ids: list[int] = []
        base = hyperscan.HS_FLAG_SINGLEMATCH
        for i, rule in enumerate(rules):
            if rule.always:
                continue
            exprs.append(rule.pattern.encode("utf-8"))
            flags.append(base | (hyperscan.HS_FLAG_CASELESS if rule.ci else 0))
            ids.append(i)
        if not exprs:
            exprs, flags, ids = [_NEVER], [base], [-1]
        self._db: Any = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        try:
            self._db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
        except hyperscan.error:
            # Prefilter mode compiles a superset of any pattern; that is all a prefilter needs.
            flags = [f | hyperscan.HS_FLAG_PREFILTER for f in flags]
            try:
                self._db.compile(
                    expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags
                )
            except hyperscan.error as exc:
                raise EngineUnavailable(f"Hyperscan cannot compile the rules: {exc}") from exc
        self._ids = ids
        self._scratch = hyperscan.Scratch(self._db)
        self._hits: list[int] = []
        self._scan = self._db.scan

    def _on_match(self, idx: int, start: int, end: int, flags: int, context: object) -> None:
        self._hits.append(idx)

    def _match(self, text: bytes) -> list[int] | None:
        self._hits = hits = []
        self._scan(text, match_event_handler=self._on_match, scratch=self._scratch)
        if not hits:
            return None
        ids = self._ids
        return sorted(ids[h] for h in hits if ids[h] >= 0) or None


class StdlibPrefilter:
    """Pure ``re``: search every anchor over the whole chunk, flag the lines they fall in."""

    name = "stdlib"

    def __init__(self, rules: Sequence[Rule]) -> None:
        groups: dict[tuple[str, bool], list[int]] = {}
        for i, rule in enumerate(rules):
            if rule.always:
                continue
            for anchor in rule.anchors:
                groups.setdefault((anchor, rule.ci), []).append(i)
        self._anchors = [
            (re.compile(src.encode("utf-8")).search, ci, tuple(ids)) for (src, ci), ids in groups.items()
        ]
        self._need_lower = any(ci for _, ci, _ in self._anchors)

    def candidates(self, data: bytes) -> Candidates:
        lowered = data.lower() if self._need_lower else data
        flagged: dict[int, tuple[int, set[int]]] = {}
        rfind, find, size = data.rfind, data.find, len(data)
        for search, ci, ids in self._anchors:
            text = lowered if ci else data
            m = search(text)
            while m is not None:
                i = m.start()
                ls = rfind(b"\n", 0, i) + 1
                le = find(b"\n", i)
                if le < 0:
                    le = size
                entry = flagged.get(ls)
                if entry is None:
                    flagged[ls] = (le, set(ids))
                else:
                    entry[1].update(ids)
                m = search(text, le)
        return [(ls, le, sorted(ids)) for ls, (le, ids) in sorted(flagged.items())]


_FACTORIES: dict[str, type[Re2Prefilter] | type[HyperscanPrefilter] | type[StdlibPrefilter]] = {
    "hyperscan": HyperscanPrefilter,
    "re2": Re2Prefilter,
    "stdlib": StdlibPrefilter,
}


def make_prefilter(rules: Sequence[Rule], engine: str | None = None) -> Prefilter:
    """Build the prefilter. ``engine``: a name from ``ENGINE_NAMES``, ``"auto"`` or ``None``.

    ``None`` reads ``TRACEAGENT_REDACT_ENGINE`` (default ``auto``: the first engine whose wheel
    imports, in the order of ``ENGINE_NAMES``). A named engine that is missing raises
    ``EngineUnavailable``; ``auto`` falls back to the next one and finally to ``stdlib``.
    """
    choice = (engine or os.environ.get(ENGINE_ENV) or "auto").strip().lower()
    if choice != "auto":
        if choice not in _FACTORIES:
            raise EngineUnavailable(f"unknown redaction engine {choice!r}; use one of {ENGINE_NAMES}")
        return _FACTORIES[choice](rules)
    for name in ENGINE_NAMES:
        try:
            return _FACTORIES[name](rules)
        except EngineUnavailable as exc:
            log.debug("redaction engine %s unavailable: %s", name, exc)
    raise AssertionError("unreachable: the stdlib engine is always available")  # pragma: no cover
