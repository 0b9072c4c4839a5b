"""Issue 11, cases 9 and 10: an append costs I/O in proportion to the append, and a huge line
costs bounded memory.

Real files, real SQLite, the real redactor and the folder sink; the daemon's passes run
in-process (``Engine.run_pass``) where bytes are counted with ``/proc/self/io``, and in a
subprocess where a process must be killed or its peak RSS measured.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import bucket_dir, write_config
from secretgen import Gen, family_secrets
from traceagent.app.desktop import build_engine
from traceagent.app.wiring import load_context
from traceagent.redact import Redactor
from traceagent.sync.engine import Engine
from traceagent.sync.snapshot import CHUNK, take_snapshot

#: snapshot.LONG_LINE (imported in the tests that need it: it is new with the streaming).
LONG_LINE = 4 << 20

KEY = "claude/-home-me-big/0badc0de-0000-4000-8000-000000000009.jsonl"


def session_path(env: dict[str, str]) -> Path:
    p = Path(env["HOME"]) / ".claude/projects/-home-me-big/0badc0de-0000-4000-8000-000000000009.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def lines(n: int, tag: str, size: int = 1000) -> bytes:
    """``n`` Claude-like records of about ``size`` bytes each."""
    rng = random.Random(tag)
    out = []
    for i in range(n):
        text = " ".join(rng.choice(("alpha", "beta", "gamma", "delta", "omega")) for _ in range(size // 6))
        rec = {
            "type": "user",
            "uuid": f"{tag}-{i}",
            "timestamp": "2026-02-23T11:41:04.709Z",
            "message": {"role": "user", "content": text},
        }
        out.append(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
    return b"".join(out)


def io_counters() -> dict[str, int]:
    """``rchar``/``wchar``: bytes this process passed to read/write system calls."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return {k: int(v) for k, v in fields.items()}


def engine_for(env: dict[str, str], home: Path | None = None) -> Engine:
    write_config(env, "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\n")
    e = dict(env)
    if home is not None:
        e["TRACEAGENT_HOME"] = str(home)
        write_config(e, "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\n")
    engine, _ = build_engine(load_context(e))
    return engine


def full_copy(env: dict[str, str], tmp_path: Path, name: str) -> bytes:
    """What a fresh state and an empty destination get for the session: the reference."""
    home = tmp_path / name
    engine = engine_for(env, home)
    try:
        r = engine.run_pass()
        assert r.uploaded >= 1 and not r.error, r
    finally:
        engine.stop()
    return (home / "data" / "bucket" / KEY).read_bytes()


def secret_line(g: Gen) -> bytes:
    token = next(s.text for s in family_secrets(g) if s.family == "github")
    rec = {"type": "user", "message": {"role": "user", "content": f"use {token} for the push"}}
    return json.dumps(rec).encode() + b"\n"


# -- case 9: appends -------------------------------------------------------------------------


def test_an_append_writes_and_reads_about_the_appended_bytes(env: dict[str, str], tmp_path: Path) -> None:
    src = session_path(env)
    src.write_bytes(lines(24_000, "base"))  # ~24 MB
    engine = engine_for(env)
    try:
        assert engine.run_pass().uploaded == 1
        dest = bucket_dir(env) / KEY
        inode = dest.stat().st_ino
        for i in range(3):
            extra = lines(20, f"append{i}") + secret_line(Gen(i))
            with open(src, "ab") as f:
                f.write(extra)
            before = io_counters()
            r = engine.run_pass()
            after = io_counters()
            assert r.uploaded == 1 and not r.error, r
            written = after["wchar"] - before["wchar"]
            read = after["rchar"] - before["rchar"]
            # The spool file and the destination each get the new lines once; SQLite's WAL
            # and the log add a few pages. The whole file would be 24 MB.
            assert written <= 2 * 2 * len(extra) + 256 * 1024, (written, len(extra))
            assert read <= 2 * len(extra) + 256 * 1024, (read, len(extra))
            assert dest.stat().st_ino == inode  # appended in place, not replaced
        assert dest.stat().st_mtime == src.stat().st_mtime
        got = dest.read_bytes()
    finally:
        engine.stop()
    assert b"[REDACTED:github]" in got
    assert got == full_copy(env, tmp_path, "ref")


def test_a_rewrite_is_still_sent_whole(env: dict[str, str], tmp_path: Path) -> None:
    src = session_path(env)
    body = lines(3000, "base")
    src.write_bytes(body)
    engine = engine_for(env)
    try:
        assert engine.run_pass().uploaded == 1
        dest = bucket_dir(env) / KEY
        inode = dest.stat().st_ino
        # Rewritten in place, longer than before: the first line changed (a Pi migration).
        src.write_bytes(
            b'{"type":"session","version":3}\n' + body[body.index(b"\n") + 1 :] + lines(5, "more")
        )
        assert engine.run_pass().uploaded == 1
        assert dest.stat().st_ino != inode  # a whole atomic copy
        # Rewritten with only the bytes before the old end changed.
        data = bytearray(src.read_bytes())
        n = len(data)
        data[n - 40 : n - 38] = b"XY"
        src.write_bytes(bytes(data) + lines(2, "tail"))
        assert engine.run_pass().uploaded == 1
        got = (bucket_dir(env) / KEY).read_bytes()
    finally:
        engine.stop()
    assert got == full_copy(env, tmp_path, "ref")


@pytest.mark.parametrize("change", ["junk line", "truncated", "deleted", "torn tail"])
def test_a_copy_changed_behind_our_back_is_rewritten_whole(
    env: dict[str, str], tmp_path: Path, change: str
) -> None:
    src = session_path(env)
    src.write_bytes(lines(3000, "base"))
    engine = engine_for(env)
    try:
        assert engine.run_pass().uploaded == 1
        dest = bucket_dir(env) / KEY
        if change == "junk line":
            with open(dest, "ab") as f:
                f.write(b'{"pushed":"by hand"}\n')
        elif change == "truncated":
            os.truncate(dest, dest.stat().st_size // 2)
        elif change == "deleted":
            dest.unlink()
        else:  # what a crash in the middle of an append leaves
            with open(dest, "ab") as f:
                f.write(b'{"type":"user","mess')
        with open(src, "ab") as f:
            f.write(lines(10, "append"))
        r = engine.run_pass()
        assert r.uploaded == 1 and not r.error, r
        got = dest.read_bytes()
    finally:
        engine.stop()
    assert got == full_copy(env, tmp_path, "ref")


def test_the_folder_sink_appends_only_to_the_copy_it_left(tmp_path: Path) -> None:
    from traceagent.sinks.base import ErrorKind, SinkError, UploadItem
    from traceagent.sinks.local import LocalFolderSink

    sink = LocalFolderSink(tmp_path / "dest")
    sink.ensure()
    key = "claude/p/s.jsonl"
    (tmp_path / "dest/claude/p").mkdir(parents=True)
    (tmp_path / "dest" / key).write_bytes(b'{"a":1}\n')
    assert sink.can_append and sink.append_size(key) == 8
    spool = tmp_path / "new.part"
    spool.write_bytes(b'{"b":2}\n')
    with pytest.raises(SinkError) as e:  # the copy is not the 5 bytes we think we left
        sink.upload([UploadItem(spool_path=spool, key=key, size=8, mtime=1e9, append_at=5)])
    assert e.value.kind is ErrorKind.PER_FILE and e.value.failed_keys == (key,)
    assert (tmp_path / "dest" / key).read_bytes() == b'{"a":1}\n'  # untouched
    sink.upload([UploadItem(spool_path=spool, key=key, size=8, mtime=1e9, append_at=8)])
    assert (tmp_path / "dest" / key).read_bytes() == b'{"a":1}\n{"b":2}\n'
    assert (tmp_path / "dest" / key).stat().st_mtime == 1e9 and not spool.exists()


def test_other_redaction_settings_send_the_copy_whole(env: dict[str, str], tmp_path: Path) -> None:
    src = session_path(env)
    src.write_bytes(lines(2000, "base") + secret_line(Gen(1)))
    engine = engine_for(env)
    try:
        assert engine.run_pass().uploaded == 1
    finally:
        engine.stop()
    assert b"[REDACTED:github]" in (bucket_dir(env) / KEY).read_bytes()
    # Redaction switched off: appending raw lines to a redacted copy would mix the two.
    write_config(env, "redact = false\n")
    with open(src, "ab") as f:
        f.write(lines(5, "append"))
    engine, _ = build_engine(load_context(env))
    try:
        assert engine.run_pass().uploaded == 1
    finally:
        engine.stop()
    assert (bucket_dir(env) / KEY).read_bytes() == src.read_bytes()


_TORN_APPEND = """
import os, signal
from traceagent.sinks import local

def torn_append(self, item, target):
    # kill -9 in the middle of the append: half of the new bytes are on disk.
    data = item.spool_path.read_bytes()
    with open(target, "ab") as f:
        f.write(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

local.LocalFolderSink._append = torn_append
"""


def test_kill_9_mid_append_leaves_no_torn_line_after_restart(env: dict[str, str], tmp_path: Path) -> None:
    write_config(env, "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\n")
    src = session_path(env)
    src.write_bytes(lines(3000, "base"))
    sync = [sys.executable, "-m", "traceagent", "sync"]
    r = subprocess.run(sync, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    dest = bucket_dir(env) / KEY
    with open(src, "ab") as f:
        f.write(lines(50, "append"))
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            _TORN_APPEND + "import sys\nfrom traceagent.cli import main\nsys.exit(main(['sync']))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr  # it died inside the append
    assert not dest.read_bytes().endswith(b"\n")  # a torn line is there now
    r = subprocess.run(sync, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    got = dest.read_bytes()
    assert got.endswith(b"\n") and all(json.loads(line) for line in got.splitlines())
    assert got == full_copy(env, tmp_path, "ref")


# -- case 10: long lines ---------------------------------------------------------------------


def planted_line(g: Gen, filler: int, positions: list[int]) -> tuple[bytes, list[str]]:
    """One JSON line of about ``filler`` bytes with secrets starting at ``positions``."""
    # Plain tokens (the whole text is the secret), so the expected output is a replace().
    secrets = [s for s in family_secrets(g) if s.fragments == (s.text,)]
    pad = "lorem ipsum dolor sit amet, "
    parts: list[str] = []
    size = 0
    used: list[str] = []
    for i, at in enumerate(sorted(positions)):
        gap = max(0, at - size)
        parts.append((pad * (gap // len(pad) + 1))[:gap] + " ")
        s = secrets[i % len(secrets)]
        parts.append(s.text + " ")
        used.append(s.text)
        size += gap + len(s.text) + 2
    parts.append((pad * (max(0, filler - size) // len(pad) + 1))[: max(0, filler - size)])
    rec = {"type": "user", "message": {"role": "user", "content": "".join(parts)}}
    return json.dumps(rec, separators=(",", ":")).encode(), used


def test_line_stream_redacts_secrets_across_every_boundary() -> None:
    from traceagent.redact.core import LineStream

    redactor = Redactor.from_settings(own_secrets=False)
    g = Gen(10)
    # Small windows so that every secret straddles a piece or a window boundary somewhere.
    step, margin = 4096, 300
    positions = [k * step - d for k in range(1, 60) for d in (3, 17, 150, 290)][::3]
    line, used = planted_line(g, 60 * step, positions)
    pem = next(s.text for s in family_secrets(Gen(11)) if s.family == "private-key")
    line = line[:-3] + json.dumps(" " + pem).encode()[1:-1] + line[-3:]  # longer than the margin
    expected, expected_counts = redactor.redact_chunk(line + b"\n")
    rng = random.Random(5)
    for _ in range(4):
        stream = LineStream(redactor, step=step, margin=margin, context=64, max_window=1 << 20)
        out, i = [], 0
        while i < len(line):
            n = rng.choice((1, 7, 333, 4096, 5000, 20000))
            out.append(stream.feed(line[i : i + n]))
            i += n
        out.append(stream.finish())
        got = b"".join(out) + b"\n"
        assert got == expected
        assert stream.counts == expected_counts
    for text in used:
        assert text.encode() not in got
    assert b"[REDACTED:private-key]" in got


def test_line_stream_matches_whole_line_redaction_on_random_lines() -> None:
    """Secrets of every family, negatives, escapes at any depth, a user rule and an allowlist,
    cut into random pieces: the stream gives what redacting the whole line gives."""
    from secretgen import CONTEXTS, dumps, negatives
    from traceagent.redact.core import LineStream

    redactor = Redactor.from_settings(
        own_secrets=False, extra_rules={"ticket": r"TICKET-[0-9]{6}"}, allowlist=["re:sk-allowed.*"]
    )
    for seed in range(40):
        g, rng = Gen(seed), random.Random(seed)
        pool = [s.text for s in family_secrets(g)] + negatives(g)
        parts = []
        for _ in range(rng.randint(40, 120)):
            if rng.random() < 0.8:
                parts.append(rng.choice(pool))
            else:
                parts.append("".join(rng.choice('ab \\"\n\t/=:_-') for _ in range(rng.randint(0, 300))))
        context = CONTEXTS[rng.choice(sorted(CONTEXTS))]
        line = dumps(context(rng.choice([" ", "\n", ", ", "\\"]).join(parts)), ascii_only=rng.random() < 0.3)
        line = line[:-1]
        if rng.random() < 0.3:  # printed as JSON once more
            line = json.dumps({"out": line.decode()}).encode()
        expected, counts = redactor.redact_chunk(line + b"\n")
        step, margin = rng.choice([64, 257, 1000]), 4096  # the margin exceeds every secret here
        stream = LineStream(
            redactor, step=step, margin=margin, context=rng.choice([16, 512]), max_window=1 << 20
        )
        out, i = [], 0
        while i < len(line):
            n = rng.choice([1, 17, 500, 3000])
            out.append(stream.feed(line[i : i + n]))
            i += n
        out.append(stream.finish())
        assert b"".join(out) + b"\n" == expected, seed
        assert stream.counts == counts, seed


def test_appends_in_random_pieces_give_the_bytes_of_a_whole_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Snapshot level, with tiny read chunks, long-line threshold and fingerprint windows so
    that every path is taken: torn tails, long lines, appends resumed from the marks."""
    from traceagent.redact.core import LineStream
    from traceagent.sync import snapshot

    monkeypatch.setattr(snapshot, "CHUNK", 97)
    monkeypatch.setattr(snapshot, "LONG_LINE", 300)
    monkeypatch.setattr(snapshot, "MARK_WINDOW", 50)
    redactor = Redactor.from_settings(own_secrets=False)
    monkeypatch.setattr(
        Redactor, "line_stream", lambda self: LineStream(self, step=128, margin=2048, context=64)
    )
    rng = random.Random(9)
    g = Gen(9)
    pool = [s.text for s in family_secrets(g) if "\n" not in s.text]
    src = tmp_path / "s.jsonl"
    data = b""
    remote = b""
    resume: snapshot.Resume | None = None
    for _ in range(60):
        words = [
            rng.choice(pool) if rng.random() < 0.3 else "word" * rng.randint(1, 30)
            for _ in range(rng.randint(1, 40))
        ]
        piece = json.dumps({"t": " ".join(words)}).encode() + b"\n"
        cut = rng.randint(1, len(piece))  # a torn tail now and then, completed later
        data += piece
        src.write_bytes(data[: len(data) - (len(piece) - cut if rng.random() < 0.3 else 0)])
        snap = take_snapshot(src, tmp_path / "spool", transform=redactor, prefix_len=0, resume=resume)
        complete = src.read_bytes()[: snap.size]
        assert complete.endswith(b"\n") or not complete
        if snap.spool_path is not None:
            new = snap.spool_path.read_bytes()
            remote = remote + new if snap.start else new
            snap.discard()
        assert remote == redactor.redact_chunk(complete)[0]
        if snap.size:
            assert resume is None or snap.start == resume.offset  # never re-read from the start
            resume = snapshot.Resume(snap.size, snap.sha256, snap.marks or "")


def test_snapshot_streams_a_long_line_and_keeps_it_while_torn(tmp_path: Path) -> None:
    from traceagent.sync import snapshot

    assert snapshot.LONG_LINE == LONG_LINE
    redactor = Redactor.from_settings(own_secrets=False)
    n = LONG_LINE + 3 * CHUNK
    line, used = planted_line(Gen(3), n, [k * CHUNK - 20 for k in range(1, n // CHUNK)] + [LONG_LINE - 10])
    first = b'{"type":"summary","summary":"before"}\n'
    src = tmp_path / "s.jsonl"
    src.write_bytes(first + line)  # the long line has no newline yet
    snap = take_snapshot(src, tmp_path / "spool", transform=redactor)
    assert snap.size == len(first) and snap.torn_tail == len(line)
    assert snap.spool_path is not None and snap.spool_path.read_bytes() == first
    with open(src, "ab") as f:
        f.write(b"\n" + first)
    fed: list[bytes] = []
    snap = take_snapshot(src, tmp_path / "spool", transform=redactor, feed=fed.append)
    data = src.read_bytes()
    assert snap.size == len(data) and snap.torn_tail == 0
    assert snap.spool_path is not None
    expected, counts = redactor.redact_chunk(data)
    assert snap.spool_path.read_bytes() == expected
    assert snap.redactions == counts and sum(counts.values()) >= len(used)
    assert b"".join(fed) == first + first  # the long line is not read for metadata


# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec.
_PEAK = """
import sys
from traceagent.cli import main
code = main(["sync"])
status = open("/proc/self/status").read()
print("VmHWM", status.split("VmHWM:")[1].split()[0], file=sys.stderr)
sys.exit(code)
"""


def test_a_150_mb_line_is_uploaded_redacted_in_bounded_memory(env: dict[str, str]) -> None:
    write_config(env, "")
    src = session_path(env)
    size = 150 << 20
    positions = [k * CHUNK - 25 for k in range(1, 150, 7)] + [LONG_LINE - 5, size - 300]
    line, used = planted_line(Gen(150), size, positions)
    head = b'{"type":"user","message":{"role":"user","content":"first prompt"}}\n'
    with open(src, "wb") as f:
        f.write(head + line + b"\n")
    r = subprocess.run(
        [sys.executable, "-c", _PEAK], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert r.returncode == 0, r.stderr
    peak_kb = int(r.stderr.rsplit("VmHWM", 1)[1].split()[0])
    got = (bucket_dir(env) / KEY).read_bytes()
    expected = head + line + b"\n"
    for text in used:
        family = next(s.family for s in family_secrets(Gen(150)) if s.text == text)
        expected = expected.replace(text.encode(), f"[REDACTED:{family}]".encode())
    assert len(got) == len(expected) and got == expected
    assert peak_kb <= 100 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"


def test_the_redaction_fingerprint_follows_the_settings_not_their_order(tmp_path: Path) -> None:
    values = {"A_TOKEN": "Zx9qWv3rTy7uIo1p", "B_TOKEN": "Qw8eRt5yUi2oPa4s"}
    one = Redactor.from_settings(environ=values, home=tmp_path)
    other = Redactor.from_settings(environ=dict(reversed(values.items())), home=tmp_path)
    assert one.fingerprint == other.fingerprint
    assert (
        Redactor.from_settings(environ=values, home=tmp_path, allowlist=["x"]).fingerprint != one.fingerprint
    )
    assert Redactor.from_settings(environ={}, home=tmp_path).fingerprint != one.fingerprint


@pytest.fixture
def full_disk(tmp_path: Path) -> Any:
    """A 1 MiB tmpfs (a destination on another disk than the spool, as a NAS is)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_destination_that_fills_up_keeps_whole_lines_and_no_partial_files(
    tmp_path: Path, full_disk: Path
) -> None:
    from traceagent.sinks.base import SinkError, UploadItem
    from traceagent.sinks.local import TMP_DIR, LocalFolderSink

    sink = LocalFolderSink(full_disk / "dest")
    sink.ensure()
    key = "claude/p/s.jsonl"
    start = b'{"a":1}\n' * 1000
    (full_disk / "dest/claude/p").mkdir(parents=True)
    (full_disk / "dest" / key).write_bytes(start)
    big = tmp_path / "append.part"  # more than the disk has left: the write stops part-way
    big.write_bytes(b'{"b":"' + b"x" * 100 + b'"}\n' * 1 + (b'{"c":"' + b"y" * 200 + b'"}\n') * 8000)
    with pytest.raises(SinkError):
        sink.upload(
            [UploadItem(spool_path=big, key=key, size=big.stat().st_size, mtime=1e9, append_at=len(start))]
        )
    assert (full_disk / "dest" / key).read_bytes() == start  # no torn line, nothing lost
    whole = tmp_path / "whole.part"  # a whole copy that cannot fit (copied across disks)
    whole.write_bytes(big.read_bytes())
    for _ in range(3):
        with pytest.raises(SinkError):
            sink.upload([UploadItem(spool_path=whole, key="claude/p/t.jsonl", size=1, mtime=1e9)])
    # A retry must not leave a partial copy behind each time, eating the space freed.
    tmp = full_disk / "dest" / TMP_DIR
    assert (list(tmp.iterdir()) if tmp.exists() else []) == []
    assert not (full_disk / "dest/claude/p/t.jsonl").exists()
