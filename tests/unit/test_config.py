"""config.toml: errors name the file, the line and the key; overrides; comment-preserving updates."""

from __future__ import annotations

from pathlib import Path

import pytest

from traceagent.config import load_settings, parse_settings, update_config
from traceagent.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('debounce_seconds = "soon"\n', "c.toml, line 1: key 'debounce_seconds': expected a number"),
        (
            "debounce_seconds = 30\nmax_delay_seconds = 5\n",
            "line 2: key 'max_delay_seconds': must not be shorter",
        ),
        ("\n[agents.codex]\nenabled = 1\n", "line 3: key 'agents.codex.enabled': expected true or false"),
        ("[agents.cursor]\nenabled = true\n", "key 'agents.cursor': unknown agent"),
        ("destinaton = '/x'\n", "line 1: key 'destinaton': unknown setting"),
        ("x = [\n", "c.toml: not valid TOML: "),
        (
            '[redaction.rules]\nmine = "(unclosed"\n',
            "line 2: key 'redaction.rules.mine': invalid regular expression",
        ),
    ],
)
def test_config_errors_name_file_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings(text, Path("c.toml"))
    assert expected in e.value.message


def test_config_env_override_and_comment_preserving_update(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("# my settings\ndebounce_seconds = 5 # quick\n", encoding="utf-8")
    s = load_settings(cfg, {"TRACEAGENT_DESTINATION": "/mnt/nas/traces"})
    assert s.destination == "/mnt/nas/traces" and s.debounce_seconds == 5
    update_config(cfg, {"agents.codex.enabled": False})
    text = cfg.read_text()
    assert "# my settings" in text and "# quick" in text
    assert load_settings(cfg, {}).agent("codex").enabled is False
    with pytest.raises(ConfigError):
        update_config(cfg, {"debounce_seconds": "fast"})
    assert load_settings(cfg, {}).debounce_seconds == 5  # a rejected update leaves the file alone
