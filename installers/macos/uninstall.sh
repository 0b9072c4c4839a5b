#!/usr/bin/env bash
# Undo installers/macos/install.sh: unload and remove the LaunchAgent, remove the package (pipx, uv tool or
# our venv) and the ~/.local/bin link. Settings and state are kept unless --purge; the local bucket always is.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=installers/lib/common.sh
. "$here/../lib/common.sh"

purge=0
case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    -h | --help)
        echo "usage: installers/macos/uninstall.sh [--purge]  (--purge: also settings, state, logs, token)"
        exit 0
        ;;
    *) ta_die "unknown option $1" ;;
esac

support="$HOME/Library/Application Support/$TA_APP"
record="$support/installer.env"
TA_METHOD="" TA_PY="" TA_BIN="" TA_VENV=""
ta_read_record "$record" || ta_log "no install record at $record; removing what is found"

label=io.github.traceagent plist="$HOME/Library/LaunchAgents/io.github.traceagent.plist"
if [ -n "$TA_PY" ] && [ -x "$TA_PY" ]; then
    label=$("$TA_PY" -c 'from traceagent.templates import MACOS_LABEL; print(MACOS_LABEL)') || true
    plist=$("$TA_PY" -c 'from traceagent.autostart import launchagent_path; print(launchagent_path())') || true
    if [ "$purge" = 1 ] && [ -x "$TA_BIN" ]; then
        "$TA_BIN" logout </dev/null >/dev/null 2>&1 || true
    fi
fi
if command -v launchctl >/dev/null 2>&1; then
    launchctl bootout "gui/$(id -u)/$label" >/dev/null 2>&1 || true
fi
if [ -n "$TA_PY" ] && [ -x "$TA_PY" ]; then
    "$TA_PY" -m traceagent.autostart disable >/dev/null || true
fi
rm -f "$plist"

if [ -z "$TA_METHOD" ] && [ -f "$support/venv/pyvenv.cfg" ]; then
    TA_METHOD=venv TA_VENV="$support/venv" TA_BIN="${XDG_BIN_HOME:-$HOME/.local/bin}/$TA_APP"
fi
ta_uninstall_package
rm -f "$record"

if [ "$purge" = 1 ]; then
    # platformdirs on macOS: settings and state in Application Support, logs in ~/Library/Logs.
    # The local bucket folder (Application Support/traceagent/bucket) is kept.
    find "$support" -mindepth 1 -maxdepth 1 ! -name bucket -exec rm -rf {} + 2>/dev/null || true
    rm -rf "$HOME/Library/Logs/$TA_APP" "$HOME/Library/Logs/$TA_APP-launchd.log"
    ta_log "deleted settings, state and logs"
fi
rmdir "$support" 2>/dev/null || true
ta_log "uninstalled"
