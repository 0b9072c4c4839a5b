"""Redaction throughput, end to end, on a realistic JSONL file.

Builds a ~50 MB JSONL file from the real transcripts in ``tests/fixtures/corpus`` (lines
sampled with a seeded RNG) with fake secrets planted in about 1 line in 200, then for each
engine reads it in 1 MB blocks of whole lines, redacts, and writes the result. Also times the
baseline of the research note: every rule as its own ``re.finditer`` pass over the data.

    .venv/bin/python bench/bench_redact.py [--mb 50] [--runs 3]

Runs in well under 2 minutes on a 2-core VM.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "support")]

from secretgen import CONTEXTS, Gen, dumps, escaped_forms, family_secrets  # noqa: E402
from traceagent.redact import ENGINE_NAMES, Redactor  # noqa: E402
from traceagent.redact.rules import BUILTIN_RULES  # noqa: E402

CORPUS = ROOT / "tests" / "fixtures" / "corpus"
BLOCK = 1 << 20


def corpus_lines() -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(CORPUS.rglob("*.jsonl")):
        lines += [ln + b"\n" for ln in path.read_bytes().splitlines() if ln.strip()]
    return lines


def build(path: Path, target_mb: float, seed: int = 1) -> tuple[int, int, set[str]]:
    """Write the bench file; return (bytes, planted secret lines, planted fragments)."""
    rng = random.Random(seed)
    lines = corpus_lines()
    secrets = family_secrets(Gen(seed))
    contexts = list(CONTEXTS.items())
    size = planted = 0
    fragments: set[str] = set()
    target = int(target_mb * 1e6)
    with open(path, "wb") as fh:
        while size < target:
            if rng.random() < 0.005:
                name, ctx = rng.choice(contexts)
                secret = rng.choice(secrets)
                line = dumps(ctx(secret.text), ascii_only=name == "unicode-escape")
                fragments.update(secret.fragments)
                planted += 1
            else:
                line = rng.choice(lines)
            fh.write(line)
            size += len(line)
    return size, planted, fragments


def blocks(path: Path):  # type: ignore[no-untyped-def]
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            if not block.endswith(b"\n"):
                block += fh.readline()
            yield block


def run_engine(engine: str, src: Path, dst: Path) -> tuple[float, float, dict[str, int]]:
    redactor = Redactor.from_settings(own_secrets=False, engine=engine, extra_values=["Zq7-own-secret-Xy9"])
    totals: dict[str, int] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    with open(dst, "wb") as out:
        for block in blocks(src):
            clean, counts = redactor.redact_chunk(block)
            out.write(clean)
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
    return time.perf_counter() - t0, time.process_time() - c0, totals


def run_baseline(src: Path) -> float:
    """One ``finditer`` pass per rule over each block (detection only, no validators); CPU s."""
    c0 = time.process_time()
    for block in blocks(src):
        lowered = block.lower()
        for rule in BUILTIN_RULES:
            for _ in rule.regex.finditer(lowered if rule.ci else block):
                pass
    return time.process_time() - c0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available(engine: str) -> bool:
    try:
        Redactor.from_settings(own_secrets=False, engine=engine)
    except ValueError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    print(f"CPU:      {cpu_model()} ({os.cpu_count()} logical cores)")
    print(
        f"Python:   {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()}"
    )
    versions = []
    for dist in ("hyperscan", "google-re2"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} missing")
    print(f"Wheels:   {', '.join(versions)}")

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "bench.jsonl", Path(tmp) / "out.jsonl"
        size, planted, fragments = build(src, args.mb)
        mb = size / 1e6
        print(
            f"Input:    {mb:.1f} MB, {planted} lines with a planted secret, {len(BUILTIN_RULES)} built-in rules"
        )
        print(f"Timing:   median of {args.runs} runs, single thread, read 1 MB blocks -> redact -> write")
        print("          MB/s per core = size / CPU time of this process (wall-clock MB/s in brackets:")
        print("          lower when other jobs share the cores)\n")

        results: dict[str, float] = {}
        reference: bytes | None = None
        for engine in ENGINE_NAMES:
            if not available(engine):
                print(f"{engine:>10}: not installed")
                continue
            walls, cpus = [], []
            for _ in range(args.runs):
                wall, cpu, totals = run_engine(engine, src, dst)
                walls.append(wall)
                cpus.append(cpu)
            results[engine] = mb / statistics.median(cpus)
            wall_rate = mb / statistics.median(walls)
            output = dst.read_bytes()
            same = "reference" if reference is None else ("identical" if output == reference else "DIFFERENT")
            print(
                f"{engine:>10}: {results[engine]:7.1f} MB/s  [{wall_rate:6.1f}]"
                f"  ({sum(totals.values())} redactions, output {same})"
            )
            if reference is None:
                reference = output
                survivors = sum(1 for f in fragments if any(x.encode() in output for x in escaped_forms(f)))
                print(f"{'':>12}planted secrets surviving in the output: {survivors} of {len(fragments)}")

        base_times = [run_baseline(src) for _ in range(max(1, args.runs - 1))]
        baseline = mb / statistics.median(base_times)
        print(f"{'baseline':>10}: {baseline:7.1f} MB/s  (re, one finditer pass per rule, detection only)\n")
        for engine, rate in results.items():
            print(f"ratio {engine}/baseline: {rate / baseline:5.1f}x")
        targets = {"hyperscan": 100.0, "re2": 100.0, "stdlib": 25.0}
        for engine, rate in results.items():
            verdict = "OK" if rate >= targets[engine] else "BELOW TARGET"
            print(f"target {engine}: >= {targets[engine]:.0f} MB/s -> {verdict}")


if __name__ == "__main__":
    main()
