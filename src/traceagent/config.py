"""``config.toml``: what the user chose (destination, timings, agents, redaction).

Loading validates every key against a small schema and turns any problem into a
:class:`~traceagent.errors.ConfigError` naming the file, the line and the key, never a
traceback. Writing (the tray's toggles) goes through tomlkit so the user's comments and
layout survive.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from traceagent.errors import ConfigError
from traceagent.sinks.keys import DestinationError, parse_destination

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

log = logging.getLogger(__name__)

KNOWN_AGENTS = (
    "claude",
    "codex",
    "pi",
    "droid",
    "gemini",
    "copilot",
    "qwen",
    "opencode",
    "goose",
    "hermes",
    "cursor-agent",
    "cline",
    "roo",
    "aider",
)


@dataclasses.dataclass(frozen=True)
class AgentSettings:
    """Per-agent choices: ``enabled``, extra ``paths`` replacing the detected roots, ``redact``."""

    enabled: bool = True
    paths: tuple[Path, ...] = ()
    redact: bool = True


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated configuration. Defaults apply to every key the file leaves out."""

    destination: str | None = None
    debounce_seconds: float = 10.0
    max_delay_seconds: float = 60.0
    allow_public: bool = False
    redact: bool = True
    redact_allowlist: tuple[str, ...] = ()
    redact_rules: Mapping[str, str] = dataclasses.field(default_factory=dict)
    viewer_url_template: str | None = None
    endpoint: str | None = None
    log_level: str = "INFO"
    batch_size: int = 100
    #: The Hugging Face upload worker process stops after this long without work (seconds).
    upload_worker_idle_seconds: float = 180.0
    agents: Mapping[str, AgentSettings] = dataclasses.field(default_factory=dict)
    source_file: Path | None = None

    def agent(self, name: str) -> AgentSettings:
        """The settings of one agent (defaults when the file says nothing about it)."""
        return self.agents.get(name, AgentSettings())


def _line_of(text: str, key: str, table: str | None) -> int | None:
    """Best-effort line number of ``key`` inside ``[table]`` (top level when None)."""
    current: str | None = None
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]").strip()
            continue
        if current == table and pattern.match(line):
            return n
    return None


class _Validator:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, key: str, message: str, table: str | None = None) -> ConfigError:
        line = _line_of(self.text, key, table)
        where = f"{self.path}, line {line}" if line else str(self.path)
        full = f"{table}.{key}" if table else key
        return ConfigError(f"{where}: key '{full}': {message}")

    def number(self, d: Mapping[str, Any], key: str, default: float, lo: float, hi: float) -> float:
        if key not in d:
            return default
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(key, f"expected a number of seconds, got {type(v).__name__} {v!r}")
        if not lo <= v <= hi:
            raise self.fail(key, f"must be between {lo:g} and {hi:g}, got {v!r}")
        return float(v)

    def boolean(self, d: Mapping[str, Any], key: str, default: bool, table: str | None = None) -> bool:
        if key not in d:
            return default
        v = d[key]
        if not isinstance(v, bool):
            raise self.fail(key, f"expected true or false, got {v!r}", table)
        return v

    def string(self, d: Mapping[str, Any], key: str, table: str | None = None) -> str | None:
        if key not in d:
            return None
        v = d[key]
        if not isinstance(v, str) or not v.strip():
            raise self.fail(key, f"expected a non-empty string, got {v!r}", table)
        return v.strip()

    def strings(self, d: Mapping[str, Any], key: str, table: str | None = None) -> tuple[str, ...]:
        if key not in d:
            return ()
        v = d[key]
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise self.fail(key, f"expected a list of strings, got {v!r}", table)
        return tuple(v)


_TOP_KEYS = {
    "destination",
    "debounce_seconds",
    "max_delay_seconds",
    "allow_public",
    "redact",
    "viewer_url_template",
    "endpoint",
    "log_level",
    "batch_size",
    "upload_worker_idle_seconds",
    "agents",
    "redaction",
}
_AGENT_KEYS = {"enabled", "paths", "redact"}
_REDACTION_KEYS = {"allowlist", "rules"}


def parse_settings(text: str, path: Path, *, hf_endpoint: str | None = None) -> Settings:
    """Parse and validate the text of a config file (pure; used by :func:`load_settings`).

    ``hf_endpoint`` (``HF_ENDPOINT``) is a Hub whose bucket pages are accepted as destinations,
    besides huggingface.co and the file's own ``endpoint``.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib's message already says "(at line N, column M)".
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    v = _Validator(path, text)
    for key in raw:
        if key not in _TOP_KEYS:
            raise v.fail(key, f"unknown setting (known: {', '.join(sorted(_TOP_KEYS))})")

    debounce = v.number(raw, "debounce_seconds", 10.0, 0.05, 3600)
    max_delay = v.number(raw, "max_delay_seconds", 60.0, 0.1, 86400)
    if max_delay < debounce:
        raise v.fail("max_delay_seconds", f"must not be shorter than debounce_seconds ({debounce:g})")
    level = (v.string(raw, "log_level") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise v.fail("log_level", f"expected DEBUG, INFO, WARNING or ERROR, got {raw['log_level']!r}")
    batch = raw.get("batch_size", 100)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 1000:
        raise v.fail("batch_size", f"expected a whole number from 1 to 1000, got {batch!r}")
    template = v.string(raw, "viewer_url_template")
    if template is not None:
        if "{path}" not in template:
            raise v.fail("viewer_url_template", "must contain {path}")
        try:
            template.format(namespace="ns", bucket="b", path="p", endpoint="https://e")
        except (KeyError, IndexError, ValueError) as e:
            raise v.fail(
                "viewer_url_template",
                f"only {{namespace}}, {{bucket}}, {{path}} and {{endpoint}} can be used ({e})",
            ) from None
    endpoint = v.string(raw, "endpoint")
    destination = v.string(raw, "destination")
    if destination is not None:
        try:
            destination = parse_destination(destination, endpoints=(endpoint, hf_endpoint)).uri
        except DestinationError as e:
            raise v.fail("destination", str(e)) from None

    agents: dict[str, AgentSettings] = {}
    agents_raw = raw.get("agents", {})
    if not isinstance(agents_raw, dict):
        raise v.fail("agents", "expected a table like [agents.claude]")
    for name, section in agents_raw.items():
        table = f"agents.{name}"
        if name not in KNOWN_AGENTS:
            raise v.fail(name, f"unknown agent (known: {', '.join(KNOWN_AGENTS)})", "agents")
        if not isinstance(section, dict):
            raise v.fail(name, "expected a table", "agents")
        for key in section:
            if key not in _AGENT_KEYS:
                raise v.fail(key, f"unknown setting (known: {', '.join(sorted(_AGENT_KEYS))})", table)
        paths = tuple(Path(p).expanduser() for p in v.strings(section, "paths", table))
        agents[name] = AgentSettings(
            enabled=v.boolean(section, "enabled", True, table),
            paths=paths,
            redact=v.boolean(section, "redact", True, table),
        )

    redaction = raw.get("redaction", {})
    if not isinstance(redaction, dict):
        raise v.fail("redaction", "expected a table [redaction]")
    for key in redaction:
        if key not in _REDACTION_KEYS:
            raise v.fail(key, f"unknown setting (known: {', '.join(sorted(_REDACTION_KEYS))})", "redaction")
    rules = redaction.get("rules", {})
    if not isinstance(rules, dict) or not all(isinstance(x, str) for x in rules.values()):
        raise v.fail("rules", 'expected a table of name = "regex"', "redaction")
    for name, rx in rules.items():
        try:
            re.compile(rx)
        except re.error as e:
            raise v.fail(name, f"invalid regular expression: {e}", "redaction.rules") from None

    return Settings(
        destination=destination,
        debounce_seconds=debounce,
        max_delay_seconds=max_delay,
        allow_public=v.boolean(raw, "allow_public", False),
        redact=v.boolean(raw, "redact", True),
        redact_allowlist=v.strings(redaction, "allowlist", "redaction"),
        redact_rules=dict(rules),
        viewer_url_template=template,
        endpoint=endpoint,
        log_level=level,
        batch_size=batch,
        upload_worker_idle_seconds=v.number(raw, "upload_worker_idle_seconds", 180.0, 1, 86400),
        agents=agents,
        source_file=path,
    )


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Load ``path`` (missing file: defaults) and apply environment overrides.

    ``TRACEAGENT_DESTINATION`` overrides ``destination``.
    """
    env = os.environ if environ is None else environ
    try:
        # utf-8-sig: Notepad and some editors start the file with a BOM, which TOML refuses.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        settings = Settings(source_file=path)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the configuration file: {e}") from None
    else:
        settings = parse_settings(text, path, hf_endpoint=env.get("HF_ENDPOINT"))
    override = env.get("TRACEAGENT_DESTINATION")
    if override and override.strip():
        try:
            parsed = parse_destination(override, endpoints=(settings.endpoint, env.get("HF_ENDPOINT")))
        except DestinationError as e:
            raise ConfigError(f"TRACEAGENT_DESTINATION: {e}") from None
        settings = dataclasses.replace(settings, destination=parsed.uri)
    return settings


def update_config(path: Path, updates: Mapping[str, Any]) -> None:
    """Set keys in ``config.toml``, keeping the user's comments and layout.

    ``updates`` maps dotted keys (``"agents.codex.enabled"``) to values. The file is
    validated after the change and replaced atomically, so a crash never leaves half a file.
    """
    import tomlkit

    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM is dropped when the file is rewritten
    except FileNotFoundError:
        text = ""
    doc = tomlkit.parse(text)
    for dotted, value in updates.items():
        *tables, key = dotted.split(".")
        node: Any = doc
        for t in tables:
            if t not in node:
                node[t] = tomlkit.table(is_super_table=(t == "agents"))
            node = node[t]
        node[key] = value
    new_text = tomlkit.dumps(doc)
    # never write a file we could not load back
    parse_settings(new_text, path, hf_endpoint=os.environ.get("HF_ENDPOINT"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new_text, encoding="utf-8")
    os.replace(tmp, path)
    log.info("Updated %s: %s", path, ", ".join(sorted(updates)))


DEFAULT_CONFIG = """\
# traceagent settings. Every key is optional; delete a line to get the default back.
# Changes apply the next time traceagent starts (the tray's toggles apply at once).

# Where traces go: hf://buckets/<namespace>/<bucket>[/<prefix>] (or the bucket's page,
# https://huggingface.co/buckets/<namespace>/<bucket>), an absolute folder, ~/folder or file:///path.
# Unset: your private hf://buckets/<you>/agent-sessions once signed in, else a local folder.
# destination = "hf://buckets/alice/agent-sessions"

# Upload a file once it has been quiet this long, or kept changing this long (seconds).
# debounce_seconds = 10
# max_delay_seconds = 60

# Redact secrets (API keys, tokens, private keys, ...) before anything leaves this machine.
# redact = true

# Refuse to upload into a public bucket unless this is true.
# allow_public = false

# [agents.codex]
# enabled = false                       # stop syncing one agent
# paths = ["~/work/.codex/sessions"]    # use these folders instead of the detected ones

# [redaction]
# allowlist = ["not-a-secret-value"]
# rules = { internal_token = "itk_[A-Za-z0-9]{32}" }
"""


def write_default_config(path: Path) -> None:
    """Create a commented ``config.toml`` (for "Open settings" on a fresh install)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    parse_settings(DEFAULT_CONFIG, path)  # the template itself must load
    with open(path, "x", encoding="utf-8") as f:
        f.write(DEFAULT_CONFIG)
