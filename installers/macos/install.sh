#!/usr/bin/env bash
# Install traceagent for the current user from this checkout (no sudo):
#   - the package, with pipx or `uv tool` if present, else a venv in
#     ~/Library/Application Support/traceagent/venv linked as ~/.local/bin/traceagent;
#   - start at login: ~/Library/LaunchAgents/io.github.traceagent.plist (starts at login, restarted after a crash),
#     loaded now with launchctl unless --no-start.
# For a double-clickable traceagent.app instead, see build-app.sh. Undo with uninstall.sh.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: installers/macos/install.sh [options]
  --method pipx|uv|venv  how to install the package (default: pipx, else uv, else a venv)
  --headless             no menu-bar icon: run `traceagent run --headless` at login
  --no-autostart         do not start traceagent at login
  --no-start             do not start traceagent now
  -h, --help             this help
Environment: PYTHON (interpreter to use, 3.10+; e.g. from python.org or Homebrew).
USAGE
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=installers/lib/common.sh
. "$repo/installers/lib/common.sh"

method=auto headless=0 autostart=1 start=1
while [ $# -gt 0 ]; do
    case "$1" in
        --method)
            [ $# -ge 2 ] || ta_die "--method needs a value"
            method=$2
            shift
            ;;
        --method=*) method=${1#--method=} ;;
        --headless) headless=1 ;;
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
support="$HOME/Library/Application Support/$TA_APP"
bin_dir=${XDG_BIN_HOME:-$HOME/.local/bin}
record="$support/installer.env"
TA_VENV="$support/venv"

ta_find_python
ta_choose_method "$method"
[ "$TA_METHOD" = venv ] || TA_VENV=""
ta_install_package "$repo" "" "$TA_VENV" "$bin_dir"
ta_write_record "$record"
ta_check_command

if [ "$autostart" = 1 ]; then
    if [ "$headless" = 1 ]; then
        ta_autostart enable --headless
    else
        ta_autostart enable
    fi
    plist=$("$TA_PY" -c 'from traceagent.autostart import launchagent_path; print(launchagent_path())')
    label=$("$TA_PY" -c 'from traceagent.templates import MACOS_LABEL; print(MACOS_LABEL)')
    if [ "$start" = 1 ] && command -v launchctl >/dev/null 2>&1; then
        # Reload: an older copy of the agent may be loaded from a previous install.
        launchctl bootout "gui/$(id -u)/$label" >/dev/null 2>&1 || true
        launchctl bootstrap "gui/$(id -u)" "$plist" && ta_log "started: launchctl print gui/$(id -u)/$label"
    fi
elif [ "$start" = 1 ]; then
    nohup "$TA_BIN" run </dev/null >/dev/null 2>&1 &
    ta_log "started (pid $!)"
fi

ta_path_hint "$(dirname "$TA_BIN")"
ta_log "done. Uninstall with: $repo/installers/macos/uninstall.sh"
