"""Figure 4 — backfill: 2,000 sessions (~500 MB) from scratch.

The tree: sessions of Claude Code (60 project folders), Codex (25 day folders) and Pi
(15 project folders), 4 KB–16 MB each with a long tail, generated from the real corpus
(unique content, so Xet cannot dedup copies against each other).

``--sink folder`` (default): ``traceagent sync`` (one foreground pass, default settings:
redaction on) into a local folder vs ``cp -r`` of the three session roots. ``--sink hub``:
``traceagent sync`` into a bucket of the fake Hub vs ``HfApi.sync_bucket()`` of the three
roots into the same layout (one fresh process each; a fresh Hub, Xet CAS and Xet cache for
every run, so nothing is deduplicated against an earlier run). The hub tree is scaled down by
half in both dimensions (1,000 sessions, 250 MB: the same mean session size) so that 5 runs of
both fit in 2 minutes: ``sync_bucket()`` costs ~8 ms per file here. Wall time, 5 runs each,
alternating which goes first; ``sync`` is called before every timed step so no run pays
for the previous one's write-back.

    .venv/bin/python bench/bench_backfill.py                  # folder sink vs cp -r
    .venv/bin/python bench/bench_backfill.py --sink hub       # fake Hub vs sync_bucket()
    .venv/bin/python bench/bench_backfill.py --redact off     # the same without redaction
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

FOLDERS = {"claude": 60, "codex": 25, "pi": 15}
CP_TARGET = 1.5

SYNC_CODE = """
import json, sys, time
from huggingface_hub import HfApi
api = HfApi()
t = time.perf_counter()
n = 0
for src, uri in json.loads(sys.argv[1]):
    n += api.sync_bucket(src, uri, quiet=True).summary()["uploads"]
print(json.dumps({"uploads": n, "wall": time.perf_counter() - t}))
"""


def roots(env: dict[str, str]) -> list[tuple[Path, str]]:
    home = Path(env["HOME"])
    return [(home / c.LAYOUT[a][1], c.LAYOUT[a][2]) for a in FOLDERS]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall time of ``cmd``, and until its writes are on disk (``cmd`` then ``sync``)."""
    os.sync()
    t = time.monotonic()
    p = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t
    os.sync()
    durable = time.monotonic() - t
    if p.returncode != 0:
        logf = Path(env.get("TRACEAGENT_HOME", "/nonexistent")) / "logs" / "traceagent.log"
        tail = "\n".join(logf.read_text(errors="replace").splitlines()[-15:]) if logf.exists() else ""
        raise SystemExit(f"{cmd[:3]} failed ({p.returncode}): {p.stdout[-1500:]}{p.stderr[-1500:]}\n{tail}")
    return wall, durable, p


def run_folder(
    base: Path, env0: dict[str, str], n_files: int, runs: int, disk: dict[str, list[float]]
) -> tuple[list[float], list[float]]:
    ta_times: list[float] = []
    cp_times: list[float] = []
    for i in range(runs):
        dest = base / f"dest{i}"
        env = {**env0, "TRACEAGENT_HOME": str(base / f"ta{i}"), "TRACEAGENT_DESTINATION": str(dest)}
        (base / f"ta{i}").mkdir()
        shutil.copy(Path(env0["TRACEAGENT_HOME"]) / "config.toml", base / f"ta{i}" / "config.toml")
        cpdest = base / f"cp{i}"
        cpdest.mkdir()
        cp_cmd = ["cp", "-r", *[str(r) for r, _ in roots(env0)], str(cpdest)]
        steps = [("ta", c.traceagent_cmd(env, "sync")), ("cp", cp_cmd)]
        if i % 2:
            steps.reverse()
        for name, cmd in steps:
            wall, durable, p = timed(cmd, env)
            disk.setdefault(name, []).append(durable)
            if name == "ta":
                if f"Uploaded {n_files} file(s)" not in p.stdout:
                    raise SystemExit(f"traceagent sync did not upload everything: {p.stdout}")
                ta_times.append(wall)
            else:
                cp_times.append(wall)
        c.log.info("run %d: traceagent sync %.2f s, cp -r %.2f s", i + 1, ta_times[-1], cp_times[-1])
        for d in (dest, cpdest, base / f"ta{i}"):
            shutil.rmtree(d, ignore_errors=True)
    return ta_times, cp_times


def run_hub(base: Path, env0: dict[str, str], n_files: int, runs: int) -> tuple[list[float], list[float]]:
    fakehub = c.import_fakehub()
    ta_times: list[float] = []
    hf_times: list[float] = []
    for i in range(runs):
        order = ["ta", "hf"] if i % 2 == 0 else ["hf", "ta"]
        for name in order:
            run_dir = base / f"run{i}-{name}"
            run_dir.mkdir()
            with fakehub.FakeHub(run_dir / "cas") as hub:
                env = c.hub_env(env0, hub)
                env["HF_XET_CACHE"] = str(run_dir / "xet-cache")
                if name == "ta":
                    env["TRACEAGENT_HOME"] = str(run_dir / "ta")
                    (run_dir / "ta").mkdir()
                    shutil.copy(Path(env0["TRACEAGENT_HOME"]) / "config.toml", run_dir / "ta" / "config.toml")
                    env["TRACEAGENT_DESTINATION"] = "hf://buckets/alice/agent-sessions"
                    wall, _, p = timed(c.traceagent_cmd(env, "sync"), env)
                    if f"Uploaded {n_files} file(s)" not in p.stdout:
                        raise SystemExit(f"traceagent sync did not upload everything: {p.stdout}{p.stderr}")
                    ta_times.append(wall)
                else:
                    env.pop("TRACEAGENT_DESTINATION", None)
                    pairs = [
                        (str(r), f"hf://buckets/alice/agent-sessions/{remote}") for r, remote in roots(env0)
                    ]
                    hub.create_bucket("alice/agent-sessions", private=True)
                    wall, _, p = timed([c.PYTHON, "-c", SYNC_CODE, json.dumps(pairs)], env)
                    if json.loads(p.stdout.strip().splitlines()[-1])["uploads"] != n_files:
                        raise SystemExit(f"sync_bucket did not upload everything: {p.stdout}")
                    hf_times.append(wall)
                stored = len(hub.files("alice/agent-sessions"))
                if stored != n_files:
                    raise SystemExit(f"{name}: the bucket holds {stored} files, expected {n_files}")
            shutil.rmtree(run_dir, ignore_errors=True)
        c.log.info("run %d: traceagent sync %.2f s, sync_bucket() %.2f s", i + 1, ta_times[-1], hf_times[-1])
    return ta_times, hf_times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sink", choices=("folder", "hub"), default="folder")
    ap.add_argument("--files", type=int, help="sessions (default 2,000; 1,000 with --sink hub)")
    ap.add_argument("--mb", type=float, help="tree size (default 500 MB; 250 MB with --sink hub)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--redact", choices=("on", "off"), default="on")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.mb is None:
        args.mb = 500 if args.sink == "folder" else 250
    if args.files is None:
        args.files = 2000 if args.sink == "folder" else 1000
    c.setup_logging()
    c.print_facts(
        f"Figure 4: backfill of {args.files:,} sessions / {args.mb:g} MB ({args.sink} sink, redaction {args.redact})"
    )
    started = time.monotonic()
    disk: dict[str, list[float]] = {}
    with c.workdir("backfill", args.keep) as base:
        env = c.isolated_env(base)
        c.write_config(env, redact=args.redact == "on")
        t = time.monotonic()
        files = c.make_tree(
            Path(env["HOME"]),
            folders=FOLDERS,
            files=args.files,
            total_bytes=int(args.mb * 1e6),
            min_size=4096,
            max_size=16 << 20,
        )
        size = c.tree_bytes(files)
        c.log.info("generated %d files, %.0f MB, in %.1f s", len(files), size / 1e6, time.monotonic() - t)
        if args.sink == "folder":
            ours, theirs = run_folder(base, env, len(files), args.runs, disk)
            other, target = "cp -r", CP_TARGET
        else:
            ours, theirs = run_hub(base, env, len(files), args.runs)
            other, target = "sync_bucket()", 1.0

    ratio = [a / b for a, b in zip(ours, theirs, strict=True)]
    print()
    print(f"tree: {len(files):,} sessions, {size / 1e6:.0f} MB; {args.runs} runs, redaction {args.redact}")
    print(f"traceagent sync: {c.spread(ours, '{:.2f}', ' s')} ({size / 1e6 / c.med(ours):.0f} MB/s)")
    print(f"{other}: {c.spread(theirs, '{:.2f}', ' s')} ({size / 1e6 / c.med(theirs):.0f} MB/s)")
    print(f"ratio traceagent/{other} (per run): {c.spread(ratio, '{:.2f}', 'x')}")
    if disk:
        dratio = [a / b for a, b in zip(disk["ta"], disk["cp"], strict=True)]
        print(
            f"until on disk (command, then sync): traceagent {c.spread(disk['ta'], '{:.2f}', ' s')}, "
            f"cp -r {c.spread(disk['cp'], '{:.2f}', ' s')}; ratio {c.spread(dratio, '{:.2f}', 'x')}"
        )
    print(f"target: within {target:g}x of {other}: {c.verdict(c.med(ratio) <= target)} ({c.med(ratio):.2f}x)")
    print(f"({c.loadavg_note()}; script ran {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
