"""The sink belongs to the engine thread alone (issue 12: the race in ``Engine._url_for``).

Front ends (the tray's refresh, the control channel) call ``status()`` and ``recent_traces()``
from their own threads. They must never build the sink (with the desktop engine: a keyring
lookup and a ``whoami``) nor assign it: they read what the engine thread published, and before
the first connect the links come from the destination as configured or as last used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import bucket_dir, lay_out_corpus, wait_for, write_config
from traceagent.app.desktop import DesktopEngine
from traceagent.app.wiring import Context, SinkFactory, load_context
from traceagent.sinks.base import Sink
from traceagent.status import SyncState

FAST = "debounce_seconds = 0.3\nmax_delay_seconds = 1.5\nredact = false\n"


class GatedFactory(SinkFactory):
    """The real destination decision, recording which thread asks; on the engine thread it
    waits at a gate, so the test can act while the engine is connecting."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.threads: list[str] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self) -> Sink:
        self.threads.append(threading.current_thread().name)
        if threading.current_thread().name == "traceagent-engine":
            self.entered.set()
            self.gate.wait(30)
        return super().__call__()


@pytest.fixture
def engines() -> Iterator[list[DesktopEngine]]:
    made: list[DesktopEngine] = []
    yield made
    for e in made:
        e._factory.gate.set()  # type: ignore[attr-defined]
        e.stop()


def _seed(env: dict[str, str]) -> dict[Path, str]:
    """Upload the corpus once in the foreground, so the ledger holds traces with links."""
    expected = lay_out_corpus(Path(env["HOME"]))
    ctx = load_context(env)
    engine = DesktopEngine(ctx, SinkFactory(ctx))
    try:
        assert engine.run_pass().uploaded == len(expected)
    finally:
        engine.stop()
    return expected


def test_front_ends_never_build_the_sink_while_the_engine_connects(
    env: dict[str, str], engines: list[DesktopEngine]
) -> None:
    write_config(env, FAST)
    _seed(env)
    ctx = load_context(env)
    factory = GatedFactory(ctx)
    engine = DesktopEngine(ctx, factory)
    engines.append(engine)
    engine.start()
    assert factory.entered.wait(20), "the engine thread never asked for its sink"

    # The tray and the control channel ask while the engine thread is inside the factory.
    seen: list[object] = []

    def front_end() -> None:
        seen.append(engine.status())
        seen.append(engine.recent_traces(5))

    tray = threading.Thread(target=front_end, name="tray-refresh")
    tray.start()
    tray.join(20)
    assert not tray.is_alive()
    assert factory.threads == ["traceagent-engine"], factory.threads

    # Links before the first connect are still right (the folder the traces went to).
    st, recent = seen
    assert st.last_trace is not None  # type: ignore[attr-defined]
    folder = bucket_dir(env)
    assert st.last_trace.url == (folder / st.last_trace.remote_key).as_uri()  # type: ignore[attr-defined]
    assert all(t.url == (folder / t.remote_key).as_uri() for t in recent)  # type: ignore[attr-defined]

    factory.gate.set()
    assert wait_for(lambda: engine.status().state is SyncState.UP_TO_DATE, 20), engine.status()
    engine.status()
    engine.recent_traces()
    assert factory.threads == ["traceagent-engine"], "the sink is built once, by the engine thread"


def test_hub_links_before_the_first_connect_need_no_token_lookup(
    env: dict[str, str], engines: list[DesktopEngine]
) -> None:
    """A Hub user's traces: the links come from the destination last used, with no whoami."""
    write_config(env, FAST)
    _seed(env)
    ctx = load_context(env)
    seed = DesktopEngine(ctx, SinkFactory(ctx))
    seed.db.destination = "hf://buckets/alice/agent-sessions"  # as a Hub daemon leaves it
    seed.stop()
    endpoint = "http://127.0.0.1:9"  # nothing listens: a whoami from the front end would fail
    env = {**env, "HF_TOKEN": "hf_" + "a" * 34, "HF_ENDPOINT": endpoint}
    ctx = load_context(env)
    factory = GatedFactory(ctx)
    engine = DesktopEngine(ctx, factory)
    engines.append(engine)
    engine.start()
    assert factory.entered.wait(20)
    recent = engine.recent_traces(3)
    assert recent and all(
        t.url == f"{endpoint}/buckets/alice/agent-sessions/tree/{t.remote_key}" for t in recent
    ), [t.url for t in recent]
    st = engine.status()
    assert st.destination == "hf://buckets/alice/agent-sessions"
    assert st.destination_url == f"{endpoint}/buckets/alice/agent-sessions"
    assert factory.threads == ["traceagent-engine"], factory.threads
