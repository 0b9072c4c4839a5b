"""HfSink against an ``HfApi`` fake built with ``create_autospec`` (the real signatures),
reproducing the service's errors: the ErrorKind mapping, table-driven."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import httpx2
import pytest
from huggingface_hub import BucketInfo, HfApi
from huggingface_hub.errors import BucketBatchError, HfHubHTTPError
from huggingface_hub.utils import hf_raise_for_status

from hfsupport import make_item
from traceagent.hub import sink as hf_mod
from traceagent.hub.api import classify_error, key_problem, parse_bucket_uri
from traceagent.hub.sink import HfSink
from traceagent.sinks.base import ErrorKind, SinkError, UploadItem

SECRET = "hf_unitSecretToken0123456789abcdefXYZ"
BUCKET = "alice/agent-sessions"
URI = f"hf://buckets/{BUCKET}/laptop"


# --------------------------------------------------------------------------- error factories
def http_error(status: int, *, route: str = "batch", headers: dict[str, str] | None = None) -> HfHubHTTPError:
    """The exception huggingface_hub itself raises for this answer (via hf_raise_for_status)."""
    url = f"https://huggingface.co/api/buckets/{BUCKET}" + (f"/{route}" if route else "")
    response = httpx2.Response(
        status, request=httpx2.Request("POST", url), headers=headers or {}, json={"error": f"status {status}"}
    )
    try:
        hf_raise_for_status(response)
    except HfHubHTTPError as e:
        return e
    raise AssertionError(f"hf_raise_for_status did not raise for {status}")


def bucket_not_found() -> HfHubHTTPError:
    return http_error(404, route="", headers={"X-Error-Code": "RepoNotFound"})


def batch_error(failures: list[dict[str, str]]) -> BucketBatchError:
    response = httpx2.Response(
        200,
        request=httpx2.Request("POST", "https://huggingface.co/api/buckets/x/batch"),
        json={"failed": failures},
    )
    e = BucketBatchError(f"Failed to apply {len(failures)} operation(s)", response=response)
    e.failures = failures
    return e


def xet_error(code: str) -> ConnectionError:
    """What hf_xet raises when its token route answers ``code`` (e.g. '401 Unauthorized')."""
    kind = "Server error" if code.startswith("5") else "Network error"
    level = "server" if code.startswith("5") else "client"
    return ConnectionError(
        f"{kind}: Request error: HTTP status {level} error ({code}), "
        f"domain: https://huggingface.co/api/buckets/{BUCKET}/xet-write-token"
    )


def xet_auth_error() -> BaseException:
    import hf_xet

    return hf_xet.XetAuthenticationError("token refresh failed")


def info(private: bool = True) -> BucketInfo:
    return BucketInfo(id=BUCKET, private=private, createdAt="2026-01-01T00:00:00Z", size=0, totalFiles=0)


_API = mock.create_autospec(HfApi, instance=True)  # autospeccing HfApi takes ~0.1 s: do it once


def fake_api() -> Any:
    """The autospec'd HfApi, reset (calls, side effects, return values) for a new test."""
    _API.reset_mock(return_value=True, side_effect=True)
    _API.bucket_info.return_value = info(True)
    return _API


def items(tmp_path: Path, n: int = 3) -> list[UploadItem]:
    return [make_item(tmp_path / "spool", f"claude/p/s{i}.jsonl", b'{"i": %d}\n' % i) for i in range(n)]


# --------------------------------------------------------------------------- the autospec contract
def test_autospec_rejects_calls_the_real_api_would_reject() -> None:
    api = fake_api()
    with pytest.raises(TypeError):
        api.batch_bucket_files(BUCKET, [("a", "b")])  # add is keyword-only
    with pytest.raises(TypeError):
        api.batch_bucket_files(BUCKET, add=[], mtime=1)  # no such parameter


def test_upload_calls_the_real_signature(tmp_path: Path) -> None:
    api = fake_api()
    sink = HfSink(URI, token=SECRET, api=api)
    batch = items(tmp_path)
    sink.upload(batch)
    api.create_bucket.assert_called_once_with(BUCKET, private=True, exist_ok=True)
    api.bucket_info.assert_called_once_with(BUCKET)
    api.batch_bucket_files.assert_called_once()
    args, kwargs = api.batch_bucket_files.call_args
    assert args == (BUCKET,)
    assert kwargs["add"] == [(str(it.spool_path), f"laptop/{it.key}") for it in batch]
    for it in batch:  # the spool file carries the source's mtime, as hf sync would send it
        assert os.stat(it.spool_path).st_mtime == pytest.approx(it.mtime, abs=1e-6)


# --------------------------------------------------------------------------- error mapping
UPLOAD_CASES: list[tuple[str, Callable[[], BaseException], ErrorKind, float | None]] = [
    ("401", lambda: http_error(401), ErrorKind.AUTH, None),
    ("403", lambda: http_error(403), ErrorKind.AUTH, None),
    ("409", lambda: http_error(409), ErrorKind.TRANSIENT, None),
    ("429 Retry-After", lambda: http_error(429, headers={"Retry-After": "7"}), ErrorKind.TRANSIENT, 7.0),
    (
        "429 RateLimit",
        lambda: http_error(429, headers={"RateLimit": '"api";r=0;t=55', "Retry-After": "3"}),
        ErrorKind.TRANSIENT,
        55.0,
    ),
    ("429 bare", lambda: http_error(429), ErrorKind.TRANSIENT, None),
    ("500", lambda: http_error(500), ErrorKind.TRANSIENT, None),
    ("502", lambda: http_error(502), ErrorKind.TRANSIENT, None),
    ("503 Retry-After", lambda: http_error(503, headers={"Retry-After": "2"}), ErrorKind.TRANSIENT, 2.0),
    ("408", lambda: http_error(408), ErrorKind.TRANSIENT, None),
    ("400", lambda: http_error(400), ErrorKind.PER_FILE, None),
    ("413", lambda: http_error(413), ErrorKind.PER_FILE, None),
    ("xet 401", lambda: xet_error("401 Unauthorized"), ErrorKind.AUTH, None),
    ("xet 403", lambda: xet_error("403 Forbidden"), ErrorKind.AUTH, None),
    ("xet auth", xet_auth_error, ErrorKind.AUTH, None),
    ("xet 429", lambda: xet_error("429 Too Many Requests"), ErrorKind.TRANSIENT, None),
    ("xet 500", lambda: xet_error("500 Internal Server Error"), ErrorKind.TRANSIENT, None),
    ("xet network", lambda: ConnectionError("Network error: connection refused"), ErrorKind.TRANSIENT, None),
    ("connect", lambda: httpx2.ConnectError("[Errno 111] Connection refused"), ErrorKind.TRANSIENT, None),
    ("timeout", lambda: httpx2.ReadTimeout("timed out"), ErrorKind.TRANSIENT, None),
    ("protocol", lambda: httpx2.RemoteProtocolError("peer closed"), ErrorKind.TRANSIENT, None),
    ("runtime", lambda: RuntimeError("xet runtime failure"), ErrorKind.TRANSIENT, None),
]


@pytest.mark.parametrize(
    ("exc_factory", "kind", "retry_after"),
    [pytest.param(f, k, r, id=name) for name, f, k, r in UPLOAD_CASES],
)
def test_upload_error_mapping(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    exc_factory: Callable[[], BaseException],
    kind: ErrorKind,
    retry_after: float | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    api = fake_api()
    api.batch_bucket_files.side_effect = exc_factory()
    sink = HfSink(URI, token=SECRET, api=api)
    batch = items(tmp_path)
    with pytest.raises(SinkError) as info_:
        sink.upload(batch)
    err = info_.value
    assert err.kind is kind, err.message
    assert err.retry_after == retry_after
    assert set(err.failed_keys) == {it.key for it in batch}  # nothing landed: every key failed
    assert api.batch_bucket_files.call_count == 1  # no silent retry loop in the sink
    assert SECRET not in err.message and SECRET not in str(err) and SECRET not in caplog.text
    if kind is ErrorKind.AUTH and "401" in exc_factory().__str__():
        assert err.message.startswith("Hugging Face rejected the token (401)")


ENSURE_CASES: list[tuple[str, str, Callable[[], BaseException], ErrorKind, float | None]] = [
    ("create 401", "create_bucket", lambda: http_error(401, route=""), ErrorKind.AUTH, None),
    ("create 403", "create_bucket", lambda: http_error(403, route=""), ErrorKind.AUTH, None),
    ("create 409", "create_bucket", lambda: http_error(409, route=""), ErrorKind.TRANSIENT, None),
    (
        "create 429",
        "create_bucket",
        lambda: http_error(429, route="", headers={"Retry-After": "30"}),
        ErrorKind.TRANSIENT,
        30.0,
    ),
    ("create 500", "create_bucket", lambda: http_error(500, route=""), ErrorKind.TRANSIENT, None),
    ("create 400", "create_bucket", lambda: http_error(400, route=""), ErrorKind.FATAL, None),
    ("info 404", "bucket_info", bucket_not_found, ErrorKind.FATAL, None),
    ("info 503", "bucket_info", lambda: http_error(503, route=""), ErrorKind.TRANSIENT, None),
    ("info down", "bucket_info", lambda: httpx2.ConnectError("refused"), ErrorKind.TRANSIENT, None),
    ("info timeout", "bucket_info", lambda: httpx2.ConnectTimeout("slow"), ErrorKind.TRANSIENT, None),
]


@pytest.mark.parametrize(
    ("method", "exc_factory", "kind", "retry_after"),
    [pytest.param(m, f, k, r, id=name) for name, m, f, k, r in ENSURE_CASES],
)
def test_ensure_error_mapping(
    method: str, exc_factory: Callable[[], BaseException], kind: ErrorKind, retry_after: float | None
) -> None:
    api = fake_api()
    getattr(api, method).side_effect = exc_factory()
    sink = HfSink(URI, token=SECRET, api=api)
    with pytest.raises(SinkError) as info_:
        sink.ensure()
    assert info_.value.kind is kind, info_.value.message
    assert info_.value.retry_after == retry_after
    assert SECRET not in info_.value.message


def test_ensure_refuses_a_public_bucket_unless_allowed() -> None:
    api = fake_api()
    api.bucket_info.return_value = info(private=False)
    with pytest.raises(SinkError) as e:
        HfSink(URI, token=SECRET, api=api).ensure()
    assert e.value.kind is ErrorKind.FATAL
    assert "public" in e.value.message and "allow_public" in e.value.message
    HfSink(URI, token=SECRET, api=api, allow_public=True).ensure()  # no error


def test_public_bucket_refused_before_any_upload(tmp_path: Path) -> None:
    api = fake_api()
    api.bucket_info.return_value = info(private=False)
    with pytest.raises(SinkError) as e:
        HfSink(URI, token=SECRET, api=api).upload(items(tmp_path))
    assert e.value.kind is ErrorKind.FATAL
    api.batch_bucket_files.assert_not_called()


def test_privacy_is_rechecked_after_a_while(tmp_path: Path) -> None:
    api = fake_api()
    sink = HfSink(URI, token=SECRET, api=api, privacy_recheck_s=0.0)
    sink.upload(items(tmp_path, 1))
    api.bucket_info.return_value = info(private=False)  # someone made it public on the website
    with pytest.raises(SinkError) as e:
        sink.upload(items(tmp_path, 1))
    assert e.value.kind is ErrorKind.FATAL
    assert api.batch_bucket_files.call_count == 1


def test_no_token_is_an_auth_error_without_calls(tmp_path: Path) -> None:
    api = fake_api()
    sink = HfSink(URI, token=None, api=api)
    for call in (sink.ensure, lambda: sink.upload(items(tmp_path, 1))):
        with pytest.raises(SinkError) as e:
            call()
        assert e.value.kind is ErrorKind.AUTH
        assert "traceagent login" in e.value.message
    assert api.method_calls == []


# --------------------------------------------------------------------------- vanished bucket
@pytest.mark.parametrize(
    "exc_factory", [bucket_not_found, lambda: xet_error("404 Not Found")], ids=["hub", "xet"]
)
def test_vanished_bucket_is_recreated_and_the_upload_retried_once(
    tmp_path: Path, exc_factory: Callable[[], BaseException]
) -> None:
    api = fake_api()
    api.batch_bucket_files.side_effect = [exc_factory(), None]
    sink = HfSink(URI, token=SECRET, api=api)
    sink.upload(items(tmp_path))
    assert api.batch_bucket_files.call_count == 2
    assert api.create_bucket.call_count == 2
    assert all(c.kwargs == {"private": True, "exist_ok": True} for c in api.create_bucket.call_args_list)


def test_vanished_twice_is_transient(tmp_path: Path) -> None:
    api = fake_api()
    api.batch_bucket_files.side_effect = [bucket_not_found(), bucket_not_found()]
    with pytest.raises(SinkError) as e:
        HfSink(URI, token=SECRET, api=api).upload(items(tmp_path))
    assert e.value.kind is ErrorKind.TRANSIENT
    assert api.batch_bucket_files.call_count == 2


# --------------------------------------------------------------------------- partial failures
def test_batch_error_with_bad_paths_is_per_file_for_those_only(tmp_path: Path) -> None:
    api = fake_api()
    batch = items(tmp_path, 4)
    api.batch_bucket_files.side_effect = batch_error(
        [
            {"path": f"laptop/{batch[1].key}", "error": "Invalid path"},
            {"path": f"laptop/{batch[3].key}", "error": "invalid"},
        ]
    )
    with pytest.raises(SinkError) as e:
        HfSink(URI, token=SECRET, api=api).upload(batch)
    assert e.value.kind is ErrorKind.PER_FILE
    assert set(e.value.failed_keys) == {batch[1].key, batch[3].key}


def test_batch_error_with_server_trouble_is_transient_for_those_only(tmp_path: Path) -> None:
    api = fake_api()
    batch = items(tmp_path, 3)
    api.batch_bucket_files.side_effect = batch_error(
        [{"path": f"laptop/{batch[0].key}", "error": "storage hiccup"}]
    )
    with pytest.raises(SinkError) as e:
        HfSink(URI, token=SECRET, api=api).upload(batch)
    assert e.value.kind is ErrorKind.TRANSIENT
    assert e.value.failed_keys == (batch[0].key,)


def test_batch_error_naming_nothing_we_sent_fails_the_whole_chunk(tmp_path: Path) -> None:
    api = fake_api()
    batch = items(tmp_path, 2)
    api.batch_bucket_files.side_effect = batch_error([{"path": "something/else", "error": "Invalid path"}])
    with pytest.raises(SinkError) as e:
        HfSink(URI, token=SECRET, api=api).upload(batch)
    assert set(e.value.failed_keys) == {it.key for it in batch}


def test_chunks_stop_at_a_transient_failure_and_report_what_did_not_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hf_mod, "BATCH_SIZE", 2)
    api = fake_api()
    api.batch_bucket_files.side_effect = [None, http_error(503), None]
    batch = items(tmp_path, 6)
    with pytest.raises(SinkError) as e:
        HfSink(URI, token=SECRET, api=api).upload(batch)
    assert e.value.kind is ErrorKind.TRANSIENT
    assert set(e.value.failed_keys) == {it.key for it in batch[2:]}
    assert api.batch_bucket_files.call_count == 2
    assert [len(c.kwargs["add"]) for c in api.batch_bucket_files.call_args_list] == [2, 2]


# --------------------------------------------------------------------------- local refusals
def test_bad_keys_missing_and_huge_files_are_per_file_and_the_rest_goes(tmp_path: Path) -> None:
    api = fake_api()
    good = make_item(tmp_path / "spool", "claude/ok.jsonl", b"{}\n")
    bad_key = make_item(tmp_path / "spool", "claude//double.jsonl", b"{}\n")
    dotdot = make_item(tmp_path / "spool", "claude/../up.jsonl", b"{}\n")
    missing = UploadItem(
        spool_path=tmp_path / "spool" / "gone.part", key="claude/gone.jsonl", size=3, mtime=1.0
    )
    huge = make_item(tmp_path / "spool", "claude/huge.jsonl", b"x" * 2048)
    sink = HfSink(URI, token=SECRET, api=api, max_file_size=1024)
    with pytest.raises(SinkError) as e:
        sink.upload([good, bad_key, dotdot, missing, huge])
    assert e.value.kind is ErrorKind.PER_FILE
    assert set(e.value.failed_keys) == {bad_key.key, dotdot.key, missing.key, huge.key}
    assert api.batch_bucket_files.call_args.kwargs["add"] == [
        (str(good.spool_path), "laptop/claude/ok.jsonl")
    ]


def test_default_size_limit_is_one_gigabyte() -> None:
    assert hf_mod.MAX_FILE_SIZE == 1 << 30


def test_same_key_twice_sends_the_later_snapshot(tmp_path: Path) -> None:
    api = fake_api()
    a = make_item(tmp_path / "spool", "k.jsonl", b"1\n")
    b = make_item(tmp_path / "spool", "k.jsonl", b"1\n2\n")
    HfSink(URI, token=SECRET, api=api).upload([a, b])
    assert api.batch_bucket_files.call_args.kwargs["add"] == [(str(b.spool_path), "laptop/k.jsonl")]


def test_empty_upload_does_nothing() -> None:
    api = fake_api()
    HfSink(URI, token=SECRET, api=api).upload([])
    assert api.method_calls == []


# --------------------------------------------------------------------------- keys, URIs, links
@pytest.mark.parametrize(
    "key",
    ["", "/a", "a/", "a//b", "a/../b", "../a", "./a", "a/..", "a\\b", "a\x00b", "a/./b", "a\nb", "x" * 1025],
)
def test_bad_keys(key: str) -> None:
    assert key_problem(key) is not None


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "claude/-Users-x-proj/0b1.jsonl",
        ".traceagent/doctor-probe.txt",
        "a b/c#d?.jsonl",
        "émoji/🙂.jsonl",
        "a..b",
    ],
)
def test_good_keys(key: str) -> None:
    assert key_problem(key) is None


def test_parse_bucket_uri() -> None:
    p = parse_bucket_uri("hf://buckets/alice/agent-sessions/laptop/work/")
    assert (p.namespace, p.bucket, p.prefix, p.bucket_id) == (
        "alice",
        "agent-sessions",
        "laptop/work",
        BUCKET,
    )
    assert parse_bucket_uri("hf://buckets/alice/agent-sessions").prefix == ""
    for bad in (
        "hf://datasets/alice/x",
        "hf://buckets/alice",
        "s3://a/b",
        "hf://buckets/alice/a b",
        "hf://buckets/a/b/x//y",
    ):
        with pytest.raises(ValueError):
            parse_bucket_uri(bad)


def test_links() -> None:
    sink = HfSink(URI, token=SECRET, endpoint="https://huggingface.co")
    assert sink.url_for("claude/p/a b#1.jsonl") == (
        "https://huggingface.co/buckets/alice/agent-sessions/tree/laptop/claude/p/a%20b%231.jsonl"
    )
    # "the destination" is the prefix folder; the bucket page stays reachable (settings link)
    assert sink.browse_url() == "https://huggingface.co/buckets/alice/agent-sessions/tree/laptop"
    assert sink.bucket_page() == "https://huggingface.co/buckets/alice/agent-sessions"
    assert sink.location == URI
    root = HfSink(f"hf://buckets/{BUCKET}", token=SECRET, endpoint="http://127.0.0.1:9/")
    assert root.url_for("x.jsonl") == "http://127.0.0.1:9/buckets/alice/agent-sessions/tree/x.jsonl"
    assert root.browse_url() == "http://127.0.0.1:9/buckets/alice/agent-sessions"


def test_url_template() -> None:
    sink = HfSink(
        URI,
        token=SECRET,
        endpoint="https://hub.example",
        url_template="{endpoint}/viewer/{namespace}/{bucket}?file={path}",
    )
    assert (
        sink.url_for("c/a b.jsonl")
        == "https://hub.example/viewer/alice/agent-sessions?file=laptop/c/a%20b.jsonl"
    )
    assert HfSink(URI, token=SECRET, endpoint="https://h", url_template="").url_for("k") == (
        "https://h/buckets/alice/agent-sessions/tree/laptop/k"
    )
    with pytest.raises(ValueError, match="template"):
        HfSink(URI, token=SECRET, url_template="{nope}")


def test_repr_hides_the_token() -> None:
    assert SECRET not in repr(HfSink(URI, token=SECRET))


def test_classify_scrubs_tokens_from_library_messages() -> None:
    err = classify_error(RuntimeError(f"boom with {SECRET} inside"), bucket_id=BUCKET, token=SECRET)
    assert SECRET not in err.message
    other = classify_error(RuntimeError("leak hf_abcdefghijklmnopqrstuvwxyz"), bucket_id=BUCKET, token=None)
    assert "hf_abcdefghijklmnop" not in other.message


def test_importing_the_sink_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, traceagent.hub.sink, traceagent.hub.worker, traceagent.hub.auth, traceagent.cli.doctor;"
        "print([m for m in ('huggingface_hub', 'hf_xet', 'httpx2', 'keyring', 'pystray', 'gi') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
