"""Every engine gives byte-identical output: the stdlib fallback is as good as the wheels."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secretgen import CONTEXTS, Gen, dumps, family_secrets
from traceagent.redact import ENGINE_ENV, RedactConfigError, Redactor, available_engines

CORPUS = Path(__file__).parents[1] / "fixtures" / "corpus"
ENGINES = available_engines()
OTHER_ENGINES = [e for e in ENGINES if e != "stdlib"]


@cache
def redactor(engine: str) -> Redactor:
    return Redactor.from_settings(
        own_secrets=False,
        engine=engine,
        extra_values=["Own-Secret-Value-42", 'quo"te\\back-Secret-9'],
    )


def _all_equal(data: bytes) -> None:
    ref = redactor("stdlib").redact_chunk(data)
    for engine in OTHER_ENGINES:
        assert redactor(engine).redact_chunk(data) == ref, engine


def test_a_fast_engine_is_installed() -> None:
    """The parity tests below only mean something with a set engine to compare against."""
    if not OTHER_ENGINES:
        pytest.fail(
            "neither hyperscan nor google-re2 is installed (hyperscan is a dependency; google-re2 the [fast] extra)"
        )
    assert ENGINES[-1] == "stdlib"


def test_engine_names() -> None:
    for engine in ENGINES:
        assert redactor(engine).engine_name == engine


def test_engine_env_var_forces_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENGINE_ENV, "stdlib")
    assert Redactor.from_settings(own_secrets=False).engine_name == "stdlib"
    monkeypatch.setenv(ENGINE_ENV, "auto")
    assert Redactor.from_settings(own_secrets=False).engine_name == ENGINES[0]
    monkeypatch.setenv(ENGINE_ENV, "nonsense")
    with pytest.raises(RedactConfigError, match="nonsense"):
        Redactor.from_settings(own_secrets=False)


def test_auto_falls_back_to_stdlib_without_wheels(tmp_path: Path) -> None:
    """With neither wheel importable, ``auto`` picks the pure-Python engine."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('re2', '_re2', 'hyperscan'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    code = (
        "import json, os\n"
        "from traceagent.redact import Redactor\n"
        "r = Redactor.from_settings(own_secrets=False)\n"
        "url = 'postgres://u:' + os.environ['PW'] + '@h/db'\n"
        "out, counts = r.redact_chunk(json.dumps({'t': url}).encode() + b'\\n')\n"
        "print(r.engine_name, sorted(counts))\n"
    )
    env = {
        "PYTHONPATH": f"{tmp_path}:{Path(__file__).parents[2] / 'src'}",
        "PATH": "/usr/bin:/bin",
        "PW": Gen(6).password(),
    }
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert res.stdout.split() == ["stdlib", "['url-password']"]


@pytest.mark.parametrize("path", sorted(CORPUS.rglob("*.jsonl")), ids=lambda p: p.name[:40])
def test_engines_identical_on_corpus(path: Path) -> None:
    _all_equal(path.read_bytes())


def test_engines_identical_on_planted_mix() -> None:
    rng = random.Random(5)
    corpus = [ln + b"\n" for p in sorted(CORPUS.rglob("*.jsonl")) for ln in p.read_bytes().splitlines()]
    secrets = family_secrets(Gen(5))
    lines = []
    for _ in range(600):
        if rng.random() < 0.3:
            name, ctx = rng.choice(list(CONTEXTS.items()))
            lines.append(dumps(ctx(rng.choice(secrets).text), ascii_only=name == "unicode-escape"))
        else:
            lines.append(rng.choice(corpus))
    data = b"".join(lines)
    _all_equal(data)
    for engine in OTHER_ENGINES:
        assert redactor("stdlib").findings(data) == redactor(engine).findings(data)


# Fragments that sit right at rule boundaries: prefixes, separators, keywords, escapes.
_FRAGMENTS = [
    "sk-",
    "sk-ant-oat01-",
    "sk_live_",
    "rk_test_",
    "gsk_",
    "csk-",
    "hf_",
    "api_org_",
    "ghp_",
    "gho_",
    "github_pat_",
    "glpat-",
    "AKIA",
    "ASIA",
    "AIza",
    "ya29.",
    "1//0",
    "xoxb-",
    "xapp-1-",
    "xai-",
    "hooks.slack.com/services/",
    "whsec_",
    "npm_",
    "pypi-AgEIcHlwaS5vcmc",
    "SG.",
    "pplx-",
    "shpat_",
    "dop_v1_",
    "eyJ",
    ".eyJ",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "PRIVATE KEY",
    "://",
    "://user:",
    "@",
    ":",
    "=",
    " = ",
    ": ",
    "=>",
    ":=",
    '"',
    "'",
    "\\",
    "\\n",
    "\\\\n",
    "\\u001b[32m",
    "\\u00ab",
    "%3D",
    "\n",
    "\t",
    " ",
    ",",
    ".",
    "-",
    "_",
    "/",
    "+",
    "password",
    "PASSWORD",
    "Passwd",
    "pwd",
    "secret",
    "SECRET_KEY",
    "client_secret",
    "token",
    "TOKEN",
    "apiKey",
    "api_key",
    "API_KEY",
    "access_key",
    "private_key",
    "credential",
    "auth",
    "Authorization",
    "authorization: Bearer ",
    "Basic ",
    "bearer ",
    "cookie",
    "aws_secret_access_key=",
    "DB_PASSWORD=",
    "Own-Secret-Value-42",
    "Own-Secret",
    'quo\\"te\\\\back-Secret-9',
    "EXAMPLE",
    "${X}",
    "<your-key>",
    "\x00",
    "\xff",
    "é",
    "[REDACTED:x]",
]
_RUN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+/=", max_size=90)
_PIECE = st.one_of(st.sampled_from(_FRAGMENTS), _RUN)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_PIECE, max_size=25).map("".join), min_size=1, max_size=6))
def test_engines_identical_on_fuzzed_lines(lines: list[str]) -> None:
    data = "\n".join(lines).encode("utf-8", "surrogatepass") + b"\n"
    _all_equal(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_PIECE, max_size=20).map("".join), min_size=1, max_size=4))
def test_engines_identical_on_fuzzed_json(texts: list[str]) -> None:
    data = b"".join(dumps({"t": t, "k": {t: [t]}}) for t in texts)
    data += b"".join(json.dumps({"t": t}).encode() + b"\n" for t in texts)  # ASCII-escaped form
    _all_equal(data)
