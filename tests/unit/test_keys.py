"""The remote key rules (the bucket's object-key rules)."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from traceagent.sinks.keys import InvalidKeyError, check_key, make_key


@pytest.mark.parametrize("key", ["/a", "a/", "a//b", "a/../b", "..", "./a", "a\\b", "a\x00b", ""])
def test_bad_keys_rejected(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        check_key(key)


def test_keys_are_posix() -> None:
    assert make_key("claude", PurePosixPath("-p/x y/é.jsonl")) == "claude/-p/x y/é.jsonl"
    assert (
        make_key("codex", PurePosixPath("2026/01/01/r.jsonl"), prefix="/traces/")
        == "traces/codex/2026/01/01/r.jsonl"
    )
