"""A stand-in for ``traceagent run``: the real tray (``tray.run_tray``) over a fake engine.

The unit tests import :class:`FakeEngine`; the end-to-end test runs this file as a
process under Xvfb. The fake engine follows the engine facade (``traceagent.sync.engine``):

* every call is appended to ``$TRACEAGENT_E2E_CALLS`` (JSON lines) so a test can see it;
* ``open_url`` goes through :mod:`webbrowser`, so ``$BROWSER`` decides what opens it;
* the test steers its state by writing ``$TRACEAGENT_E2E_CONTROL`` (a JSON object of
  Status fields plus a ``seq`` number); each new ``seq`` is applied and the listeners run
  from the engine's own thread, as the real engine does.

Exit code: 0 after Quit from the tray, 3 when ``run_tray`` found no usable tray.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

from traceagent.status import AgentInfo, Status, SyncState, TraceInfo

BUCKET = "hf://buckets/alice/agent-sessions"
VIEWER = "https://huggingface.co/buckets/alice/agent-sessions/tree/"


class FakeUserError(Exception):
    """Same shape as ``traceagent.errors.UserError``: a user-facing ``.message``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def make_trace(i: int, agent: str = "claude", title: str | None = None, age: float = 0.0) -> TraceInfo:
    key = f"{agent}/-home-alice-proj/session-{i}.jsonl"
    return TraceInfo(
        agent=agent,
        title=title or f"Fix the flaky test #{i}",
        local_path=f"/home/alice/.claude/projects/-home-alice-proj/session-{i}.jsonl",
        remote_key=key,
        url=VIEWER + key,
        uploaded_at=time.time() - age,
    )


class FakeEngine:
    """An in-memory engine with the facade's methods; records calls."""

    def __init__(self, calls_path: Path | None = None, home: Path | None = None) -> None:
        home = home or Path(os.environ.get("TRACEAGENT_E2E_HOME", "/tmp/traceagent-e2e-home"))
        self.config_path = home / "config.toml"
        self.log_path = home / "traceagent.log"
        self.calls_path = calls_path
        self.calls: list[dict[str, Any]] = []
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.autostart: bool | None = False
        self.traces = [
            make_trace(1, title="Fix the flaky test", age=120),
            make_trace(2, agent="codex", title="Add a --dry-run flag to sync", age=3 * 3600),
            make_trace(3, title="Explain the ledger schema", age=26 * 3600),
        ]
        self.fields: dict[str, Any] = {
            "state": SyncState.UP_TO_DATE,
            "paused": False,
            "paused_until": None,
            "pending": 0,
            "uploading": 0,
            "uploaded": 1204,
            "destination": BUCKET,
            "destination_kind": "Hugging Face bucket",
            "agents": (
                AgentInfo("claude", "Claude Code", ("/home/alice/.claude/projects",), 42, True),
                AgentInfo("codex", "Codex", ("/home/alice/.codex/sessions",), 7, True),
            ),
            "last_upload_at": time.time() - 120,
            "last_error": None,
            "last_trace": self.traces[0],
            "signed_in_as": "alice",
        }
        self.stopped = False

    # -- recording ----------------------------------------------------------------------

    def _record(self, method: str, *args: Any) -> None:
        entry = {"method": method, "args": list(args), "t": time.time()}
        self.calls.append(entry)
        if self.calls_path is not None:
            with self.calls_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def _changed(self) -> None:
        for cb in list(self._listeners):
            cb()

    def set(self, **fields: Any) -> None:
        """Change status fields and tell the listeners (test helper)."""
        with self._lock:
            if "state" in fields:
                fields["state"] = SyncState(fields["state"])
            self.fields.update(fields)
        self._changed()

    # -- the facade ---------------------------------------------------------------------

    def status(self) -> Status:
        with self._lock:
            return Status(**self.fields)

    def recent_traces(self, limit: int = 10) -> list[TraceInfo]:
        return self.traces[:limit]

    def add_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def pause(self, until: float | None = None) -> None:
        self._record("pause", until)
        self.set(state=SyncState.PAUSED, paused=True, paused_until=until)

    def resume(self) -> None:
        self._record("resume")
        self.set(state=SyncState.UP_TO_DATE, paused=False, paused_until=None)

    def sync_now(self) -> None:
        self._record("sync_now")

    def set_agent_enabled(self, name: str, enabled: bool) -> None:
        self._record("set_agent_enabled", name, enabled)
        with self._lock:
            self.fields["agents"] = tuple(
                dataclasses.replace(a, enabled=enabled) if a.name == name else a
                for a in self.fields["agents"]
            )
        self._changed()

    def sign_in(self, token: str) -> str:
        self._record("sign_in", "<redacted>" if token else "")
        if token == "hf_bad":
            raise FakeUserError("Hugging Face rejected this token (401 Unauthorized).")
        self.set(state=SyncState.UP_TO_DATE, signed_in_as="alice", last_error=None)
        return "alice"

    def sign_out(self) -> None:
        self._record("sign_out")
        self.set(signed_in_as=None)

    def open_url(self, url: str) -> None:
        self._record("open_url", url)
        webbrowser.open(url)

    def stop(self) -> None:
        self._record("stop")
        time.sleep(0.2)  # "finishes the upload in flight"
        self.stopped = True

    def autostart_enabled(self) -> bool | None:
        return self.autostart

    def set_autostart(self, enabled: bool) -> None:
        self._record("set_autostart", enabled)
        self.autostart = enabled
        self._changed()


def _follow_control(engine: FakeEngine, path: Path) -> None:
    """Engine thread: apply each new control object the test writes."""
    seen = None
    while not engine.stopped:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("seq") != seen:
            seen = data.pop("seq", None)
            bumps = int(data.pop("bumps", 1))
            engine.set(**data)
            for _ in range(bumps - 1):  # extra "status may have changed" calls
                engine._changed()
                time.sleep(0.05)
        time.sleep(0.05)


def main() -> int:
    logging.basicConfig(
        level=logging.DEBUG if os.environ.get("TRACEAGENT_E2E_DEBUG") else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from traceagent.tray import icon as tray

    calls = os.environ.get("TRACEAGENT_E2E_CALLS")
    engine = FakeEngine(Path(calls) if calls else None)
    control = os.environ.get("TRACEAGENT_E2E_CONTROL")
    if control:
        threading.Thread(target=_follow_control, args=(engine, Path(control)), daemon=True).start()
    ok = tray.run_tray(engine, host_wait=float(os.environ.get("TRACEAGENT_E2E_HOST_WAIT", "10")))
    logging.getLogger("tray_e2e_app").info("run_tray returned %s", ok)
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
