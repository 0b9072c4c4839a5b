"""Figure 5 — bytes Xet sends when a 20 MB session grows by 10 KB.

One 20 MB Claude Code session (corpus lines, repeated and made unique) is uploaded through
the engine and the Hugging Face sink to the fake Hub (tests/support/fakehub.py: the real
huggingface_hub + hf_xet client; the Xet CAS is hf_xet's own file-backed one). Then, 10
times, 10 KB of new complete lines are appended and the engine uploads again. What the
client sent for each append is measured on the server side: the xorbs (compressed chunks)
and shards (file reconstruction) the CAS received, plus the request bodies of the Hub API
(the ``/batch`` call). Also reported: the engine's local CPU and wall time per append
upload (it snapshots and redacts the whole file each time).

Baseline: re-sending the whole file (what a plain PUT of the grown file sends: 20 MB).

    .venv/bin/python bench/bench_append_wire.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

EXPECT_MAX_KB = 100  # "tens of KB, not MB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=20)
    ap.add_argument("--append-kb", type=float, default=10)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--redact", choices=("on", "off"), default="on")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    c.setup_logging()
    c.print_facts(
        f"Figure 5: bytes on the wire when a {args.size_mb:g} MB session grows by {args.append_kb:g} KB"
    )
    started = time.monotonic()
    with c.workdir("wire", args.keep) as base:
        env = c.isolated_env(base)
        os.environ.update(env)  # hf_xet and huggingface_hub read these when first used
        fakehub = c.import_fakehub()
        with fakehub.FakeHub(base / "cas") as hub:
            env = c.hub_env(env, hub)
            env["TRACEAGENT_DESTINATION"] = "hf://buckets/alice/agent-sessions"
            os.environ.update(env)
            c.write_config(env, redact=args.redact == "on")
            from traceagent.app.desktop import build_engine
            from traceagent.app.wiring import load_context

            folder = Path(env["HOME"]) / ".claude/projects/-home-me-work-big"
            folder.mkdir(parents=True)
            session = folder / "0badc0de-0000-4000-8000-000000000020.jsonl"
            tpl = c.templates("claude")
            big = max(tpl, key=len)
            session.write_bytes(c.make_session(big, int(args.size_mb * 1e6), 1))
            size0 = session.stat().st_size

            engine, _ = build_engine(load_context(env))
            cas0, api0 = hub.cas_stored_bytes(), hub.api_bytes_received
            t0, p0 = time.perf_counter(), time.process_time()
            r = engine.run_pass()
            first_wall, first_cpu = time.perf_counter() - t0, time.process_time() - p0
            assert r.uploaded == 1 and not r.error, r
            first_cas = hub.cas_stored_bytes() - cas0
            c.log.info(
                "first upload of %.1f MB: %.1f KB stored in the CAS, %.2f s",
                size0 / 1e6,
                first_cas / 1e3,
                first_wall,
            )

            cas_sent: list[float] = []
            api_sent: list[float] = []
            walls: list[float] = []
            cpus: list[float] = []
            small = sorted(tpl, key=len)
            for i in range(args.runs):
                extra = c.make_session(small[i % len(small)], int(args.append_kb * 1000), 100 + i)
                with open(session, "ab") as f:
                    f.write(extra)
                cas0, api0 = hub.cas_stored_bytes(), hub.api_bytes_received
                t0, p0 = time.perf_counter(), time.process_time()
                r = engine.run_pass()
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - p0)
                assert r.uploaded == 1 and not r.error, r
                cas_sent.append(hub.cas_stored_bytes() - cas0)
                api_sent.append(hub.api_bytes_received - api0)
                c.log.info(
                    "append %d (+%d bytes): %.1f KB to the CAS, %.1f KB to the Hub API, %.2f s, %.2f s CPU",
                    i + 1,
                    len(extra),
                    cas_sent[-1] / 1e3,
                    api_sent[-1] / 1e3,
                    walls[-1],
                    cpus[-1],
                )
            remote = hub.read_file("alice/agent-sessions", "claude/-home-me-work-big/" + session.name)
            local = session.read_bytes()
            same = remote == local if args.redact == "off" else len(remote) == len(local)
            engine.stop()
        size1 = len(local)

    total = [a + b for a, b in zip(cas_sent, api_sent, strict=True)]
    print()
    print(
        f"session: {size0 / 1e6:.1f} MB, then {args.runs} appends of ~{args.append_kb:g} KB "
        f"(redaction {args.redact}); final {size1 / 1e6:.2f} MB; remote copy complete: {same}"
    )
    print(
        f"first upload: {first_cas / 1e6:.2f} MB stored in the CAS (compressed), {first_wall:.2f} s, {first_cpu:.2f} s CPU"
    )
    print(
        f"per append: Xet CAS (xorbs + shards) {c.spread([x / 1e3 for x in cas_sent], '{:.1f}', ' KB')}; "
        f"Hub API bodies {c.spread([x / 1e3 for x in api_sent], '{:.2f}', ' KB')}; "
        f"total {c.spread([x / 1e3 for x in total], '{:.1f}', ' KB')}"
    )
    print(
        f"  engine time per append upload: {c.spread(walls, '{:.2f}', ' s')} wall, "
        f"{c.spread(cpus, '{:.2f}', ' s')} CPU (snapshot + redaction of the whole file, Xet chunking)"
    )
    ratio = size1 / c.med(total)
    print(f"baseline: re-sending the whole file: {size1 / 1e6:.2f} MB; ratio {ratio:.0f}x fewer bytes")
    print(
        f"expectation: tens of KB, not MB: {c.verdict(c.med(total) <= EXPECT_MAX_KB * 1000)} "
        f"({c.med(total) / 1e3:.1f} KB)"
    )
    print(f"({c.loadavg_note()}; script ran {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
