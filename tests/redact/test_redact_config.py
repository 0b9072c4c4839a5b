"""Settings, the user's own secrets, findings and previews."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from secretgen import ALNUM, Gen, dumps, family_secrets
from traceagent.redact import Finding, RedactConfigError, Redactor, mask, preview_file


def plain(**kwargs: object) -> Redactor:
    kwargs.setdefault("engine", "stdlib")
    return Redactor.from_settings(own_secrets=False, **kwargs)  # type: ignore[arg-type]


# -- extra rules and allowlist ------------------------------------------------------------


def test_extra_rule_redacts_whole_match_or_secret_group() -> None:
    r = plain(extra_rules={"employee-id": r"EMP-\d{6}", "ticket": r"ticket=(?P<secret>[A-Z]{3}\d+)"})
    out, counts = r.redact_chunk(b'{"t": "EMP-123456 and ticket=ABC123 ok"}\n')
    assert out == b'{"t": "[REDACTED:employee-id] and ticket=[REDACTED:ticket] ok"}\n'
    assert counts == {"employee-id": 1, "ticket": 1}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"bad": "(unclosed"}, r"'bad'.*invalid regex '\(unclosed'"),
        ({"empty-ok": "a*"}, r"'empty-ok'.*matches the empty string"),
        ({"has space": "x"}, r"'has space' is invalid"),
        ({"openai": "x"}, r"'openai' clashes"),
        ({"known:x": "x"}, r"'known:x' clashes"),
        ({"blank": ""}, r"'blank'.*non-empty"),
    ],
)
def test_bad_extra_rules_name_the_culprit(rules: dict[str, str], message: str) -> None:
    with pytest.raises(RedactConfigError, match=message):
        plain(extra_rules=rules)


def test_allowlist_exact_and_regex() -> None:
    g = Gen(4)
    keep = "hf_" + g.chars(ALNUM, 34)
    other = "hf_" + g.chars(ALNUM, 34)
    doc_key = "ghp_" + g.chars(ALNUM, 36)
    r = plain(allowlist=[keep, r"re:ghp_[A-Za-z0-9]{36}"])
    data = dumps({"t": f"{keep} {other} {doc_key}"})
    out, counts = r.redact_chunk(data)
    assert keep.encode() in out and doc_key.encode() in out and other.encode() not in out
    assert counts == {"huggingface": 1}


def test_bad_allowlist_regex() -> None:
    with pytest.raises(RedactConfigError, match=r"allowlist regex '\[oops'"):
        plain(allowlist=["re:[oops"])


def test_unknown_engine_is_a_config_error() -> None:
    with pytest.raises(RedactConfigError, match="engine"):
        plain(engine="turbo")


# -- the user's own secrets ---------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_own_secrets_from_env_and_credential_files(tmp_path: Path) -> None:
    g = Gen(12)
    val = {
        k: g.chars(ALNUM, 28) + "7"
        for k in ("env", "claude", "refresh", "codex", "hf", "aws", "npm", "extra")
    }
    home = tmp_path / "home"
    claude_dir = tmp_path / "claude-config"  # CLAUDE_CONFIG_DIR overrides ~/.claude
    creds = {"claudeAiOauth": {"accessToken": val["claude"], "refreshToken": val["refresh"], "expiresAt": 1}}
    _write(claude_dir / ".credentials.json", json.dumps(creds))
    _write(
        home / ".codex" / "auth.json",
        json.dumps({"OPENAI_API_KEY": None, "tokens": {"id_token": val["codex"]}}),
    )
    _write(tmp_path / "hf" / "token", val["hf"] + "\n")
    _write(home / ".aws" / "credentials", f"[default]\naws_secret_access_key = {val['aws']}\n")
    _write(home / ".npmrc", f"//registry.npmjs.org/:_authToken={val['npm']}\n")
    environ = {
        "MY_SERVICE_TOKEN": val["env"],
        "CLAUDE_CONFIG_DIR": str(claude_dir),
        "HF_HOME": str(tmp_path / "hf"),
        "PWD": "/home/someone/project-with-long-name",
        "KEYBOARD_LAYOUT": "us-international",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    r = Redactor.from_settings(environ=environ, home=home, extra_values=[val["extra"]], engine="stdlib")
    kept = (b"/home/someone/project-with-long-name", b"us-international", b"keyring.backends.fail.Keyring")
    text = " | ".join(f"{k}:{v}" for k, v in val.items()) + " " + b" ".join(kept).decode()
    out, counts = r.redact_chunk(dumps({"content": text}))
    for v in val.values():
        assert v.encode() not in out
    assert all(k in out for k in kept)
    assert counts == {
        "known:MY_SERVICE_TOKEN": 1,
        "known:claude-credentials": 2,
        "known:codex-auth": 1,
        "known:hf-token": 1,
        "known:aws-credentials": 1,
        "known:npmrc": 1,
        "known:extra": 1,
    }


def test_own_secrets_any_shape_and_escaped_forms(tmp_path: Path) -> None:
    weird = 'pé@ss "quoted" \\ back\tslash 9X'
    r = Redactor.from_settings(environ={"DB_PASSWORD": weird}, home=tmp_path, engine="stdlib")
    once = dumps({"t": f"value: {weird}!"})
    twice = dumps({"t": json.dumps({"inner": weird})})
    ascii_escaped = json.dumps({"t": f"value: {weird}!"}).encode() + b"\n"  # \u00e9 for é
    out, counts = r.redact_chunk(once + twice + ascii_escaped)
    assert counts == {"known:DB_PASSWORD": 3}
    decoded = [json.loads(line) for line in out.splitlines()]
    assert decoded[0]["t"] == "value: [REDACTED:known:DB_PASSWORD]!"
    assert json.loads(decoded[1]["t"]) == {"inner": "[REDACTED:known:DB_PASSWORD]"}
    assert decoded[2]["t"] == "value: [REDACTED:known:DB_PASSWORD]!"


def test_own_secrets_off_and_docker_auth(tmp_path: Path) -> None:
    g = Gen(13)
    secret, other = g.password(16), g.password(14)
    auth = base64.b64encode(f"me:{secret}".encode()).decode()
    _write(tmp_path / ".docker" / "config.json", json.dumps({"auths": {"ghcr.io": {"auth": auth}}}))
    on = Redactor.from_settings(environ={}, home=tmp_path, engine="stdlib")
    off = Redactor.from_settings(environ={"X_TOKEN": other}, home=tmp_path, own_secrets=False)
    line = dumps({"t": f"login with {secret} then {other}"})
    assert secret.encode() not in on.redact_chunk(line)[0]
    assert off.redact_chunk(line) == (line, {})


# -- findings, masking, preview ------------------------------------------------------------


def test_mask_never_shows_the_whole_value() -> None:
    assert mask(b"abcdefghijklmnopqrstuvwxyz0123456789_") == "abcd…(37 chars)"
    assert mask(b"abcdefgh") == "ab…(8 chars)"
    assert mask(b"abc") == "…(3 chars)"


def test_findings_positions_and_line_numbers() -> None:
    tok = next(s.text for s in family_secrets(Gen(2)) if s.family == "github")
    data = b'{"a": 1}\n' + dumps({"t": f"x {tok}"}) + b"not json at all\n" + dumps({tok: 1})
    found = plain().findings(data)
    assert [(f.rule, f.line_no) for f in found] == [("github", 2), ("github", 4)]
    line = data.splitlines()[1]
    assert line[found[0].start : found[0].end] == tok.encode()
    assert all(tok not in f.masked for f in found)


def test_preview_file_streams_blocks(tmp_path: Path) -> None:
    tok = next(s.text for s in family_secrets(Gen(3)) if s.family == "npm")
    filler = dumps({"t": "x" * 5000})
    lines = [filler] * 600 + [dumps({"t": tok})] + [filler] * 10 + [dumps({"t": tok}).rstrip(b"\n")]
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(lines))  # > 1 MB block; the last line has no newline
    found = list(preview_file(path, plain()))
    assert found == [
        Finding("npm", 601, 6, 6 + len(tok), mask(tok.encode())),
        Finding("npm", 612, 6, 6 + len(tok), mask(tok.encode())),
    ]


# -- robustness ---------------------------------------------------------------------------


def test_non_json_invalid_utf8_and_partial_last_line() -> None:
    tok = next(s.text for s in family_secrets(Gen(4)) if s.family == "huggingface").encode()
    data = b"\xff\xfe garbage " + tok + b"\n{broken json " + tok + b"\n\n" + tok
    out, counts = plain().redact_chunk(data)
    assert tok not in out
    assert out.count(b"\n") == data.count(b"\n")
    assert counts == {"huggingface": 3}
    assert out.startswith(b"\xff\xfe garbage [REDACTED:huggingface]\n")


def test_rule_crossing_json_structure_keeps_line_valid() -> None:
    r = plain(extra_rules={"cross": r'badge": "[a-z0-9]+'})
    line = b'{"badge": "abc123", "n": 5, "other": "keep me"}\n'
    out, counts = r.redact_chunk(line)
    assert json.loads(out) == {"[REDACTED:cross]": "[REDACTED:cross]", "n": 5, "other": "keep me"}
    assert out.endswith(b', "n": 5, "other": "keep me"}\n')
    assert counts == {"cross": 1}
