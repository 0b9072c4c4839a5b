"""One parser for every destination string (config file, TRACEAGENT_DESTINATION, CLI, tray,
sinks), and one set of key rules (a key accepted when a file is queued is never refused when
it is uploaded). Issue 11, case 6."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli, write_config
from traceagent.config import load_settings
from traceagent.errors import ConfigError
from traceagent.hub.api import key_problem as hub_key_problem
from traceagent.hub.api import parse_bucket_uri
from traceagent.sinks.keys import (
    PREFIX_MAX_BYTES,
    Destination,
    DestinationError,
    InvalidKeyError,
    key_problem,
    make_key,
    parse_destination,
)
from traceagent.tray import model as traymodel

#: Each was taken as a folder under the daemon's working directory (or passed the config check
#: and ended `status` in a traceback).
BAD = [
    ("s3://b/x", "unknown scheme 's3:'"),
    ("hf:/buckets/alice/x", "expected hf://buckets/<namespace>/<bucket>"),
    ("hf:buckets/alice/x", "expected hf://buckets/<namespace>/<bucket>"),
    ("file://", "has no path"),
    ("traces", "is a relative path"),
    ("./traces/mine", "is a relative path"),
    ("hf://buckets/alice/..", "invalid bucket name '..'"),
    ("hf://buckets/alice/bücket", "invalid bucket name 'bücket'"),
    ("hf://buckets/ålice/x", "invalid namespace 'ålice'"),
    ("hf://buckets/alice", "expected hf://buckets/<namespace>/<bucket>"),
    ("hf://datasets/alice/x", "only Storage Buckets"),
    ("hf://buckets/alice/x/a//b", "invalid prefix 'a//b'"),
    ("https://example.com/buckets/alice/x", "not a Hugging Face URL"),
    ("https://huggingface.co/buckets/alice/x/resolve/a.jsonl", "points at a file"),
    ("https://huggingface.co/alice/x", "not a bucket's page"),
    ("file://nas/share", "names another host"),
    ("~nosuchuser-xyz/traces", "no such user or home folder"),
    ("/srv/a\x00b", "contains a NUL character"),
]


@pytest.mark.parametrize(("text", "why"), BAD)
def test_bad_destination_is_refused_by_the_parser(text: str, why: str) -> None:
    with pytest.raises(DestinationError) as e:
        parse_destination(text)
    message = str(e.value)
    assert why in message and "\n" not in message


@pytest.mark.parametrize(("text", "why"), BAD)
def test_bad_destination_in_the_config_file_or_the_environment_is_one_line_naming_the_key(
    env: dict[str, str], text: str, why: str
) -> None:
    cfg = write_config(env, f"debounce_seconds = 5\ndestination = {json.dumps(text)}\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, env)
    assert e.value.message.startswith(f"{cfg}, line 2: key 'destination': ") and why in e.value.message
    assert "\n" not in e.value.message
    cfg.write_text("")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, {**env, "TRACEAGENT_DESTINATION": text})
    assert e.value.message.startswith("TRACEAGENT_DESTINATION: ") and why in e.value.message
    assert "\n" not in e.value.message


@pytest.mark.parametrize(("text", "why"), [b for b in BAD if b[0] != "file://nas/share"])
def test_status_with_a_bad_destination_is_one_line_not_a_traceback(
    env: dict[str, str], text: str, why: str
) -> None:
    cfg = write_config(env, f"destination = {json.dumps(text)}\n")
    r = run_cli(env, "status")
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith(f"traceagent: {cfg}, line 1: key 'destination': ") and why in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_bad_environment_destination_stops_status_and_sync(env: dict[str, str]) -> None:
    for args in (("status",), ("sync",)):
        r = run_cli({**env, "TRACEAGENT_DESTINATION": "s3://b/x"}, *args)
        assert r.returncode == 1 and r.stderr.startswith("traceagent: TRACEAGENT_DESTINATION: unknown scheme")
        assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("text", "uri"),
    [
        ("https://huggingface.co/buckets/alice/traces", "hf://buckets/alice/traces"),
        ("https://huggingface.co/buckets/alice/traces/", "hf://buckets/alice/traces"),
        ("https://hf.co/buckets/alice/traces?tab=files#top", "hf://buckets/alice/traces"),
        ("huggingface.co/buckets/alice/traces", "hf://buckets/alice/traces"),
        (
            "https://huggingface.co/buckets/alice/traces/tree/laptop/a%20b",
            "hf://buckets/alice/traces/laptop/a b",
        ),
        ("HF://buckets/alice/traces/laptop/", "hf://buckets/alice/traces/laptop"),
        ("  hf://buckets/alice/traces  ", "hf://buckets/alice/traces"),
    ],
)
def test_the_hubs_web_url_of_a_bucket_is_that_bucket(text: str, uri: str) -> None:
    assert parse_destination(text).uri == uri
    assert parse_bucket_uri(text).uri == uri


def test_a_bucket_page_on_the_configured_endpoint(env: dict[str, str]) -> None:
    cfg = write_config(
        env,
        'endpoint = "http://hub.internal:8080/hf"\ndestination = "http://hub.internal:8080/hf/buckets/team/x"\n',
    )
    assert load_settings(cfg, env).destination == "hf://buckets/team/x"
    cfg.write_text('destination = "http://127.0.0.1:5555/buckets/alice/y/tree/p"\n')
    with pytest.raises(ConfigError):
        load_settings(cfg, env)  # not a Hub this configuration knows
    assert load_settings(cfg, {**env, "HF_ENDPOINT": "http://127.0.0.1:5555"}).destination == (
        "hf://buckets/alice/y/p"
    )


def test_status_shows_a_pasted_bucket_page_as_the_bucket(env: dict[str, str]) -> None:
    write_config(env, 'destination = "https://huggingface.co/buckets/alice/traces"\n')
    r = run_cli(env, "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["destination"] == "hf://buckets/alice/traces"
    assert st["destination_kind"] == "Hugging Face bucket"
    assert st["destination_url"] == "https://huggingface.co/buckets/alice/traces"


def test_folders_and_file_urls(env: dict[str, str]) -> None:
    home = Path(env["HOME"])
    assert parse_destination("~/traces").folder == home / "traces"
    assert parse_destination("/mnt/nas/traces/").folder == Path("/mnt/nas/traces")
    assert parse_destination("file:///mnt/nas/my%20traces").folder == Path("/mnt/nas/my traces")
    assert parse_destination("file://localhost/srv/t").folder == Path("/srv/t")
    cfg = write_config(env, 'destination = "~/traces"\n')
    assert load_settings(cfg, env).destination == str(home / "traces")


_name = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,20}\Z")
_segment = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8).filter(
    lambda s: "/" not in s and "\\" not in s and s not in (".", "..") and s.strip() == s
)
_prefix = st.lists(_segment, max_size=3).map("/".join)


@settings(max_examples=200, deadline=None)
@given(_name, _name, _prefix)
def test_round_trips(namespace: str, bucket: str, prefix: str) -> None:
    """uri → parse → same; the web page → parse → same; and huggingface_hub reads both alike."""
    from huggingface_hub import parse_hf_uri

    if key_problem(prefix or "x", max_bytes=PREFIX_MAX_BYTES):
        return
    d = Destination(namespace, bucket, prefix)
    assert parse_destination(d.uri) == d
    endpoint = "https://hub.example"
    assert parse_destination(d.web_url(endpoint), endpoints=[endpoint]) == d
    theirs = parse_hf_uri(d.uri)
    assert (theirs.id, theirs.path_in_repo) == (d.bucket_id, prefix)
    # the page huggingface_hub renders for that folder is read back as the same destination
    assert parse_destination(theirs.to_url(endpoint=endpoint), endpoints=[endpoint]) == d
    assert parse_hf_uri(d.web_url(), endpoint=None).id == d.bucket_id


@pytest.mark.parametrize(
    ("destination", "local"),
    [("hf://buckets/alice/x", False), ("/srv/t", True), ("s3://b/x", True), ("", True)],
)
def test_the_tray_reads_destinations_with_the_same_parser(destination: str, local: bool) -> None:
    from traceagent.status import Status, SyncState

    status = Status(
        state=SyncState.UP_TO_DATE,
        paused=False,
        paused_until=None,
        pending=0,
        uploading=0,
        uploaded=0,
        destination=destination,
        destination_kind="",
        agents=(),
        last_upload_at=None,
        last_error=None,
        last_trace=None,
    )
    assert traymodel.is_local(status) is local
    assert traymodel.destination_url("https://huggingface.co/buckets/alice/x/tree/p") == (
        "https://huggingface.co/buckets/alice/x/tree/p"
    )
    assert traymodel.destination_url("s3://b/x") is None


# --------------------------------------------------------------------------- key rules
@pytest.mark.parametrize(
    "rel",
    ["-p/line\nbreak.jsonl", "-p/tab\there.jsonl", "-p/bell\x07.jsonl", "-p/" + "é" * 460 + ".jsonl"],
)
def test_a_key_the_hub_sink_would_refuse_is_refused_when_queued(rel: str) -> None:
    """These were queued (make_key accepted them) and then failed per file at every upload."""
    with pytest.raises(InvalidKeyError):
        make_key("claude", PurePosixPath(rel))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300), min_size=1, max_size=4
    )
)
def test_every_key_make_key_accepts_is_a_valid_remote_key_under_any_prefix(parts: list[str]) -> None:
    try:
        key = make_key("claude", PurePosixPath(*parts))
    except (InvalidKeyError, ValueError):
        return
    longest = "p" * PREFIX_MAX_BYTES
    assert hub_key_problem(key) is None
    assert hub_key_problem(f"{longest}/{key}") is None
