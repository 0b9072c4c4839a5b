#!/usr/bin/env bash
# Undo installers/linux/install.sh: start-at-login entries (XDG autostart and systemd user unit),
# the launcher and its icon, the package (pipx, uv tool or our venv) and the ~/.local/bin link.
# Your settings, sync state and local bucket are kept unless --purge (the local bucket always is).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: installers/linux/uninstall.sh [--purge]
  --purge   also delete settings, sync state and logs (~/.config/traceagent, ~/.local/state/traceagent)
            and the stored Hugging Face token; the local bucket folder is never deleted
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=installers/lib/common.sh
. "$here/../lib/common.sh"

purge=0
while [ $# -gt 0 ]; do
    case "$1" in
        --purge) purge=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            ta_die "unknown option $1"
            ;;
    esac
    shift
done

data_home=${XDG_DATA_HOME:-$HOME/.local/share}
config_home=${XDG_CONFIG_HOME:-$HOME/.config}
state_home=${XDG_STATE_HOME:-$HOME/.local/state}
record="$data_home/$TA_APP/installer.env"
TA_METHOD="" TA_PY="" TA_BIN="" TA_VENV=""
ta_read_record "$record" || ta_log "no install record at $record; removing what is found"

# Stop the headless service if a user manager runs it (the tray: use its Quit item).
if [ -n "${XDG_RUNTIME_DIR:-}" ] && [ -S "$XDG_RUNTIME_DIR/bus" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --user stop "$TA_APP.service" >/dev/null 2>&1 || true
fi

if [ -n "$TA_PY" ] && [ -x "$TA_PY" ]; then
    if [ "$purge" = 1 ] && [ -x "$TA_BIN" ]; then
        "$TA_BIN" logout </dev/null >/dev/null 2>&1 || true
    fi
    "$TA_PY" -m traceagent.autostart disable >/dev/null || true
    "$TA_PY" -m traceagent.autostart launcher remove >/dev/null || true
fi
# Also when the package is already gone or broken: the same paths traceagent.autostart writes.
rm -f "$config_home/autostart/$TA_APP.desktop" \
    "$config_home/systemd/user/default.target.wants/$TA_APP.service" \
    "$config_home/systemd/user/$TA_APP.service" \
    "$data_home/applications/$TA_APP.desktop" \
    "$data_home/icons/hicolor/256x256/apps/$TA_APP.png"
if [ -n "${XDG_RUNTIME_DIR:-}" ] && [ -S "$XDG_RUNTIME_DIR/bus" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --user daemon-reload >/dev/null 2>&1 || true
fi

if [ -z "$TA_METHOD" ] && [ -f "$data_home/$TA_APP/venv/pyvenv.cfg" ]; then
    TA_METHOD=venv TA_VENV="$data_home/$TA_APP/venv" TA_BIN="${XDG_BIN_HOME:-$HOME/.local/bin}/$TA_APP"
fi
ta_uninstall_package
rm -f "$record"

if [ "$purge" = 1 ]; then
    rm -rf "${config_home:?}/$TA_APP" "${state_home:?}/$TA_APP" "${XDG_CACHE_HOME:-$HOME/.cache}/$TA_APP"
    ta_log "deleted settings, state and logs"
fi
rmdir "$data_home/$TA_APP" 2>/dev/null || true
if [ -d "$data_home/$TA_APP" ]; then
    ta_log "kept $data_home/$TA_APP (your local bucket and data)"
fi
ta_log "uninstalled"
