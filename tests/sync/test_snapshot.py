"""Snapshots: only complete lines; binary content and half-written JSON are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from traceagent.sync.snapshot import SnapshotError, take_snapshot


def test_snapshot_keeps_only_complete_lines(tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    src.write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    fed: list[bytes] = []
    snap = take_snapshot(src, tmp_path / "spool", feed=fed.append)
    assert snap.size == 16 and snap.torn_tail == 5
    assert snap.spool_path is not None and snap.spool_path.read_bytes() == b'{"a":1}\n{"b":2}\n'
    assert b"".join(fed) == b'{"a":1}\n{"b":2}\n'
    # Only a torn line: nothing to upload.
    src.write_bytes(b'{"half":')
    assert take_snapshot(src, tmp_path / "spool").spool_path is None
    # Incremental feed starts at a previous size; the prefix hash tells appends from rewrites.
    src.write_bytes(b'{"a":1}\n{"b":2}\n{"c":3}\n')
    fed.clear()
    again = take_snapshot(src, tmp_path / "spool", feed=fed.append, feed_from=16, prefix_len=16)
    assert b"".join(fed) == b'{"c":3}\n'
    assert again.prefix_sha256 == snap.sha256


def test_snapshot_refuses_binary_and_half_written_json(tmp_path: Path) -> None:
    b = tmp_path / "b.jsonl"
    b.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\n")
    with pytest.raises(SnapshotError, match="binary"):
        take_snapshot(b, tmp_path / "spool")
    j = tmp_path / "agent-1.meta.json"
    j.write_text('{"agentType": "Expl')
    with pytest.raises(SnapshotError, match="JSON"):
        take_snapshot(j, tmp_path / "spool", whole_json=True)
    j.write_text('{"agentType": "Explore"}')
    snap = take_snapshot(j, tmp_path / "spool", whole_json=True)
    assert snap.spool_path is not None and snap.spool_path.read_text() == '{"agentType": "Explore"}'
    assert list((tmp_path / "spool").glob("*.part")) == [snap.spool_path]
