"""The debouncer: a quiet period, and a maximum delay for files that keep changing."""

from __future__ import annotations

import pytest

from traceagent.sync.debounce import Debouncer


def test_debouncer_quiet_period_and_max_delay() -> None:
    d: Debouncer[str] = Debouncer(quiet=10, max_delay=60)
    d.touch("a", 0)
    assert d.pop_ready(9.9) == [] and d.next_deadline() == 10
    d.touch("a", 9)  # still changing: the quiet period restarts
    assert d.pop_ready(18) == []
    assert d.pop_ready(19) == ["a"]
    # A file that never goes quiet is released by the max delay.
    for t in range(0, 61, 5):
        d.touch("b", t)
        ready = d.pop_ready(t)
        if t < 60:
            assert ready == []
    assert "b" not in d  # released at t=60
    assert d.next_deadline() is None
    with pytest.raises(ValueError, match="quiet"):
        Debouncer(quiet=10, max_delay=5)
