"""The agent registry: one module per agent, and detection of which are installed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from traceagent.agents.base import Agent, Root, SessionMeta
from traceagent.agents.claude import ClaudeCode
from traceagent.agents.codex import Codex
from traceagent.agents.pi import Pi

#: Every agent traceagent knows, in menu order.
AGENTS: tuple[Agent, ...] = (ClaudeCode(), Codex(), Pi())
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
