"""What each agent syncs and what it reads from its records: allow-lists, roots, metadata."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from conftest import CORPUS
from traceagent.agents import BY_NAME, SessionMeta


@pytest.mark.parametrize(
    ("agent", "rel", "allowed"),
    [
        ("claude", "-Users-me-app/0b1c2d3e-aaaa-bbbb-cccc-1234567890ab.jsonl", True),
        ("claude", "-Users-me-app/agent-3be551df.jsonl", True),
        ("claude", "-Users-me-app/0b1c/subagents/agent-a36efb2a1231c41e2.jsonl", True),
        ("claude", "-Users-me-app/0b1c/subagents/agent-a36efb2a1231c41e2.meta.json", True),
        ("claude", "-Users-me-app/memory/notes.jsonl", False),
        ("claude", "-Users-me-app/0b1c/tool-results/out.jsonl", False),
        ("claude", "-Users-me-app/sessions-index.json", False),
        ("claude", "-Users-me-app/settings.json", False),
        ("claude", "-Users-me-app/.credentials.json", False),
        ("claude", "history.jsonl", False),
        ("claude", "loose.jsonl", False),
        ("claude", "-Users-me-app/x.jsonl.tmp-123", False),
        ("claude", "-Users-me-app/.x.jsonl.swp", False),
        ("claude", "-Users-me-app/x.jsonl.lock", False),
        ("codex", "2026/02/23/rollout-2026-02-23T12-41-04-019c8a4d.jsonl", True),
        ("codex", "rollout-2026-02-23T12-41-04-019c8a4d.jsonl", True),
        ("codex", "history.jsonl", False),
        ("codex", "auth.json", False),
        ("codex", "2026/02/23/notes.jsonl", False),
        ("pi", "--home-me-app--/2026-03-01T10-00-00-000Z_019c.jsonl", True),
        ("pi", "--home-me-app--/settings.json", False),
        ("pi", "--home-me-app--/x.jsonl.tmp", False),
    ],
)
def test_allow_list(agent: str, rel: str, allowed: bool) -> None:
    assert BY_NAME[agent].is_transcript(PurePosixPath(rel)) is allowed


def test_roots_honour_agent_variables(tmp_path: Path) -> None:
    env = {
        "CLAUDE_CONFIG_DIR": str(tmp_path / "cc"),
        "CODEX_HOME": str(tmp_path / "cx"),
        "PI_CODING_AGENT_DIR": "~/pi",
    }
    home = tmp_path / "home"
    assert [r.path for r in BY_NAME["claude"].default_roots(env, home)] == [tmp_path / "cc" / "projects"]
    codex = BY_NAME["codex"].default_roots(env, home)
    assert [(r.path, r.remote) for r in codex] == [
        (tmp_path / "cx" / "sessions", "codex"),
        (tmp_path / "cx" / "archived_sessions", "codex-archived"),
    ]
    assert BY_NAME["pi"].default_roots(env, home)[0].path == Path("~/pi").expanduser() / "sessions"
    assert BY_NAME["claude"].default_roots({}, home)[0].path == home / ".claude" / "projects"


def _meta(agent: str, path: Path) -> SessionMeta:
    meta = SessionMeta()
    data = path.read_bytes()
    BY_NAME[agent].feed(meta, data[: data.rfind(b"\n") + 1])
    return meta


def test_claude_metadata_from_records() -> None:
    d = CORPUS / "claude-code/projects"
    m = _meta(
        "claude",
        d / "-Users-dain-workspace-claude-code-log-sample/326189cf-5676-4237-8cde-1ce80aae4a9f.jsonl",
    )
    assert m.session_id == "326189cf-5676-4237-8cde-1ce80aae4a9f"
    assert m.cwd == "/Users/dain/workspace/claude-code-log"
    assert m.title == "Claude Code Log: Timestamp-Based Caching Implementation"  # from a summary line
    assert m.model == "claude-sonnet-4-20250514"
    assert m.first_ts == "2025-07-13T21:17:00.244Z" and m.last_ts is not None and m.last_ts >= m.first_ts
    m = _meta("claude", d / "-src-experiments-claude_p/29ccd257-68b1-427f-ae5f-6524b7cb6f20.jsonl")
    assert m.title is None
    assert m.display_title.startswith("Use the Explore task in sub-agents")  # first prompt, shortened
    assert len(m.display_title) <= 80
    m = _meta("claude", d / "-experiments-ideas/03eb5929-52b3-4b13-ada3-b93ae35806b8.jsonl")
    assert (m.git_branch, m.model) == ("HEAD", "claude-opus-4-6")


def test_codex_and_pi_metadata() -> None:
    f = (
        CORPUS
        / "codex/sessions/2026/02/23/rollout-2026-02-23T20-34-25-019c8bfe-ec25-79e0-97d7-bda6a9c575ff.jsonl"
    )
    m = _meta("codex", f)
    assert m.session_id == "019c8bfe-ec25-79e0-97d7-bda6a9c575ff"
    assert (m.git_branch, m.model) == ("main", "gpt-5.3-codex")
    assert m.first_prompt is not None and m.first_ts is not None
    v3 = CORPUS / "pi/kvsankar-agent-history/session-01.jsonl"
    m = _meta("pi", v3)
    header = json.loads(v3.read_text().splitlines()[0])
    assert m.session_id == header["id"] and m.cwd == header["cwd"]
    info = [json.loads(x) for x in v3.read_text().splitlines() if '"session_info"' in x]
    assert info and m.title == info[-1]["name"]


def test_metadata_is_incremental_and_tolerates_bad_lines() -> None:
    f = (
        CORPUS
        / "codex/sessions/2026/02/23/rollout-2026-02-23T12-41-04-019c8a4d-8f45-7010-8b5d-7fad920aa6f9.jsonl"
    )
    data = f.read_bytes()
    lines = data.splitlines(keepends=True)
    whole = _meta("codex", f)
    meta = SessionMeta()
    agent = BY_NAME["codex"]
    agent.feed(meta, b"".join(lines[:5]) + b"{not json\n" + b"\xff\xfe garbage\n")
    agent.feed(meta, b"".join(lines[5:]))
    assert (meta.session_id, meta.cwd, meta.model, meta.first_prompt, meta.last_ts) == (
        whole.session_id,
        whole.cwd,
        whole.model,
        whole.first_prompt,
        whole.last_ts,
    )
