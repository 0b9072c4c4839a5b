"""``traceagent login | logout | doctor | autostart | redact``: account and machine set-up."""

from __future__ import annotations

import argparse
import sys

from traceagent.cli.common import client, load_ctx
from traceagent.errors import UserError

__all__ = ["cmd_autostart", "cmd_doctor", "cmd_login", "cmd_logout", "cmd_redact"]


def cmd_login(args: argparse.Namespace) -> int:
    """``traceagent login [--token-stdin]``."""
    import getpass

    from traceagent.app.wiring import hf_endpoint
    from traceagent.hub import auth, whoami

    ctx = load_ctx()
    if args.token_stdin:
        token = sys.stdin.readline().strip()
    else:
        print("Create a token with write access at https://huggingface.co/settings/tokens")
        token = getpass.getpass("Hugging Face token (input hidden): ").strip()
    if not token:
        raise UserError("No token given.")
    try:
        name = whoami.validate_token(token, endpoint=hf_endpoint(ctx))
    except auth.AuthError as e:
        raise UserError(e.message) from None
    where = auth.store_token(token)
    print(f"Signed in as {name}. Token stored in {where}.")
    if client(ctx).reload():
        print("The running traceagent picked up the new token.")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    """``traceagent logout``."""
    from traceagent.hub import auth

    ctx = load_ctx()
    removed = auth.delete_token()
    if removed:
        print("Removed the token from " + ", ".join(removed) + ".")
    else:
        print("No stored traceagent token was found.")
    still = auth.find_token(ctx.environ)
    if still is not None:
        print(f"Note: a token is still found in {still.source}; traceagent keeps using it.")
    client(ctx).signed_out()  # an explicit sign-out: the local folder is fine from now on
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """``traceagent doctor``: every check on one line."""
    from traceagent.app.wiring import decide_destination, hf_endpoint
    from traceagent.cli import doctor
    from traceagent.hub import auth, whoami

    ctx = load_ctx()
    token_info = auth.find_token(ctx.environ)
    user = None
    if not ctx.settings.destination and token_info is not None:
        try:
            user = whoami.whoami_cached(
                token_info.token, endpoint=hf_endpoint(ctx), cache_dir=ctx.paths.state_dir
            )
        except auth.AuthError:
            user = None  # the token check below says why
    checks = doctor.run_checks(
        token_info=token_info,
        destination=decide_destination(ctx.settings.destination, user, ctx.paths.default_bucket_dir),
        endpoint=hf_endpoint(ctx),
        probe=True,
        allow_public=ctx.settings.allow_public,
        environ=ctx.environ,
    )
    checks.append(doctor.check_folders(ctx.paths))
    if token_info is None and not ctx.settings.destination:
        # No account is a supported setup (the local folder), not a failure.
        checks = [
            doctor.Check(
                c.name,
                None,
                "no token: traces are kept in the local folder; sign in to sync them to Hugging Face",
            )
            if c.name == "token"
            else c
            for c in checks
        ]
    bad = 0
    for c in checks:
        mark = {True: "ok  ", False: "FAIL", None: "info"}[c.ok]
        bad += c.ok is False
        print(f"[{mark}] {c.name}: {c.detail}")
    return 1 if bad else 0


def cmd_autostart(args: argparse.Namespace) -> int:
    """``traceagent autostart enable|disable|status``."""
    from traceagent import autostart

    try:
        if args.action == "enable":
            st = autostart.enable(headless=args.headless)
        elif args.action == "disable":
            st = autostart.disable()
        else:
            st = autostart.status()
    except (OSError, ValueError) as e:
        raise UserError(f"Could not {args.action} start at login: {e}") from None
    print(
        ("Start at login: on" if st.enabled else "Start at login: off") + (f" ({st.path})" if st.path else "")
    )
    if st.detail:
        print(f"  {st.detail}")
    return 0


def cmd_redact(args: argparse.Namespace) -> int:
    """``traceagent redact FILE``: what would be hidden (masked, never in full)."""
    from pathlib import Path

    from traceagent.app.wiring import build_redactor
    from traceagent.hub import auth
    from traceagent.redact import preview_file

    ctx = load_ctx()
    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{path}: no such file.")
    token = auth.find_token(ctx.environ)
    redactor = build_redactor(ctx.settings, ctx.environ, token=token.token if token else None)
    counts: dict[str, int] = {}
    for f in preview_file(path, redactor):
        counts[f.rule] = counts.get(f.rule, 0) + 1
        print(f"line {f.line_no}: {f.rule}: {f.masked}")
    if not counts:
        print(f"No secrets found in {path} (engine: {redactor.engine_name}).")
    else:
        summary = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
        print(f"{sum(counts.values())} secret(s) would be redacted: {summary}.")
    return 0
