"""The tray as plain data: which icon, which tooltip, which menu, which notifications.

Everything here is pure (no pystray, no display): :func:`read_inputs` reads the engine
into :class:`TrayInputs`, :func:`build_model` turns those into a :class:`TrayModel` of frozen
dataclasses, and :func:`perform` carries out a menu :class:`Action` on the engine. The tray
compares models by value and rebuilds its native menu only when the model changed; the unit
tests check every state without a display.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from traceagent.icons import IconState
from traceagent.sinks.keys import DestinationError, parse_destination
from traceagent.status import Status, SyncState, TraceInfo, record_time

#: How many traces "Recent traces ▸" lists.
RECENT_LIMIT = 10
#: "Pause for ▸" choices: (label, seconds).
PAUSE_CHOICES: tuple[tuple[str, float], ...] = (
    ("30 minutes", 30 * 60.0),
    ("1 hour", 3600.0),
    ("4 hours", 4 * 3600.0),
)
#: "Until tomorrow" resumes at this local hour on the next day.
TOMORROW_HOUR = 8
TITLE_MAX = 48
ERROR_MAX = 60


class TrayEngine(Protocol):
    """The part of :class:`~traceagent.app.desktop.DesktopEngine` the tray uses (a Protocol: tray/ never
    imports app/)."""

    config_path: Path
    log_path: Path

    def status(self) -> Status: ...
    def recent_traces(self, limit: int = 10) -> list[TraceInfo]: ...
    def add_listener(self, callback: Callable[[], None]) -> None: ...
    def pause(self, until: float | None = None) -> None: ...
    def resume(self) -> None: ...
    def sync_now(self) -> None: ...
    def set_agent_enabled(self, name: str, enabled: bool) -> None: ...
    def sign_in(self, token: str) -> str: ...
    def sign_out(self) -> None: ...
    def open_url(self, url: str) -> None: ...
    def stop(self) -> None: ...
    def autostart_enabled(self) -> bool | None: ...
    def set_autostart(self, enabled: bool) -> None: ...


class ActionKind(str, enum.Enum):
    """What a menu item does. Actions are values, so two models compare equal."""

    OPEN_URL = "open_url"  #: arg: the URL
    OPEN_FILE = "open_file"  #: arg: a local path (opened as a file:// URL)
    PAUSE = "pause"  #: until resumed
    PAUSE_FOR = "pause_for"  #: arg: seconds from the click
    PAUSE_UNTIL_TOMORROW = "pause_until_tomorrow"
    RESUME = "resume"
    SYNC_NOW = "sync_now"
    ENABLE_AGENT = "enable_agent"  #: arg: agent name
    DISABLE_AGENT = "disable_agent"  #: arg: agent name
    ENABLE_AUTOSTART = "enable_autostart"
    DISABLE_AUTOSTART = "disable_autostart"
    SIGN_IN = "sign_in"  #: the front end asks for a token, then calls engine.sign_in
    SIGN_OUT = "sign_out"
    QUIT = "quit"  #: the front end stops the engine, then itself


#: Actions the front end must handle itself (they need UI), not :func:`perform`.
UI_ACTIONS = frozenset({ActionKind.SIGN_IN, ActionKind.QUIT})


@dataclasses.dataclass(frozen=True)
class Action:
    """A menu command and its argument."""

    kind: ActionKind
    arg: str | float | None = None


@dataclasses.dataclass(frozen=True)
class MenuEntry:
    """One menu row. ``checked`` None means "not a check item"; ``submenu`` makes a ▸ item."""

    label: str
    key: str = ""  #: stable id for tests and logs ("pause", "open_last", "agent:claude", ...)
    action: Action | None = None
    enabled: bool = True
    checked: bool | None = None
    radio: bool = False
    default: bool = False
    submenu: tuple[MenuEntry, ...] | None = None
    separator: bool = False

    def find(self, key: str) -> MenuEntry | None:
        """This entry or the one under it with ``key``."""
        if self.key == key:
            return self
        for child in self.submenu or ():
            found = child.find(key)
            if found is not None:
                return found
        return None


SEPARATOR = MenuEntry(label="", key="-", separator=True)


@dataclasses.dataclass(frozen=True)
class Notice:
    """A notification worth showing once per cause (``cause`` identifies it)."""

    cause: str
    title: str
    message: str


@dataclasses.dataclass(frozen=True)
class TrayInputs:
    """Everything the model is built from, captured at one instant."""

    status: Status
    recent: tuple[TraceInfo, ...]
    autostart: bool | None  #: None = not supported on this platform
    config_path: Path
    log_path: Path
    now: float


@dataclasses.dataclass(frozen=True)
class TrayModel:
    """What the tray shows."""

    icon: IconState
    tooltip: str
    status_line: str
    menu: tuple[MenuEntry, ...]

    def find(self, key: str) -> MenuEntry | None:
        """The menu entry with ``key``, searching submenus too."""
        for entry in self.menu:
            found = entry.find(key)
            if found is not None:
                return found
        return None


# --- decisions ---------------------------------------------------------------------------


def is_local(status: Status) -> bool:
    """True when the destination is a local folder rather than a Hugging Face bucket."""
    try:
        if status.destination and parse_destination(status.destination).is_hub:
            return False
    except DestinationError:
        pass
    return "local" in status.destination_kind.lower() or not status.destination_kind


def icon_for(status: Status) -> IconState:
    """The icon for a status: sign-in and fatal errors share the warning triangle."""
    state = status.state
    if state in (SyncState.SIGNIN_NEEDED, SyncState.ERROR):
        return IconState.ERROR
    if state is SyncState.PAUSED:
        return IconState.PAUSED
    if state is SyncState.OFFLINE:
        return IconState.OFFLINE
    if state is SyncState.SYNCING:
        return IconState.SYNCING
    return IconState.LOCAL_ONLY if is_local(status) else IconState.UP_TO_DATE


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def format_until(until: float, now: float) -> str:
    """Local time of ``until`` as "15:30" (today), "tomorrow 08:00", else "Tue 12 May 08:00"."""
    when = dt.datetime.fromtimestamp(until)
    today = dt.datetime.fromtimestamp(now).date()
    clock = when.strftime("%H:%M")
    if when.date() == today:
        return clock
    if when.date() == today + dt.timedelta(days=1):
        return f"tomorrow {clock}"
    return f"{when.strftime('%a')} {when.day} {when.strftime('%b')} {clock}"


def format_ago(then: float, now: float) -> str:
    """Coarse relative time ("just now", "5 min ago", "25 min ago", "3 h ago", "yesterday", "4 days ago")."""
    secs = max(0.0, now - then)
    if secs < 60:
        return "just now"
    if secs < 600:
        return f"{int(secs // 60)} min ago"
    if secs < 3600:  # in steps of 5 minutes, so the menu is not rebuilt every minute
        return f"{int(secs // 300) * 5} min ago"
    if secs < 86400:
        return f"{int(secs // 3600)} h ago"
    if secs < 2 * 86400:
        return "yesterday"
    if secs < 7 * 86400:
        return f"{int(secs // 86400)} days ago"
    when = dt.datetime.fromtimestamp(then)
    return f"{when.day} {when.strftime('%b')}"


def trace_time(trace: TraceInfo) -> float | None:
    """When the trace last changed: its last record, else its last upload."""
    return record_time(trace.last_ts) or trace.uploaded_at


def status_line(status: Status, now: float) -> str:
    """The first, disabled menu row: what the daemon is doing, in a few words."""
    state = status.state
    if state is SyncState.SIGNIN_NEEDED:
        return "Sign-in needed"
    if state is SyncState.ERROR:
        err = status.last_error or "unknown error"
        if "public" in err.lower():
            return "Stopped: the bucket is public"
        return "Error: " + _short(err, ERROR_MAX)
    if state is SyncState.PAUSED:
        if status.paused_until is not None and status.paused_until > now:
            return f"Paused until {format_until(status.paused_until, now)}"
        return "Paused"
    if state is SyncState.OFFLINE:
        return f"Offline — {status.pending:,} waiting" if status.pending else "Offline"
    issues = f" · {_plural(status.issues, 'issue')}" if status.issues else ""
    if state is SyncState.SYNCING:
        if status.uploading:
            return f"Uploading {_plural(status.uploading, 'file')}…{issues}"
        if status.pending:
            return f"Syncing · {status.pending:,} waiting{issues}"
        return f"Syncing…{issues}"
    where = "Saved locally" if is_local(status) else "Up to date"
    # Sessions, not files: subagent transcripts and sidecars travel with their session.
    traces = sum(a.sessions for a in status.agents) if status.agents else status.uploaded
    return f"{where} · {_plural(traces, 'trace')}{issues}"


def notices(status: Status) -> list[Notice]:
    """The causes that need the user right now (the tray notifies each once as it appears)."""
    if status.state is SyncState.SIGNIN_NEEDED:
        return [
            Notice(
                "signin",
                "Sign-in needed",
                "Hugging Face rejected the token, so uploads are on hold. "
                "Choose “Sign in to Hugging Face…” in the traceagent menu.",
            )
        ]
    if status.state is SyncState.ERROR:
        err = status.last_error or "Sync stopped."
        if "public" in err.lower():
            return [Notice("public-bucket", "The bucket is public", err)]
        return [Notice(f"error:{err}", "traceagent stopped syncing", err)]
    return []


def destination_url(destination: str) -> str | None:
    """A browser URL for a destination the engine has no sink for yet (the engine's own,
    ``Status.destination_url``, knows the configured endpoint): the bucket page on
    huggingface.co, or the local folder's file:// URL."""
    if not destination:
        return None
    try:
        return parse_destination(destination).web_url()
    except DestinationError:
        return None


def tomorrow_at(now: float, hour: int = TOMORROW_HOUR) -> float:
    """Unix time of ``hour``:00 local time on the day after ``now``."""
    day = dt.datetime.fromtimestamp(now).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour, 0)).timestamp()


# --- the model ---------------------------------------------------------------------------


def _recent_menu(inputs: TrayInputs) -> MenuEntry:
    names = {a.name: a.display_name for a in inputs.status.agents}
    items = []
    for i, trace in enumerate(inputs.recent[:RECENT_LIMIT]):
        when = trace_time(trace)
        parts = [names.get(trace.agent, trace.agent), _short(trace.title or "(untitled)", TITLE_MAX)]
        if when is not None:
            parts.append(format_ago(when, inputs.now))
        items.append(
            MenuEntry(
                " · ".join(parts),
                key=f"recent:{i}",
                action=Action(ActionKind.OPEN_URL, trace.url),
                enabled=bool(trace.url),
            )
        )
    if not items:
        return MenuEntry("Recent traces", key="recent", enabled=False)
    return MenuEntry("Recent traces", key="recent", submenu=tuple(items))


def _pause_menu() -> MenuEntry:
    items = [
        MenuEntry(label, key=f"pause_for:{int(secs)}", action=Action(ActionKind.PAUSE_FOR, secs))
        for label, secs in PAUSE_CHOICES
    ]
    items.append(
        MenuEntry("Until tomorrow", key="pause_for:tomorrow", action=Action(ActionKind.PAUSE_UNTIL_TOMORROW))
    )
    return MenuEntry("Pause for", key="pause_for", submenu=tuple(items))


def _agents_menu(status: Status) -> MenuEntry:
    if not status.agents:
        return MenuEntry("Agents: none found", key="agents", enabled=False)
    items = tuple(
        MenuEntry(
            f"{a.display_name} ({_plural(a.sessions, 'session')})",
            key=f"agent:{a.name}",
            action=Action(ActionKind.DISABLE_AGENT if a.enabled else ActionKind.ENABLE_AGENT, a.name),
            checked=a.enabled,
        )
        for a in status.agents
    )
    return MenuEntry("Agents", key="agents", submenu=items)


def _account_entries(status: Status) -> list[MenuEntry]:
    sign_in = MenuEntry("Sign in to Hugging Face…", key="sign_in", action=Action(ActionKind.SIGN_IN))
    sign_out = MenuEntry("Sign out", key="sign_out", action=Action(ActionKind.SIGN_OUT))
    if status.state is SyncState.SIGNIN_NEEDED:
        return [sign_in, sign_out] if status.signed_in_as else [sign_in]
    if status.signed_in_as:
        return [MenuEntry(f"Signed in as {status.signed_in_as}", key="signed_in", enabled=False), sign_out]
    return [sign_in]


def build_model(inputs: TrayInputs) -> TrayModel:
    """The whole tray for one reading of the engine. Pure: same inputs, equal model."""
    status = inputs.status
    line = status_line(status, inputs.now)
    last = status.last_trace
    bucket_url = status.destination_url or destination_url(status.destination)
    local = is_local(status)
    autostart = inputs.autostart

    menu: list[MenuEntry] = [
        MenuEntry(line, key="status", enabled=False),
        SEPARATOR,
        MenuEntry(
            "Open last trace",
            key="open_last",
            action=Action(ActionKind.OPEN_URL, last.url) if last and last.url else None,
            enabled=bool(last and last.url),
            default=True,
        ),
        _recent_menu(inputs),
        SEPARATOR,
        MenuEntry(
            "Pause sync",
            key="pause",
            action=Action(ActionKind.RESUME if status.paused else ActionKind.PAUSE),
            checked=status.paused,
        ),
        _pause_menu(),
        MenuEntry(
            "Sync now",
            key="sync_now",
            action=Action(ActionKind.SYNC_NOW),
            enabled=not status.paused and status.state is not SyncState.SIGNIN_NEEDED,
        ),
        MenuEntry(
            "Open folder" if local else "Open bucket in browser",
            key="open_bucket",
            action=Action(ActionKind.OPEN_URL, bucket_url) if bucket_url else None,
            enabled=bucket_url is not None,
        ),
        SEPARATOR,
        _agents_menu(status),
        *_account_entries(status),
        MenuEntry(
            "Start at login",
            key="autostart",
            action=(
                None
                if autostart is None
                else Action(ActionKind.DISABLE_AUTOSTART if autostart else ActionKind.ENABLE_AUTOSTART)
            ),
            checked=bool(autostart),
            enabled=autostart is not None,
        ),
        SEPARATOR,
        MenuEntry(
            "Open settings", key="open_settings", action=Action(ActionKind.OPEN_FILE, str(inputs.config_path))
        ),
        MenuEntry("Open log", key="open_log", action=Action(ActionKind.OPEN_FILE, str(inputs.log_path))),
        SEPARATOR,
        MenuEntry("Quit", key="quit", action=Action(ActionKind.QUIT)),
    ]
    return TrayModel(
        icon=icon_for(status),
        tooltip=f"traceagent — {line}",
        status_line=line,
        menu=tuple(menu),
    )


def read_inputs(engine: TrayEngine, now: float | None = None) -> TrayInputs:
    """Read everything :func:`build_model` needs from the engine (may block briefly)."""
    try:
        autostart = engine.autostart_enabled()
    except Exception:
        autostart = None
    return TrayInputs(
        status=engine.status(),
        recent=tuple(engine.recent_traces(RECENT_LIMIT)),
        autostart=autostart,
        config_path=Path(engine.config_path),
        log_path=Path(engine.log_path),
        now=time.time() if now is None else now,
    )


def perform(engine: TrayEngine, action: Action, now: float | None = None) -> None:
    """Carry out an engine action. UI actions (:data:`UI_ACTIONS`) raise ValueError."""
    kind, arg = action.kind, action.arg
    clock = time.time() if now is None else now
    if kind is ActionKind.OPEN_URL:
        engine.open_url(str(arg))
    elif kind is ActionKind.OPEN_FILE:
        engine.open_url(Path(str(arg)).expanduser().absolute().as_uri())
    elif kind is ActionKind.PAUSE:
        engine.pause(None)
    elif kind is ActionKind.PAUSE_FOR:
        engine.pause(clock + float(arg or 0))
    elif kind is ActionKind.PAUSE_UNTIL_TOMORROW:
        engine.pause(tomorrow_at(clock))
    elif kind is ActionKind.RESUME:
        engine.resume()
    elif kind is ActionKind.SYNC_NOW:
        engine.sync_now()
    elif kind in (ActionKind.ENABLE_AGENT, ActionKind.DISABLE_AGENT):
        engine.set_agent_enabled(str(arg), kind is ActionKind.ENABLE_AGENT)
    elif kind in (ActionKind.ENABLE_AUTOSTART, ActionKind.DISABLE_AUTOSTART):
        engine.set_autostart(kind is ActionKind.ENABLE_AUTOSTART)
    elif kind is ActionKind.SIGN_OUT:
        engine.sign_out()
    else:
        raise ValueError(f"{kind.value} is handled by the front end")


def flat_rows(menu: Sequence[MenuEntry]) -> list[MenuEntry]:
    """The top-level rows as drawn (separators left out): what a screenshot shows in order."""
    return [e for e in menu if not e.separator]
