"""Figure 8 — peak memory uploading a session with one 150 MB line.

A Claude Code session whose second line is one 150 MB record (a user message carrying a
pasted base64 image, the way a huge line happens in practice) with real-format secrets
planted in it, some at the 1 MiB read boundaries. ``traceagent sync`` (one foreground pass,
default settings: redaction on, folder sink) uploads it in a fresh process; the figure is
that process's peak RSS (``VmHWM`` read by the process itself just before it exits), median
of ``--runs`` runs with a fresh state and destination each. Every run checks that the copy
has the session's size minus what redaction removed and holds none of the planted secrets.

Baseline: the same with streaming switched off (``snapshot.LONG_LINE`` set beyond the line,
so the line is held whole and redacted in one piece, as before this change), or with
``--baseline-src DIR`` the code of another checkout's ``src/`` (for example the commit before
this change: ``git archive 06d7caa src | tar -x -C /tmp/old``). Issue 11 measured 643 MB for a
150 MB line, "about 4x the longest line plus 40 MB".

    .venv/bin/python bench/bench_long_line.py
    .venv/bin/python bench/bench_long_line.py --baseline-src /tmp/old/src
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

TARGET_MB = 100

RUN = """
import sys
{prelude}
from traceagent.cli import main
code = main(["sync"])
status = open("/proc/self/status").read()
print("VmHWM", status.split("VmHWM:")[1].split()[0], file=sys.stderr)
sys.exit(code)
"""
NO_STREAMING = "import traceagent.sync.snapshot as s; s.LONG_LINE = 1 << 40"


def make_line(size: int, seed: int) -> tuple[bytes, list[str]]:
    """One JSON record of ``size`` bytes: a prompt with an image and planted secrets."""
    sys.path.insert(0, str(c.TESTS))
    from secretgen import Gen, family_secrets

    g = Gen(seed)
    secrets = [s.text for s in family_secrets(g) if s.fragments == (s.text,)][:12]
    rng = random.Random(seed)
    chunk = 1 << 20
    parts: list[str] = []
    total = 0
    for i, secret in enumerate(secrets):
        # Each secret straddles a 1 MiB read boundary, 10 MB apart.
        at = (i * 12 + 1) * chunk - len(secret) // 2
        gap = at - total
        parts.append(base64.b64encode(rng.randbytes(gap * 3 // 4 + 3)).decode()[: gap - 1] + " ")
        parts.append(secret + " ")
        total = at + len(secret) + 1
    rest = size - total - 200
    parts.append(base64.b64encode(rng.randbytes(rest * 3 // 4 + 3)).decode()[:rest])
    record = {
        "type": "user",
        "uuid": "0badc0de-0000-4000-8000-000000000150",
        "timestamp": "2026-02-23T11:41:04.709Z",
        "message": {"role": "user", "content": [{"type": "text", "text": "".join(parts)}]},
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n", secrets


def one_run(base: Path, session_bytes: bytes, prelude: str, src: str | None = None) -> float:
    """A fresh ``traceagent sync`` (of the code in ``src`` if given): its peak RSS in MB."""
    shutil.rmtree(base / "ta", ignore_errors=True)
    env = c.isolated_env(base)
    if src is not None:
        env["PYTHONPATH"] = src
    folder = Path(env["HOME"]) / ".claude/projects/-home-me-work-big"
    folder.mkdir(parents=True, exist_ok=True)
    session = folder / "0badc0de-0000-4000-8000-000000000150.jsonl"
    if not session.exists():
        session.write_bytes(session_bytes)
    r = subprocess.run(
        [c.PYTHON, "-c", RUN.format(prelude=prelude)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(f"sync failed: {r.stderr[-2000:]}")
    return int(r.stderr.rsplit("VmHWM", 1)[1].split()[0]) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--line-mb", type=float, default=150)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline-runs", type=int, default=3)
    ap.add_argument("--baseline-src", help="run the baseline with this src/ folder (older code)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    c.setup_logging()
    c.print_facts(f"Figure 8: peak RSS uploading a session with one {args.line_mb:g} MB line (folder sink)")
    started = time.monotonic()
    line, secrets = make_line(int(args.line_mb * (1 << 20)), 150)
    head = b'{"type":"user","message":{"role":"user","content":"look at this screenshot"}}\n'
    data = head + line
    del line
    with c.workdir("longline", args.keep) as base:
        dest = base / "ta/data/bucket/claude/-home-me-work-big/0badc0de-0000-4000-8000-000000000150.jsonl"

        def check() -> None:
            copy = dest.read_bytes()
            assert copy.startswith(head) and copy.endswith(b"\n") and copy.count(b"\n") == 2
            leaked = [s for s in secrets if s.encode() in copy]
            assert not leaked, f"{len(leaked)} planted secrets reached the copy"
            assert copy.count(b"[REDACTED:") >= len(secrets)

        new: list[float] = []
        for i in range(args.runs):
            new.append(one_run(base, data, ""))
            check()
            c.log.info("streaming run %d: peak RSS %.1f MB", i + 1, new[-1])
        old: list[float] = []
        for i in range(args.baseline_runs):
            if args.baseline_src:
                old.append(one_run(base, data, "", str(Path(args.baseline_src).resolve())))
            else:
                old.append(one_run(base, data, NO_STREAMING))
            check()
            c.log.info("baseline run %d: peak RSS %.1f MB", i + 1, old[-1])
    print()
    print(
        f"session: {len(data) / 1e6:.1f} MB, its longest line {(len(data) - len(head)) / 1e6:.1f} MB, {len(secrets)} planted secrets (all redacted)"
    )
    print(f"peak RSS of `traceagent sync`: {c.spread(new, '{:.1f}', ' MB')} ({args.runs} runs)")
    print(
        f"baseline ({'the code in ' + args.baseline_src if args.baseline_src else 'the line held whole, as before'}): "
        f"{c.spread(old, '{:.1f}', ' MB')} ({args.baseline_runs} runs); "
        f"ratio {c.med(old) / c.med(new):.1f}x less memory"
    )
    print(f"target: <= {TARGET_MB} MB: {c.verdict(c.med(new) <= TARGET_MB and max(new) <= TARGET_MB)}")
    print(f"({c.loadavg_note()}; script ran {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
