"""The agent registry: one module per agent, and detection of which are installed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from traceagent.agents.aider import Aider
from traceagent.agents.base import Agent, Root, SessionMeta
from traceagent.agents.claude import ClaudeCode
from traceagent.agents.cline import Cline, RooCode
from traceagent.agents.codex import Codex
from traceagent.agents.copilot import Copilot
from traceagent.agents.cursor import Cursor
from traceagent.agents.droid import Droid
from traceagent.agents.gemini import Gemini
from traceagent.agents.goose import Goose
from traceagent.agents.hermes import Hermes
from traceagent.agents.opencode import OpenCode
from traceagent.agents.pi import Pi
from traceagent.agents.qwen import Qwen

#: Every agent traceagent knows, in menu order.
AGENTS: tuple[Agent, ...] = (
    ClaudeCode(),
    Codex(),
    Pi(),
    Droid(),
    Gemini(),
    Copilot(),
    Qwen(),
    OpenCode(),
    Goose(),
    Hermes(),
    Cursor(),
    Cline(),
    RooCode(),
    Aider(),
)
BY_NAME: dict[str, Agent] = {a.name: a for a in AGENTS}


def get_agent(name: str) -> Agent:
    """The agent registered under ``name`` (KeyError when unknown)."""
    return BY_NAME[name]


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's home folder, honouring ``HOME`` (tests) before the OS account database."""
    env = os.environ if environ is None else environ
    home = env.get("HOME") or env.get("USERPROFILE")
    return Path(home) if home else Path.home()


__all__ = ["AGENTS", "BY_NAME", "Agent", "Root", "SessionMeta", "get_agent", "home_dir"]
