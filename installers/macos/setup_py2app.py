"""py2app recipe for ``traceagent.app``; run by ``installers/macos/build-app.sh`` (macOS only).

The bundle is a menu-bar agent (``LSUIElement``: no Dock icon) whose bundle identifier is the
LaunchAgent label, so macOS's Login Items list shows it by name.
"""

import os
import sys
from pathlib import Path

from setuptools import setup

from traceagent import __version__
from traceagent.templates import MACOS_LABEL

HERE = Path(__file__).resolve().parent
ENTRY = HERE.parent / "app_entry.py"
ICNS = os.environ.get("TRACEAGENT_ICNS", "")

OPTIONS = {
    "argv_emulation": False,
    "iconfile": ICNS or None,
    "packages": [
        "traceagent",
        "pystray",
        "PIL",
        "keyring",
        "huggingface_hub",
        "watchdog",
        "platformdirs",
        "tomlkit",
        "certifi",
    ],
    "plist": {
        "CFBundleName": "traceagent",
        "CFBundleDisplayName": "traceagent",
        "CFBundleIdentifier": MACOS_LABEL,
        "CFBundleShortVersionString": __version__,
        "CFBundleVersion": __version__,
        "LSUIElement": True,
        "LSMinimumSystemVersion": "11.0",
        "NSHumanReadableCopyright": "Apache-2.0",
    },
}

if __name__ == "__main__":
    if sys.platform != "darwin":
        sys.exit("py2app builds the .app on macOS only")
    setup(name="traceagent", app=[str(ENTRY)], options={"py2app": OPTIONS})
