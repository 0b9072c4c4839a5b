#!/usr/bin/env bash
# Build dist/traceagent.app with py2app (macOS only). Needs a Python 3.10+ from python.org or Homebrew
# (PYTHON=/path/to/python3), and Xcode's command-line tools for `sips` and `iconutil`.
#   installers/macos/build-app.sh
#   cp -R dist/traceagent.app ~/Applications/
#   ~/Applications/traceagent.app/Contents/MacOS/traceagent autostart enable
set -euo pipefail

[ "$(uname -s)" = Darwin ] || {
    echo "build-app.sh runs on macOS only" >&2
    exit 1
}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build="$repo/build/macos-app"
python=${PYTHON:-python3}

rm -rf "$build" "$repo/dist/traceagent.app"
mkdir -p "$build"
"$python" -m venv "$build/venv"
"$build/venv/bin/python" -m pip install --quiet --upgrade pip
"$build/venv/bin/python" -m pip install --quiet "$repo" "py2app>=0.28"

icon="$repo/assets/icons/traceagent-256.png"
if [ -f "$icon" ]; then
    iconset="$build/traceagent.iconset"
    mkdir -p "$iconset"
    # iconutil accepts only the standard names: 16, 32, 128, 256 (and 512) px, each also @2x.
    make() { sips -z "$1" "$1" "$icon" --out "$iconset/$2" >/dev/null; }
    make 16 icon_16x16.png
    make 32 icon_16x16@2x.png
    make 32 icon_32x32.png
    make 64 icon_32x32@2x.png
    make 128 icon_128x128.png
    make 256 icon_128x128@2x.png
    make 256 icon_256x256.png
    iconutil -c icns "$iconset" -o "$build/traceagent.icns"
    export TRACEAGENT_ICNS="$build/traceagent.icns"
fi

cd "$build"
"$build/venv/bin/python" "$here/setup_py2app.py" py2app --dist-dir "$repo/dist" --bdist-base "$build/bdist"
"$repo/dist/traceagent.app/Contents/MacOS/traceagent" --version
echo "built $repo/dist/traceagent.app"
