"""The error reaction (sync/health.py), driven directly: events in, answers out, clock passed in."""

from __future__ import annotations

import logging

import pytest

from traceagent.sinks.base import ErrorKind
from traceagent.status import SyncState
from traceagent.sync.health import (
    AUTH_RECHECK,
    BACKOFF_CAP,
    DESTINATION_RETRY_CAP,
    STATE_RETRY_CAP,
    UNEXPECTED_ERROR,
    Health,
)

T = ErrorKind.TRANSIENT


def highest(low: float, high: float) -> float:
    return high


def lowest(low: float, high: float) -> float:
    return low


def test_transient_backoff_doubles_from_two_seconds_up_to_ten_minutes_with_full_jitter() -> None:
    bounds: list[tuple[float, float]] = []

    def record(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    h = Health(jitter=record)
    waits = []
    for _ in range(12):
        r = h.sink_failed(T, "offline", 100.0)
        waits.append(h.next_attempt() - 100.0)
        assert r.defer_until == h.next_attempt() and r.level == logging.WARNING and not r.sink_unusable
    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]
    assert all(low == high / 2 for low, high in bounds)  # full jitter: between half and all
    assert max(waits) == BACKOFF_CAP


def test_real_jitter_stays_within_its_bounds() -> None:
    h = Health()
    for n in range(1, 15):
        h.sink_failed(T, "offline", 0.0)
        top = min(BACKOFF_CAP, 2.0 * 2 ** (n - 1))
        assert top / 2 <= h.next_attempt() <= top


def test_backoff_holds_uploads_until_it_ends_and_a_success_resets_it() -> None:
    h = Health(jitter=highest)
    h.sink_failed(T, "Could not reach Hugging Face", 10.0)
    h.sink_failed(T, "Could not reach Hugging Face", 10.0)
    assert not h.may_upload(13.9) and h.may_upload(14.0)
    assert h.state(paused=False, busy=True) is SyncState.OFFLINE
    assert h.next_retry_at() == 14.0
    assert h.shown_error() == "Could not reach Hugging Face"
    assert h.uploaded(files=True) is True  # the stored last error is history now: forget it
    assert h.offline_error is None and h.next_retry_at() is None and h.shown_error() is None
    h.sink_failed(T, "x", 20.0)
    assert h.next_attempt() == 22.0  # the growth started again from 2 s


def test_retry_after_is_a_floor_not_a_cap() -> None:
    h = Health(jitter=lowest)
    r = h.sink_failed(T, "429 Too Many Requests", 50.0, retry_after=120.0)
    assert h.next_attempt() == 170.0 and r.defer_until == 170.0
    assert r.log == "429 Too Many Requests; retrying in 120 s"
    for _ in range(12):
        h.sink_failed(T, "429", 0.0, retry_after=1.0)
    assert h.next_attempt() == BACKOFF_CAP / 2  # a short Retry-After never shortens the backoff


def test_destination_error_is_probed_on_a_short_capped_backoff_and_named_once() -> None:
    h = Health(jitter=highest)
    reactions = [h.sink_failed(ErrorKind.DESTINATION, "Cannot write /dest", 0.0) for _ in range(8)]
    assert [r.log for r in reactions] == ["Cannot write /dest; retrying until it accepts writes"] + [None] * 7
    assert all(r.sink_unusable and r.defer_until is None and r.level == logging.ERROR for r in reactions)
    assert h.next_attempt() == DESTINATION_RETRY_CAP == 20.0
    assert h.state(paused=True, busy=False) is SyncState.ERROR  # an error outranks a pause
    assert h.next_retry_at() == 20.0 and h.may_upload(20.0) and not h.may_upload(19.0)
    # Another reason is named again.
    assert h.sink_failed(ErrorKind.DESTINATION, "A file is in the way", 0.0).log is not None
    assert h.connected() is True  # the probe (ensure) worked: say it accepts writes again
    assert h.destination_error is None and h.connected() is False
    h.sink_failed(ErrorKind.DESTINATION, "Cannot write /dest", 0.0)
    assert h.next_attempt() == 2.0  # the failures were reset


def test_lowest_jitter_of_the_destination_backoff() -> None:
    h = Health(jitter=lowest)
    for _ in range(10):
        h.sink_failed(ErrorKind.DESTINATION, "d", 0.0)
    assert h.next_attempt() == DESTINATION_RETRY_CAP / 2


def test_a_rejected_token_waits_until_its_fingerprint_changes() -> None:
    h = Health()
    r = h.sink_failed(ErrorKind.AUTH, "The token was rejected", 0.0, fingerprint="fp1")
    assert r.log == "The token was rejected" and r.sink_unusable
    assert h.sink_failed(ErrorKind.AUTH, "The token was rejected", 5.0, fingerprint="fp1").log is None
    assert not h.may_upload(1e9) and h.blocked()
    assert h.state(paused=True, busy=True) is SyncState.SIGNIN_NEEDED
    assert h.recheck_at(100.0) == 100.0 + AUTH_RECHECK
    assert not h.token_changed("fp1")
    assert h.token_changed("fp2") and h.token_changed(None)  # a new token, or none at all
    h.sync_now()  # "Sync now" does not make a rejected token valid
    assert h.waiting_for_token and not h.may_upload(1e9)
    h.reload()  # the engine rebuilds the sink once the token changed (or after a sign-in)
    assert h.may_upload(0.0) and h.recheck_at(0.0) is None and not h.token_changed("fp3")


def test_without_a_credentials_fingerprint_the_token_is_not_watched() -> None:
    h = Health()
    h.sink_failed(ErrorKind.AUTH, "no token", 0.0, fingerprint=None)
    assert h.waiting_for_token and not h.watching_token
    assert h.recheck_at(0.0) is None and not h.token_changed("anything")


def test_fatal_stops_until_sync_now_or_a_new_sink() -> None:
    h = Health()
    r = h.sink_failed(ErrorKind.FATAL, "The bucket is public", 0.0)
    assert r.log == "The bucket is public" and r.sink_unusable
    assert h.sink_failed(ErrorKind.FATAL, "The bucket is public", 1.0).log is None
    assert not h.may_upload(1e12) and h.state(paused=False, busy=False) is SyncState.ERROR
    assert h.next_retry_at() is None  # nothing retries by itself
    h.sync_now()
    assert h.may_upload(0.0) and h.fatal_error is None
    assert h.shown_error() == "The bucket is public"  # history until an upload works
    h.sink_failed(ErrorKind.FATAL, "The bucket is public", 2.0)
    h.reload()
    assert h.may_upload(0.0)


def test_sync_now_ends_the_backoff() -> None:
    h = Health(jitter=highest)
    for _ in range(6):
        h.sink_failed(T, "offline", 0.0)
    assert not h.may_upload(1.0)
    h.sync_now()
    assert h.may_upload(1.0)


def test_state_write_errors_say_so_once_and_retry_on_a_backoff_up_to_thirty_seconds() -> None:
    h = Health()
    assert h.state_failed("The disk is full: cannot write state.db") is True
    assert h.state_failed("The disk is full: cannot write state.db") is False
    assert h.state(paused=True, busy=False) is SyncState.ERROR
    assert [h.state_retry_delay() for _ in range(7)] == [2, 4, 8, 16, 30, 30, 30]
    assert STATE_RETRY_CAP == 30
    assert h.may_upload(0.0)  # uploads of what is queued go on meanwhile
    assert h.state_recovered() is True and h.state_recovered() is False
    assert h.state(paused=False, busy=False) is SyncState.UP_TO_DATE
    h.state_failed("Cannot write state.db")
    assert h.state_retry_delay() == 2  # the growth starts again after a recovery


def test_an_unexpected_error_backs_off_from_four_seconds_and_is_shown() -> None:
    h = Health()
    assert [h.crashed() for _ in range(10)] == [4, 8, 16, 32, 64, 128, 256, 512, 600, 600]
    assert h.shown_error() == UNEXPECTED_ERROR
    assert h.state(paused=False, busy=False) is SyncState.UP_TO_DATE  # it carries on


def test_the_error_shown_is_the_one_that_matters_most() -> None:
    h = Health("an old error from state.db")
    assert h.shown_error() == "an old error from state.db"
    assert h.shown_error("a file is too large") == "a file is too large"
    h.sink_failed(T, "offline", 0.0)
    assert h.shown_error("a file is too large") == "offline"
    h.sink_failed(ErrorKind.DESTINATION, "not writable", 0.0)
    assert h.shown_error() == "not writable"
    h.state_failed("disk full")
    assert h.shown_error() == "disk full"
    h.sink_failed(ErrorKind.FATAL, "public bucket", 0.0)
    assert h.shown_error() == "public bucket"
    h.sink_failed(ErrorKind.AUTH, "token rejected", 0.0, fingerprint="f")
    assert h.shown_error() == "token rejected"
    # and the one-shot `sync` stops with the reason in its own order
    assert h.stop_error() == "token rejected"
    h.reload()
    assert h.stop_error() == "offline"  # reload keeps the network state: the next try tells


def test_a_batch_without_new_files_keeps_the_history() -> None:
    h = Health("older")
    assert h.uploaded(files=False) is False and h.last_error == "older"
    assert h.uploaded(files=True) is True and h.last_error is None
    assert h.uploaded(files=True) is False  # nothing left to forget (no db write)


@pytest.mark.parametrize(
    ("paused", "busy", "expected"),
    [
        (False, False, SyncState.UP_TO_DATE),
        (False, True, SyncState.SYNCING),
        (True, True, SyncState.PAUSED),
    ],
)
def test_state_without_errors(paused: bool, busy: bool, expected: SyncState) -> None:
    assert Health().state(paused=paused, busy=busy) is expected


def test_offline_while_paused_shows_paused() -> None:
    h = Health()
    h.sink_failed(T, "offline", 0.0)
    assert h.state(paused=True, busy=True) is SyncState.PAUSED
    assert h.state(paused=False, busy=False) is SyncState.OFFLINE
