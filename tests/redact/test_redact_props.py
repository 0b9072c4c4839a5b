"""Property tests: valid JSON stays valid, planted secrets never survive, redaction is idempotent."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from secretgen import Gen, escaped_forms, family_secrets
from traceagent.redact import Redactor

# Secrets whose detection does not depend on the words around them (tokens, PEM, URLs).
_POOL = [
    s
    for s in family_secrets(Gen(99))
    if s.family not in ("env-secret", "keyed-secret", "aws-secret-access-key", "auth-header")
]
_SEPS = [" ", "\n", "\t", ",", '"', "'", "(", ")", "=", ":", "/", "\\", "\r\n", "`", "|", "\x1b[0m "]

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def redactor() -> Redactor:
    return Redactor.from_settings(own_secrets=False)


@st.composite
def planted_text(draw: st.DrawFn) -> tuple[str, tuple[str, ...]]:
    """Random text with 0-2 secrets, each between separators; returns (text, fragments)."""
    pieces: list[str] = []
    frags: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        pieces.append(draw(st.text(max_size=30)))
        if draw(st.booleans()):
            secret = draw(st.sampled_from(_POOL))
            pieces += [draw(st.sampled_from(_SEPS)), secret.text, draw(st.sampled_from(_SEPS))]
            frags += secret.fragments
    return "".join(pieces), tuple(frags)


_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), planted_text())


def _tree(leaf: Any) -> Any:
    return st.recursive(
        leaf,
        lambda kids: st.one_of(
            st.lists(kids, max_size=4),
            st.dictionaries(planted_text(), kids, max_size=4),
        ),
        max_leaves=12,
    )


def _materialise(node: Any, frags: list[str]) -> Any:
    """Turn (text, fragments) pairs into plain strings, collecting the fragments."""
    if isinstance(node, tuple):
        frags += node[1]
        return node[0]
    if isinstance(node, list):
        return [_materialise(v, frags) for v in node]
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out[_materialise(k, frags)] = _materialise(v, frags)
        return out
    return node


@SETTINGS
@given(_tree(_LEAF), st.booleans(), st.booleans())
def test_json_stays_valid_and_secrets_are_gone(tree: Any, ascii_only: bool, compact: bool) -> None:
    frags: list[str] = []
    doc = _materialise(tree, frags)
    seps = (",", ":") if compact else (", ", ": ")
    line = json.dumps(doc, ensure_ascii=ascii_only, separators=seps).encode() + b"\n"
    out, counts = redactor().redact_chunk(line)
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    json.loads(out)  # still valid JSON
    for frag in frags:
        for form in escaped_forms(frag):
            assert form.encode() not in out
    if frags:
        assert counts
    if not counts:
        assert out == line
    again, counts2 = redactor().redact_chunk(out)
    assert again == out and counts2 == {}  # idempotent


@SETTINGS
@given(st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b" ")), min_size=1, max_size=8))
def test_any_bytes_keep_their_line_count(lines: list[bytes]) -> None:
    data = b"\n".join(lines) + b"\n"
    out, counts = redactor().redact_chunk(data)
    out_lines = out.split(b"\n")
    assert len(out_lines) == len(data.split(b"\n"))
    if not counts:
        assert out == data
    for before, after in zip(data.split(b"\n"), out_lines, strict=True):
        if b"[REDACTED:" not in after:
            assert before == after


@SETTINGS
@given(st.lists(planted_text(), min_size=1, max_size=6))
def test_untouched_lines_are_byte_identical(texts: list[tuple[str, tuple[str, ...]]]) -> None:
    lines = [json.dumps({"text": t}).encode() + b"\n" for t, _ in texts]
    out, _ = redactor().redact_chunk(b"".join(lines))
    out_lines = out.splitlines(keepends=True)
    assert len(out_lines) == len(lines)
    for (_, frags), before, after in zip(texts, lines, out_lines, strict=True):
        if not frags and b"[REDACTED:" not in after:
            assert before == after
        json.loads(after)


@SETTINGS
@given(planted_text(), planted_text())
def test_chunking_does_not_change_the_result(
    a: tuple[str, tuple[str, ...]], b: tuple[str, tuple[str, ...]]
) -> None:
    lines = [json.dumps({"t": a[0]}).encode() + b"\n", json.dumps({"t": b[0]}).encode() + b"\n"]
    whole, counts = redactor().redact_chunk(b"".join(lines))
    parts = [redactor().redact_chunk(ln) for ln in lines]
    assume(lines[0] != lines[1])
    assert whole == b"".join(p[0] for p in parts)
    assert sum(counts.values()) == sum(sum(p[1].values()) for p in parts)
