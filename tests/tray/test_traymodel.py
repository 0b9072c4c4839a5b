"""The tray's menu model for every sync state, with no display and no pystray."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from traceagent.icons import IconState
from traceagent.status import AgentInfo, Status, SyncState, TraceInfo
from traceagent.tray import model as traymodel
from traceagent.tray.model import Action, ActionKind, MenuEntry, TrayInputs
from tray_e2e_app import FakeEngine, make_trace

# 2026-05-12 10:00:00 UTC, a Tuesday
NOW = dt.datetime(2026, 5, 12, 10, 0, tzinfo=dt.timezone.utc).timestamp()
BUCKET = "hf://buckets/alice/agent-sessions"
TOP_LEVEL = [
    "status",
    "open_last",
    "recent",
    "pause",
    "pause_for",
    "sync_now",
    "open_bucket",
    "agents",
    "signed_in",
    "sign_out",
    "autostart",
    "open_settings",
    "open_log",
    "quit",
]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time = UTC, so "Paused until 15:30" is predictable."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def status(**overrides: Any) -> Status:
    fields: dict[str, Any] = {
        "state": SyncState.UP_TO_DATE,
        "paused": False,
        "paused_until": None,
        "pending": 0,
        "uploading": 0,
        "uploaded": 1204,
        "destination": BUCKET,
        "destination_kind": "Hugging Face bucket",
        "agents": (
            AgentInfo("claude", "Claude Code", ("/home/a/.claude/projects",), 1203, True),
            AgentInfo("codex", "Codex", ("/home/a/.codex/sessions",), 1, False),
        ),
        "last_upload_at": NOW - 60,
        "last_error": None,
        "last_trace": make_trace(1),
        "signed_in_as": "alice",
    }
    fields.update(overrides)
    return Status(**fields)


def model(
    st: Status | None = None, *, recent: tuple[TraceInfo, ...] = (), autostart: bool | None = False
) -> Any:
    return traymodel.build_model(
        TrayInputs(
            status=st or status(),
            recent=recent,
            autostart=autostart,
            config_path=Path("/home/a/.config/traceagent/config.toml"),
            log_path=Path("/home/a/.local/state/traceagent/traceagent.log"),
            now=NOW,
        )
    )


def entry(m: Any, key: str) -> MenuEntry:
    found = m.find(key)
    assert found is not None, f"no menu entry {key!r}"
    return found  # type: ignore[no-any-return]


def top_keys(m: Any) -> list[str]:
    return [e.key for e in traymodel.flat_rows(m.menu)]


# --- every state --------------------------------------------------------------------------

STATES: dict[SyncState, tuple[dict[str, Any], str, IconState]] = {
    SyncState.UP_TO_DATE: ({}, "Up to date · 1,204 traces", IconState.UP_TO_DATE),
    SyncState.SYNCING: ({"uploading": 3, "pending": 5}, "Uploading 3 files…", IconState.SYNCING),
    SyncState.PAUSED: (
        {"paused": True, "paused_until": NOW + 5.5 * 3600},
        "Paused until 15:30",
        IconState.PAUSED,
    ),
    SyncState.OFFLINE: ({"pending": 12}, "Offline — 12 waiting", IconState.OFFLINE),
    SyncState.SIGNIN_NEEDED: ({}, "Sign-in needed", IconState.ERROR),
    SyncState.ERROR: (
        {"last_error": "Folder /mnt/x is not writable"},
        "Error: Folder /mnt/x is not writable",
        IconState.ERROR,
    ),
}


def test_every_state_is_covered() -> None:
    assert set(STATES) == set(SyncState)


@pytest.mark.parametrize("state", list(SyncState))
def test_state(state: SyncState) -> None:
    extra, line, icon = STATES[state]
    st = status(state=state, **extra)
    m = model(st)
    assert m.status_line == line
    assert m.icon is icon
    assert m.tooltip == f"traceagent — {line}"
    first = m.menu[0]
    assert (first.key, first.label, first.enabled, first.action) == ("status", line, False, None)

    # the rows every state has, in order, with Open last trace as the default item
    keys = top_keys(m)
    assert keys[:8] == TOP_LEVEL[:8] and keys[-4:] == TOP_LEVEL[-4:]
    defaults = [e.key for e in traymodel.flat_rows(m.menu) if e.default]
    assert defaults == ["open_last"]
    open_last = entry(m, "open_last")
    assert open_last.enabled and open_last.action == Action(ActionKind.OPEN_URL, st.last_trace.url)  # type: ignore[union-attr]

    pause = entry(m, "pause")
    assert pause.checked is st.paused
    assert pause.action == Action(ActionKind.RESUME if st.paused else ActionKind.PAUSE)
    sync_now = entry(m, "sync_now")
    assert sync_now.enabled is (state not in (SyncState.PAUSED, SyncState.SIGNIN_NEEDED))
    assert sync_now.action == Action(ActionKind.SYNC_NOW)
    assert entry(m, "open_bucket").action == Action(
        ActionKind.OPEN_URL, "https://huggingface.co/buckets/alice/agent-sessions"
    )
    assert entry(m, "quit").action == Action(ActionKind.QUIT)
    assert entry(m, "open_settings").action == Action(
        ActionKind.OPEN_FILE, "/home/a/.config/traceagent/config.toml"
    )
    assert entry(m, "open_log").action == Action(
        ActionKind.OPEN_FILE, "/home/a/.local/state/traceagent/traceagent.log"
    )
    # nothing enabled is dead: every enabled leaf has an action
    for e in _leaves(m.menu):
        assert not e.enabled or e.action is not None or e.separator, e


def _leaves(entries: tuple[MenuEntry, ...]) -> Iterator[MenuEntry]:
    for e in entries:
        if e.submenu is not None:
            yield from _leaves(e.submenu)
        else:
            yield e


def test_top_level_order_when_signed_in() -> None:
    assert top_keys(model()) == TOP_LEVEL


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        ({"state": SyncState.SYNCING, "uploading": 1}, "Uploading 1 file…"),
        ({"state": SyncState.SYNCING, "pending": 5}, "Syncing · 5 waiting"),
        ({"state": SyncState.SYNCING}, "Syncing…"),
        ({"state": SyncState.SYNCING, "uploading": 2, "issues": 1}, "Uploading 2 files… · 1 issue"),
        ({"uploaded": 1, "issues": 3, "agents": ()}, "Up to date · 1 trace · 3 issues"),
        ({"state": SyncState.OFFLINE}, "Offline"),
        ({"state": SyncState.PAUSED, "paused": True}, "Paused"),
        ({"state": SyncState.PAUSED, "paused": True, "paused_until": NOW - 5}, "Paused"),
        (
            {"state": SyncState.PAUSED, "paused": True, "paused_until": NOW + 22 * 3600},
            "Paused until tomorrow 08:00",
        ),
        (
            {"state": SyncState.PAUSED, "paused": True, "paused_until": NOW + 3 * 86400},
            "Paused until Fri 15 May 10:00",
        ),
        (
            {"state": SyncState.ERROR, "last_error": "Bucket alice/x is public; refusing"},
            "Stopped: the bucket is public",
        ),
        ({"state": SyncState.ERROR}, "Error: unknown error"),
        ({"state": SyncState.ERROR, "last_error": "x" * 100}, "Error: " + "x" * 59 + "…"),
    ],
)
def test_status_lines(overrides: dict[str, Any], line: str) -> None:
    assert model(status(**overrides)).status_line == line


def test_local_only() -> None:
    st = status(
        destination="/home/a/traces",
        destination_kind="local folder",
        signed_in_as=None,
        uploaded=3,
        agents=(),
    )
    m = model(st)
    assert m.icon is IconState.LOCAL_ONLY
    assert m.status_line == "Saved locally · 3 traces"
    folder = entry(m, "open_bucket")
    assert folder.label == "Open folder"
    assert folder.action == Action(ActionKind.OPEN_URL, "file:///home/a/traces")
    assert entry(m, "sign_in").action == Action(ActionKind.SIGN_IN)
    assert m.find("sign_out") is None and m.find("signed_in") is None
    # syncing to a local folder still shows the syncing picture
    assert model(dataclasses.replace(st, state=SyncState.SYNCING)).icon is IconState.SYNCING


def test_account_entries() -> None:
    m = model()
    signed = entry(m, "signed_in")
    assert (signed.label, signed.enabled) == ("Signed in as alice", False)
    assert entry(m, "sign_out").action == Action(ActionKind.SIGN_OUT)
    assert m.find("sign_in") is None
    # token rejected: offer to sign in again, keep Sign out
    m = model(status(state=SyncState.SIGNIN_NEEDED))
    assert entry(m, "sign_in").label == "Sign in to Hugging Face…"
    assert m.find("sign_out") is not None and m.find("signed_in") is None
    m = model(status(state=SyncState.SIGNIN_NEEDED, signed_in_as=None))
    assert m.find("sign_out") is None


def test_no_last_trace() -> None:
    m = model(status(last_trace=None))
    open_last = entry(m, "open_last")
    assert (open_last.enabled, open_last.action, open_last.default) == (False, None, True)
    recent = entry(m, "recent")
    assert (recent.enabled, recent.submenu) == (False, None)


def test_recent_traces() -> None:
    traces = tuple(
        dataclasses.replace(make_trace(i, agent="codex" if i % 2 else "claude"), uploaded_at=NOW - i * 3600)
        for i in range(12)
    )
    traces = (
        dataclasses.replace(traces[0], last_ts="2026-05-12T09:58:30Z", title="A very long first prompt " * 4),
        *traces[1:],
    )
    m = model(recent=traces)
    sub = entry(m, "recent").submenu
    assert sub is not None and len(sub) == 10
    assert sub[0].label == "Claude Code · A very long first prompt A very long first prom… · 1 min ago"
    assert sub[1].label == "Codex · Fix the flaky test #1 · 1 h ago"
    assert all(e.action == Action(ActionKind.OPEN_URL, t.url) for e, t in zip(sub, traces, strict=False))
    unknown = dataclasses.replace(make_trace(9, agent="pi"), title="", uploaded_at=None, url="")
    (only,) = entry(model(recent=(unknown,)), "recent").submenu or ()
    assert (only.label, only.enabled) == ("pi · (untitled)", False)


def test_pause_for_choices() -> None:
    sub = entry(model(), "pause_for").submenu
    assert sub is not None
    assert [(e.label, e.action) for e in sub] == [
        ("30 minutes", Action(ActionKind.PAUSE_FOR, 1800.0)),
        ("1 hour", Action(ActionKind.PAUSE_FOR, 3600.0)),
        ("4 hours", Action(ActionKind.PAUSE_FOR, 14400.0)),
        ("Until tomorrow", Action(ActionKind.PAUSE_UNTIL_TOMORROW)),
    ]
    # still offered while paused (to change how long)
    assert entry(model(status(state=SyncState.PAUSED, paused=True)), "pause_for").enabled


def test_agents_submenu() -> None:
    sub = entry(model(), "agents").submenu
    assert sub is not None
    assert [(e.label, e.checked, e.action) for e in sub] == [
        ("Claude Code (1,203 sessions)", True, Action(ActionKind.DISABLE_AGENT, "claude")),
        ("Codex (1 session)", False, Action(ActionKind.ENABLE_AGENT, "codex")),
    ]
    none = entry(model(status(agents=())), "agents")
    assert (none.label, none.enabled, none.submenu) == ("Agents: none found", False, None)


@pytest.mark.parametrize(
    ("autostart", "checked", "enabled", "action"),
    [
        (True, True, True, Action(ActionKind.DISABLE_AUTOSTART)),
        (False, False, True, Action(ActionKind.ENABLE_AUTOSTART)),
        (None, False, False, None),
    ],
)
def test_start_at_login(autostart: bool | None, checked: bool, enabled: bool, action: Action | None) -> None:
    e = entry(model(autostart=autostart), "autostart")
    assert (e.checked, e.enabled, e.action) == (checked, enabled, action)


def test_models_compare_by_value() -> None:
    assert model() == model()
    assert model() != model(status(pending=1, state=SyncState.SYNCING))
    assert model(autostart=True) != model(autostart=False)
    # the menu of a paused engine differs from the running one in the check mark
    assert model().menu != model(status(state=SyncState.PAUSED, paused=True)).menu


# --- notifications --------------------------------------------------------------------------


def test_notices() -> None:
    assert traymodel.notices(status()) == []
    assert traymodel.notices(status(state=SyncState.OFFLINE)) == []
    (signin,) = traymodel.notices(status(state=SyncState.SIGNIN_NEEDED))
    assert (signin.cause, signin.title) == ("signin", "Sign-in needed")
    (public,) = traymodel.notices(status(state=SyncState.ERROR, last_error="The bucket alice/x is public"))
    assert (public.cause, public.title) == ("public-bucket", "The bucket is public")
    (err,) = traymodel.notices(status(state=SyncState.ERROR, last_error="Disk full"))
    assert (err.cause, err.message) == ("error:Disk full", "Disk full")


# --- helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "just now"),
        (61, "1 min ago"),
        (9 * 60 + 59, "9 min ago"),
        (23 * 60, "20 min ago"),
        (3 * 3600 + 5, "3 h ago"),
        (30 * 3600, "yesterday"),
        (3 * 86400, "3 days ago"),
        (30 * 86400, "12 Apr"),
        (-10, "just now"),
    ],
)
def test_format_ago(seconds: float, text: str) -> None:
    assert traymodel.format_ago(NOW - seconds, NOW) == text


@pytest.mark.parametrize(
    ("destination", "url"),
    [
        ("hf://buckets/alice/traces", "https://huggingface.co/buckets/alice/traces"),
        ("hf://buckets/alice/traces/laptop", "https://huggingface.co/buckets/alice/traces/tree/laptop"),
        ("file:///srv/traces", "file:///srv/traces"),
        ("/srv/traces", "file:///srv/traces"),
        ("", None),
    ],
)
def test_destination_url(destination: str, url: str | None) -> None:
    assert traymodel.destination_url(destination) == url


def test_tomorrow_at() -> None:
    assert traymodel.tomorrow_at(NOW) == dt.datetime(2026, 5, 13, 8, 0, tzinfo=dt.timezone.utc).timestamp()


# --- actions on the engine -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "call"),
    [
        (Action(ActionKind.OPEN_URL, "https://x/y"), ("open_url", ["https://x/y"])),
        (Action(ActionKind.OPEN_FILE, "/etc/traceagent.toml"), ("open_url", ["file:///etc/traceagent.toml"])),
        (Action(ActionKind.PAUSE), ("pause", [None])),
        (Action(ActionKind.PAUSE_FOR, 1800.0), ("pause", [NOW + 1800])),
        (Action(ActionKind.PAUSE_UNTIL_TOMORROW), ("pause", [NOW + 22 * 3600])),
        (Action(ActionKind.RESUME), ("resume", [])),
        (Action(ActionKind.SYNC_NOW), ("sync_now", [])),
        (Action(ActionKind.ENABLE_AGENT, "codex"), ("set_agent_enabled", ["codex", True])),
        (Action(ActionKind.DISABLE_AGENT, "claude"), ("set_agent_enabled", ["claude", False])),
        (Action(ActionKind.ENABLE_AUTOSTART), ("set_autostart", [True])),
        (Action(ActionKind.DISABLE_AUTOSTART), ("set_autostart", [False])),
        (Action(ActionKind.SIGN_OUT), ("sign_out", [])),
    ],
)
def test_perform(
    action: Action, call: tuple[str, list[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webbrowser.open", lambda url: True)
    engine = FakeEngine(home=tmp_path)
    traymodel.perform(engine, action, now=NOW)
    assert [(c["method"], c["args"]) for c in engine.calls] == [call]


@pytest.mark.parametrize("kind", sorted(traymodel.UI_ACTIONS))
def test_ui_actions_are_not_performed_here(kind: ActionKind, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="front end"):
        traymodel.perform(FakeEngine(home=tmp_path), Action(kind))


def test_every_menu_action_is_performable_or_ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clicking every enabled leaf of every state's menu reaches the engine (or the UI)."""
    monkeypatch.setattr("webbrowser.open", lambda url: True)
    for state in SyncState:
        extra, _, _ = STATES[state]
        m = model(status(state=state, **extra), recent=(make_trace(1),), autostart=True)
        for e in _leaves(m.menu):
            if not e.enabled or e.action is None:
                continue
            engine = FakeEngine(home=tmp_path)
            if e.action.kind in traymodel.UI_ACTIONS:
                continue
            traymodel.perform(engine, e.action, now=NOW)
            assert len(engine.calls) == 1, (state, e.key)


def test_read_inputs_reads_the_engine(tmp_path: Path) -> None:
    engine = FakeEngine(home=tmp_path)
    engine.autostart = None
    inputs = traymodel.read_inputs(engine, now=NOW)
    assert inputs.status == engine.status()
    assert inputs.recent == tuple(engine.traces)
    assert inputs.autostart is None
    assert inputs.config_path == tmp_path / "config.toml"

    def broken() -> bool:
        raise OSError("registry unreadable")

    engine.autostart_enabled = broken  # type: ignore[method-assign]
    assert traymodel.read_inputs(engine, now=NOW).autostart is None
