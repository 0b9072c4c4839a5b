"""Figure 7 — what an append to a 300 MB session costs with the folder sink.

One 300 MB Claude Code session (corpus lines, repeated and made unique) is uploaded through
the engine into a local folder (default settings: redaction on). Then, ``--runs`` times,
``--append-kb`` of new complete lines are appended and the engine uploads again
(``Engine.run_pass`` in this process, as ``bench_append_wire.py`` does).

Per append it reports:

- at the destination: the bytes written into the copy (an append adds them to the same file,
  same inode; a whole copy writes a new file of the full size), against the appended bytes
  (target: ≤ 2×);
- everything the pass read and wrote (``rchar``/``wchar`` of ``/proc/self/io`` around it:
  the session, the spool file, the destination, ``state.db`` and the log).

Baseline: the same appends with appending switched off (``LocalFolderSink.can_append =
False``): the whole-copy path every upload took before, which re-reads, re-redacts and
re-writes the whole file (issue 11: 6.6 GB read and written in 62 s on a 315 MB session).

    .venv/bin/python bench/bench_append_cost.py
    .venv/bin/python bench/bench_append_cost.py --size-mb 300 --append-kb 100 --runs 5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

TARGET = 2.0  # destination bytes written per appended byte


def io() -> dict[str, int]:
    """This process's I/O counters (``rchar``/``wchar``: bytes through read/write calls)."""
    rows = (line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return {k: int(v) for k, v in rows}


def measure(base: Path, args: argparse.Namespace, *, append: bool) -> dict[str, Any]:
    """Upload the session, then append ``runs`` times; the cost of each append's upload."""
    env = c.isolated_env(base)
    os.environ.update(env)
    c.write_config(env, redact=args.redact == "on")
    from traceagent.app.desktop import build_engine
    from traceagent.app.wiring import load_context
    from traceagent.sinks.local import LocalFolderSink

    LocalFolderSink.can_append = append
    folder = Path(env["HOME"]) / ".claude/projects/-home-me-work-big"
    folder.mkdir(parents=True)
    session = folder / "0badc0de-0000-4000-8000-000000000300.jsonl"
    tpl = c.templates("claude")
    session.write_bytes(c.make_session(max(tpl, key=len), int(args.size_mb * 1e6), 1))
    engine, _ = build_engine(load_context(env))
    try:
        r = engine.run_pass()
        assert r.uploaded == 1 and not r.error, r
        dest = Path(env["TRACEAGENT_HOME"]) / "data/bucket/claude/-home-me-work-big" / session.name
        small = sorted(tpl, key=len)
        out: dict[str, list[float]] = {k: [] for k in ("appended", "dest", "read", "written", "wall", "cpu")}
        for i in range(args.runs):
            extra = c.make_session(small[i % len(small)], int(args.append_kb * 1000), 100 + i)
            with open(session, "ab") as f:
                f.write(extra)
            st0 = dest.stat()
            io0, t0, p0 = io(), time.perf_counter(), time.process_time()
            r = engine.run_pass()
            wall, cpu, io1 = time.perf_counter() - t0, time.process_time() - p0, io()
            assert r.uploaded == 1 and not r.error, r
            st1 = dest.stat()
            # Same inode: only the growth was written; a new inode: the whole file was.
            dest_written = st1.st_size - st0.st_size if st1.st_ino == st0.st_ino else st1.st_size
            out["appended"].append(len(extra))
            out["dest"].append(dest_written)
            out["read"].append(io1["rchar"] - io0["rchar"])
            out["written"].append(io1["wchar"] - io0["wchar"])
            out["wall"].append(wall)
            out["cpu"].append(cpu)
            c.log.info(
                "%s append %d (+%d bytes): destination %.1f KB, pass read %.1f KB / wrote %.1f KB, %.2f s",
                "append" if append else "whole-copy",
                i + 1,
                len(extra),
                dest_written / 1e3,
                out["read"][-1] / 1e3,
                out["written"][-1] / 1e3,
                wall,
            )
        if args.redact == "off":
            assert dest.read_bytes() == session.read_bytes(), "the copy differs from the session"
        size = session.stat().st_size
    finally:
        engine.stop()
    return {"size": size, **out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=300)
    ap.add_argument("--append-kb", type=float, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--redact", choices=("on", "off"), default="on")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    c.setup_logging()
    c.print_facts(
        f"Figure 7: cost of a {args.append_kb:g} KB append to a {args.size_mb:g} MB session, folder sink"
    )
    started = time.monotonic()
    with c.workdir("append-new", args.keep) as base:
        new = measure(base, args, append=True)
    with c.workdir("append-old", args.keep) as base:
        old = measure(base, args, append=False)

    def per_append(m: dict[str, Any], key: str) -> str:
        return c.spread([v / 1e3 for v in m[key]], "{:.1f}", " KB")

    appended = c.med(new["appended"])
    print()
    print(
        f"session: {new['size'] / 1e6:.1f} MB after {args.runs} appends of ~{appended / 1e3:.1f} KB "
        f"(redaction {args.redact})"
    )
    for name, m in (("append (this change)", new), ("baseline: whole copy", old)):
        print(
            f"{name}: destination written {per_append(m, 'dest')} per append; the pass read "
            f"{per_append(m, 'read')} and wrote {per_append(m, 'written')}; "
            f"{c.spread([w * 1e3 for w in m['wall']], '{:.1f}', ' ms')} wall, "
            f"{c.spread([t * 1e3 for t in m['cpu']], '{:.0f}', ' ms')} CPU"
        )
    ratio = c.med(new["dest"]) / appended
    print(
        f"destination bytes per appended byte: {ratio:.2f} (the pass: read {c.med(new['read']) / appended:.2f}, "
        f"wrote {c.med(new['written']) / appended:.2f}); baseline {c.med(old['dest']) / appended:.0f} "
        f"(read {c.med(old['read']) / appended:.0f}, wrote {c.med(old['written']) / appended:.0f})"
    )
    print(
        f"ratio to the baseline: {c.med(old['dest']) / c.med(new['dest']):.0f}x fewer bytes written at the "
        f"destination, {c.med(old['read']) / c.med(new['read']):.0f}x fewer read, "
        f"{c.med(old['written']) / c.med(new['written']):.0f}x fewer written by the pass"
    )
    print(f"target: destination bytes <= {TARGET:g}x the appended bytes: {c.verdict(ratio <= TARGET)}")
    print(f"({c.loadavg_note()}; script ran {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
