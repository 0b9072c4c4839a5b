"""``traceagent doctor``: checks that return structured results (the CLI prints them).

Each check returns a :class:`Check` with ``ok`` = ``True`` (fine), ``False`` (a problem to
fix, ``detail`` says how) or ``None`` (skipped or informational). No check raises: a
crashing check becomes ``ok=False`` with the exception's type and a token-free message.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from traceagent.hub.auth import AuthError, TokenInfo, keyring_backend_name, scrub, secure_keyring
from traceagent.hub.whoami import fetch_whoami
from traceagent.paths import AppPaths, access_problem

__all__ = [
    "INOTIFY_MIN_INSTANCES",
    "INOTIFY_MIN_WATCHES",
    "PROBE_KEY",
    "Check",
    "check_bucket",
    "check_folders",
    "check_inotify",
    "check_keyring",
    "check_token",
    "check_tray",
    "check_whoami",
    "check_write",
    "run_checks",
]

logger = logging.getLogger(__name__)

#: The key of the tiny file the write check uploads (at the bucket's root).
PROBE_KEY = ".traceagent/doctor-probe.txt"
#: Below these, watching many session folders may fail ("inotify watch limit reached").
INOTIFY_MIN_WATCHES = 8192
INOTIFY_MIN_INSTANCES = 128
_SYSCTL_HINT = (
    "raise it with: sudo sysctl fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512 "
    "(and put the same settings in /etc/sysctl.d/90-traceagent.conf to keep them)"
)


@dataclasses.dataclass(frozen=True)
class Check:
    """One doctor result: ``ok`` is True (fine), False (fix it) or None (skipped / info)."""

    name: str
    ok: bool | None
    detail: str


# --------------------------------------------------------------------------- helpers
def _scrub(text: str, token_info: TokenInfo | None) -> str:
    return scrub(text, token_info.token if token_info else None)


def _guard(name: str, token_info: TokenInfo | None, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except Exception as e:  # a doctor never crashes: report the failure as the result
        logger.debug("doctor check %s crashed", name, exc_info=True)
        return Check(name, False, _scrub(f"check failed: {type(e).__name__}: {e}", token_info))


def _is_hf(destination: str) -> bool:
    return destination.startswith("hf://")


# --------------------------------------------------------------------------- checks
def check_token(token_info: TokenInfo | None) -> Check:
    """Is there a token, and where does it come from?"""
    if token_info is None:
        return Check(
            "token", False, "no Hugging Face token: run `traceagent login`, `hf auth login`, or set HF_TOKEN"
        )
    return Check("token", True, f"found in {token_info.source}")


def check_whoami(token_info: TokenInfo | None, endpoint: str | None) -> Check:
    """Does the Hub accept the token, whose is it, may it write?"""
    if token_info is None:
        return Check("whoami", None, "skipped: no token")
    try:
        who = fetch_whoami(token_info.token, endpoint=endpoint)
    except AuthError as e:
        return Check("whoami", False, e.message)
    if who.role == "read":
        return Check(
            "whoami", False, f"signed in as {who.name}, but the token is read-only: uploads will fail"
        )
    role = f" (token role: {who.role})" if who.role else ""
    return Check("whoami", True, f"signed in as {who.name}{role}")


def check_bucket(
    token_info: TokenInfo | None, destination: str, endpoint: str | None, *, allow_public: bool = False
) -> Check:
    """Does the bucket exist, and is it private?"""
    if not _is_hf(destination):
        return _check_folder(destination)
    from traceagent.hub.api import classify_error, hub_errors, install_http_timeouts, parse_bucket_uri

    try:
        parsed = parse_bucket_uri(destination)
    except ValueError as e:
        return Check("bucket", False, str(e))
    if token_info is None:
        return Check("bucket", None, f"skipped: no token to look at {parsed.bucket_id}")
    from huggingface_hub import HfApi

    install_http_timeouts()
    api = HfApi(endpoint=endpoint.rstrip("/") if endpoint else None, token=token_info.token)
    try:
        info = api.bucket_info(parsed.bucket_id)
    except hub_errors() as e:
        if type(e).__name__ == "BucketNotFoundError":
            return Check(
                "bucket",
                None,
                f"{parsed.bucket_id} does not exist yet (or this token cannot see it); "
                "traceagent creates it, private, on the first sync",
            )
        err = classify_error(e, bucket_id=parsed.bucket_id, token=token_info.token, during="ensure")
        return Check("bucket", False, err.message)
    if info.private:
        files = f", {info.total_files} files" if getattr(info, "total_files", None) is not None else ""
        return Check("bucket", True, f"{parsed.bucket_id} exists and is private{files}")
    if allow_public:
        return Check("bucket", True, f"{parsed.bucket_id} is PUBLIC (allowed by allow_public = true)")
    return Check(
        "bucket",
        False,
        f"{parsed.bucket_id} is PUBLIC: traceagent refuses to upload to it. Make it private in its "
        "settings on the Hub, or set allow_public = true",
    )


def _check_folder(destination: str) -> Check:
    path = Path(destination[len("file://") :] if destination.startswith("file://") else destination)
    path = path.expanduser()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if path.exists() and not path.is_dir():
        return Check("destination", False, f"{path} exists but is not a folder")
    if os.access(probe, os.W_OK | os.X_OK):
        state = "exists" if path.exists() else f"will be created (under {probe})"
        return Check("destination", True, f"local folder {path} {state} and is writable")
    return Check("destination", False, f"local folder {path} is not writable ({probe})")


def check_write(
    token_info: TokenInfo | None,
    destination: str,
    endpoint: str | None,
    *,
    probe: bool,
    allow_public: bool = False,
) -> Check:
    """Upload a tiny probe file to ``.traceagent/doctor-probe.txt`` at the bucket's root
    (creates the bucket, private, if it does not exist yet; never writes to a public
    bucket unless ``allow_public``)."""
    if not _is_hf(destination):
        return Check("write access", None, "skipped: not a Hugging Face destination")
    if not probe:
        return Check("write access", None, "skipped (no probe upload requested)")
    if token_info is None:
        return Check("write access", None, "skipped: no token")
    from traceagent.hub.api import parse_bucket_uri
    from traceagent.hub.sink import HfSink
    from traceagent.sinks.base import SinkError, UploadItem

    parsed = parse_bucket_uri(destination)
    # The probe goes to the bucket's root, whatever prefix the destination has.
    sink = HfSink(
        f"hf://buckets/{parsed.bucket_id}",
        token=token_info.token,
        endpoint=endpoint,
        allow_public=allow_public,
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    body = (
        f"traceagent doctor write probe from {socket.gethostname()} at {now.isoformat(timespec='seconds')}\n"
    )
    with tempfile.TemporaryDirectory(prefix="traceagent-doctor-") as tmp:
        path = Path(tmp, "probe.txt")
        path.write_text(body, encoding="utf-8")
        item = UploadItem(spool_path=path, key=PROBE_KEY, size=len(body.encode()), mtime=now.timestamp())
        try:
            sink.ensure()
            sink.upload([item])
        except SinkError as e:
            return Check("write access", False, e.message)
    return Check("write access", True, f"uploaded {PROBE_KEY} to {parsed.bucket_id}")


def check_folders(paths: AppPaths) -> Check:
    """Can traceagent write its own folders and files (not after a ``sudo traceagent run``)?

    Looks only (``os.access`` and owners); creates nothing."""
    db = paths.state_db
    files = [db, Path(f"{db}-wal"), paths.lock_file, paths.control_key, paths.log_file, paths.config_file]
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    for p in [*paths.folders(), paths.spool_dir, *files]:
        try:
            foreign = uid is not None and p.stat().st_uid != uid
        except OSError:
            continue  # not there (yet): created when needed
        need = os.W_OK | os.X_OK if p.is_dir() else os.W_OK
        if foreign or not os.access(p, need):
            return Check("folders", False, access_problem(p, paths))
    return Check("folders", True, f"state in {paths.state_dir}, logs in {paths.log_dir}: writable")


def check_keyring() -> Check:
    """Which keyring backend is in use, and is it a secure one?"""
    backend = secure_keyring()
    if backend is not None:
        return Check(
            "keyring", True, f"{keyring_backend_name(backend)}: `traceagent login` stores the token there"
        )
    return Check(
        "keyring",
        None,
        f"no system keyring ({keyring_backend_name()}): `traceagent login` stores the token in "
        "huggingface_hub's token file with mode 0600 instead",
    )


def check_inotify(proc_dir: Path = Path("/proc/sys/fs/inotify")) -> Check:
    """Linux inotify limits (``max_user_watches``, ``max_user_instances``)."""
    if not sys.platform.startswith("linux"):
        return Check("inotify", None, f"not applicable on {platform.system() or sys.platform}")
    values: dict[str, int] = {}
    for name in ("max_user_watches", "max_user_instances"):
        try:
            values[name] = int((proc_dir / name).read_text().strip())
        except (OSError, ValueError) as e:
            return Check("inotify", None, f"could not read {proc_dir / name} ({type(e).__name__})")
    watches, instances = values["max_user_watches"], values["max_user_instances"]
    text = f"max_user_watches={watches}, max_user_instances={instances}"
    low = []
    if watches < INOTIFY_MIN_WATCHES:
        low.append(f"max_user_watches is low (< {INOTIFY_MIN_WATCHES})")
    if instances < INOTIFY_MIN_INSTANCES:
        low.append(f"max_user_instances is low (< {INOTIFY_MIN_INSTANCES})")
    if low:
        return Check("inotify", False, f"{text}: {'; '.join(low)}; {_SYSCTL_HINT}")
    return Check("inotify", True, f"{text} (if watching fails anyway, {_SYSCTL_HINT})")


_GI_PROBE = """
import json
import sys
out = {"gi": False, "gtk": False, "appindicator": None}
try:
    import gi
    out["gi"] = True
    gi.require_version("Gtk", "3.0")
    from gi.repository import Gtk  # noqa: F401
    out["gtk"] = True
except Exception as e:
    out["error"] = type(e).__name__ + ": " + str(e)
if out["gtk"]:
    for name in ("AppIndicator3", "AyatanaAppIndicator3"):
        try:
            gi.require_version(name, "0.1")
            __import__("gi.repository." + name)
            out["appindicator"] = name
            break
        except Exception:
            pass
sys.stdout.write(json.dumps(out))
"""


def _probe_gi(timeout: float = 20.0) -> dict[str, object]:
    """What PyGObject offers, probed in a child process (a Gtk import may print warnings or
    hang without a session bus; the doctor must not)."""
    import json

    env = dict(os.environ)
    env.setdefault("NO_AT_BRIDGE", "1")
    try:
        out = subprocess.run(
            [sys.executable, "-c", _GI_PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, OSError, ValueError, IndexError) as e:
        return {"gi": False, "gtk": False, "appindicator": None, "error": type(e).__name__}
    return data if isinstance(data, dict) else {"gi": False, "gtk": False, "appindicator": None}


def check_tray(
    environ: Mapping[str, str] | None = None,
    *,
    platform_name: str | None = None,
    probe_gi: Callable[[], Mapping[str, object]] | None = None,
) -> Check:
    """Which pystray backend would be used, and will it show a menu? (pystray is not imported.)"""
    env = os.environ if environ is None else environ
    plat = platform_name or sys.platform
    forced = env.get("PYSTRAY_BACKEND", "")
    if plat == "darwin" and not forced:
        return Check("tray", True, "macOS menu bar (pystray darwin backend)")
    if plat == "win32" and not forced:
        return Check("tray", True, "Windows notification area (pystray win32 backend)")
    if forced == "dummy":
        return Check("tray", False, "PYSTRAY_BACKEND=dummy: no tray icon will be shown (tests only)")
    display, wayland = env.get("DISPLAY"), env.get("WAYLAND_DISPLAY")
    if not display and not wayland and not forced:
        # A server without a desktop: the documented headless mode, not a problem to fix.
        return Check(
            "tray",
            None,
            "no display (neither DISPLAY nor WAYLAND_DISPLAY is set): no tray icon; "
            "use `traceagent run --headless` and `traceagent status`",
        )
    gi = dict((probe_gi or _probe_gi)())
    hint = (
        "install PyGObject (pip install 'traceagent[gtk]') and the AppIndicator typelib "
        "(Debian/Ubuntu: gir1.2-ayatanaappindicator3-0.1)"
    )
    where = f"DISPLAY={display}" if display else f"WAYLAND_DISPLAY={wayland}"
    if forced:
        needs_gi = forced in ("gtk", "appindicator")
        if needs_gi and not gi.get("gtk"):
            return Check(
                "tray", False, f"PYSTRAY_BACKEND={forced}, but Gtk 3 via PyGObject is missing: {hint}"
            )
        if forced == "appindicator" and not gi.get("appindicator"):
            return Check("tray", False, f"PYSTRAY_BACKEND=appindicator, but no AppIndicator typelib: {hint}")
        if forced == "xorg":
            return Check("tray", False, f"PYSTRAY_BACKEND=xorg: an icon without a menu; {hint}")
        return Check("tray", True, f"PYSTRAY_BACKEND={forced} ({where})")
    if gi.get("appindicator"):
        extra = (
            " (GNOME needs the AppIndicator extension to show it)"
            if "gnome" in env.get("XDG_CURRENT_DESKTOP", "").lower()
            else ""
        )
        return Check("tray", True, f"appindicator via {gi['appindicator']} ({where}){extra}")
    if gi.get("gtk"):
        warn = (
            "; GtkStatusIcon is invisible on GNOME and on most Wayland desktops: "
            "install gir1.2-ayatanaappindicator3-0.1"
            if wayland or "gnome" in env.get("XDG_CURRENT_DESKTOP", "").lower()
            else ""
        )
        return Check("tray", not warn, f"gtk (Gtk.StatusIcon, XEmbed) ({where}){warn}")
    if display:
        return Check("tray", False, f"xorg fallback ({where}): an icon without a menu; {hint}")
    return Check("tray", False, f"no usable tray backend on Wayland without PyGObject; {hint}")


# --------------------------------------------------------------------------- all together
def run_checks(
    *,
    token_info: TokenInfo | None,
    destination: str,
    endpoint: str | None,
    probe: bool,
    allow_public: bool = False,
    environ: Mapping[str, str] | None = None,
) -> list[Check]:
    """Run every check, in the order the CLI shows them: token, whoami, bucket (or local
    folder), write access (uploads a probe when ``probe``), keyring, inotify, tray."""
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("token", lambda: check_token(token_info)),
        ("whoami", lambda: check_whoami(token_info, endpoint)),
        ("bucket", lambda: check_bucket(token_info, destination, endpoint, allow_public=allow_public)),
        (
            "write access",
            lambda: check_write(token_info, destination, endpoint, probe=probe, allow_public=allow_public),
        ),
        ("keyring", check_keyring),
        ("inotify", check_inotify),
        ("tray", lambda: check_tray(environ)),
    ]
    return [_guard(name, token_info, fn) for name, fn in checks]
