"""Prefilter engines: which lines of a chunk can match which rules.

The prefilter only has to be a *superset*: for every line and rule where the Python confirm
step would find a span, the line must be returned with that rule's index. Then the output
does not depend on the engine. Three engines keep that promise:

- ``hyperscan``: every rule pattern in one Hyperscan (Vectorscan) database; one scan of the
  whole chunk reports (rule, end offset) pairs, mapped to lines.
- ``re2``: every rule pattern in one RE2 alternation to find the next line with any match
  (leftmost match), then an ``re2.Set`` on that line alone tells which rules match.
- ``stdlib``: each rule's *anchors* (literals every match contains) are searched over the
  whole chunk with ``bytes.find`` / ``re``, both of which run at about 1 GB/s.

No builtin pattern can match a newline, so a match never spans two lines. RE2 runs in
Latin-1 mode so that bytes are bytes, as in Python's ``re``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .rules import Rule

log = logging.getLogger(__name__)

ENGINE_ENV = "TRACEAGENT_REDACT_ENGINE"
ENGINE_NAMES = ("hyperscan", "re2", "stdlib")
#: (line start, line end without its newline, indices of rules that may match).
Candidates = list[tuple[int, int, list[int]]]
#: Placeholder pattern for an empty rule list (its hits map to -1 and are ignored).
_NEVER = b"\\x00traceagent-no-rules\\x00"


class EngineUnavailableError(RuntimeError):
    """The requested engine's wheel is not installed or cannot compile the rules."""


class Prefilter(Protocol):
    name: str

    def candidates(self, data: bytes) -> Candidates: ...


def _set_rules(rules: Sequence[Rule]) -> tuple[list[bytes], list[bool], list[int]]:
    """Pattern sources, case-insensitivity and rule index of every rule a set engine takes."""
    idx = [i for i, r in enumerate(rules) if not r.always]
    if not idx:
        return [_NEVER], [False], [-1]
    return [rules[i].pattern.encode("utf-8") for i in idx], [rules[i].ci for i in idx], idx


class _LineIndex:
    """Maps offsets to (line start, line end) with a one-line cache (hits come in order)."""

    __slots__ = ("data", "end", "start")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.start = self.end = -1

    def line_of(self, pos: int) -> tuple[int, int]:
        if not self.start <= pos < self.end:
            self.start = self.data.rfind(b"\n", 0, pos) + 1
            end = self.data.find(b"\n", pos)
            self.end = len(self.data) if end < 0 else end
        return self.start, self.end


def _collect(flagged: dict[int, tuple[int, set[int]]], ls: int, le: int, ids: Sequence[int]) -> None:
    entry = flagged.get(ls)
    if entry is None:
        flagged[ls] = (le, set(ids))
    else:
        entry[1].update(ids)


def _sorted(flagged: dict[int, tuple[int, set[int]]]) -> Candidates:
    return [
        (ls, le, sorted(i for i in ids if i >= 0)) for ls, (le, ids) in sorted(flagged.items()) if le > ls
    ]


class HyperscanPrefilter:
    name = "hyperscan"

    def __init__(self, rules: Sequence[Rule]) -> None:
        try:
            import hyperscan
        except ImportError as exc:  # pragma: no cover - depends on the wheel
            raise EngineUnavailableError("hyperscan is not installed") from exc
        exprs, ci, self._ids = _set_rules(rules)
        flags = [hyperscan.HS_FLAG_CASELESS if c else 0 for c in ci]
        self._db: Any = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        n = len(exprs)
        try:
            self._db.compile(expressions=exprs, ids=list(range(n)), elements=n, flags=flags)
        except hyperscan.error:
            # Prefilter mode compiles a superset of any pattern: all a prefilter needs.
            flags = [f | hyperscan.HS_FLAG_PREFILTER for f in flags]
            try:
                self._db.compile(expressions=exprs, ids=list(range(n)), elements=n, flags=flags)
            except hyperscan.error as exc:
                raise EngineUnavailableError(f"Hyperscan cannot compile the rules: {exc}") from exc
        self._scratch = hyperscan.Scratch(self._db)
        self._local = threading.local()  # a Hyperscan scratch space is per thread

    def candidates(self, data: bytes) -> Candidates:
        hits: list[tuple[int, int]] = []
        add = hits.append

        def on_match(idx: int, start: int, end: int, flags: int, context: object) -> None:
            add((idx, end))

        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._scratch.clone()
        self._db.scan(data, match_event_handler=on_match, scratch=scratch)
        if not hits:
            return []
        lines = _LineIndex(data)
        flagged: dict[int, tuple[int, set[int]]] = {}
        ids = self._ids
        for idx, end in hits:
            ls, le = lines.line_of(end - 1)
            _collect(flagged, ls, le, (ids[idx],))
        return _sorted(flagged)


class Re2Prefilter:
    name = "re2"

    def __init__(self, rules: Sequence[Rule]) -> None:
        try:
            import re2
        except ImportError as exc:  # pragma: no cover - depends on the wheel
            raise EngineUnavailableError("google-re2 is not installed") from exc
        opts = re2.Options()
        opts.encoding = re2.Options.Encoding.LATIN1
        opts.max_mem = 256 << 20
        opts.never_capture = True
        exprs, ci, self._ids = _set_rules(rules)
        wrapped = [b"(?i:" + e + b")" if c else b"(?:" + e + b")" for e, c in zip(exprs, ci, strict=True)]
        self._set: Any = re2.Set.SearchSet(opts)
        try:
            for w in wrapped:
                self._set.Add(w)
            self._set.Compile()
            self._any: Any = re2.compile(b"|".join(wrapped), opts)
        except re2.error as exc:
            raise EngineUnavailableError(f"RE2 cannot compile the rules: {exc}") from exc

    def candidates(self, data: bytes) -> Candidates:
        search, match_set, ids = self._any.search, self._set.Match, self._ids
        flagged: dict[int, tuple[int, set[int]]] = {}
        lines = _LineIndex(data)
        pos = 0
        while (m := search(data, pos)) is not None:
            ls, le = lines.line_of(m.start())
            hits = match_set(data[ls:le])
            if hits:
                _collect(flagged, ls, le, [ids[h] for h in hits])
            pos = le + 1
        return _sorted(flagged)


def _finder(anchor: str | bytes) -> Callable[[bytes, int], int]:
    """``find(text, start) -> index or -1`` for a literal or a literal-first regex."""
    if isinstance(anchor, bytes):
        return lambda text, start: text.find(anchor, start)
    search = re.compile(anchor.encode("utf-8")).search

    def find(text: bytes, start: int) -> int:
        m = search(text, start)
        return -1 if m is None else m.start()

    return find


class StdlibPrefilter:
    """Pure Python: search every anchor over the whole chunk, flag the lines it falls in."""

    name = "stdlib"

    def __init__(self, rules: Sequence[Rule]) -> None:
        groups: dict[tuple[str | bytes, bool], list[int]] = {}
        for i, rule in enumerate(rules):
            if rule.always:
                continue
            for anchor in rule.anchors:
                groups.setdefault((anchor, bool(rule.anchor_ci)), []).append(i)
        self._anchors = [(_finder(a), ci, tuple(ids)) for (a, ci), ids in groups.items()]
        self._need_lower = any(ci for _, ci, _ in self._anchors)

    def candidates(self, data: bytes) -> Candidates:
        lowered = data.lower() if self._need_lower else data
        flagged: dict[int, tuple[int, set[int]]] = {}
        lines = _LineIndex(data)
        for find, ci, ids in self._anchors:
            text = lowered if ci else data
            i = find(text, 0)
            while i >= 0:
                ls, le = lines.line_of(i)
                _collect(flagged, ls, le, ids)
                i = find(text, le)
        return _sorted(flagged)


_FACTORIES: dict[str, Callable[[Sequence[Rule]], Prefilter]] = {
    "hyperscan": HyperscanPrefilter,
    "re2": Re2Prefilter,
    "stdlib": StdlibPrefilter,
}


def available_engines() -> list[str]:
    """Names of the engines whose wheel imports here, fastest first (``stdlib`` is always last)."""
    found = []
    for name, module in (("hyperscan", "hyperscan"), ("re2", "re2")):
        try:
            __import__(module)
        except ImportError:
            continue
        found.append(name)
    return [*found, "stdlib"]


def make_prefilter(rules: Sequence[Rule], engine: str | None = None) -> Prefilter:
    """Build the prefilter. ``engine``: a name from ``ENGINE_NAMES``, ``"auto"`` or ``None``.

    ``None`` reads ``TRACEAGENT_REDACT_ENGINE`` (default ``auto``: the first engine whose wheel
    imports, in the order of ``ENGINE_NAMES``). A named engine that is missing raises
    ``EngineUnavailableError``; ``auto`` falls back to the next one and finally to ``stdlib``.
    """
    choice = (engine or os.environ.get(ENGINE_ENV) or "auto").strip().lower()
    if choice != "auto":
        if choice not in _FACTORIES:
            raise EngineUnavailableError(f"unknown redaction engine {choice!r}; use one of {ENGINE_NAMES}")
        return _FACTORIES[choice](rules)
    for name in ENGINE_NAMES:
        try:
            return _FACTORIES[name](rules)
        except EngineUnavailableError as exc:
            log.debug("redaction engine %s unavailable: %s", name, exc)
    raise AssertionError("unreachable: the stdlib engine is always available")  # pragma: no cover
