#!/usr/bin/env bash
# Install traceagent for the current user from this checkout (no root needed):
#   - the package, with pipx or `uv tool` if present, else a venv in
#     ${XDG_DATA_HOME:-~/.local/share}/traceagent/venv linked as ~/.local/bin/traceagent;
#   - the app-menu launcher and icon;
#   - start at login: the tray through XDG autostart, or with --headless a systemd user unit.
# Undo everything with installers/linux/uninstall.sh. See installers/README.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: installers/linux/install.sh [options]
  --method pipx|uv|venv  how to install the package (default: pipx, else uv, else a venv)
  --headless             no tray: start `traceagent run --headless` at login (systemd user unit)
  --with-gtk             also install PyGObject (tray menu on GNOME/KDE; builds from source and needs
                         libgirepository1.0-dev libcairo2-dev pkg-config python3-dev)
  --no-autostart         do not start traceagent at login
  --no-start             do not start traceagent now
  -h, --help             this help
Environment: PYTHON (interpreter to use), XDG_DATA_HOME, XDG_CONFIG_HOME, XDG_BIN_HOME.
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=installers/lib/common.sh
. "$repo/installers/lib/common.sh"

method=auto headless=0 extras="" autostart=1 start=1
while [ $# -gt 0 ]; do
    case "$1" in
        --method)
            [ $# -ge 2 ] || ta_die "--method needs a value"
            method=$2
            shift
            ;;
        --method=*) method=${1#--method=} ;;
        --headless) headless=1 ;;
        --with-gtk) extras=gtk ;;
        --no-autostart) autostart=0 ;;
        --no-start) start=0 ;;
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

[ -f "$repo/pyproject.toml" ] || ta_die "run this from a traceagent checkout ($repo has no pyproject.toml)"
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
bin_dir=${XDG_BIN_HOME:-$HOME/.local/bin}
record="$data_home/$TA_APP/installer.env"
TA_VENV="$data_home/$TA_APP/venv"

ta_find_python
ta_choose_method "$method"
[ "$TA_METHOD" = venv ] || TA_VENV=""
ta_install_package "$repo" "$extras" "$TA_VENV" "$bin_dir"
ta_write_record "$record"
ta_check_command

icon="$repo/assets/icons/traceagent-256.png"
if [ -f "$icon" ]; then
    ta_autostart launcher install --icon "$icon" >/dev/null
else
    ta_log "warning: $icon is missing; the launcher uses a stock icon"
    ta_autostart launcher install >/dev/null
fi
ta_log "launcher: ${data_home}/applications/$TA_APP.desktop"

if [ "$autostart" = 1 ]; then
    if [ "$headless" = 1 ]; then
        ta_autostart enable --headless
    else
        ta_autostart enable
    fi
fi

if [ "$start" = 1 ]; then
    if [ "$headless" = 1 ]; then
        if [ -n "${XDG_RUNTIME_DIR:-}" ] && [ -S "$XDG_RUNTIME_DIR/bus" ] && command -v systemctl >/dev/null 2>&1; then
            systemctl --user daemon-reload && systemctl --user restart "$TA_APP.service" &&
                ta_log "started: systemctl --user status $TA_APP"
        else
            ta_log "no systemd user session here; start it with: $TA_BIN run --headless"
        fi
    elif [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
        # Detached from this terminal; a second instance exits by itself if one is already running.
        nohup "$TA_BIN" run </dev/null >/dev/null 2>&1 &
        ta_log "started the tray (pid $!)"
    fi
fi

ta_path_hint "$(dirname "$TA_BIN")"
ta_log "done. Uninstall with: $repo/installers/linux/uninstall.sh"
