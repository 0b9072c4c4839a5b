"""The tray icons: which picture for which state, and which variant for this desktop.

The PNGs are rendered ahead of time by ``assets/render_icons.py`` (shapes and colours are
described there). They are looked up in ``traceagent/_icons`` inside the installed package
first, then in the source tree's ``assets/icons``; if neither exists, a plain coloured disc
is drawn so the tray never fails for want of a file.

This module is cheap to import: Pillow is imported only when an icon is loaded.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

Variant = Literal["light", "dark"]

#: The rendered sizes, in pixels (square).
SIZES: tuple[int, ...] = (16, 22, 24, 32, 48, 64)
#: ``light`` suits light panels (deep colours), ``dark`` suits dark panels (light tints).
VARIANTS: tuple[Variant, ...] = ("light", "dark")
#: Environment variable that forces a variant (``light`` or ``dark``).
THEME_ENV = "TRACEAGENT_ICON_THEME"
#: The application icon (installers, .desktop files, dialogs).
APP_ICON_NAME = "traceagent-256.png"


class IconState(str, enum.Enum):
    """The pictures the tray can show; each has its own silhouette."""

    UP_TO_DATE = "up_to_date"  #: disc with a check mark
    SYNCING = "syncing"  #: disc with an upward arrow
    PAUSED = "paused"  #: disc with pause bars
    ERROR = "error"  #: warning triangle with "!"
    OFFLINE = "offline"  #: ring crossed by a slash
    LOCAL_ONLY = "local_only"  #: folder with a check mark (no Hugging Face sign-in)


#: Fallback colours (light-panel variant) used when no PNG can be found.
_FALLBACK_RGB: dict[IconState, tuple[int, int, int]] = {
    IconState.UP_TO_DATE: (0x1E, 0x8E, 0x3E),
    IconState.SYNCING: (0x1A, 0x73, 0xE8),
    IconState.PAUSED: (0xC2, 0x64, 0x01),
    IconState.ERROR: (0xD9, 0x30, 0x25),
    IconState.OFFLINE: (0x5F, 0x63, 0x68),
    IconState.LOCAL_ONLY: (0x84, 0x30, 0xCE),
}


def icon_dirs() -> list[Path]:
    """Folders that may hold ``tray/`` and the app icon, in the order they are tried."""
    here = Path(__file__).resolve().parent
    dirs = [here / "_icons", here.parent.parent / "assets" / "icons"]
    return [d for d in dirs if d.is_dir()]


def icon_path(state: IconState, variant: Variant, size: int) -> Path | None:
    """The PNG for ``state``/``variant`` at exactly ``size`` px, or None if none is installed."""
    name = f"{state.value}-{variant}-{size}.png"
    for d in icon_dirs():
        p = d / "tray" / name
        if p.is_file():
            return p
    return None


def app_icon_path() -> Path | None:
    """The 256 px application icon, or None if it is not installed."""
    for d in icon_dirs():
        p = d / APP_ICON_NAME
        if p.is_file():
            return p
    return None


def best_size(pixels: int) -> int:
    """The smallest rendered size at least ``pixels`` big (the largest if none is)."""
    for size in SIZES:
        if size >= pixels:
            return size
    return SIZES[-1]


def load_icon(state: IconState, *, size: int = 64, variant: Variant | None = None) -> Image.Image:
    """The icon for ``state`` as an RGBA image of ``size`` x ``size`` px.

    ``variant`` defaults to :func:`detect_variant`. A size that was not rendered is made
    from the next larger rendering (Lanczos), never enlarged from a smaller one.
    """
    from PIL import Image

    chosen = variant or detect_variant()
    rendered = best_size(size)
    path = icon_path(state, chosen, rendered)
    if path is None:
        log.warning("icon %s-%s-%d.png not found; drawing a plain disc", state.value, chosen, rendered)
        img = _fallback_image(state, rendered)
    else:
        with Image.open(path) as f:
            img = f.convert("RGBA")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return img


def _fallback_image(state: IconState, size: int) -> Image.Image:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((1, 1, size - 2, size - 2), fill=(*_FALLBACK_RGB[state], 255))
    return img


@functools.lru_cache(maxsize=1)
def detect_variant() -> Variant:
    """Guess whether the panel that shows the icon is light or dark.

    ``$TRACEAGENT_ICON_THEME`` wins. macOS: the system appearance. Windows: the taskbar
    setting (dark by default). Linux: ``GTK_THEME``, then KDE's colour scheme; otherwise
    dark, as panels are on most desktops (GNOME's top bar always is). Cached: computed
    once per process.
    """
    forced = os.environ.get(THEME_ENV, "").strip().lower()
    if forced in VARIANTS:
        return "light" if forced == "light" else "dark"
    try:
        if sys.platform == "darwin":
            return _macos_variant()
        if sys.platform == "win32":
            return _windows_variant()
        return _linux_variant()
    except Exception:  # a probe must never break the tray
        log.debug("icon theme probe failed", exc_info=True)
        return "dark"


def _macos_variant() -> Variant:
    out = _run(["defaults", "read", "-g", "AppleInterfaceStyle"])
    return "dark" if out is not None and "dark" in out.lower() else "light"


def _windows_variant() -> Variant:
    if sys.platform != "win32":  # keeps mypy's platform narrowing happy on other OSes
        return "dark"
    import winreg

    key = r"Software\Microsoft\Windows\CurrentVersion\Themes\Personalize"
    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as k:
            value, _ = winreg.QueryValueEx(k, "SystemUsesLightTheme")
    except OSError:
        return "dark"
    return "light" if value == 1 else "dark"


def _linux_variant() -> Variant:
    gtk_theme = os.environ.get("GTK_THEME", "").lower()
    if gtk_theme:
        return "dark" if "dark" in gtk_theme else "light"
    if "kde" in os.environ.get("XDG_CURRENT_DESKTOP", "").lower():
        # Plasma's panel follows the colour scheme (Breeze: light, Breeze Dark: dark)
        config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kdeglobals"
        try:
            text = config.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "dark"
        for line in text.splitlines():
            if line.startswith("ColorScheme="):
                return "dark" if "dark" in line.lower() else "light"
    return "dark"


def _run(cmd: list[str]) -> str | None:
    """A probe command's stdout, or None when it is missing, fails or hangs."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None
