"""``traceagent doctor`` checks: structured results against the fake Hub, fake /proc files
and stubbed PyGObject probes."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest

from hfsupport import READ_TOKEN, TOKEN, FakeHub, Isolated, MemoryKeyring, fake_hub, isolated_env
from traceagent.cli import doctor
from traceagent.cli.doctor import PROBE_KEY, Check, check_inotify, check_tray, run_checks
from traceagent.hub.auth import TokenInfo

__all__ = ["fake_hub", "isolated_env"]

BUCKET = "alice/agent-sessions"
DEST = f"hf://buckets/{BUCKET}/laptop"
pytestmark = pytest.mark.usefixtures("isolated_env")

NAMES = ["token", "whoami", "bucket", "write access", "keyring", "inotify", "tray"]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_everything_fine_with_probe(fake_hub: FakeHub) -> None:
    info = TokenInfo(TOKEN, "HF_TOKEN environment variable")
    fake_hub.create_bucket(BUCKET, private=True)
    checks = run_checks(token_info=info, destination=DEST, endpoint=fake_hub.endpoint, probe=True)
    assert [c.name for c in checks] == NAMES
    c = by_name(checks)
    assert c["token"] == Check("token", True, "found in HF_TOKEN environment variable")
    assert c["whoami"].ok is True and "alice" in c["whoami"].detail and "write" in c["whoami"].detail
    assert c["bucket"].ok is True and "private" in c["bucket"].detail
    assert c["write access"].ok is True
    stored = fake_hub.files(BUCKET)
    assert PROBE_KEY in stored  # at the bucket root, not under the prefix
    assert fake_hub.read_file(BUCKET, PROBE_KEY).startswith(b"traceagent doctor write probe")
    assert all(TOKEN not in x.detail for x in checks)


def test_missing_bucket_is_created_private_by_the_probe(fake_hub: FakeHub) -> None:
    info = TokenInfo(TOKEN, "x")
    c = by_name(run_checks(token_info=info, destination=DEST, endpoint=fake_hub.endpoint, probe=False))
    assert c["bucket"].ok is None and "does not exist yet" in c["bucket"].detail
    assert c["write access"].ok is None  # no probe asked: nothing written, nothing created
    assert BUCKET not in fake_hub.buckets
    c = by_name(run_checks(token_info=info, destination=DEST, endpoint=fake_hub.endpoint, probe=True))
    assert c["write access"].ok is True
    assert fake_hub.buckets[BUCKET].private


def test_public_bucket_is_a_problem_unless_allowed(fake_hub: FakeHub) -> None:
    fake_hub.create_bucket(BUCKET, private=False)
    info = TokenInfo(TOKEN, "x")
    c = by_name(run_checks(token_info=info, destination=DEST, endpoint=fake_hub.endpoint, probe=False))
    assert c["bucket"].ok is False and "PUBLIC" in c["bucket"].detail
    c = by_name(
        run_checks(
            token_info=info, destination=DEST, endpoint=fake_hub.endpoint, probe=False, allow_public=True
        )
    )
    assert c["bucket"].ok is True


def test_no_token(fake_hub: FakeHub) -> None:
    c = by_name(run_checks(token_info=None, destination=DEST, endpoint=fake_hub.endpoint, probe=True))
    assert c["token"].ok is False and "traceagent login" in c["token"].detail
    assert c["whoami"].ok is None and c["bucket"].ok is None and c["write access"].ok is None
    assert fake_hub.requests == []


def test_rejected_and_read_only_tokens(fake_hub: FakeHub) -> None:
    bad = "hf_doctorBadToken00000000000000000"
    c = by_name(
        run_checks(token_info=TokenInfo(bad, "x"), destination=DEST, endpoint=fake_hub.endpoint, probe=True)
    )
    assert c["whoami"].ok is False and "(401)" in c["whoami"].detail
    assert c["write access"].ok is False
    assert all(bad not in x.detail for x in c.values())
    fake_hub.create_bucket(BUCKET, private=True)
    c = by_name(
        run_checks(
            token_info=TokenInfo(READ_TOKEN, "x"), destination=DEST, endpoint=fake_hub.endpoint, probe=True
        )
    )
    assert c["whoami"].ok is False and "read-only" in c["whoami"].detail
    assert c["write access"].ok is False and "403" in c["write access"].detail


def test_hub_down() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"
    c = by_name(run_checks(token_info=TokenInfo(TOKEN, "x"), destination=DEST, endpoint=endpoint, probe=True))
    assert c["whoami"].ok is False and "Could not reach" in c["whoami"].detail
    assert c["bucket"].ok is False and c["write access"].ok is False


def test_local_folder_destination(tmp_path: Path) -> None:
    c = by_name(run_checks(token_info=None, destination=str(tmp_path / "mirror"), endpoint=None, probe=True))
    assert c["destination"].ok is True and "will be created" in c["destination"].detail
    assert c["write access"].ok is None
    (tmp_path / "file").write_text("x")
    c = by_name(run_checks(token_info=None, destination=str(tmp_path / "file"), endpoint=None, probe=True))
    assert c["destination"].ok is False


def test_bad_destination_uri() -> None:
    c = by_name(
        run_checks(token_info=TokenInfo(TOKEN, "x"), destination="hf://buckets/x", endpoint=None, probe=False)
    )
    assert c["bucket"].ok is False and "namespace" in c["bucket"].detail


def test_keyring_check(isolated_env: Isolated) -> None:
    fail = doctor.check_keyring()
    assert fail.ok is None and "fail" in fail.detail and "0600" in fail.detail
    keyring.set_keyring(MemoryKeyring())
    ok = doctor.check_keyring()
    assert ok.ok is True and "Memory Keyring" in ok.detail


@pytest.mark.parametrize(
    ("watches", "instances", "ok"),
    [("524288", "512", True), ("8192", "128", True), ("4096", "128", False), ("65536", "64", False)],
)
def test_inotify_limits(tmp_path: Path, watches: str, instances: str, ok: bool) -> None:
    (tmp_path / "max_user_watches").write_text(watches + "\n")
    (tmp_path / "max_user_instances").write_text(instances + "\n")
    check = check_inotify(tmp_path)
    assert check.ok is ok
    assert (
        f"max_user_watches={watches}" in check.detail and "sysctl fs.inotify.max_user_watches" in check.detail
    )


def test_inotify_unreadable(tmp_path: Path) -> None:
    assert check_inotify(tmp_path).ok is None


def test_inotify_real_proc() -> None:
    check = check_inotify()
    assert check.ok is not None, check.detail  # Linux CI has /proc/sys/fs/inotify


GI_NONE = {"gi": False, "gtk": False, "appindicator": None}
GI_GTK = {"gi": True, "gtk": True, "appindicator": None}
GI_AYATANA = {"gi": True, "gtk": True, "appindicator": "AyatanaAppIndicator3"}


@pytest.mark.parametrize(
    ("environ", "gi", "ok", "words"),
    [
        ({}, GI_AYATANA, None, "no display"),  # headless: info, not a failure
        ({"DISPLAY": ":0"}, GI_AYATANA, True, "appindicator via AyatanaAppIndicator3"),
        ({"DISPLAY": ":0"}, GI_GTK, True, "gtk (Gtk.StatusIcon"),
        ({"WAYLAND_DISPLAY": "wayland-0"}, GI_GTK, False, "invisible on GNOME"),
        (
            {"DISPLAY": ":0", "XDG_CURRENT_DESKTOP": "ubuntu:GNOME"},
            GI_AYATANA,
            True,
            "AppIndicator extension",
        ),
        ({"DISPLAY": ":0"}, GI_NONE, False, "xorg fallback"),
        ({"WAYLAND_DISPLAY": "wayland-0"}, GI_NONE, False, "no usable tray backend"),
        ({"PYSTRAY_BACKEND": "dummy"}, GI_NONE, False, "dummy"),
        ({"PYSTRAY_BACKEND": "gtk", "DISPLAY": ":1"}, GI_GTK, True, "PYSTRAY_BACKEND=gtk"),
        ({"PYSTRAY_BACKEND": "gtk", "DISPLAY": ":1"}, GI_NONE, False, "PyGObject is missing"),
        ({"PYSTRAY_BACKEND": "appindicator", "DISPLAY": ":1"}, GI_GTK, False, "no AppIndicator typelib"),
        ({"PYSTRAY_BACKEND": "xorg", "DISPLAY": ":1"}, GI_NONE, False, "without a menu"),
    ],
)
def test_tray_backend(environ: dict[str, str], gi: dict[str, object], ok: bool | None, words: str) -> None:
    check = check_tray(environ, platform_name="linux", probe_gi=lambda: gi)
    assert check.ok is ok, check.detail
    assert words in check.detail


def test_tray_on_macos_and_windows() -> None:
    assert check_tray({}, platform_name="darwin").ok is True
    assert check_tray({}, platform_name="win32").ok is True


def test_tray_real_probe_never_imports_pystray() -> None:
    import sys

    before = {m for m in ("pystray", "gi") if m in sys.modules}
    check = check_tray({"DISPLAY": ":99"}, platform_name="linux")
    assert check.name == "tray" and check.detail
    assert {m for m in ("pystray", "gi") if m in sys.modules} == before  # the probe runs in a child
    data = doctor._probe_gi()
    assert set(data) >= {"gi", "gtk", "appindicator"}


def test_a_crashing_check_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(*_a: object, **_k: object) -> Check:
        raise RuntimeError(f"kaput {TOKEN}")

    monkeypatch.setattr(doctor, "check_inotify", boom)
    checks = run_checks(
        token_info=TokenInfo(TOKEN, "x"), destination=str(tmp_path), endpoint=None, probe=False
    )
    c = by_name(checks)
    assert c["inotify"].ok is False and "RuntimeError" in c["inotify"].detail
    assert TOKEN not in c["inotify"].detail
