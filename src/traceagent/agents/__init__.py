"""The agent registry: one module per agent, and which of their roots the settings sync.

:func:`agent_roots` is the one loop over agents × roots: the engine, its scans, the watcher's
owners and the CLI's ``agents`` listing and dry run all take their roots from it.
"""

from __future__ import annotations

import dataclasses
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
from traceagent.config import Settings

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


@dataclasses.dataclass(frozen=True)
class AgentRoots:
    """One agent under the settings: whether it syncs, and its roots (configured or default)."""

    agent: Agent
    enabled: bool
    #: Every root, whether or not its folder exists yet.
    roots: tuple[Root, ...]


def agent_roots(settings: Settings, environ: Mapping[str, str]) -> list[AgentRoots]:
    """Every known agent in menu order with its roots: the one agents × roots loop."""
    home = home_dir(environ)
    out: list[AgentRoots] = []
    for agent in AGENTS:
        s = settings.agent(agent.name)
        out.append(AgentRoots(agent, s.enabled, tuple(agent.roots(environ, home, s.paths))))
    return out


def enabled_roots(settings: Settings, environ: Mapping[str, str]) -> list[Root]:
    """The roots of every agent the user has not switched off."""
    return [r for a in agent_roots(settings, environ) if a.enabled for r in a.roots]


def all_roots(settings: Settings, environ: Mapping[str, str]) -> list[Root]:
    """The roots of every agent, switched off or not: the roots that own files (``owner_of``).

    A switched-off agent's folder nested in another agent's root still belongs to it: its
    sessions are not the other agent's to upload.
    """
    return [r for a in agent_roots(settings, environ) for r in a.roots]


def enabled_agents(settings: Settings) -> list[Agent]:
    """The agents the user has not switched off, in menu order."""
    return [a for a in AGENTS if settings.agent(a.name).enabled]


__all__ = [
    "AGENTS",
    "BY_NAME",
    "Agent",
    "AgentRoots",
    "Root",
    "SessionMeta",
    "agent_roots",
    "all_roots",
    "enabled_agents",
    "enabled_roots",
    "get_agent",
    "home_dir",
]
