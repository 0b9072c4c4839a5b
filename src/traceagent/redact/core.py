"""The redactor: prefilter, confirm, merge spans, replace, keep every JSON line valid."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import own_secrets as own_secrets_module
from .boundaries import escape_start, widen_to_escapes
from .engines import EngineUnavailableError, Prefilter, make_prefilter
from .rules import BUILTIN_NAMES, BUILTIN_RULES, Rule, known_value_rule, user_rule

log = logging.getLogger(__name__)

_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
_PREVIEW_BLOCK = 1 << 20

#: :class:`LineStream` geometry. Each window redacts ``STREAM_STEP`` new bytes and keeps the
#: next ``STREAM_MARGIN`` for the following window, so any match shorter than the margin that
#: starts in one window is seen whole there; ``STREAM_CONTEXT`` bytes before a window give the
#: escape-aware left boundaries (and key names) their context. A match that still runs into
#: the window's end grows the window, up to ``STREAM_MAX_WINDOW``.
STREAM_STEP = 1 << 20
STREAM_MARGIN = 64 << 10
STREAM_CONTEXT = 4 << 10
STREAM_MAX_WINDOW = 16 << 20


class RedactConfigError(ValueError):
    """A redaction setting is invalid; the message names the rule or pattern at fault."""


@dataclass(frozen=True)
class Finding:
    """One redaction: rule, 1-based line number, byte span within the line, masked value."""

    rule: str
    line_no: int
    start: int
    end: int
    masked: str


def mask(value: bytes) -> str:
    """Show at most the first 4 characters (fewer for short values) and the length."""
    text = value.decode("utf-8", "replace")
    shown = min(4, len(text) // 4)
    return f"{text[:shown]}…({len(text)} chars)"


def marker(rule: str) -> bytes:
    return b"[REDACTED:" + rule.encode("ascii") + b"]"


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line.decode("utf-8"))
    except ValueError:  # also UnicodeDecodeError
        return False
    return True


# (start, end, rule index) after merging: the lowest rule index names the marker.
_Span = tuple[int, int, int]


class Redactor:
    """Redacts secrets from complete JSONL lines. Build one with :meth:`from_settings`."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        allow_exact: frozenset[bytes] = frozenset(),
        allow_regex: Sequence[re.Pattern[bytes]] = (),
        engine: str | None = None,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._allow_exact = allow_exact
        self._allow_regex = tuple(allow_regex)
        self._always = [i for i, r in enumerate(self.rules) if r.always]
        self._prefilter: Prefilter = make_prefilter(self.rules, engine)
        self.engine_name: str = self._prefilter.name
        log.debug("redactor: %d rules, engine %s", len(self.rules), self.engine_name)

    @classmethod
    def from_settings(
        cls,
        *,
        extra_rules: Mapping[str, str] = {},
        allowlist: Sequence[str] = (),
        own_secrets: bool = True,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
        extra_values: Sequence[str] = (),
        engine: str | None = None,
    ) -> Redactor:
        """Build a redactor from user settings.

        ``extra_rules``: rule name → regex (Python syntax); the group named ``secret`` is
        redacted if present, else the whole match. ``allowlist``: values never redacted;
        an entry ``re:<regex>`` is a regex that must match the whole value, anything else is
        an exact string. ``own_secrets``: also redact the exact values of secret-looking
        environment variables and of local credential files. ``extra_values``: more exact
        values (the HF token traceagent itself uses). ``engine``: ``"hyperscan"``, ``"re2"``,
        ``"stdlib"`` or ``"auto"``; default: ``$TRACEAGENT_REDACT_ENGINE`` or auto.
        """
        rules: list[Rule] = list(BUILTIN_RULES)
        values: list[tuple[str, str]] = []
        for value in extra_values:
            if len(value.strip()) >= own_secrets_module.MIN_LEN:
                values.append(("extra", value.strip()))
            elif value.strip():
                log.warning(
                    "ignoring an extra secret value shorter than %d characters", own_secrets_module.MIN_LEN
                )
        if own_secrets:
            env = os.environ if environ is None else environ
            values += own_secrets_collect(env, home if home is not None else Path.home())
        rules += _known_rules(values)
        rules += _user_rules(extra_rules)
        exact, regexes = _parse_allowlist(allowlist)
        try:
            return cls(rules, allow_exact=exact, allow_regex=regexes, engine=engine)
        except EngineUnavailableError as exc:
            raise RedactConfigError(f"redaction engine: {exc}") from exc

    # -- public API -----------------------------------------------------------------------

    def __call__(self, data: bytes) -> tuple[bytes, dict[str, int]]:
        """:meth:`redact_chunk`: a redactor is the snapshot's transform."""
        return self.redact_chunk(data)

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short digest of the rule set and allowlist (the same settings give the same value).

        The uploader keeps it with each remote copy: lines appended to a copy redacted with
        other settings would mix two redactions, so such a copy is sent whole again.
        """
        h = hashlib.sha256()
        # Sorted: the order of the user's environment variables must not change the digest.
        for name, pattern in sorted((r.name, r.pattern) for r in self.rules):
            h.update(name.encode() + b"\0" + pattern.encode("utf-8", "surrogatepass") + b"\0")
        for value in sorted(self._allow_exact):
            h.update(b"allow\0" + value + b"\0")
        for rx in self._allow_regex:
            h.update(b"allow-re\0" + rx.pattern + b"\0")
        return h.hexdigest()[:16]

    def line_stream(self) -> LineStream:
        """Redact one line given in pieces, in bounded memory (see :class:`LineStream`)."""
        return LineStream(self)

    def redact_chunk(self, data: bytes) -> tuple[bytes, dict[str, int]]:
        """Redact complete JSONL lines; return the bytes and the number of redactions per rule.

        Each finding becomes ``[REDACTED:<rule>]``. Lines without findings come back
        byte-identical, the number of lines never changes, and a line that parsed as JSON
        still does. Any bytes are accepted (invalid UTF-8, non-JSON lines, no final newline).
        """
        counts: dict[str, int] = {}
        pieces: list[bytes] = []
        last = 0
        for ls, le, ids in self._candidates(data):
            line = data[ls:le]
            spans = self._spans(line, ids)
            if not spans:
                continue
            new_line = self._apply(line, spans, counts)
            pieces += (data[last:ls], new_line)
            last = le
        if not pieces:
            return data, counts
        pieces.append(data[last:])
        return b"".join(pieces), counts

    def findings(self, data: bytes) -> list[Finding]:
        """What :meth:`redact_chunk` would replace, with masked values (for previews)."""
        out: list[Finding] = []
        line_no, pos = 1, 0
        for ls, le, ids in self._candidates(data):
            line_no += data.count(b"\n", pos, ls)
            pos = ls
            line = data[ls:le]
            for s, e, idx in self._spans(line, ids):
                out.append(Finding(self.rules[idx].name, line_no, s, e, mask(line[s:e])))
        return out

    # -- internals ------------------------------------------------------------------------

    def _candidates(self, data: bytes) -> list[tuple[int, int, list[int]]]:
        if not self._always:
            return self._prefilter.candidates(data)
        flagged = {ls: (le, ids) for ls, le, ids in self._prefilter.candidates(data)}
        out: list[tuple[int, int, list[int]]] = []
        pos = 0
        for raw in data.split(b"\n"):
            n = len(raw)
            if n:
                ids = flagged[pos][1] if pos in flagged else []
                out.append((pos, pos + n, sorted(set(ids) | set(self._always))))
            pos += n + 1
        return out

    def _allowed(self, value: bytes) -> bool:
        if value in self._allow_exact:
            return True
        return any(rx.fullmatch(value) for rx in self._allow_regex)

    def _spans(self, line: bytes, ids: Sequence[int]) -> list[_Span]:
        """Confirmed, allow-listed, escape-safe and merged spans of ``line``."""
        found: list[_Span] = []
        lowered: bytes | None = None
        keyword_hits: dict[tuple[bytes, bool], list[int]] = {}
        for idx in ids:
            rule = self.rules[idx]
            if lowered is None and (rule.ci or (rule.keywords and rule.keyword_lower)):
                lowered = line.lower()
            text = lowered if rule.ci and lowered is not None else line
            if rule.keywords:
                starts: set[int] = set()
                where = lowered if rule.keyword_lower and lowered is not None else line
                for kw in rule.keywords:
                    key = (kw, rule.keyword_lower)
                    hits = keyword_hits.get(key)
                    if hits is None:
                        hits = keyword_hits[key] = _find_all(where, kw)
                    starts.update(hits)
                for m in _matches_at(rule.regex, text, starts):
                    self._accept(line, rule, idx, found, m)
            else:
                _search_all(rule.regex, text, functools.partial(self._accept, line, rule, idx, found))
        if len(found) < 2:
            return found
        found.sort(key=lambda t: (t[0], -t[1], t[2]))
        merged = [found[0]]
        for s, e, idx in found[1:]:
            ps, pe, pidx = merged[-1]
            if s < pe:
                merged[-1] = (ps, max(pe, e), min(pidx, idx))
            else:
                merged.append((s, e, idx))
        return merged

    def _accept(self, line: bytes, rule: Rule, idx: int, found: list[_Span], m: re.Match[bytes]) -> bool:
        """Check one candidate match; keep its (escape-safe) span unless rejected or allowed."""
        span = rule.check(line, m)
        if span is None or self._allowed(line[span[0] : span[1]]):
            return False
        s, e = widen_to_escapes(line, *span)
        found.append((s, e, idx))
        return True

    def _replace(self, line: bytes, spans: Sequence[_Span]) -> bytes:
        out: list[bytes] = []
        last = 0
        for s, e, idx in spans:
            out += (line[last:s], marker(self.rules[idx].name))
            last = e
        out.append(line[last:])
        return b"".join(out)

    def _apply(self, line: bytes, spans: Sequence[_Span], counts: dict[str, int]) -> bytes:
        for _, _, idx in spans:
            name = self.rules[idx].name
            counts[name] = counts.get(name, 0) + 1
        new_line = self._replace(line, spans)
        if _is_json(new_line) or not _is_json(line):
            return new_line
        # Only a user rule whose match crosses JSON structure gets here: redact whole tokens.
        log.warning("a redaction crossed JSON structure; replacing whole JSON values instead")
        new_line = _replace_tokens(line, spans, [self.rules[i].name for _, _, i in spans])
        if _is_json(new_line):
            return new_line
        return b'{"redacted":"' + marker(self.rules[spans[0][2]].name) + b'"}'  # pragma: no cover


class LineStream:
    """Redacts one (very long) line given in pieces, holding a few MB whatever its length.

    :meth:`feed` takes the next bytes of the line (never a newline) and returns the redacted
    bytes that are final; :meth:`finish` returns the rest once the line is complete. The
    output is what :meth:`Redactor.redact_chunk` gives for the whole line, for every secret
    shorter than ``STREAM_MAX_WINDOW``: windows overlap by ``STREAM_MARGIN`` (a secret
    straddling a piece or window boundary is seen whole) and a match reaching a window's end
    grows the window. One difference: the fallback for a *user* rule whose match crosses JSON
    structure (``_replace_tokens``) needs the whole line, so it does not apply here.
    """

    def __init__(
        self,
        redactor: Redactor,
        *,
        step: int = STREAM_STEP,
        margin: int = STREAM_MARGIN,
        context: int = STREAM_CONTEXT,
        max_window: int = STREAM_MAX_WINDOW,
    ) -> None:
        self._r = redactor
        self._step, self._margin, self._context, self._max = step, margin, context, max_window
        self._ctx = b""  # source bytes just before ``_buf`` (already emitted)
        self._buf = bytearray()  # source bytes not emitted yet
        self._need = step + margin
        #: Redactions per rule so far.
        self.counts: dict[str, int] = {}

    def feed(self, data: bytes) -> bytes:
        """Add the next bytes of the line; return the redacted bytes that are now final."""
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= self._need:
            piece = self._window(final=False)
            if piece is None:
                break
            out.append(piece)
        return b"".join(out)

    def finish(self) -> bytes:
        """The line is complete: the redacted rest (without a newline)."""
        piece = self._window(final=True)
        assert piece is not None
        return piece

    def _window(self, *, final: bool) -> bytes | None:
        window = self._ctx + bytes(self._buf)
        off = len(self._ctx)
        ids = sorted({i for _, _, found in self._r._candidates(window) for i in found})
        spans = self._r._spans(window, ids) if ids else []
        cut = len(window)
        if not final:
            cut = len(window) - self._margin
            # Never cut inside a JSON escape: a span of the next window may start right there.
            while cut > off and escape_start(window, cut) is not None:
                cut -= 1
        kept: list[_Span] = []
        for s, e, idx in spans:
            if e <= off or s >= cut:
                continue  # decided by the previous window / left for the next one
            if not final and e >= len(window) and len(self._buf) < self._max:
                # The match may go on past the window: look again with more bytes.
                self._need = len(self._buf) + self._step
                return None
            kept.append((max(s, off) - off, e - off, idx))
            cut = max(cut, e)
        segment = window[off:cut]
        for _, _, idx in kept:
            name = self._r.rules[idx].name
            self.counts[name] = self.counts.get(name, 0) + 1
        out = self._r._replace(segment, kept) if kept else segment
        self._ctx = window[max(0, cut - self._context) : cut]
        del self._buf[: cut - off]
        self._need = self._step + self._margin
        return out


_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[^\s{}\[\],:"]+|[\s{}\[\],:]+', re.DOTALL)


def _replace_tokens(line: bytes, spans: Sequence[_Span], names: Sequence[str]) -> bytes:
    """Replace every JSON string or scalar that a span touches by a marker string.

    The grammar stays intact (a value or key is swapped for a string) and bytes outside the
    touched tokens stay as they were.
    """
    out: list[bytes] = []
    k = 0
    for m in _JSON_TOKEN.finditer(line):
        s, e = m.span()
        token = m.group()
        while k < len(spans) and spans[k][1] <= s:
            k += 1
        if k < len(spans) and spans[k][0] < e and token[:1] not in b" \t\r\n{}[],:":
            out.append(b'"' + marker(names[k]) + b'"')
        else:
            out.append(token)
    return b"".join(out)


def _find_all(text: bytes, kw: bytes) -> list[int]:
    out: list[int] = []
    i = text.find(kw)
    while i >= 0:
        out.append(i)
        i = text.find(kw, i + 1)
    return out


def _search_all(regex: re.Pattern[bytes], text: bytes, accept: Callable[[re.Match[bytes]], bool]) -> None:
    """Feed every candidate match to ``accept``.

    Not ``finditer``: a match that ``accept`` rejects must not hide a match that starts inside
    it, so after a rejection the search resumes one byte after its start.
    """
    search, pos = regex.search, 0
    while (m := search(text, pos)) is not None:
        pos = max(m.end(), m.start() + 1) if accept(m) else m.start() + 1


def _matches_at(regex: re.Pattern[bytes], text: bytes, starts: set[int]) -> Iterator[re.Match[bytes]]:
    """Matches of a pattern whose every match starts at a keyword: an anchored match at each
    keyword occurrence (overlaps allowed, so ``token='api_key: …'`` still reaches ``api_key``),
    without a regex scan of the whole line."""
    match = regex.match
    for i in sorted(starts):
        m = match(text, i)
        if m is not None:
            yield m


def own_secrets_collect(environ: Mapping[str, str], home: Path) -> list[tuple[str, str]]:
    return own_secrets_module.collect(environ, home)


def _safe_label(label: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:48] or "value"
    return f"known:{cleaned}"


def _known_rules(values: Sequence[tuple[str, str]]) -> list[Rule]:
    """Exact-value rules: each value as written and JSON-escaped once and twice (with and
    without ``\\uXXXX`` escapes for non-ASCII characters)."""
    rules: list[Rule] = []
    seen: set[bytes] = set()
    for label, value in values:
        forms = []
        for ascii_only in (False, True):
            once = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
            forms += [once, json.dumps(once, ensure_ascii=ascii_only)[1:-1]]
        if forms[0] == value:
            forms.insert(0, value)  # nothing to escape: the value itself can appear raw
        for form in forms:
            raw = form.encode("utf-8", "surrogatepass")
            if raw not in seen:
                seen.add(raw)
                rules.append(known_value_rule(_safe_label(label), raw))
    return rules


def _user_rules(extra_rules: Mapping[str, str]) -> list[Rule]:
    rules: list[Rule] = []
    for name, source in extra_rules.items():
        if not isinstance(name, str) or not _RULE_NAME.match(name):
            raise RedactConfigError(
                f"redaction rule name {name!r} is invalid: use 1-64 letters, digits, '_', '.', ':' or '-'"
            )
        if name in BUILTIN_NAMES or name.startswith("known:"):
            raise RedactConfigError(f"redaction rule {name!r} clashes with a built-in rule name")
        if not isinstance(source, str) or not source:
            raise RedactConfigError(f"redaction rule {name!r}: the regex must be a non-empty string")
        try:
            regex = re.compile(source.encode("utf-8"))
        except re.error as exc:
            raise RedactConfigError(f"redaction rule {name!r}: invalid regex {source!r}: {exc}") from exc
        if regex.fullmatch(b"") is not None:
            raise RedactConfigError(f"redaction rule {name!r}: regex {source!r} matches the empty string")
        rules.append(user_rule(name, regex))
    return rules


def _parse_allowlist(entries: Sequence[str]) -> tuple[frozenset[bytes], list[re.Pattern[bytes]]]:
    exact: set[bytes] = set()
    regexes: list[re.Pattern[bytes]] = []
    for entry in entries:
        if not isinstance(entry, str) or not entry:
            raise RedactConfigError(f"redaction allowlist entry {entry!r} must be a non-empty string")
        if entry.startswith("re:"):
            try:
                regexes.append(re.compile(entry[3:].encode("utf-8")))
            except re.error as exc:
                raise RedactConfigError(f"redaction allowlist regex {entry[3:]!r} is invalid: {exc}") from exc
        else:
            exact.add(entry.encode("utf-8"))
    return frozenset(exact), regexes


def preview_file(path: Path, redactor: Redactor) -> Iterator[Finding]:
    """Findings for a file, read in blocks of whole lines (never the whole file at once)."""
    with open(path, "rb") as fh:
        base = 0
        while True:
            block = fh.read(_PREVIEW_BLOCK)
            if not block:
                return
            if not block.endswith(b"\n"):
                block += fh.readline()  # finish the last line (a huge line is read whole)
            for f in redactor.findings(block):
                yield Finding(f.rule, f.line_no + base, f.start, f.end, f.masked)
            base += block.count(b"\n")
