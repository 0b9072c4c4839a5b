"""Figure 1 — idle cost of ``traceagent run --headless`` after catch-up.

10,000 session files in 500 Claude Code project folders (generated from the real corpus).
The daemon catches up, then its CPU time is read from ``/proc/<pid>/stat`` over a 60 s
window, split into 6 sub-windows of 10 s read from ``/proc/<pid>/task/*/schedstat`` (ns
resolution) for the median and min–max. Peak RSS is ``VmHWM`` (it includes the catch-up).

Baseline: one ``HfApi.sync_bucket()`` pass over the same tree with nothing to upload,
against the fake Hub (tests/support/fakehub.py; the real huggingface_hub client), in a fresh
process as cron would run it; its CPU × 60 is the per-minute timer's cost per hour.

A second check: another process reading every session file once (a backup, grep, an IDE)
must not make the idle daemon work.

With the Hugging Face sink the daemon runs Hub calls in an upload worker process
(``src/traceagent/hub/worker.py``) that exits after ``upload_worker_idle_seconds`` without
work (default 180 s; 15 s here to fit the 2-minute budget). The idle window starts once the
worker has exited after the catch-up, which is the state the daemon spends its day in. The
worker's memory is sampled every 0.2 s while it lives and printed beside the daemon's, with
the CPU of its whole life; any worker CPU in the window would be added to the daemon's.

    .venv/bin/python bench/bench_idle.py                 # folder sink (the default destination)
    .venv/bin/python bench/bench_idle.py --sink hub      # Hugging Face sink against the fake Hub
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

CORE_TARGET_PCT = 0.2
RSS_TARGET_MB = 60
RATIO_TARGET = 100
WORKER_IDLE_S = 15


def baseline_pass(source: str, uri: str) -> None:
    """(child process) one ``sync_bucket()`` pass; prints its CPU and plan as JSON."""
    t_import = time.process_time()
    from huggingface_hub import HfApi

    api = HfApi()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    plan = api.sync_bucket(source, uri, quiet=True)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    print(
        json.dumps(
            {
                "cpu": cpu1 - cpu0,
                "wall": wall1 - wall0,
                "import_cpu": cpu0 - t_import,
                "summary": plan.summary(),
            }
        )
    )


def populate_bucket(hub: object, fakehub: object, bucket_id: str, root: Path, prefix: str) -> int:
    """Put every file of ``root`` in the fake bucket with its size and mtime, as a previous
    ``hf buckets sync`` would have left it (a no-op pass only compares size and mtime)."""
    bucket = hub.create_bucket(bucket_id, private=True)  # type: ignore[attr-defined]
    now = time.time() * 1000
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            key = f"{prefix}/{os.path.relpath(p, root)}"
            bucket.files[key] = fakehub.StoredFile(  # type: ignore[attr-defined]
                path=key,
                xet_hash="0" * 64,
                mtime_ms=int(st.st_mtime * 1000),
                uploaded_ms=now,
                content_type=None,
                size=st.st_size,
            )
    return len(bucket.files)


def run_baseline(env: dict[str, str], source: Path, uri: str, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"cpu": [], "wall": [], "process_cpu": []}
    for i in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run(
            [c.PYTHON, __file__, "--baseline-pass", str(source), uri],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if p.returncode != 0:
            raise SystemExit(f"baseline pass failed: {p.stderr[-2000:]}")
        res = json.loads(p.stdout.strip().splitlines()[-1])
        if res["summary"]["uploads"] != 0:
            raise SystemExit(f"baseline pass was not a no-op: {res['summary']}")
        out["cpu"].append(res["cpu"])
        out["wall"].append(res["wall"])
        out["process_cpu"].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
        c.log.info(
            "baseline pass %d: %.2f s CPU in sync_bucket(), %.2f s whole process",
            i + 1,
            res["cpu"],
            out["process_cpu"][-1],
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sink", choices=("folder", "hub"), default="folder")
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--folders", type=int, default=500)
    ap.add_argument("--mb", type=float, default=16, help="total size of the generated tree (MB)")
    ap.add_argument("--window", type=float, default=60.0, help="idle window (s)")
    ap.add_argument("--windows", type=int, default=6, help="sub-windows for median/min-max")
    ap.add_argument("--runs", type=int, default=5, help="baseline passes")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--baseline-pass", nargs=2, metavar=("SOURCE", "URI"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_pass:
        baseline_pass(*args.baseline_pass)
        return 0

    c.setup_logging()
    c.print_facts(f"Figure 1: idle cost ({args.sink} sink), {args.files:,} files in {args.folders} folders")
    started = time.monotonic()
    fakehub = c.import_fakehub()
    with c.workdir("idle", args.keep) as base, fakehub.FakeHub(base / "cas") as hub:
        env = c.isolated_env(base, destination=base / "bucket")
        if args.sink == "hub":
            env = c.hub_env(env, hub)
            env["TRACEAGENT_DESTINATION"] = "hf://buckets/alice/agent-sessions"
        if args.sink == "hub":  # every default but the worker's idle exit (see the docstring)
            c.write_config(env, upload_worker_idle_seconds=WORKER_IDLE_S)
        else:
            c.write_config(env)  # every default: debounce 10 s, redaction on
        t = time.monotonic()
        files = c.make_tree(
            Path(env["HOME"]),
            folders={"claude": args.folders},
            files=args.files,
            total_bytes=int(args.mb * 1e6),
            min_size=512,
            max_size=256 << 10,
        )
        root = Path(env["HOME"]) / ".claude/projects"
        c.log.info(
            "generated %d files, %.1f MB, in %.1f s",
            len(files),
            c.tree_bytes(files) / 1e6,
            time.monotonic() - t,
        )

        daemon = c.Daemon(env).start()
        workers = c.ChildSampler(daemon.pid).start()
        try:
            st = daemon.wait_idle(300, 0.5)
            catchup = time.monotonic() - daemon.started_at
            assert st["uploaded"] == len(files), st
            c.log.info("catch-up of %d files took %.1f s; idle window starts", st["uploaded"], catchup)
            time.sleep(1)  # let the control channel's last handler thread end
            pid = daemon.pid
            # The idle state is the one without an upload worker: wait for its idle exit, which
            # happens once after a burst of uploads (its cost is printed apart, not per hour).
            waited = time.monotonic()
            while c.proc_children(pid) and time.monotonic() - waited < WORKER_IDLE_S + 20:
                time.sleep(0.2)
            worker_wait = time.monotonic() - waited
            worker_life_cpu = workers.cpu_seconds()
            time.sleep(1)  # the idle timer's thread ends after it fired
            n = max(1, args.windows)
            step = args.window / n
            worker_cpu0 = workers.cpu_seconds()
            cpu_stat0 = c.proc_cpu_seconds(pid)
            wake0 = c.proc_wakeups(pid)
            per_window: list[float] = []
            for _ in range(n):
                s0 = c.proc_sched_ns(pid)
                time.sleep(step)
                per_window.append((c.proc_sched_ns(pid) - s0) / 1e9 / step * 3600)  # CPU s per hour
            worker_idle_cpu = workers.cpu_seconds() - worker_cpu0
            idle_cpu = c.proc_cpu_seconds(pid) - cpu_stat0 + worker_idle_cpu
            wakeups = c.proc_wakeups(pid) - wake0
            worker_alive_at_end = bool(c.proc_children(pid))
            hwm_mb = c.proc_status_kb(pid, "VmHWM") / 1024
            rss_mb = c.proc_status_kb(pid, "VmRSS") / 1024
            threads = len(c.proc_threads(pid))

            # Another process reads every session once (backup, grep, IDE indexer).
            s0 = c.proc_sched_ns(pid)
            for p in files:
                p.read_bytes()
            time.sleep(1)
            reader_ms = (c.proc_sched_ns(pid) - s0) / 1e6
            still = daemon.status()
        finally:
            daemon.stop()
            workers.stop()

        uri = "hf://buckets/alice/baseline/claude"
        populate_bucket(hub, fakehub, "alice/baseline", root, "claude")
        base_env = c.hub_env(env, hub)
        base_env.pop("TRACEAGENT_DESTINATION", None)
        baseline = run_baseline(base_env, root, uri, args.runs)

    # schedstat has ns resolution but forgets threads that ended; /proc/<pid>/stat keeps them but
    # counts 10 ms ticks. The larger of the two is the daemon's figure.
    sched_cpu = sum(per_window) / 3600 * step
    per_hour_daemon = max(idle_cpu, sched_cpu) / args.window * 3600
    per_hour_base = [x * 60 for x in baseline["cpu"]]
    per_hour_proc = [x * 60 for x in baseline["process_cpu"]]
    core_pct = per_hour_daemon / 3600 * 100
    tick_bound = 1 / c.CLK_TCK / args.window * 3600
    ratio = c.med(per_hour_base) / per_hour_daemon if per_hour_daemon else float("inf")

    print()
    print(
        f"tree: {args.files:,} files, {args.folders} folders; catch-up took {catchup:.1f} s ({args.sink} sink)"
    )
    print(
        f"daemon idle CPU over {args.window:.0f} s: {sched_cpu * 1000:.3f} ms (schedstat), {idle_cpu:.2f} s "
        f"(/proc/<pid>/stat) = {per_hour_daemon:.4f} CPU s/hour = {core_pct:.5f} % of one core"
    )
    print(
        f"  per {step:.0f} s sub-window (schedstat, ns): {c.spread(per_window, '{:.4f}', ' s/h')}; "
        f"{wakeups} wake-ups in {args.window:.0f} s; {threads} threads"
    )
    print(f"  peak RSS (VmHWM, includes catch-up): {hwm_mb:.1f} MB; RSS when idle: {rss_mb:.1f} MB")
    if workers.peaks:
        print(
            f"  upload worker: {len(workers.peaks)} started; its peak RSS {max(workers.peaks.values()):.1f} MB "
            f"(transient); daemon + worker at their busiest {workers.max_total_mb:.1f} MB; it exited "
            f"{worker_wait:.1f} s after the catch-up (idle exit {WORKER_IDLE_S} s here, 180 s by default), "
            f"having used {worker_life_cpu:.2f} s CPU for the whole catch-up and its exit; in the idle window: "
            f"{worker_idle_cpu:.2f} s CPU (counted above), "
            + ("a worker was running at the window's end" if worker_alive_at_end else "no worker running")
        )
    print(
        f"  another process reading all {len(files):,} sessions once cost the daemon {reader_ms:.0f} ms CPU "
        f"(state after: {still['state'] if still else '?'})"
    )
    print(
        f"baseline: sync_bucket() no-op pass: {c.spread(baseline['cpu'], '{:.2f}', ' s')} CPU, "
        f"{c.spread(baseline['wall'], '{:.2f}', ' s')} wall; whole cron process (python + import + pass) "
        f"{c.spread(baseline['process_cpu'], '{:.2f}', ' s')} CPU"
    )
    print(
        f"  x 60 per hour: {c.spread(per_hour_base, '{:.0f}', ' CPU s/h')} "
        f"({c.med(per_hour_base) / 36:.2f} % of one core); whole process {c.spread(per_hour_proc, '{:.0f}', ' CPU s/h')}"
    )
    ratio_txt = (
        f"{ratio:.0f}x" if ratio != float("inf") else "inf (no CPU at all in the window: 0 ns, 0 ticks)"
    )
    ratio_txt += (
        f"; had it used one 10 ms tick: {c.med(per_hour_base) / max(per_hour_daemon, tick_bound):.0f}x"
    )
    print(f"ratio baseline/daemon: {ratio_txt}")
    print(
        f"targets: <= {CORE_TARGET_PCT} % of one core: {c.verdict(core_pct <= CORE_TARGET_PCT)}; "
        f"<= {RSS_TARGET_MB} MB RSS: {c.verdict(hwm_mb <= RSS_TARGET_MB)} ({hwm_mb:.0f} MB); "
        f">= {RATIO_TARGET}x cheaper: {c.verdict(ratio >= RATIO_TARGET)}"
    )
    print(f"({c.loadavg_note()}; script ran {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
