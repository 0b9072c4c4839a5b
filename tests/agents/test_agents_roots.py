"""Issue 12: one home each for the agents × roots loop and the redactor, and state read by name.

Pure checks (no daemon): a ``Root`` carries its agent; ``agents.agent_roots`` is the one loop
the engine, the scans and the CLI take their roots from; ``app.wiring.build_redactor`` is the
one redactor factory; queue rows, ledger reads and root matches have named fields.
"""

from __future__ import annotations

import ast
from pathlib import Path, PurePosixPath

import pytest

from conftest import write_config
from traceagent.agents import (
    AGENTS,
    agent_roots,
    all_roots,
    enabled_agents,
    enabled_roots,
    get_agent,
)
from traceagent.app.wiring import build_redactor, load_context, transform_factory
from traceagent.sync.roots import match_root
from traceagent.sync.scan import changed_files, pending_items
from traceagent.sync.state import Checked, PendingItem, StateDB

SRC = Path(__file__).resolve().parents[2] / "src" / "traceagent"

CONFIG = """\
redact = true
[agents.codex]
enabled = false
[agents.claude]
paths = ["{a}", "{b}"]
[redaction]
allowlist = ["sk-allowed-0123456789abcdef"]
[redaction.rules]
ticket = 'TICKET-(?P<secret>[0-9]{{6}})'
"""


def test_every_root_carries_its_agent(tmp_path: Path) -> None:
    """Default and configured roots hold the agent object itself, not a name to look up."""
    for agent in AGENTS:
        roots = agent.roots({}, tmp_path) + agent.roots({}, tmp_path, (tmp_path / "x", tmp_path / "y"))
        assert roots, agent.name
        for root in roots:
            assert root.agent is agent, (agent.name, root)


def test_agent_roots_is_the_one_loop(env: dict[str, str], tmp_path: Path) -> None:
    """Switched-off agents own their roots but are not synced; configured paths replace defaults."""
    a, b = tmp_path / "cc-a", tmp_path / "cc-b"
    write_config(env, CONFIG.format(a=a, b=b))
    ctx = load_context(env)
    listing = agent_roots(ctx.settings, ctx.environ)
    assert [e.agent for e in listing] == list(AGENTS)  # menu order, every agent
    by_name = {e.agent.name: e for e in listing}
    assert by_name["codex"].enabled is False and by_name["claude"].enabled is True
    assert [(r.path, r.remote) for r in by_name["claude"].roots] == [(a, "claude"), (b, "claude-2")]
    codex = set(by_name["codex"].roots)
    assert codex and len(codex) == 2
    enabled = enabled_roots(ctx.settings, ctx.environ)
    owners = all_roots(ctx.settings, ctx.environ)
    assert not codex & set(enabled)  # not synced...
    assert codex <= set(owners)  # ...but still the owner of its files
    assert owners == [r for e in listing for r in e.roots]
    assert enabled == [r for e in listing if e.enabled for r in e.roots]
    assert [x.name for x in enabled_agents(ctx.settings)] == [e.agent.name for e in listing if e.enabled]
    assert "codex" not in [x.name for x in enabled_agents(ctx.settings)]


def _calls(tree: ast.AST, attr: str) -> int:
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr
    )


def test_each_rule_has_one_home() -> None:
    """The agents × roots loop, the redactor factory and agent look-ups by a root's name live in
    one place each, so the copies cannot drift apart again."""
    roots_calls: dict[str, int] = {}
    from_settings: dict[str, int] = {}
    by_name_subscripts: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if n := _calls(tree, "roots"):
            roots_calls[rel] = n
        if n := _calls(tree, "from_settings"):
            from_settings[rel] = n
        by_name_subscripts += [
            rel
            for node in ast.walk(tree)
            if isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "BY_NAME"
        ]
    assert roots_calls == {"agents/__init__.py": 1}
    assert from_settings == {"app/wiring.py": 1}
    assert by_name_subscripts == ["agents/__init__.py"]  # get_agent: names from the ledger or config


def test_one_redactor_factory(env: dict[str, str], tmp_path: Path) -> None:
    """The engine's transform and ``traceagent redact`` get the same redactor: user rules, the
    allow-list and the token in use; the config check compiles the same rules without secrets."""
    token = "hf_" + "Q7xW2p9LmZ4kR8vT1yB6nC3d"
    env["HF_TOKEN"] = token
    write_config(env, CONFIG.format(a=tmp_path / "a", b=tmp_path / "b"))
    ctx = load_context(env)
    made = build_redactor(ctx.settings, ctx.environ, token=token)
    engine_side = transform_factory(ctx)("claude")
    assert engine_side is not None
    assert getattr(engine_side, "fingerprint", None) == made.fingerprint
    line = f'{{"a":"TICKET-123456","b":"{token}","c":"sk-allowed-0123456789abcdef"}}\n'.encode()
    out, counts = made(line)
    assert b"TICKET-123456" not in out and token.encode() not in out
    assert b"sk-allowed-0123456789abcdef" in out
    assert counts.get("ticket") == 1
    check = build_redactor(ctx.settings, own_secrets=False)  # what load_context compiles
    out, counts = check(line)
    assert b"TICKET-123456" not in out and token.encode() in out  # no own secrets: the token is not known


def test_queue_rows_ledger_reads_and_matches_have_names(env: dict[str, str], tmp_path: Path) -> None:
    """``pending_items`` keeps the agent's name (the ledger column), ``checked_stats`` and
    ``match_root`` are read by field."""
    write_config(env, "")
    ctx = load_context(env)
    claude_root = next(r for r in enabled_roots(ctx.settings, ctx.environ) if r.agent is get_agent("claude"))
    f = claude_root.path / "proj" / "s1.jsonl"
    f.parent.mkdir(parents=True)
    f.write_bytes(b'{"type":"user"}\n')
    m = match_root([claude_root], f)
    assert m is not None and m.root is claude_root and m.rel == PurePosixPath("proj/s1.jsonl")
    items = pending_items([f], lambda p: match_root([claude_root], p))
    assert items == [PendingItem(str(f), "claude", "claude/proj/s1.jsonl", True)]
    assert isinstance(items[0].agent, str)
    db = StateDB(tmp_path / "state.db")
    try:
        assert db.mark_pending(items) == 1
        row = db.row(str(f))
        assert row is not None and row.agent == "claude" and row.key == "claude/proj/s1.jsonl"
        st = f.stat()
        db.record_checked(str(f), st.st_size, st.st_mtime_ns, None)
        ck = db.checked_stats()[str(f)]
        assert isinstance(ck, Checked)
        assert (ck.size, ck.mtime_ns) == (st.st_size, st.st_mtime_ns)
        assert ck.status == "ok"
        queue, seen = changed_files(claude_root, claude_root.path, db.checked_stats())
        assert queue == [] and str(f) in seen  # in step: the fast path reads the fields
        with f.open("ab") as out:
            out.write(b'{"type":"user","n":2}\n')
        queue, _ = changed_files(claude_root, claude_root.path, db.checked_stats())
        assert queue == [f]
    finally:
        db.close()


@pytest.mark.parametrize("name", ["opencode", "cline"])
def test_exporting_roots_say_so_through_their_agent(name: str, tmp_path: Path) -> None:
    """The dry run and the scans ask ``root.agent.exports`` directly."""
    agent = get_agent(name)
    assert all(r.agent.exports for r in agent.roots({}, tmp_path))
