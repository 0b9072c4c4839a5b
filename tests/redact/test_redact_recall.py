"""Recall: every generated secret of every family, planted in every context, is removed."""

from __future__ import annotations

import json
from functools import cache

import pytest

from secretgen import CONTEXTS, Gen, Secret, dumps, escaped_forms, family_secrets
from traceagent.redact import Redactor, available_engines

SEEDS = (1, 2, 3)
ENGINES = available_engines()
EXPECTED_FAMILIES = {
    "private-key",
    "anthropic",
    "openai",
    "huggingface",
    "huggingface-org",
    "github",
    "github-fine-grained",
    "gitlab",
    "aws-access-key-id",
    "aws-secret-access-key",
    "google-api-key",
    "google-oauth",
    "google-refresh-token",
    "slack",
    "slack-app",
    "slack-webhook",
    "stripe",
    "stripe-webhook",
    "npm",
    "pypi",
    "groq",
    "xai",
    "sendgrid",
    "cerebras",
    "perplexity",
    "shopify",
    "digitalocean",
    "jwt",
    "url-password",
    "auth-header",
    "env-secret",
    "keyed-secret",
}


@cache
def redactor(engine: str) -> Redactor:
    return Redactor.from_settings(own_secrets=False, engine=engine)


@cache
def planted(seed: int) -> tuple[list[tuple[Secret, str]], bytes]:
    """One JSONL line per (secret, context)."""
    cases: list[tuple[Secret, str]] = []
    lines: list[bytes] = []
    for secret in family_secrets(Gen(seed)):
        for name, ctx in CONTEXTS.items():
            cases.append((secret, name))
            lines.append(dumps(ctx(secret.text), ascii_only=name == "unicode-escape"))
    return cases, b"".join(lines)


def test_generator_covers_every_family() -> None:
    families = {s.family for s in family_secrets(Gen(1))}
    assert families == EXPECTED_FAMILIES


def test_generator_is_deterministic() -> None:
    assert family_secrets(Gen(7)) == family_secrets(Gen(7))
    assert family_secrets(Gen(7)) != family_secrets(Gen(8))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", SEEDS)
def test_recall_every_family_every_context(engine: str, seed: int) -> None:
    cases, data = planted(seed)
    out, counts = redactor(engine).redact_chunk(data)
    in_lines = data.splitlines(keepends=True)
    out_lines = out.splitlines(keepends=True)
    assert len(out_lines) == len(in_lines) == len(cases)
    missed = []
    for (secret, ctx), line in zip(cases, out_lines, strict=True):
        json.loads(line)  # still valid JSON
        for frag in secret.fragments:
            if any(form.encode() in line for form in escaped_forms(frag)):
                missed.append((secret.family, ctx, frag[:12]))
    assert not missed, f"{len(missed)} planted secrets survived: {missed[:20]}"
    assert sum(counts.values()) >= len(cases)


@pytest.mark.parametrize("seed", SEEDS)
def test_family_rule_names_in_plain_prompt(seed: int) -> None:
    """In plain prose the marker names the family's own rule."""
    r = redactor("stdlib")
    for secret in family_secrets(Gen(seed)):
        out, counts = r.redact_chunk(dumps(CONTEXTS["prompt"](secret.text)))
        assert secret.family in counts, (secret.family, counts)
        assert f"[REDACTED:{secret.family}]".encode() in out


@pytest.mark.parametrize("engine", ENGINES)
def test_engines_identical_on_planted_data(engine: str) -> None:
    _, data = planted(1)
    assert redactor(engine).redact_chunk(data) == redactor("stdlib").redact_chunk(data)
    assert redactor(engine).findings(data) == redactor("stdlib").findings(data)


def test_many_secrets_on_one_line_and_adjacent() -> None:
    secrets = family_secrets(Gen(11))
    tokens = [s.text for s in secrets if s.fragments == (s.text,)]
    text = " ".join(tokens) + "\n" + ",".join(tokens) + "\n" + "\\n".join(tokens)
    out, counts = redactor("stdlib").redact_chunk(dumps({"text": text}))
    for tok in tokens:
        assert tok.encode() not in out
    json.loads(out)
    assert sum(counts.values()) >= 3 * len(tokens) - 3


def test_pem_escaped_and_truncated() -> None:
    secret = next(s for s in family_secrets(Gen(5)) if s.family == "private-key")
    truncated = secret.text[: len(secret.text) // 2]  # `head -c`: no END line
    for text in (secret.text, truncated, secret.text.replace("\n", "\r\n")):
        out, counts = redactor("stdlib").redact_chunk(dumps({"content": text}))
        assert counts.get("private-key") == 1
        assert out.count(b"\\n") <= 1  # the body and its newlines are gone
        json.loads(out)


def test_token_boundaries_reject_embedded_prefixes() -> None:
    g = Gen(3)
    hf = "hf_" + g.chars("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 34)
    cases = {
        f"x{hf}": 0,  # inside a word
        f"-{hf}": 0,  # inside URL-safe base64
        f"{hf}a": 0,  # too long for the family
        f"={hf}": 1,
        f"/{hf}": 1,
        f"\n{hf}": 1,  # after a JSON \n escape
        f"\\n{hf}": 1,  # after a twice-escaped \n
        f"%3D{hf}": 1,  # URL-encoded '='
    }
    r = redactor("stdlib")
    for text, expected in cases.items():
        _, counts = r.redact_chunk(dumps({"t": text}))
        assert counts.get("huggingface", 0) == expected, text
