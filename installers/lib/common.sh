# shellcheck shell=bash
# Shared by installers/linux/*.sh and installers/macos/*.sh (sourced, not run).
# Bash 3.2 compatible (macOS): no associative arrays, no ${var,,}, no mapfile; empty arrays are
# expanded as ${a[@]+"${a[@]}"} because of `set -u`.
#
# Every start-at-login entry and launcher is written by the installed package
# (`python -m traceagent.autostart ...`), which renders them from src/traceagent/templates/:
# nothing here writes a .desktop file, a unit or a plist itself.

TA_APP=traceagent

ta_log() { printf 'traceagent: %s\n' "$*" >&2; }
ta_die() {
    printf 'traceagent: error: %s\n' "$*" >&2
    exit 1
}

# ta_find_python: set TA_SYSPY to a Python >= 3.10 ($PYTHON, else python3, else python).
ta_find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 python; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
            TA_SYSPY=$(command -v "$candidate")
            return 0
        fi
    done
    ta_die "Python 3.10 or newer is needed (set PYTHON=/path/to/python3)."
}

# ta_choose_method [METHOD]: set TA_METHOD to pipx, uv or venv (the first present, unless given).
ta_choose_method() {
    case "${1:-auto}" in
        pipx | uv | venv) TA_METHOD=$1 ;;
        auto)
            if command -v pipx >/dev/null 2>&1; then
                TA_METHOD=pipx
            elif command -v uv >/dev/null 2>&1; then
                TA_METHOD=uv
            else
                TA_METHOD=venv
            fi
            ;;
        *) ta_die "unknown method '$1' (pipx, uv or venv)" ;;
    esac
    if [ "$TA_METHOD" != venv ] && ! command -v "$TA_METHOD" >/dev/null 2>&1; then
        ta_die "--method $TA_METHOD, but '$TA_METHOD' is not installed"
    fi
}

# ta_install_package REPO EXTRAS VENV_DIR BIN_DIR: install the checkout; set TA_PY (the installed
# interpreter) and TA_BIN (the traceagent command). EXTRAS is "" or e.g. "gtk".
ta_install_package() {
    local repo=$1 extras=$2 venv=$3 bindir=$4 spec site_flag=""
    spec=$repo
    [ -z "$extras" ] || spec="${repo}[${extras}]"
    # A distro Python with python3-gi gives the tray its GTK/AppIndicator menu: let the venv see it.
    if "$TA_SYSPY" -c 'import gi' >/dev/null 2>&1; then
        site_flag=--system-site-packages
    fi
    case "$TA_METHOD" in
        pipx)
            ta_log "installing with pipx${site_flag:+ ($site_flag)}"
            pipx install --force --python "$TA_SYSPY" ${site_flag:+"$site_flag"} "$spec" >&2
            local venvs pbin
            venvs=$(pipx environment --value PIPX_LOCAL_VENVS 2>/dev/null) || venvs=""
            pbin=$(pipx environment --value PIPX_BIN_DIR 2>/dev/null) || pbin=""
            [ -n "$venvs" ] || venvs="${PIPX_HOME:-$HOME/.local/share/pipx}/venvs"
            [ -n "$pbin" ] || pbin="${PIPX_BIN_DIR:-$HOME/.local/bin}"
            TA_PY="$venvs/$TA_APP/bin/python"
            TA_BIN="$pbin/$TA_APP"
            ;;
        uv)
            ta_log "installing with uv tool"
            [ -z "$extras" ] || spec="${TA_APP}[${extras}] @ file://${repo}"
            uv tool install --force --python "$TA_SYSPY" "$spec" >&2
            TA_PY="$(uv tool dir)/$TA_APP/bin/python"
            TA_BIN="$(uv tool dir --bin)/$TA_APP"
            ;;
        venv)
            ta_log "installing into $venv${site_flag:+ ($site_flag)}"
            mkdir -p "$(dirname "$venv")"
            if [ ! -x "$venv/bin/python" ]; then
                "$TA_SYSPY" -m venv ${site_flag:+"$site_flag"} "$venv" || ta_die "could not create $venv"
            fi
            "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$spec" >&2 ||
                ta_die "pip could not install $spec"
            mkdir -p "$bindir"
            if [ -e "$bindir/$TA_APP" ] && [ ! -L "$bindir/$TA_APP" ]; then
                ta_log "replacing $bindir/$TA_APP (not ours) with a link to $venv/bin/$TA_APP"
            fi
            ln -sfn "$venv/bin/$TA_APP" "$bindir/$TA_APP"
            TA_PY="$venv/bin/python"
            TA_BIN="$bindir/$TA_APP"
            ;;
    esac
    [ -x "$TA_PY" ] || ta_die "installed interpreter not found at $TA_PY"
}

# ta_check_command: the installed command answers --version (or at least the package imports).
ta_check_command() {
    local version
    if version=$("$TA_BIN" --version 2>/dev/null); then
        ta_log "installed: $version ($TA_BIN)"
    elif version=$("$TA_PY" -c 'import traceagent; print(traceagent.__version__)'); then
        ta_log "installed traceagent $version; '$TA_BIN --version' did not answer"
    else
        ta_die "the installed package does not import ($TA_PY)"
    fi
}

# ta_autostart ARGS...: `traceagent autostart ARGS`, or the module itself when that subcommand is not
# there (an older CLI) or ARGS is one only the module has (render, launcher, repair, command).
ta_autostart() {
    case "$1" in
        enable | disable | status)
            if "$TA_BIN" autostart --help >/dev/null 2>&1; then
                "$TA_BIN" autostart "$@"
                return
            fi
            ;;
    esac
    "$TA_PY" -m traceagent.autostart "$@"
}

# ta_write_record FILE: what the uninstaller needs to know.
ta_write_record() {
    mkdir -p "$(dirname "$1")"
    {
        printf 'METHOD=%s\n' "$TA_METHOD"
        printf 'PY=%s\n' "$TA_PY"
        printf 'BIN=%s\n' "$TA_BIN"
        printf 'VENV=%s\n' "${TA_VENV:-}"
    } >"$1"
}

# ta_read_record FILE: set TA_METHOD, TA_PY, TA_BIN, TA_VENV from it (no `source`: plain key=value).
ta_read_record() {
    local key value
    [ -f "$1" ] || return 1
    while IFS='=' read -r key value; do
        case "$key" in
            METHOD) TA_METHOD=$value ;;
            PY) TA_PY=$value ;;
            BIN) TA_BIN=$value ;;
            VENV) TA_VENV=$value ;;
        esac
    done <"$1"
}

# ta_uninstall_package: remove what ta_install_package installed.
ta_uninstall_package() {
    case "${TA_METHOD:-}" in
        pipx) pipx uninstall "$TA_APP" >&2 || ta_log "pipx had no $TA_APP" ;;
        uv) uv tool uninstall "$TA_APP" >&2 || ta_log "uv had no $TA_APP" ;;
        venv)
            # Only our own link: never delete a traceagent that pipx or uv put there.
            if [ -L "${TA_BIN:-}" ] && [ "$(readlink "$TA_BIN")" = "$TA_VENV/bin/$TA_APP" ]; then
                rm -f "$TA_BIN"
            fi
            if [ -n "${TA_VENV:-}" ] && [ -f "$TA_VENV/pyvenv.cfg" ]; then
                rm -rf "$TA_VENV"
            fi
            ;;
        *) ta_log "no install record; nothing to uninstall" ;;
    esac
}

# ta_path_hint BIN_DIR: tell the user when the command is not on PATH.
ta_path_hint() {
    case ":$PATH:" in
        *":$1:"*) ;;
        *) ta_log "add $1 to your PATH to use the 'traceagent' command in a terminal" ;;
    esac
}
