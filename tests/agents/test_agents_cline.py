"""Cline and Roo Code: whole-JSON task folders (VS Code extension storage and the Cline CLI)."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from stsvalidate import header, messages, only, tool_pairs, write_json
from traceagent.agents import BY_NAME

TASK = "1776679200000"  # the task id is its creation time in ms
MS0 = 1776679200000

API = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "<task>\nrename foo to bar\n</task>"},
            {
                "type": "text",
                "text": "<environment_details>\n# VSCode Visible Files\nsrc/foo.ts\n</environment_details>",
            },
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "I'll search for foo."},
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "search_files",
                "input": {"path": "src", "regex": "foo"},
            },
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01",
                "content": [{"type": "text", "text": "src/foo.ts:1"}],
            },
            {"type": "text", "text": "<environment_details>\n...\n</environment_details>"},
        ],
    },
    {"role": "assistant", "content": [{"type": "text", "text": "Renamed."}]},
]

UI = [
    {"ts": MS0, "type": "say", "say": "task", "text": "rename foo to bar"},
    {"ts": MS0 + 2000, "type": "say", "say": "api_req_started", "text": "{}"},
    {"ts": MS0 + 4000, "type": "ask", "ask": "tool", "text": "{}"},
    {"ts": MS0 + 6000, "type": "say", "say": "api_req_started", "text": "{}"},
    {"ts": MS0 + 7000, "type": "say", "say": "completion_result", "text": "Renamed."},
]

META = {
    "files_in_context": [{"path": "src/foo.ts", "record_state": "active"}],
    "model_usage": [
        {"ts": MS0, "model_id": "claude-sonnet-4-5", "model_provider_id": "anthropic", "mode": "act"},
        {"ts": MS0 + 5000, "model_id": "claude-opus-4-6", "model_provider_id": "anthropic", "mode": "act"},
    ],
}


def make_task(tasks: Path, task_id: str = TASK) -> Path:
    folder = tasks / task_id
    write_json(folder / "api_conversation_history.json", API)
    write_json(folder / "ui_messages.json", UI)
    write_json(folder / "task_metadata.json", META)
    write_json(folder / "settings.json", {"apiKey": "sk-ant-in-settings"})
    write_json(
        tasks.parent / "state/taskHistory.json",
        [{"id": task_id, "ts": MS0, "task": "rename foo to bar", "cwdOnTaskInitialization": "/home/me/proj"}],
    )
    return folder


@pytest.mark.parametrize("agent", ["cline", "roo"])
def test_task_folder_export(tmp_path: Path, agent: str) -> None:
    a = BY_NAME[agent]
    tasks = tmp_path / "globalStorage/ext/tasks"
    folder = make_task(tasks)
    for name, ok in [
        ("api_conversation_history.json", True),
        ("ui_messages.json", True),
        ("task_metadata.json", True),
        ("settings.json", False),
        ("context_history.json", False),
        ("checkpoints/HEAD", False),
    ]:
        assert a.is_transcript(PurePosixPath(TASK, name)) is ok, name
    assert not a.is_transcript(PurePosixPath("secrets.json"))
    assert a.source_of(PurePosixPath(TASK, "ui_messages.json")) == PurePosixPath(TASK)
    token = a.change_token(folder)
    s = only(a.export(folder))
    assert s.rel == PurePosixPath(f"{TASK}.jsonl")
    head = header(s.data)
    assert (head["harness"], head["id"], head["cwd"]) == (agent, TASK, "/home/me/proj")
    msgs = messages(s.data)
    assert [(m["role"], m["content"]) for m in msgs] == [
        ("user", "rename foo to bar"),
        ("assistant", "I'll search for foo."),
        ("tool", "src/foo.ts:1"),
        ("assistant", "Renamed."),
    ]
    assert tool_pairs(msgs) == [("search_files", '{"path": "src", "regex": "foo"}', "src/foo.ts:1")]
    # Timestamps: the task start, then each reply at its api_req_started; models by time.
    assert [m.get("timestamp") for m in msgs] == [MS0, MS0 + 2000, MS0 + 2000, MS0 + 6000]
    assert [m.get("model") for m in msgs if m["role"] == "assistant"] == [
        "claude-sonnet-4-5",
        "claude-opus-4-6",
    ]
    assert s.meta.first_prompt == "rename foo to bar"
    assert b"sk-ant-in-settings" not in s.data and b"environment_details" not in s.data
    # Rewritten whole on each update: the token moves, and a half-written file is retried later.
    (folder / "ui_messages.json").write_text(
        json.dumps([*UI, {"ts": MS0 + 9000, "type": "say", "say": "text"}])
    )
    assert a.change_token(folder) != token
    (folder / "api_conversation_history.json").write_text('[{"role": "user", "content": "x"')
    with pytest.raises(OSError, match="not complete JSON"):
        a.export(folder)


def test_roots_per_vscode_flavour_and_cli(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    cline = BY_NAME["cline"].default_roots(env, tmp_path)
    assert [r.remote for r in cline] == [
        "cline",
        "cline-insiders",
        "cline-vscodium",
        "cline-cursor",
        "cline-windsurf",
        "cline-cli",
    ]
    assert cline[0].path == tmp_path / "cfg/Code/User/globalStorage/saoudrizwan.claude-dev/tasks"
    assert cline[-1].path == tmp_path / ".cline/data/tasks"
    roo = BY_NAME["roo"].default_roots(env, tmp_path)
    assert roo[2].path == tmp_path / "cfg/VSCodium/User/globalStorage/rooveterinaryinc.roo-cline/tasks"
    assert roo[0].remote == "roo"


def test_cli_data_dir_secrets_are_never_picked(tmp_path: Path) -> None:
    """The Cline CLI keeps secrets.json next to tasks/: it is outside every root."""
    data = tmp_path / ".cline/data"
    write_json(data / "secrets.json", {"apiKey": "sk-ant-secret"})
    write_json(data / "globalState.json", {"mode": "act"})
    folder = make_task(data / "tasks")
    from traceagent.sync.roots import scan_root

    cli_root = BY_NAME["cline"].default_roots({}, tmp_path)[-1]
    found = sorted(p.relative_to(data).as_posix() for p, _ in scan_root(cli_root))
    assert found == [
        f"tasks/{TASK}/api_conversation_history.json",
        f"tasks/{TASK}/task_metadata.json",
        f"tasks/{TASK}/ui_messages.json",
    ]
    assert b"sk-ant-secret" not in only(BY_NAME["cline"].export(folder)).data


def test_task_without_api_history_yet_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "tasks" / TASK
    write_json(folder / "ui_messages.json", UI[:1])
    assert BY_NAME["cline"].export(folder) == []
    with pytest.raises(FileNotFoundError):
        BY_NAME["cline"].change_token(tmp_path / "tasks" / "9")
