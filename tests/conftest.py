"""Shared fixtures: every test runs in its own HOME, config, state and HF cache."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The tests' own helpers (the fake Hub, the tray desktop, secret generators, ...) live in support/.
sys.path.insert(0, str(Path(__file__).parent / "support"))

from stsvalidate import AGENT_VARS

FIXTURES = Path(__file__).parent / "fixtures"
CORPUS = FIXTURES / "corpus"

#: corpus folder -> where the agent keeps it under HOME, and the remote folder
LAYOUT = {
    "claude-code/projects": (".claude/projects", "claude"),
    "codex/sessions": (".codex/sessions", "codex"),
    "pi/sessions": (".pi/agent/sessions", "pi"),
}

_ISOLATED_VARS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "CLAUDE_CONFIG_DIR",
    "CODEX_HOME",
    "PI_CODING_AGENT_DIR",
    "TRACEAGENT_DESTINATION",
    "HF_ENDPOINT",
    "BROWSER",
    *AGENT_VARS,  # the other agents' own overrides (agents/*.py)
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An isolated environment (also applied to this process) for engine and CLI tests."""
    home = tmp_path / "home"
    home.mkdir()
    values = {
        "HOME": str(home),
        "TRACEAGENT_HOME": str(tmp_path / "ta"),
        "HF_HOME": str(tmp_path / "hf"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    for k in _ISOLATED_VARS:
        monkeypatch.delenv(k, raising=False)
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    full = {k: v for k, v in os.environ.items() if k not in _ISOLATED_VARS}
    full.update(values)
    return full


def lay_out_corpus(home: Path) -> dict[Path, str]:
    """Copy the real sessions under ``home`` as each agent lays them out.

    Returns ``local path -> expected remote key`` for every file that must be uploaded.
    """
    expected: dict[Path, str] = {}
    for src_rel, (dst_rel, remote) in LAYOUT.items():
        src = CORPUS / src_rel
        dst = home / dst_rel
        shutil.copytree(src, dst, dirs_exist_ok=True)
        for f in dst.rglob("*"):
            if f.is_file():
                expected[f] = f"{remote}/{f.relative_to(dst).as_posix()}"
    return expected


def write_config(env: dict[str, str], text: str) -> Path:
    """Write ``config.toml`` in the isolated TRACEAGENT_HOME."""
    path = Path(env["TRACEAGENT_HOME"]) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def bucket_dir(env: dict[str, str]) -> Path:
    """The embedded default destination under the isolated TRACEAGENT_HOME."""
    return Path(env["TRACEAGENT_HOME"]) / "data" / "bucket"


def remote_files(dest: Path) -> dict[str, bytes]:
    """Every file in a local-folder bucket, by key (traceagent's own ``_traceagent/`` left out)."""
    return {
        f.relative_to(dest).as_posix(): f.read_bytes()
        for f in sorted(dest.rglob("*"))
        if f.is_file() and f.relative_to(dest).parts[0] != "_traceagent"
    }


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05) -> bool:
    """Poll until ``predicate()`` is truthy; False on timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def run_cli(
    env: dict[str, str], *args: str, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m traceagent ARGS`` in the isolated environment."""
    return subprocess.run(
        [sys.executable, "-m", "traceagent", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_daemon(env: dict[str, str]) -> subprocess.Popen[str]:
    """``traceagent run --headless`` in the isolated environment (stderr kept for asserts)."""
    return subprocess.Popen(
        [sys.executable, "-m", "traceagent", "run", "--headless"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_daemon(p: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    """Stop a daemon as a user or service manager would; asserts a clean exit, returns stderr."""
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    return err


def status_json(env: dict[str, str]) -> dict[str, Any]:
    """``traceagent status --json``, parsed."""
    r = run_cli(env, "status", "--json")
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


@pytest.fixture
def daemons(env: dict[str, str]) -> Iterator[Callable[[dict[str, str]], subprocess.Popen[str]]]:
    """Start daemons with :func:`start_daemon`; any still running at the end is stopped."""
    procs: list[subprocess.Popen[str]] = []

    def start(run_env: dict[str, str]) -> subprocess.Popen[str]:
        procs.append(start_daemon(run_env))
        return procs[-1]

    yield start
    for p in procs:
        end_daemon(p)


def end_daemon(p: subprocess.Popen[str]) -> None:
    """Teardown: stop a daemon a test left running (SIGTERM, then kill); asserts nothing."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture
def corpus_home(env: dict[str, str]) -> Iterator[dict[Path, str]]:
    """The corpus laid out under the isolated HOME."""
    yield lay_out_corpus(Path(env["HOME"]))
