"""The shared STS writer and validator, the read-only SQLite helper, the registry and detection."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path, PurePosixPath

import pytest

from stsvalidate import isolate_agents, messages
from traceagent.agents import AGENTS, BY_NAME
from traceagent.agents.aider import Aider
from traceagent.agents.cline import vscode_user_dirs
from traceagent.agents.goose import goose_data_dirs
from traceagent.agents.hermes import hermes_root
from traceagent.agents.sqlite_ro import read_only, sidecar_source, wal_token
from traceagent.agents.sts import Message, Session, ToolCall, json_args, render, to_ms, validate
from traceagent.config import KNOWN_AGENTS, parse_settings

HEADER = b'{"type":"session","harness":"x","id":"s1"}\n'


def line(message: dict[str, object]) -> bytes:
    return json.dumps({"type": "message", "message": message}).encode() + b"\n"


# -- validator -------------------------------------------------------------------------------


def test_validator_accepts_the_hub_docs_example() -> None:
    data = (
        b'{"type":"session","harness":"my-agent","id":"abc123","name":"what time is it"}\n'
        b'{"type":"message","message":{"role":"user","content":"what time is it?"}}\n'
        b'{"type":"message","message":{"role":"assistant","content":"","toolCalls":[{"id":"t1","function":{"name":"get_time","arguments":"{}"}}]}}\n'
        b'{"type":"message","message":{"role":"tool","toolCallId":"t1","content":"2026-07-01T15:00:00Z"}}\n'
        b'{"type":"message","message":{"role":"assistant","content":"it is 15:00 UTC"}}\n'
    )
    assert validate(data) == []


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "empty file"),
        (HEADER[:-1], "no newline"),
        (line({"role": "user", "content": "hi"}) + HEADER, "header must have type 'session'"),
        (b'{"type":"session","id":"s1"}\n', "non-empty 'harness'"),
        (b'{"type":"session","harness":"x"}\n', "non-empty 'id'"),
        (HEADER + b"not json\n", "line 2: not JSON"),
        (HEADER + line({"role": "robot", "content": ""}), "role 'robot'"),
        (HEADER + line({"role": "user"}), "content must be a string"),
        (HEADER + line({"role": "user", "content": "x", "timestamp": "2026-01-01"}), "epoch milliseconds"),
        (HEADER + line({"role": "tool", "content": "x"}), "needs a toolCallId"),
        (
            HEADER + line({"role": "tool", "content": "x", "toolCallId": "c9"}),
            "refers to no earlier tool call",
        ),
        (
            HEADER
            + line({"role": "tool", "content": "x", "toolCallId": "c1"})
            + line(
                {
                    "role": "assistant",
                    "content": "",
                    "toolCalls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
                }
            ),
            "refers to no earlier tool call",
        ),
        (
            HEADER
            + line(
                {
                    "role": "assistant",
                    "content": "",
                    "toolCalls": [{"id": "c1", "function": {"name": "f", "arguments": {}}}],
                }
            ),
            "must be a JSON string",
        ),
        (
            HEADER
            + line(
                {
                    "role": "assistant",
                    "content": "",
                    "toolCalls": [{"id": "c1", "function": {"name": "f", "arguments": "{"}}],
                }
            ),
            "arguments are not JSON",
        ),
        (
            HEADER + line({"role": "user", "content": "x", "toolCalls": []}),
            "toolCalls must be a list on an assistant",
        ),
        (HEADER + line({"role": "user", "content": "x", "toolCallId": "c1"}), "only for role 'tool'"),
    ],
)
def test_validator_rejects(data: bytes, problem: str) -> None:
    problems = validate(data)
    assert any(problem in p for p in problems), problems


# -- writer ----------------------------------------------------------------------------------


def test_writer_output_is_valid_and_keeps_order_roles_and_fields() -> None:
    session = Session(
        harness="x",
        id="s1",
        name="Title",
        cwd="/home/me/app",
        messages=[
            Message("user", "do it", timestamp=1000),
            Message("assistant", "", reasoning="think", tool_calls=[ToolCall("c1", "bash", '{"cmd":"ls"}')]),
            Message("tool", "a b", tool_call_id="c1", timestamp=3000),
            Message("assistant", "done", model="m1", timestamp=4000),
        ],
    )
    data = render(session)
    head = json.loads(data.split(b"\n")[0])
    assert head == {
        "type": "session",
        "harness": "x",
        "id": "s1",
        "name": "Title",
        "cwd": "/home/me/app",
        "timestamp": "1970-01-01T00:00:01.000Z",
    }
    msgs = messages(data)
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant"]
    assert msgs[1]["reasoningContent"] == "think"
    assert msgs[1]["toolCalls"] == [{"id": "c1", "function": {"name": "bash", "arguments": '{"cmd":"ls"}'}}]
    assert msgs[2] == {"role": "tool", "content": "a b", "toolCallId": "c1", "timestamp": 3000}
    assert msgs[3]["model"] == "m1"


def test_writer_repairs_orphan_results_drops_empty_messages_and_bad_text() -> None:
    session = Session(
        harness="x",
        id="s1",
        messages=[
            Message("assistant", "  "),
            Message("tool", "lost call", tool_call_id="gone", tool_name="read"),
            Message("tool", "no id at all"),
            Message("narrator", "odd role"),
            Message("user", "emoji half \ud83d"),
        ],
    )
    msgs = messages(render(session))
    assert [m["role"] for m in msgs] == ["assistant", "tool", "assistant", "tool", "system", "user"]
    assert msgs[0]["toolCalls"][0]["function"]["name"] == "read"
    assert msgs[1]["toolCallId"] == "gone"
    assert msgs[4]["content"] == "odd role"


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("2026-03-01T10:00:00Z", 1772359200000),
        ("2026-03-01T10:00:00.250+00:00", 1772359200250),
        ("2026-03-01 10:00:00", 1772359200000),
        ("2026-03-01T10:00:00.1Z", 1772359200100),
        ("2026-03-01T10:00:00.123456789Z", 1772359200123),
        ("2026-03-01T12:00:00.5+02:00", 1772359200500),
        (1772359200, 1772359200000),
        (1772359200.5, 1772359200500),
        (1772359200000, 1772359200000),
        ("1772359200000", 1772359200000),
        ("soon", None),
        (None, None),
        (True, None),
        (-5, None),
    ],
)
def test_to_ms(value: object, ms: int | None) -> None:
    assert to_ms(value) == ms


def test_json_args() -> None:
    assert json_args({"a": 1}) == '{"a": 1}'
    assert json_args('{"a":1}') == '{"a":1}'
    assert json.loads(json_args("ls -la")) == "ls -la"
    assert json_args(None) == "{}"


# -- read-only SQLite ------------------------------------------------------------------------


def make_wal_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.execute("INSERT INTO t VALUES ('checkpointed')")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("INSERT INTO t VALUES ('in the wal')")
    conn.commit()
    return conn


def test_read_only_sees_wal_commits_and_never_writes(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    writer = make_wal_db(db)
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    with read_only(db) as conn:
        assert [r[0] for r in conn.execute("SELECT v FROM t")] == ["checkpointed", "in the wal"]
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("INSERT INTO t VALUES ('no')")
    after = {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir() if p.name != "x.db-shm"
    }
    assert after == {k: v for k, v in before.items() if k != "x.db-shm"}
    token = wal_token(db)
    writer.execute("INSERT INTO t VALUES ('more')")
    writer.commit()
    assert wal_token(db) != token
    writer.close()


def test_read_only_creates_no_files_beside_a_closed_wal_database(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    make_wal_db(db).close()  # closing checkpoints and removes -wal/-shm
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]
    with read_only(db) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]


def test_read_only_falls_back_to_a_copy_when_it_cannot_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crashed agent's -wal without -shm, and a read-only open that fails: the copy is read."""
    import traceagent.agents.sqlite_ro as ro

    writer = make_wal_db(tmp_path / "live.db")
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for name in ("live.db", "live.db-wal"):
        (crashed / name.replace("live", "x")).write_bytes((tmp_path / name).read_bytes())
    writer.close()
    real = ro._connect
    uris: list[str] = []

    def flaky(uri: str) -> sqlite3.Connection:
        uris.append(uri)
        if len(uris) == 1:
            raise sqlite3.OperationalError("unable to open database file")
        return real(uri)

    monkeypatch.setattr(ro, "_connect", flaky)
    before = sorted((p.name, p.read_bytes()) for p in crashed.iterdir())
    with read_only(crashed / "x.db") as conn:
        assert [r[0] for r in conn.execute("SELECT v FROM t")] == ["checkpointed", "in the wal"]
    assert "mode=ro" in uris[0] and str(crashed) not in uris[1]
    assert sorted((p.name, p.read_bytes()) for p in crashed.iterdir()) == before
    assert not list(Path(uris[1].removeprefix("file://")).parent.parent.glob("traceagent-db-*/x.db"))


def test_read_only_errors_are_retryable(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(OSError, match=r"cannot read bad\.db"), read_only(bad) as conn:
        conn.execute("SELECT 1").fetchone()
    with pytest.raises(FileNotFoundError), read_only(tmp_path / "none.db"):
        pass


def test_sidecar_source_is_idempotent() -> None:
    for name in ("x.db-wal", "x.db-shm", "x.db-journal", "x.db"):
        once = sidecar_source(PurePosixPath(name))
        assert once == PurePosixPath("x.db") and sidecar_source(once) == once


# -- registry, config, detection -------------------------------------------------------------


def test_every_agent_is_configurable_and_unique() -> None:
    names = [a.name for a in AGENTS]
    assert len(set(names)) == len(names) == len(KNOWN_AGENTS)
    assert set(names) == set(KNOWN_AGENTS)
    assert len({a.remote for a in AGENTS}) == len(AGENTS)
    text = "".join(f'[agents."{n}"]\nenabled = false\n' for n in names)
    settings = parse_settings(text, Path("c.toml"))
    assert all(not settings.agent(n).enabled for n in names)


@pytest.mark.parametrize("agent", [a.name for a in AGENTS if a.exports])
def test_source_of_is_idempotent(agent: str) -> None:
    a = BY_NAME[agent]
    for rel in (
        "opencode.db-wal",
        "storage/session/p1/ses_1.json",
        "storage/message/ses_1/msg_1.json",
        "sessions.db-wal",
        "profiles/work/state.db-wal",
        "abc/events.jsonl",
        "abc/workspace.yaml",
        "1700000000000/ui_messages.json",
        "1700000000000/api_conversation_history.json",
        "p/chats/session-x.jsonl",
    ):
        once = a.source_of(PurePosixPath(rel))
        assert a.source_of(once) == once, (agent, rel)


@pytest.mark.parametrize("agent", [a.name for a in AGENTS])
@pytest.mark.parametrize(
    "rel",
    [
        ".credentials.json",
        "auth.json",
        "secrets.json",
        "settings.json",
        ".env",
        "x/.env",
        "history.jsonl",
        "profiles/work/.env",
        "storage/session_share/ses_1.json",
        "1700000000000/settings.json",
        "oauth_creds.json",
        "opencode.db-shm",
        "sessions.db-shm",
        "state.db-shm",
        "x/session-1.jsonl.tmp-123",
    ],
)
def test_no_agent_allows_credentials_settings_or_shm(agent: str, rel: str) -> None:
    assert not BY_NAME[agent].is_transcript(PurePosixPath(rel))


def test_default_roots_honour_each_agents_variables(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        "GEMINI_CLI_HOME": str(tmp_path / "g"),
        "COPILOT_HOME": str(tmp_path / "cp"),
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "QWEN_RUNTIME_DIR": str(tmp_path / "q"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "GOOSE_PATH_ROOT": str(tmp_path / "goose"),
        "HERMES_HOME": str(tmp_path / "hermes" / "profiles" / "work"),
        "CLINE_DATA_DIR": str(tmp_path / "cline"),
    }

    def roots(name: str) -> list[tuple[Path, str]]:
        return [(r.path, r.remote) for r in BY_NAME[name].default_roots(env, home)]

    assert roots("droid") == [(home / ".factory/sessions", "droid")]
    assert roots("gemini") == [(tmp_path / "g/.gemini/tmp", "gemini")]
    assert roots("copilot") == [
        (tmp_path / "cp/session-state", "copilot"),
        (tmp_path / "cfg/copilot/session-state", "copilot-xdg"),
    ]
    assert roots("qwen") == [(tmp_path / "q/projects", "qwen")]
    assert roots("opencode") == [(tmp_path / "data/opencode", "opencode")]
    assert roots("goose") == [(tmp_path / "goose/data/sessions", "goose")]
    assert roots("hermes") == [(tmp_path / "hermes", "hermes")]  # a profile path means its root
    assert roots("cursor-agent") == [(home / ".cursor/projects", "cursor-agent")]
    assert roots("cline")[-1] == (tmp_path / "cline/tasks", "cline-cli")
    assert roots("cline")[0][0].parts[-4:] == ("User", "globalStorage", "saoudrizwan.claude-dev", "tasks")
    assert roots("roo")[0][0].parts[-2:] == ("rooveterinaryinc.roo-cline", "tasks")
    assert roots("aider") == []
    # Without the variables: the documented defaults under HOME.
    assert [r.path for r in BY_NAME["qwen"].default_roots({"QWEN_HOME": "/qh"}, home)] == [
        Path("/qh/projects")
    ]
    assert [r.path for r in BY_NAME["gemini"].default_roots({}, home)] == [home / ".gemini/tmp"]
    assert BY_NAME["copilot"].default_roots({}, home)[0].path == home / ".copilot/session-state"
    assert [r.path for r in BY_NAME["opencode"].default_roots({}, home)] == [home / ".local/share/opencode"]
    assert BY_NAME["cline"].default_roots({"CLINE_DIR": "/cd"}, home)[-1].path == Path("/cd/data/tasks")
    assert BY_NAME["cline"].default_roots({}, home)[-1].path == home / ".cline/data/tasks"


def test_per_os_defaults(tmp_path: Path) -> None:
    home = tmp_path
    assert goose_data_dirs({}, home, "linux") == [home / ".local/share/goose"]
    assert goose_data_dirs({}, home, "darwin") == [
        home / ".local/share/goose",
        home / "Library/Application Support/Block/goose",
    ]
    assert goose_data_dirs({"APPDATA": "/w/Roaming"}, home, "win32") == [Path("/w/Roaming/Block/goose/data")]
    assert hermes_root({}, home, "linux") == home / ".hermes"
    assert hermes_root({"LOCALAPPDATA": "/w/Local"}, home, "win32") == Path("/w/Local/hermes")
    assert hermes_root({"HERMES_HOME": "/opt/data"}, home, "linux") == Path("/opt/data")
    assert hermes_root({"HERMES_DATA_DIR_SUFFIX": "-dev"}, home, "linux") == home / ".hermes-dev"
    assert vscode_user_dirs({}, home, "linux")[0] == ("", home / ".config/Code/User")
    assert vscode_user_dirs({}, home, "darwin")[1] == (
        "insiders",
        home / "Library/Application Support/Code - Insiders/User",
    )
    assert vscode_user_dirs({"APPDATA": "/w/R"}, home, "win32")[2] == ("vscodium", Path("/w/R/VSCodium/User"))


def test_aider_is_opt_in_through_configured_repositories(tmp_path: Path) -> None:
    aider = Aider()
    assert aider.roots({}, tmp_path) == []
    repo = tmp_path / "app"
    roots = aider.roots({}, tmp_path, (repo, tmp_path / "lib"))
    assert [(r.path, r.remote) for r in roots] == [(repo, "aider"), (tmp_path / "lib", "aider-2")]
    assert aider.is_transcript(PurePosixPath(".aider.chat.history.md"))
    assert aider.is_transcript(PurePosixPath("team.chat.history.md"))
    assert not aider.is_transcript(PurePosixPath(".aider.input.history"))
    assert not aider.is_transcript(PurePosixPath("sub/.aider.chat.history.md"))


def test_only_installed_agents_are_detected(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import write_config
    from traceagent.app.desktop import build_engine
    from traceagent.app.wiring import load_context

    isolate_agents(env, monkeypatch)
    home = Path(env["HOME"])
    write_config(env, "")
    (home / ".gemini/tmp").mkdir(parents=True)
    (home / ".local/share/opencode").mkdir(parents=True)
    engine, _ = build_engine(load_context(env))
    try:
        assert [a.name for a in engine.agents()] == ["gemini", "opencode"]
    finally:
        engine.db.close()
