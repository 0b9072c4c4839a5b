"""Collect the exact values of the user's own secrets (the strongest detector).

The daemon runs on the user's machine, so it can read the credentials an agent might print:
secret-looking environment variables and the credential files of the agents and common
tools. Values are kept in memory only and matched exactly (plus their JSON-escaped forms),
whatever their shape. Nothing here logs a value.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import logging
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .validators import is_secret_key, key_words

log = logging.getLogger(__name__)

MIN_LEN = 8
_MAX_FILE = 32 << 20
_ENV_SKIP = frozenset({"PWD", "OLDPWD", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "KEYTIMEOUT"})
_ENV_SKIP_SUFFIXES = ("_PATH", "_FILE", "_DIR", "_SOCK", "_URL_PATH", "_HOME")
_INI_LINE = re.compile(r"^\s*([^=\s#;][^=]*?)\s*=\s*(.*?)\s*$|^\s*([\w.-]+)\s*:\s+(.*?)\s*$")
_BOOLISH = frozenset({"true", "false", "none", "null", "undefined", "yes", "no"})


def _usable(value: str, *, strict: bool) -> bool:
    """Worth redacting everywhere: long enough and not an obvious non-secret."""
    v = value.strip()
    if len(v) < MIN_LEN or v.lower() in _BOOLISH or v.isdigit():
        return False
    if v.startswith(("/", "~", "./", "../")) or re.match(r"[A-Za-z]:[\\/]", v):
        return False
    if strict:
        # Environment names are a weak signal (KEYBOARD_LAYOUT, TOKENIZERS_PARALLELISM):
        # also ask for a digit or mixed case.
        has_digit = any(c.isdigit() for c in v)
        mixed = any(c.isupper() for c in v) and any(c.islower() for c in v)
        return has_digit or mixed
    return True


def _secret_env_name(name: str) -> bool:
    """By words, not substrings: HF_TOKEN, OPENAI_API_KEY, PGPASSWORD, STRIPE_KEY are secrets;
    PYTHON_KEYRING_BACKEND, MAX_TOKENS, TOKENIZERS_PARALLELISM, HF_TOKEN_PATH are not."""
    upper = name.upper()
    if upper in _ENV_SKIP or upper.endswith(_ENV_SKIP_SUFFIXES):
        return False
    raw = upper.encode("ascii", "replace")
    return is_secret_key(raw) or key_words(raw)[-1:] == ["key"]


def from_environ(environ: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    for name, value in environ.items():
        if _secret_env_name(name) and _usable(value, strict=True):
            yield name, value.strip()


def _read(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_FILE:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.debug("cannot read credential file %s: %s", path, exc)
        return None


def _walk_json(obj: Any, key: str = "") -> Iterator[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_json(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_json(v, key)
    elif isinstance(obj, str) and key and is_secret_key(key.encode("ascii", "replace")):
        yield obj
        if key == "auth":  # ~/.docker/config.json: base64 of "user:password"
            yield from _docker_auth(obj)


def _docker_auth(value: str) -> Iterator[str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return
    if ":" in decoded:
        yield decoded.split(":", 1)[1]


def json_values(text: str) -> Iterator[str]:
    try:
        yield from _walk_json(json.loads(text))
    except ValueError:
        return


def ini_values(text: str) -> Iterator[str]:
    """``key = value`` / ``key: value`` files (aws, npmrc, pypirc, gh hosts.yml, stored_tokens)."""
    for line in text.splitlines():
        m = _INI_LINE.match(line)
        if not m:
            continue
        key, value = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
        key = key.rsplit(":", 1)[-1].strip()  # //registry.npmjs.org/:_authToken
        if is_secret_key(key.encode("ascii", "replace")):
            yield value.strip().strip("\"'")


def netrc_values(text: str) -> Iterator[str]:
    words = text.split()
    for prev, word in itertools.pairwise(words):
        if prev in ("password", "account"):
            yield word


def url_values(text: str) -> Iterator[str]:
    """``~/.git-credentials``: one ``https://user:password@host`` per line."""
    for line in text.splitlines():
        try:
            password = urllib.parse.urlsplit(line.strip()).password
        except ValueError:
            continue
        if password:
            yield urllib.parse.unquote(password)


def token_file(text: str) -> Iterator[str]:
    yield text.strip()


def credential_files(environ: Mapping[str, str], home: Path) -> list[tuple[str, Path, Any]]:
    """(label, path, parser) for every credential file we know, honouring env overrides."""
    xdg_cache = Path(environ.get("XDG_CACHE_HOME") or home / ".cache")
    xdg_config = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    hf_home = Path(environ.get("HF_HOME") or xdg_cache / "huggingface")
    hf_token = Path(environ.get("HF_TOKEN_PATH") or hf_home / "token")
    claude = Path(environ.get("CLAUDE_CONFIG_DIR") or home / ".claude")
    codex = Path(environ.get("CODEX_HOME") or home / ".codex")
    gh = Path(environ.get("GH_CONFIG_DIR") or xdg_config / "gh")
    pi = Path(environ.get("PI_CODING_AGENT_DIR") or home / ".pi" / "agent")
    return [
        ("hf-token", hf_token, token_file),
        ("hf-token", hf_home / "stored_tokens", ini_values),
        ("claude-credentials", claude / ".credentials.json", json_values),
        ("claude-config", home / ".claude.json", json_values),
        ("codex-auth", codex / "auth.json", json_values),
        ("pi-auth", pi / "auth.json", json_values),
        ("pi-auth", pi / "oauth.json", json_values),
        (
            "aws-credentials",
            Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws" / "credentials"),
            ini_values,
        ),
        ("netrc", Path(environ.get("NETRC") or home / ".netrc"), netrc_values),
        ("npmrc", home / ".npmrc", ini_values),
        ("pypirc", home / ".pypirc", ini_values),
        ("gh-hosts", gh / "hosts.yml", ini_values),
        (
            "docker-config",
            Path(environ.get("DOCKER_CONFIG") or home / ".docker") / "config.json",
            json_values,
        ),
        ("git-credentials", home / ".git-credentials", url_values),
        ("gcloud-adc", xdg_config / "gcloud" / "application_default_credentials.json", json_values),
    ]


def collect(environ: Mapping[str, str], home: Path) -> list[tuple[str, str]]:
    """(label, value) pairs, de-duplicated by value, first label wins."""
    seen: dict[str, str] = {}
    for name, value in from_environ(environ):
        seen.setdefault(value, name)
    for label, path, parser in credential_files(environ, home):
        text = _read(path)
        if text is None:
            continue
        found = 0
        for value in parser(text):
            if _usable(value, strict=False):
                seen.setdefault(value.strip(), label)
                found += 1
        log.debug("own secrets: %d value(s) from %s", found, path)
    return [(label, value) for value, label in seen.items()]
