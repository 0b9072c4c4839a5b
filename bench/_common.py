"""Shared helpers for the benchmark scripts: machine facts, statistics, generated session
trees (real corpus files copied, renamed and made unique), the daemon as a subprocess, and
the fake Hugging Face Hub from ``tests/support/fakehub.py``.

Everything runs offline in throwaway folders under ``$TMPDIR``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "corpus"
TESTS = REPO / "tests" / "support"
PYTHON = sys.executable

log = logging.getLogger("bench")

#: corpus folder of each agent -> (its folder under HOME, its remote folder)
LAYOUT = {
    "claude": ("claude-code/projects", ".claude/projects", "claude"),
    "codex": ("codex/sessions", ".codex/sessions", "codex"),
    "pi": ("pi/sessions", ".pi/agent/sessions", "pi"),
}

#: Environment variables that must not leak into an isolated run.
_LEAKY = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_ENDPOINT",
    "HF_TOKEN_PATH",
    "CLAUDE_CONFIG_DIR",
    "CODEX_HOME",
    "PI_CODING_AGENT_DIR",
    "TRACEAGENT_DESTINATION",
    "TRACEAGENT_HOME",
    "TRACEAGENT_OBSERVER",
    "DBUS_SESSION_BUS_ADDRESS",
    "DISPLAY",
    "WAYLAND_DISPLAY",
)

#: Process-wide settings for quiet, offline hf_xet / huggingface_hub (as tests/support/hfsupport.py).
HF_QUIET = {
    "HF_XET_CLIENT_RETRY_MAX_ATTEMPTS": "2",
    "HF_XET_CLIENT_RETRY_BASE_DELAY": "50ms",
    "HF_XET_CLIENT_RETRY_MAX_DURATION": "3s",
    "HF_XET_TELEMETRY_ENABLED": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
}


def setup_logging(verbose: bool = False) -> None:
    """Log the bench's own steps to stderr."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("traceagent", "httpx", "httpx2", "huggingface_hub", "watchdog", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# --------------------------------------------------------------------------- machine facts
def machine_facts() -> dict[str, Any]:
    """CPU model, cores, memory, Python, OS, date and load (other work on the machine)."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    load = os.getloadavg()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "mem_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_1m": round(load[0], 2),
    }


def print_facts(title: str) -> dict[str, Any]:
    """Print the header every script starts with; returns the facts."""
    f = machine_facts()
    print(f"== {title}")
    print(
        f"machine: {f['cpu']}, {f['cores']} cores ({f['cores_usable']} usable), {f['mem_gb']} GB RAM, "
        f"Python {f['python']}, {f['os']}, {f['date']}, load average {f['loadavg_1m']} at start"
    )
    return f


def loadavg_note() -> str:
    """A short note on the load during the run (other workers share the machine)."""
    return f"load average at end {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


# --------------------------------------------------------------------------- statistics
def med(values: Sequence[float]) -> float:
    """The median."""
    return float(statistics.median(values))


def spread(values: Sequence[float], fmt: str = "{:.3g}", unit: str = "") -> str:
    """``median (min–max) unit`` of at least one value."""
    m = med(values)
    return f"{fmt.format(m)}{unit} ({fmt.format(min(values))}–{fmt.format(max(values))}{unit})"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a small sample: p95 of 20 is the 19th value."""
    s = sorted(values)
    if not s:
        raise ValueError("no values")
    k = max(1, int(-(-q * len(s) // 100)))  # ceil(q/100 * n)
    return float(s[min(k, len(s)) - 1])


def verdict(ok: bool) -> str:
    """``met`` / ``NOT met``."""
    return "met" if ok else "NOT met"


# --------------------------------------------------------------------------- session trees
#: A UUID (its first 8 hex digits get replaced) or an ISO timestamp (its seconds and ms do).
_MARK = re.compile(
    rb"[0-9a-f]{8}(-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    rb"|(\d{4}-\d\d-\d\dT\d\d:\d\d):\d\d\.\d{3}Z"
)


def templates(agent: str) -> list[bytes]:
    """The real transcripts of one agent in the test corpus (main sessions, not sidecars)."""
    src = CORPUS / LAYOUT[agent][0]
    out = [p.read_bytes() for p in sorted(src.rglob("*.jsonl")) if "subagents" not in p.parts]
    if not out:
        raise SystemExit(f"no {agent} templates under {src}: is the test corpus present?")
    return out


class _Split:
    """A block of corpus lines split around its UUIDs and timestamps, so that a unique copy
    is one ``join`` (fast enough to generate 500 MB in a few seconds)."""

    def __init__(self, block: bytes) -> None:
        parts = _MARK.split(block)  # literal, uuid-rest|None, ts-head|None, literal, ...
        self.literals = parts[0::3]
        self.uuids = parts[1::3]
        self.stamps = parts[2::3]

    def render(self, tag: int) -> bytes:
        prefix = b"%08x" % (tag & 0xFFFFFFFF)
        mixed = (tag * 2654435761) % 60000  # spread nearby tags over all 60,000 values
        suffix = b":%02d.%03dZ" % (mixed // 1000, mixed % 1000)
        out = [self.literals[0]]
        for u, t, lit in zip(self.uuids, self.stamps, self.literals[1:], strict=True):
            out.append(prefix + u if u is not None else t + suffix)
            out.append(lit)
        return b"".join(out)


_SPLIT_CACHE: dict[int, _Split] = {}


def uniquify(block: bytes, tag: int) -> bytes:
    """Make a copy of corpus lines unique (so Xet cannot dedup it against other copies):
    every UUID gets ``tag`` in its first 8 hex digits, and every timestamp's seconds and
    milliseconds encode ``tag``. Lengths, structure and JSON validity are unchanged."""
    return _Split(block).render(tag)


def make_session(template: bytes, target: int, tag: int) -> bytes:
    """About ``target`` bytes of complete lines from ``template``: a prefix of it when it is
    larger, else its lines repeated (each repetition uniquified on its own)."""
    head, sep, body = template.partition(b"\n")
    head += sep
    if target <= len(template):
        cut = template.find(b"\n", max(0, target - 1)) + 1 or len(template)
        return uniquify(template[:cut], tag * 1000)
    split = _SPLIT_CACHE.get(id(template))
    if split is None:
        split = _SPLIT_CACHE[id(template)] = _Split(body)
    out = [uniquify(head, tag * 1000)]
    size = len(head)
    rep = 1
    while size + len(body) <= target:
        out.append(split.render(tag * 1000 + rep))
        size += len(body)
        rep += 1
    if size < target:
        cut = body.find(b"\n", max(0, target - size - 1)) + 1 or len(body)
        out.append(uniquify(body[:cut], tag * 1000 + rep))
    return b"".join(out)


def lognormal_sizes(n: int, total: int, rng: random.Random, lo: int, hi: int) -> list[int]:
    """``n`` sizes between ``lo`` and ``hi`` with a long tail, scaled to sum to ~``total``."""
    raw = [rng.lognormvariate(0, 1.2) for _ in range(n)]
    scale = total / sum(raw)
    sizes = [min(hi, max(lo, int(r * scale))) for r in raw]
    for _ in range(8):  # clipping moves the total: rescale the unclipped part
        free = [i for i, s in enumerate(sizes) if lo < s < hi]
        excess = total - sum(sizes)
        if abs(excess) < total * 0.01 or not free:
            break
        k = 1 + excess / sum(sizes[i] for i in free)
        for i in free:
            sizes[i] = min(hi, max(lo, int(sizes[i] * k)))
    return sizes


def _session_name(agent: str, tag: int, rng: random.Random) -> str:
    u = f"{tag:08x}-{rng.randrange(16**4):04x}-4{rng.randrange(16**3):03x}-a{rng.randrange(16**3):03x}-{rng.randrange(16**12):012x}"
    if agent == "claude":
        return f"{u}.jsonl"
    when = dt.datetime(2026, 1, 1) + dt.timedelta(minutes=tag)
    if agent == "codex":
        return f"rollout-{when:%Y-%m-%dT%H-%M-%S}-{u}.jsonl"
    return f"{when:%Y-%m-%dT%H-%M-%S-000Z}_{u}.jsonl"


def _folder(agent: str, i: int) -> str:
    if agent == "claude":
        return f"-home-me-work-project{i:04d}"
    if agent == "codex":
        day = dt.date(2025, 1, 1) + dt.timedelta(days=i)
        return f"{day:%Y/%m/%d}"
    return f"--home-me-work-project{i:04d}--"


def make_tree(
    home: Path,
    *,
    folders: dict[str, int],
    files: int,
    total_bytes: int,
    seed: int = 7,
    min_size: int = 1024,
    max_size: int = 8 << 20,
) -> list[Path]:
    """Lay out ``files`` sessions over ``folders`` (agent -> number of folders) under
    ``home`` the way each agent does, from the corpus templates. Returns the files."""
    rng = random.Random(seed)
    slots: list[tuple[str, Path]] = []
    for agent, n in folders.items():
        root = home / LAYOUT[agent][1]
        for i in range(n):
            d = root / _folder(agent, i)
            d.mkdir(parents=True, exist_ok=True)
            slots.append((agent, d))
    tpl = {agent: templates(agent) for agent in folders}
    sizes = lognormal_sizes(files, total_bytes, rng, min_size, max_size)
    out = []
    for i, size in enumerate(sizes):
        agent, d = slots[i % len(slots)]
        data = make_session(rng.choice(tpl[agent]), size, i + 1)
        p = d / _session_name(agent, i + 1, rng)
        p.write_bytes(data)
        out.append(p)
    return out


def tree_bytes(paths: Sequence[Path]) -> int:
    """Total size of the files."""
    return sum(p.stat().st_size for p in paths)


# --------------------------------------------------------------------------- environments
@contextlib.contextmanager
def workdir(name: str, keep: bool = False) -> Iterator[Path]:
    """A throwaway folder (kept with ``keep`` for a post-mortem)."""
    d = Path(tempfile.mkdtemp(prefix=f"traceagent-bench-{name}-"))
    try:
        yield d
    finally:
        if keep:
            log.info("kept %s", d)
        else:
            shutil.rmtree(d, ignore_errors=True)


def isolated_env(base: Path, *, destination: str | Path | None = None, **extra: str) -> dict[str, str]:
    """HOME, TRACEAGENT_HOME, XDG_*, HF_HOME inside ``base``; no token; no keyring; no display."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    home = base / "home"
    values = {
        "HOME": str(home),
        "TRACEAGENT_HOME": str(base / "ta"),
        "HF_HOME": str(base / "hf"),
        "HF_XET_CACHE": str(base / "hf" / "xet"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        **HF_QUIET,
    }
    if destination is not None:
        values["TRACEAGENT_DESTINATION"] = str(destination)
    env.update(values)
    env.update(extra)
    for key in ("HOME", "TRACEAGENT_HOME", "HF_HOME"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


def write_config(env: dict[str, str], **settings: Any) -> None:
    """Write ``$TRACEAGENT_HOME/config.toml`` with these top-level keys."""
    lines = []
    for k, v in settings.items():
        lines.append(f"{k} = {json.dumps(v)}")  # bools, numbers and strings are valid TOML here
    path = Path(env["TRACEAGENT_HOME"]) / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def traceagent_cmd(env: dict[str, str], *args: str) -> list[str]:
    """``python -m traceagent ARGS``; with ``BENCH_PRELUDE=file[:file...]`` in ``env`` those
    files run first (monkeypatches: how a candidate change is measured without editing src/)."""
    prelude = env.get("BENCH_PRELUDE")
    if not prelude:
        return [PYTHON, "-m", "traceagent", *args]
    code = "".join(f"exec(open({p!r}).read());" for p in prelude.split(os.pathsep))
    return [PYTHON, "-c", f"{code}import sys;from traceagent.cli import main;sys.exit(main({list(args)!r}))"]


def run_cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m traceagent ...`` in ``env``."""
    return subprocess.run(
        traceagent_cmd(env, *args), check=False, env=env, capture_output=True, text=True, timeout=timeout
    )


# --------------------------------------------------------------------------- /proc readers
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from ``/proc/<pid>/stat``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_sched_ns(pid: int) -> int:
    """CPU time in ns of every live thread (``/proc/<pid>/task/*/schedstat``): the same
    quantity as ``/proc/<pid>/stat`` but with nanosecond resolution (stat counts 10 ms ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def proc_wakeups(pid: int) -> int:
    """Context switches of every live thread (voluntary + involuntary): how often it woke up."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def proc_status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmHWM``, ``VmRSS``, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def proc_threads(pid: int) -> list[str]:
    """Names of the live threads."""
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            names.append((task / "comm").read_text().strip())
    return names


def proc_children(pid: int) -> list[int]:
    """Live (non-zombie) child processes of ``pid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(d.name))
    return out


class ChildSampler:
    """Samples a daemon's child processes (the upload worker) every 0.2 s: their peak RSS
    (``VmHWM``, read while they live), the largest daemon + children RSS, and their CPU."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peaks: dict[int, float] = {}
        self.max_total_mb = 0.0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ChildSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by every child seen (the last sample of each)."""
        self._sample()
        return sum(self._cpu.values())

    def _sample(self) -> None:
        total = 0.0
        with contextlib.suppress(OSError, KeyError):
            total = proc_status_kb(self.pid, "VmRSS") / 1024
        for child in proc_children(self.pid):
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.peaks[child] = max(self.peaks.get(child, 0.0), proc_status_kb(child, "VmHWM") / 1024)
                total += proc_status_kb(child, "VmRSS") / 1024
                self._cpu[child] = proc_cpu_seconds(child)
        self.max_total_mb = max(self.max_total_mb, total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()


# --------------------------------------------------------------------------- the daemon
class Daemon:
    """``traceagent run --headless`` as a subprocess; status through its control channel."""

    def __init__(self, env: dict[str, str], *, wrapper: Sequence[str] = ()) -> None:
        from traceagent.paths import app_paths

        self.env = env
        self.paths = app_paths(env)
        self.wrapper = list(wrapper)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        """The daemon's pid (with a wrapper such as strace: the wrapper's child)."""
        assert self.proc is not None
        if not self.wrapper:
            return self.proc.pid
        for _ in range(200):
            with contextlib.suppress(OSError):
                kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
                if kids:
                    return int(kids[0])
            time.sleep(0.01)
        raise RuntimeError("the wrapped daemon did not start")

    def start(self) -> Daemon:
        """Start it; ``started_at`` is the monotonic time just before the fork."""
        log_path = Path(self.env["TRACEAGENT_HOME"]) / "daemon-stderr.log"
        self._stderr = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        cmd = traceagent_cmd(self.env, "run", "--headless")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [*self.wrapper, *cmd],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        return self

    def status(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """The daemon's status, or None when it does not answer (yet)."""
        from traceagent.app import control

        try:
            return control.request(self.paths, "status", timeout=timeout)["status"]  # type: ignore[no-any-return]
        except Exception:
            return None

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, interval: float = 0.05
    ) -> dict[str, Any]:
        """Poll the status until ``predicate(status)``; raises on timeout or death."""
        end = time.monotonic() + timeout
        st: dict[str, Any] | None = None
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}; see {self.stderr_path}")
            st = self.status()
            if st is not None and predicate(st):
                return st
            time.sleep(interval)
        raise TimeoutError(f"daemon status never matched within {timeout:.0f} s; last: {st}")

    def wait_idle(self, timeout: float, interval: float = 0.05) -> dict[str, Any]:
        """Until state is ``up_to_date`` with nothing pending."""
        return self.wait_for(lambda s: s["state"] == "up_to_date" and not s["pending"], timeout, interval)

    @property
    def stderr_path(self) -> Path:
        """Where the daemon's stderr goes."""
        return Path(self.env["TRACEAGENT_HOME"]) / "daemon-stderr.log"

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM and wait (SIGKILL after ``timeout``)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, RuntimeError):
                os.kill(self.pid, signal.SIGTERM)  # the daemon itself, not a wrapper
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError, RuntimeError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(10)
        self._stderr.close()
        self.proc = None

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def log_lines(env: dict[str, str], needle: str) -> list[str]:
    """Lines of the daemon's log containing ``needle``."""
    path = Path(env["TRACEAGENT_HOME"]) / "logs" / "traceagent.log"
    if not path.exists():
        return []
    return [
        line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if needle in line
    ]


# --------------------------------------------------------------------------- the fake Hub
def import_fakehub() -> Any:
    """``tests/support/fakehub.py`` (the fake Hub the real huggingface_hub + hf_xet talk to)."""
    for k, v in HF_QUIET.items():
        os.environ.setdefault(k, v)
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import fakehub

    return fakehub


def hub_env(env: dict[str, str], hub: Any) -> dict[str, str]:
    """``env`` plus the fake Hub's endpoint and write token."""
    fakehub = import_fakehub()
    return {**env, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": fakehub.TOKEN}


def dir_bytes(root: Path) -> int:
    """Total size of the files under ``root``."""
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, n)).st_size
    return total
