"""Escape-aware boundary checks for scanning raw JSONL text.

Rules run on the raw bytes of a JSONL line, so a token that starts a printed line inside a
JSON string follows the two characters ``\\n`` and a plain ``\\b`` is not a boundary there.
These helpers treat JSON escapes (also escaped twice, as in JSON printed by a tool), ``%XX``
URL escapes and ANSI colour codes as separators, and make sure a replaced span never cuts a
JSON escape in half (which would make the line invalid JSON).
"""

from __future__ import annotations

import string

BACKSLASH = 0x5C
_U = ord("u")
HEX = frozenset(string.hexdigits.encode())
ALNUM = frozenset((string.ascii_letters + string.digits).encode())
#: Characters that continue a token: ``sk-`` inside URL-safe base64 must not count as a start.
TOKEN_CHARS = frozenset(ALNUM | set(b"_+-"))
B64URL = frozenset(ALNUM | set(b"_-"))
_ESCAPE_LETTERS = frozenset(b"nrtbf")
_ANSI_PARAMS = frozenset(b"0123456789;")
_ANSI_ESC = (b"\\u001b", b"\\u001B", b"\x1b")


def backslashes_before(line: bytes, pos: int) -> int:
    """Number of consecutive backslashes that end right before ``pos``."""
    n = 0
    while pos - n > 0 and line[pos - n - 1] == BACKSLASH:
        n += 1
    return n


def _unicode_escape_at(line: bytes, q: int) -> bool:
    """True when an escaping backslash at ``q`` starts a complete ``\\uXXXX`` escape."""
    return (
        q + 6 <= len(line)
        and line[q] == BACKSLASH
        and line[q + 1] == _U
        and backslashes_before(line, q) % 2 == 0
        and all(c in HEX for c in line[q + 2 : q + 6])
    )


def escape_start(line: bytes, pos: int) -> int | None:
    """If ``pos`` falls strictly inside a JSON escape sequence, the index of its backslash."""
    if pos <= 0 or pos > len(line):
        return None
    if backslashes_before(line, pos) % 2:
        return pos - 1
    for k in range(2, 6):
        q = pos - k
        if q < 0:
            break
        if line[q] == BACKSLASH and _unicode_escape_at(line, q):
            return q
    return None


def widen_to_escapes(line: bytes, start: int, end: int) -> tuple[int, int]:
    """Grow ``[start, end)`` so that it neither starts nor ends inside a JSON escape."""
    q = escape_start(line, start)
    if q is not None:
        start = q
    q = escape_start(line, end)
    if q is not None:
        end = q + 6 if line[q + 1] == _U else q + 2
    return start, min(end, len(line))


def _after_ansi(line: bytes, pos: int) -> bool:
    """True when ``line[:pos]`` ends with an ANSI CSI sequence such as ``ESC[1;32m``."""
    j = pos - 2
    while j >= 0 and line[j] in _ANSI_PARAMS:
        j -= 1
    return j >= 0 and line[j] == ord("[") and line[:j].endswith(_ANSI_ESC)


def left_ok(line: bytes, start: int, chars: frozenset[int] = TOKEN_CHARS) -> bool:
    """Escape-aware left boundary: ``start`` does not continue a token.

    A token may follow a non-token character, a JSON escape (``\\n``, ``\\t``, ``\\u0027``,
    at any escaping depth), a ``%XX`` URL escape or an ANSI colour code. It may not start on
    an escaped character (``\\npm_…`` is a newline followed by ``pm_…``). ``chars``: the
    characters that would continue the word.
    """
    if start == 0:
        return True
    if backslashes_before(line, start) % 2:
        return False
    c = line[start - 1]
    if c not in chars:
        return True
    if c in _ESCAPE_LETTERS and start >= 2 and line[start - 2] == BACKSLASH:
        return True
    if (
        start >= 6
        and line[start - 6] == BACKSLASH
        and line[start - 5] == _U
        and all(x in HEX for x in line[start - 4 : start])
    ):
        return True
    if start >= 3 and line[start - 3] == ord("%") and c in HEX and line[start - 2] in HEX:
        return True
    return c in ALNUM and _after_ansi(line, start)


def word_start(line: bytes, pos: int, chars: frozenset[int]) -> int:
    """Walk back from ``pos`` over ``chars`` to the start of a key name, minus any escape.

    ``\\napiKey`` gives ``apiKey`` (not ``napiKey``), ``\\u0027TOKEN`` gives ``TOKEN``, and
    neither ``%3D`` nor an ANSI colour code (``ESC[32m``) before the name is part of it.
    """
    start = pos
    while start > 0 and line[start - 1] in chars:
        start -= 1
    if start in (pos, 0):
        return start
    before = line[start - 1]
    if before == BACKSLASH:
        # An escape letter (``\n``) or ``\uXXXX`` at any escaping depth.
        skip = 5 if line[start] == _U and all(c in HEX for c in line[start + 1 : start + 5]) else 1
        return min(start + skip, pos)
    if before == ord("%") and all(c in HEX for c in line[start : start + 2]):
        return min(start + 2, pos)
    if before in (ord("["), ord(";")):
        end = start
        while end < pos and line[end] in _ANSI_PARAMS:
            end += 1
        if end < pos and line[end] == ord("m") and _after_ansi(line, end + 1):
            return end + 1
    return start


def right_ok(line: bytes, end: int, body: frozenset[int]) -> bool:
    """The character at ``end`` (if any) is not one that would continue the token."""
    return end >= len(line) or line[end] not in body
