"""Zero false positives: real transcripts and known look-alikes come out byte-identical."""

from __future__ import annotations

import base64
import json
import random
from functools import cache
from pathlib import Path

import pytest

from secretgen import CONTEXTS, SECRET_KEYED_CONTEXTS, Gen, dumps, image_b64, negatives, signature
from traceagent.redact import Redactor, available_engines

CORPUS = Path(__file__).parents[1] / "fixtures" / "corpus"
ENGINES = available_engines()
CORPUS_FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json"))


@cache
def redactor(engine: str = "stdlib") -> Redactor:
    return Redactor.from_settings(own_secrets=False, engine=engine)


def test_corpus_is_present() -> None:
    agents = {p.relative_to(CORPUS).parts[0] for p in CORPUS_FILES}
    assert agents == {"claude-code", "codex", "pi"}
    assert sum(p.stat().st_size for p in CORPUS_FILES) > 2_000_000


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS))[:60])
def test_real_transcripts_are_untouched(path: Path, engine: str) -> None:
    data = path.read_bytes()
    out, counts = redactor(engine).redact_chunk(data)
    assert counts == {}
    assert out == data
    assert redactor(engine).findings(data) == []


def test_corpus_ids_hashes_and_signatures_survive() -> None:
    """The high-entropy strings agents write are all still there after redaction."""
    data = b"".join(p.read_bytes() for p in CORPUS_FILES)
    out, _ = redactor().redact_chunk(data)
    for needle in (b'"signature":"', b"toolu_", b"msg_", b"thinkingSignature", b"encrypted_content"):
        assert out.count(needle) == data.count(needle)


@pytest.mark.parametrize("ctx", sorted(set(CONTEXTS) - SECRET_KEYED_CONTEXTS))
def test_look_alikes_in_every_context(ctx: str) -> None:
    lines = b"".join(dumps(CONTEXTS[ctx](text)) for text in negatives(Gen(21)))
    out, counts = redactor().redact_chunk(lines)
    found = [(f.rule, f.masked) for f in redactor().findings(lines)]
    assert counts == {}, found
    assert out == lines


def test_random_base64_images_and_signatures() -> None:
    """Screenshots and thinking signatures are base64: no token rule may fire inside them."""
    g = Gen(3)
    lines = []
    for i in range(8):
        data = image_b64(g, 150_000)
        if i % 2:
            data = data.replace("+", "-").replace("/", "_")  # URL-safe alphabet
        block = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}
        lines.append(dumps({"message": {"content": [block]}}))
    for _ in range(300):
        lines.append(dumps({"type": "thinking", "thinking": "Let me think.", "signature": signature(g)}))
    data = b"".join(lines)
    for engine in ENGINES:
        out, counts = redactor(engine).redact_chunk(data)
        assert counts == {}
        assert out == data


def test_lockfile_git_log_and_docker_output() -> None:
    g = Gen(8)
    rng = random.Random(8)
    lock = {
        f"node_modules/pkg{i}": {
            "version": f"1.{i}.0",
            "resolved": f"https://registry.npmjs.org/pkg{i}/-/pkg{i}-1.{i}.0.tgz",
            "integrity": "sha512-" + base64.b64encode(g.rand_bytes(64)).decode(),
        }
        for i in range(200)
    }
    git_log = "\n".join(
        f"commit {g.chars('0123456789abcdef', 40)}\nAuthor: Dev {i} <dev{i}@example.com>\n\n    fix: thing {i}"
        for i in range(100)
    )
    docker = "\n".join(
        f"#{i} sha256:{g.chars('0123456789abcdef', 64)} {rng.randint(1, 999)}kB done" for i in range(100)
    )
    data = b"".join(
        dumps(CONTEXTS["pi-tool-result"](text)) for text in (json.dumps(lock, indent=2), git_log, docker)
    )
    out, counts = redactor().redact_chunk(data)
    assert counts == {}
    assert out == data
