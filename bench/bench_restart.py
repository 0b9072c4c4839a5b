"""Figure 3 — restart with nothing changed: start to idle, and no session file re-read.

10,000 session files in 500 Claude Code project folders are uploaded once (``traceagent
sync``, folder sink). Then the daemon is started 5 times with nothing changed; each time the
clock runs from just before the fork to the first status answer saying ``up_to_date`` with
nothing pending (polled every 10 ms through the control channel). The daemon's own log
line gives the catch-up scan's share.

Then one more start under ``strace -f`` counts, per system call, how the daemon touched the
session files: a restart may ``stat`` them, never ``open`` them (directory opens for the
scan and the inotify watches are counted apart).

Reference (no target in the issue): the wall time of one no-op ``sync_bucket()`` pass
over the same tree, as a per-minute timer would start it (fresh process).

    .venv/bin/python bench/bench_restart.py
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from bench_idle import populate_bucket, run_baseline

TARGET_S = 1.0

_OPEN = re.compile(r'^\d+\s+(?:openat|open|openat2)\((?:[A-Z_]+|\d+),\s*"([^"]+)",\s*([A-Z_|]+)')
_STAT = re.compile(r'^\d+\s+(newfstatat|statx|stat|lstat|fstatat64)\((?:[A-Z_]+|\d+),\s*"([^"]+)"')
_STAT2 = re.compile(r'^\d+\s+(stat|lstat)\("([^"]+)"')


def strace_counts(log: Path, root: str) -> dict[str, int]:
    """Opens and stats of paths under ``root`` in an ``strace -f`` log."""
    counts = {"file_opens": 0, "dir_opens": 0, "stats": 0}
    examples: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        m = _OPEN.match(line)
        if m and m.group(1).startswith(root):
            if "O_DIRECTORY" in m.group(2):
                counts["dir_opens"] += 1
            else:
                counts["file_opens"] += 1
                if len(examples) < 3:
                    examples.append(line.strip())
            continue
        m2 = _STAT.match(line) or _STAT2.match(line)
        if m2 and m2.group(2).startswith(root):
            counts["stats"] += 1
    for e in examples:
        c.log.info("file open during restart: %s", e)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--folders", type=int, default=500)
    ap.add_argument("--mb", type=float, default=16)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    c.setup_logging()
    c.print_facts(f"Figure 3: restart with nothing changed, {args.files:,} files in {args.folders} folders")
    started = time.monotonic()
    strace = shutil.which("strace")
    fakehub = c.import_fakehub()
    with c.workdir("restart", args.keep) as base:
        env = c.isolated_env(base, destination=base / "bucket")
        c.write_config(env)
        files = c.make_tree(
            Path(env["HOME"]),
            folders={"claude": args.folders},
            files=args.files,
            total_bytes=int(args.mb * 1e6),
            min_size=512,
            max_size=256 << 10,
        )
        root = str(Path(env["HOME"]) / ".claude/projects")
        t = time.monotonic()
        r = c.run_cli(env, "sync")
        if r.returncode != 0:
            raise SystemExit(f"traceagent sync failed: {r.stdout}{r.stderr}")
        c.log.info(
            "first upload of %d files: %.1f s (%s)", len(files), time.monotonic() - t, r.stdout.strip()
        )

        to_idle: list[float] = []
        to_answer: list[float] = []
        scans: list[float] = []
        for i in range(args.runs):
            d = c.Daemon(env).start()
            try:
                first = None
                while True:
                    st = d.status(timeout=2)
                    now = time.monotonic()
                    if st is not None and first is None:
                        first = now - d.started_at
                    if st is not None and st["state"] == "up_to_date" and not st["pending"]:
                        break
                    if now - d.started_at > 60:
                        raise SystemExit(f"not idle after 60 s: {st}")
                    time.sleep(0.01)
                to_idle.append(now - d.started_at)
                to_answer.append(first or 0.0)
                assert st["uploaded"] == len(files), st
            finally:
                d.stop()
            lines = c.log_lines(env, "Catch-up scan")
            m = re.search(r"took ([\d.]+) s", lines[-1]) if lines else None
            scans.append(float(m.group(1)) if m else float("nan"))
            c.log.info(
                "restart %d: idle after %.3f s (control channel up at %.3f s, catch-up scan %.2f s)",
                i + 1,
                to_idle[-1],
                to_answer[-1],
                scans[-1],
            )

        counts = None
        if strace:
            trace = base / "strace.log"
            d = c.Daemon(
                env,
                wrapper=[strace, "-f", "-qq", "--seccomp-bpf", "-o", str(trace), "-e", "trace=%file"],
            ).start()
            try:
                d.wait_idle(120, 0.05)
            finally:
                d.stop()
            counts = strace_counts(trace, root)
        else:
            c.log.warning("strace not found: the no-re-read check is skipped (apt-get install strace)")

        with fakehub.FakeHub(base / "cas") as hub:
            populate_bucket(hub, fakehub, "alice/baseline", Path(root), "claude")
            benv = c.hub_env(env, hub)
            benv.pop("TRACEAGENT_DESTINATION", None)
            baseline = run_baseline(benv, Path(root), "hf://buckets/alice/baseline/claude", args.runs)

    print()
    print(f"tree: {args.files:,} files in {args.folders} folders, all uploaded before; {args.runs} restarts")
    print(f"start to idle (fork -> status up_to_date): {c.spread(to_idle, '{:.3f}', ' s')}")
    print(
        f"  of which: control channel answering at {c.spread(to_answer, '{:.3f}', ' s')} (interpreter, imports, lock)"
    )
    print(f"  catch-up scan (daemon log): {c.spread(scans, '{:.3f}', ' s')}")
    if counts is not None:
        print(
            f"strace of one restart, under {root}: {counts['file_opens']} file opens, "
            f"{counts['stats']} stat calls, {counts['dir_opens']} directory opens"
        )
    no_reread = counts is not None and counts["file_opens"] == 0
    ref = [w for w in baseline["wall"]]
    print(
        f"reference: one no-op sync_bucket() pass over the same tree: {c.spread(ref, '{:.2f}', ' s')} wall "
        f"(+ interpreter and import); ratio pass/restart {c.med(ref) / c.med(to_idle):.1f}x"
    )
    print(
        f"targets: start to idle <= {TARGET_S:.0f} s: {c.verdict(c.med(to_idle) <= TARGET_S)} "
        f"({c.med(to_idle):.2f} s); no file re-read beyond stat: "
        f"{c.verdict(no_reread) if counts is not None else 'not checked (no strace)'}"
    )
    print(f"({c.loadavg_note()}; script ran {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
