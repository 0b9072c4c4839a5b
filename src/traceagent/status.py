"""What every front end shows: the sync states (:class:`SyncState`) and the :class:`Status` snapshot.

Plain data, no behaviour: the engine (:mod:`traceagent.sync.engine`) decides which state it is in
and fills a :class:`Status`. The tray, ``traceagent status`` and notifications all read one; none
of them derive anything from log lines (Maestral's shortcoming we avoid).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any


class SyncState(str, enum.Enum):
    """What the daemon is doing, in the order of precedence used to pick one."""

    SIGNIN_NEEDED = "signin_needed"  #: the token was rejected (401/403); waits for a new one
    ERROR = "error"  #: the destination is unusable (e.g. public bucket refused) or a fatal error
    PAUSED = "paused"  #: the user paused sync (maybe until a time)
    OFFLINE = "offline"  #: network errors; retrying with backoff
    SYNCING = "syncing"  #: files are being uploaded or are waiting for their debounce
    UP_TO_DATE = "up_to_date"


@dataclasses.dataclass(frozen=True)
class TraceInfo:
    """One session trace as the index knows it."""

    agent: str
    title: str
    local_path: str
    remote_key: str
    url: str
    session_id: str | None = None
    cwd: str | None = None
    git_branch: str | None = None
    model: str | None = None
    first_ts: str | None = None
    last_ts: str | None = None
    #: Unix time of the last successful upload of this trace.
    uploaded_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``status --json`` and the control channel)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AgentInfo:
    """A detected agent: its roots and how many sessions it has."""

    name: str  #: registry name: "claude", "codex", "pi"
    display_name: str  #: "Claude Code", "Codex", "Pi"
    roots: tuple[str, ...]
    sessions: int
    enabled: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["roots"] = list(self.roots)
        return d


@dataclasses.dataclass(frozen=True)
class Status:
    """Everything a front end shows, captured at one instant."""

    state: SyncState
    paused: bool
    paused_until: float | None  #: Unix time; None with paused=True means "until resumed"
    pending: int  #: files waiting to upload (debouncing, queued or retrying)
    uploading: int  #: files in the batch being sent right now
    uploaded: int  #: files whose remote copy is in step with the local file
    destination: str
    destination_kind: str  #: "local folder" or "Hugging Face bucket"
    agents: tuple[AgentInfo, ...]
    last_upload_at: float | None
    last_error: str | None
    last_trace: TraceInfo | None
    signed_in_as: str | None = None
    redactions: dict[str, int] = dataclasses.field(default_factory=dict)
    issues: int = 0  #: files with a per-file error (unreadable, binary, rejected key)
    next_retry_at: float | None = None
    pid: int | None = None
    running: bool = True
    #: A browser link to the destination (the bucket or prefix page, or the folder's file://
    #: URL), from the sink; "" before the sink exists.
    destination_url: str = ""

    def to_json(self) -> dict[str, Any]:
        """The object ``traceagent status --json`` prints."""
        return {
            "state": self.state.value,
            "paused": self.paused,
            "paused_until": self.paused_until,
            "pending": self.pending,
            "uploading": self.uploading,
            "uploaded": self.uploaded,
            "destination": self.destination,
            "destination_kind": self.destination_kind,
            "destination_url": self.destination_url,
            "agents": [a.to_json() for a in self.agents],
            "last_upload_at": self.last_upload_at,
            "last_error": self.last_error,
            "last_trace": self.last_trace.to_json() if self.last_trace else None,
            "signed_in_as": self.signed_in_as,
            "redactions": dict(self.redactions),
            "issues": self.issues,
            "next_retry_at": self.next_retry_at,
            "pid": self.pid,
            "running": self.running,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Status:
        """Rebuild a Status sent over the control channel."""
        lt = d.get("last_trace")
        return cls(
            state=SyncState(d["state"]),
            paused=bool(d["paused"]),
            paused_until=d.get("paused_until"),
            pending=int(d["pending"]),
            uploading=int(d.get("uploading", 0)),
            uploaded=int(d["uploaded"]),
            destination=d["destination"],
            destination_kind=d.get("destination_kind", ""),
            destination_url=d.get("destination_url") or "",
            agents=tuple(
                AgentInfo(
                    name=a["name"],
                    display_name=a["display_name"],
                    roots=tuple(a["roots"]),
                    sessions=int(a["sessions"]),
                    enabled=bool(a["enabled"]),
                )
                for a in d.get("agents", [])
            ),
            last_upload_at=d.get("last_upload_at"),
            last_error=d.get("last_error"),
            last_trace=TraceInfo(**lt) if lt else None,
            signed_in_as=d.get("signed_in_as"),
            redactions=dict(d.get("redactions") or {}),
            issues=int(d.get("issues", 0)),
            next_retry_at=d.get("next_retry_at"),
            pid=d.get("pid"),
            running=bool(d.get("running", True)),
        )


def record_time(ts: str | None) -> float | None:
    """A record's ISO 8601 timestamp (``TraceInfo.last_ts``) as seconds since the epoch; naive
    means UTC; None when absent or unreadable."""
    if not ts:
        return None
    try:
        parsed = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()
