"""The REAL huggingface_hub + hf_xet client against tests/support/fakehub.py on 127.0.0.1 (no network).

hf_xet writes into a ``local://`` CAS in tmp_path, so chunking, dedup, the ndjson /batch
payload, http_backoff and the exception types are all the library's own.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from hfsupport import CORPUS, READ_TOKEN, TOKEN, FakeHub, corpus_items, fake_hub, isolated_env, make_item
from traceagent.hub.sink import HfSink
from traceagent.sinks.base import ErrorKind, SinkError, UploadItem

__all__ = ["fake_hub", "isolated_env"]  # fixtures used by the tests below

BUCKET = "alice/agent-sessions"
URI = f"hf://buckets/{BUCKET}/laptop"
pytestmark = pytest.mark.usefixtures("isolated_env")


def sink_for(hub: FakeHub, *, token: str = TOKEN, uri: str = URI, **kw: object) -> HfSink:
    return HfSink(uri, token=token, endpoint=hub.endpoint, **kw)  # type: ignore[arg-type]


def sync_until_done(sink: HfSink, items: Sequence[UploadItem], rounds: int = 8) -> list[SinkError]:
    """What the engine does: retry TRANSIENT failures (only the failed keys) until all landed."""
    pending = list(items)
    errors: list[SinkError] = []
    for _ in range(rounds):
        try:
            sink.upload(pending)
            return errors
        except SinkError as e:
            errors.append(e)
            assert e.kind is ErrorKind.TRANSIENT, e.message
            failed = set(e.failed_keys)
            assert failed, "a transient failure must name the keys that did not land"
            pending = [it for it in pending if it.key in failed]
            time.sleep(min(e.retry_after or 0.0, 0.2))
    raise AssertionError(f"still failing after {rounds} rounds: {[e.message for e in errors]}")


def assert_landed(hub: FakeHub, items: Sequence[UploadItem], prefix: str = "laptop") -> None:
    stored = hub.files(BUCKET)
    for it in items:
        key = f"{prefix}/{it.key}" if prefix else it.key
        assert key in stored, f"{key} missing from the bucket"
        assert hub.read_file(BUCKET, key) == it.spool_path.read_bytes(), f"{key} differs"
        assert stored[key].mtime_ms == int(it.mtime * 1000), f"{key} has the wrong mtime"


# --------------------------------------------------------------------------- full sync
def test_corpus_lands_at_its_keys_byte_for_byte(fake_hub: FakeHub, tmp_path: Path) -> None:
    items = corpus_items(tmp_path / "spool")
    assert any(it.key == "SOURCES.md" for it in items)
    sink = sink_for(fake_hub)
    sink.ensure()
    sink.upload(items)
    stored = fake_hub.files(BUCKET)
    assert set(stored) == {f"laptop/{it.key}" for it in items}
    assert fake_hub.buckets[BUCKET].private
    for it in items:  # byte for byte against the corpus itself, and with its mtime
        source = CORPUS / it.key
        assert fake_hub.read_file(BUCKET, f"laptop/{it.key}") == source.read_bytes()
        assert stored[f"laptop/{it.key}"].mtime_ms == int(source.stat().st_mtime * 1000)
    # one batch for the whole corpus: one Xet token + one /batch call
    assert fake_hub.count(r"POST /api/buckets/alice/agent-sessions/batch -> 200") == 1
    # the real client lists what hf sync would compare: same sizes and mtimes
    from huggingface_hub import HfApi

    api = HfApi(endpoint=fake_hub.endpoint, token=TOKEN)
    listed = {f.path: f for f in api.list_bucket_tree(BUCKET, prefix="laptop", recursive=True)}
    for it in items:
        remote = listed[f"laptop/{it.key}"]
        assert remote.size == (CORPUS / it.key).stat().st_size  # type: ignore[union-attr]
    # and the viewer link of a trace points into the same bucket path
    key = items[0].key
    assert sink.url_for(key).startswith(f"{fake_hub.endpoint}/buckets/{BUCKET}/tree/laptop/")


def test_bucket_is_created_private_without_a_prefix(fake_hub: FakeHub, tmp_path: Path) -> None:
    sink = sink_for(fake_hub, uri=f"hf://buckets/{BUCKET}")
    item = make_item(tmp_path / "spool", "codex/s.jsonl", b'{"a":1}\n')
    sink.upload([item])  # ensure() happens on first use
    assert fake_hub.buckets[BUCKET].private
    assert_landed(fake_hub, [item], prefix="")


# --------------------------------------------------------------------------- Xet dedup on append
def _big_session(size: int) -> bytes:
    """A realistic JSONL of about ``size`` bytes: corpus sessions, with a counter so that
    no two lines repeat (dedup must come from the previous upload, not from repetition)."""
    lines = [
        line for p in sorted(CORPUS.rglob("*.jsonl")) for line in p.read_bytes().splitlines() if line.strip()
    ]
    out, n = bytearray(), 0
    while len(out) < size:
        for line in lines:
            out += b'{"seq": %d, "entry": %s}\n' % (n, line)
            n += 1
            if len(out) >= size:
                break
    return bytes(out)


def test_append_reupload_sends_only_the_new_chunks(fake_hub: FakeHub, tmp_path: Path) -> None:
    data = _big_session(3_000_000)
    sink = sink_for(fake_hub)
    sink.ensure()
    spool = tmp_path / "spool"

    before = fake_hub.cas_stored_bytes()
    api_before = fake_hub.api_bytes_received
    first = make_item(spool, "pi/big.jsonl", data, mtime=1_700_000_000.0)
    sink.upload([first])
    first_sent = fake_hub.cas_stored_bytes() - before

    appended = data + _big_session(40_000).replace(b'"seq": ', b'"seq2": ')
    append_len = len(appended) - len(data)
    middle = fake_hub.cas_stored_bytes()
    api_middle = fake_hub.api_bytes_received
    second = make_item(spool, "pi/big.jsonl", appended, mtime=1_700_000_100.0)
    sink.upload([second])
    append_sent = fake_hub.cas_stored_bytes() - middle
    api_append = fake_hub.api_bytes_received - api_middle

    assert_landed(fake_hub, [second])
    report = {
        "file_bytes": len(appended),
        "append_bytes": append_len,
        "first_upload_cas_bytes": first_sent,
        "append_upload_cas_bytes": append_sent,
        "append_upload_hub_api_bytes": api_append,
        "first_upload_hub_api_bytes": api_middle - api_before,
    }
    print("XET-DEDUP " + json.dumps(report))
    logging.getLogger(__name__).info("xet dedup: %s", report)
    assert first_sent > len(data) // 4  # the first upload really stored the file (compressed)
    assert append_sent < len(appended) // 10, report  # far smaller than the file
    assert append_sent < append_len + 256 * 1024, report  # about the append plus one re-cut chunk
    assert api_append < 4096, report  # the Hub API only sees a token request and a small /batch


# --------------------------------------------------------------------------- injected failures
def test_injected_429_500_and_dropped_connections_end_with_everything_uploaded(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    items = corpus_items(tmp_path / "spool")
    sink = sink_for(fake_hub)
    # no retry inside huggingface_hub for create/info: the sink says TRANSIENT, the loop retries
    fake_hub.fail_next(r"^POST /api/buckets/alice/agent-sessions$", 500)
    fake_hub.fail_next(r"^GET /api/buckets/alice/agent-sessions$", 429, {"Retry-After": "1"})
    # retried by hf_xet itself
    fake_hub.fail_next(r"xet-write-token$", 503)
    # retried by http_backoff (1 s each)
    fake_hub.fail_next(r"/batch$", 429, {"Retry-After": "1"})
    fake_hub.fail_next(r"/batch$", 0)  # connection dropped without an answer
    errors = sync_until_done(sink, items)
    assert_landed(fake_hub, items)
    assert [e.kind for e in errors] == [ErrorKind.TRANSIENT, ErrorKind.TRANSIENT]
    assert errors[1].retry_after == 1.0
    for pattern in (r"^POST /api/buckets/alice/agent-sessions -> 500", r"-> 429", r"xet-write-token -> 503"):
        assert fake_hub.count(pattern) >= 1, pattern
    assert fake_hub.count(r"/batch -> dropped") == 1


@pytest.fixture
def short_http_timeout() -> Iterator[None]:
    """huggingface_hub's shared client rebuilt with a 0.5 s read timeout (then restored)."""
    import huggingface_hub

    from traceagent.hub import api as hf_mod

    hf_mod.install_http_timeouts()
    previous = hf_mod.HTTP_TIMEOUT
    hf_mod.HTTP_TIMEOUT = (2.0, 0.5)
    huggingface_hub.close_session()
    try:
        yield
    finally:
        hf_mod.HTTP_TIMEOUT = previous
        huggingface_hub.close_session()


@pytest.mark.usefixtures("short_http_timeout")
def test_stalled_requests_time_out_and_are_retried(fake_hub: FakeHub, tmp_path: Path) -> None:
    items = [make_item(tmp_path / "spool", f"claude/{i}.jsonl", b'{"n": %d}\n' % i) for i in range(3)]
    sink = sink_for(fake_hub)
    fake_hub.stall_next(r"^GET /api/buckets/alice/agent-sessions$", 2.0)  # bucket_info: no retry inside
    fake_hub.stall_next(r"/batch$", 2.0)  # /batch: http_backoff retries the timeout
    errors = sync_until_done(sink, items)
    assert len(errors) == 1 and "ReadTimeout" in errors[0].message
    assert_landed(fake_hub, items)
    assert fake_hub.count(r"-> stalled") == 2


def test_batch_failing_for_good_is_transient_then_uploads(fake_hub: FakeHub, tmp_path: Path) -> None:
    items = [make_item(tmp_path / "spool", f"claude/{i}.jsonl", b'{"n": %d}\n' % i) for i in range(3)]
    sink = sink_for(fake_hub)
    sink.ensure()
    fake_hub.fail_next(r"xet-write-token$", 500, times=50)  # hf_xet gives up (2 short retries here)
    with pytest.raises(SinkError) as e:
        sink.upload(items)
    assert e.value.kind is ErrorKind.TRANSIENT
    assert set(e.value.failed_keys) == {it.key for it in items}
    assert not fake_hub.files(BUCKET)
    fake_hub.clear_failures()
    sink.upload(items)
    assert_landed(fake_hub, items)


def test_rate_limit_on_a_call_without_retry_keeps_retry_after(fake_hub: FakeHub) -> None:
    fake_hub.fail_next(r"^GET /api/buckets/alice/agent-sessions$", 429, {"Retry-After": "42"})
    with pytest.raises(SinkError) as e:
        sink_for(fake_hub).ensure()
    assert e.value.kind is ErrorKind.TRANSIENT
    assert e.value.retry_after == 42.0


def test_hub_unreachable_is_transient(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = HfSink(URI, token=TOKEN, endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(SinkError) as e:
        sink.ensure()
    assert e.value.kind is ErrorKind.TRANSIENT
    assert "Could not reach Hugging Face" in e.value.message


def test_server_side_bad_key_is_per_file_and_the_others_land(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.reject_paths(r"forbidden-name")
    spool = tmp_path / "spool"
    good = [make_item(spool, f"claude/ok{i}.jsonl", b"{}\n") for i in range(2)]
    bad = make_item(spool, "claude/forbidden-name.jsonl", b"{}\n")
    with pytest.raises(SinkError) as e:
        sink_for(fake_hub).upload([*good, bad])
    assert e.value.kind is ErrorKind.PER_FILE
    assert e.value.failed_keys == (bad.key,)
    assert_landed(fake_hub, good)
    assert f"laptop/{bad.key}" not in fake_hub.files(BUCKET)


# --------------------------------------------------------------------------- auth
def test_revoked_token_is_auth_and_nothing_is_lost(
    fake_hub: FakeHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    items = corpus_items(tmp_path / "spool")
    old = "hf_oldTokenThatWillBeRevoked0123456789"
    fake_hub.add_token(old)
    sink = sink_for(fake_hub, token=old)
    sink.ensure()
    fake_hub.revoke(old)
    with pytest.raises(SinkError) as e:
        sink.upload(items)
    assert e.value.kind is ErrorKind.AUTH
    assert e.value.message.startswith("Hugging Face rejected the token (401)")
    assert set(e.value.failed_keys) == {it.key for it in items}
    assert fake_hub.files(BUCKET) == {}
    assert old not in e.value.message and old not in caplog.text
    # the user signs in again: a new sink with the new token uploads everything
    sink_for(fake_hub, token=TOKEN).upload(items)
    assert_landed(fake_hub, items)


def test_bad_token_at_ensure_is_auth(fake_hub: FakeHub) -> None:
    with pytest.raises(SinkError) as e:
        sink_for(fake_hub, token="hf_wrongToken000000000000000000").ensure()
    assert e.value.kind is ErrorKind.AUTH
    assert "hf_wrongToken" not in e.value.message


def test_read_only_token_is_auth(fake_hub: FakeHub, tmp_path: Path) -> None:
    sink_for(fake_hub).ensure()  # the owner created it
    with pytest.raises(SinkError) as e:
        sink_for(fake_hub, token=READ_TOKEN).upload([make_item(tmp_path / "spool", "a.jsonl", b"{}\n")])
    assert e.value.kind is ErrorKind.AUTH
    assert "403" in e.value.message


# --------------------------------------------------------------------------- privacy, vanishing
def test_public_bucket_refused_then_allowed(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.create_bucket(BUCKET, private=False)
    item = make_item(tmp_path / "spool", "claude/s.jsonl", b'{"secret": "prompt"}\n')
    with pytest.raises(SinkError) as e:
        sink_for(fake_hub).upload([item])
    assert e.value.kind is ErrorKind.FATAL
    assert "public" in e.value.message
    assert fake_hub.files(BUCKET) == {}
    assert not fake_hub.buckets[BUCKET].private  # we never flip it behind the user's back
    sink_for(fake_hub, allow_public=True).upload([item])
    assert_landed(fake_hub, [item])


def test_make_private_then_uploads(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.create_bucket(BUCKET, private=False)
    sink = sink_for(fake_hub)
    with pytest.raises(SinkError):
        sink.ensure()
    sink.make_private()
    assert fake_hub.buckets[BUCKET].private
    item = make_item(tmp_path / "spool", "a.jsonl", b"1\n")
    sink.upload([item])
    assert_landed(fake_hub, [item])


def test_vanished_bucket_is_recreated_private(fake_hub: FakeHub, tmp_path: Path) -> None:
    sink = sink_for(fake_hub)
    first = make_item(tmp_path / "spool", "a.jsonl", b"1\n")
    sink.upload([first])
    fake_hub.delete_bucket(BUCKET)  # deleted on the website while the daemon runs
    second = make_item(tmp_path / "spool", "b.jsonl", b"2\n")
    sink.upload([second])
    assert fake_hub.buckets[BUCKET].private
    assert_landed(fake_hub, [second])
    assert fake_hub.count(r"xet-write-token -> 404") == 1


def test_no_token_leaks_into_files(fake_hub: FakeHub, tmp_path: Path) -> None:
    secret = "hf_leakCheckToken0123456789abcdefgh"
    fake_hub.add_token(secret)
    sink = sink_for(fake_hub, token=secret)
    sink.upload(corpus_items(tmp_path / "spool"))
    fake_hub.revoke(secret)
    with pytest.raises(SinkError):
        sink.upload([make_item(tmp_path / "spool", "x.jsonl", b"x\n")])
    needle = secret.encode()
    for root in (tmp_path, Path(os.environ["HF_XET_CACHE"])):
        for p in root.rglob("*"):
            if p.is_file():
                assert needle not in p.read_bytes(), f"token found in {p}"
