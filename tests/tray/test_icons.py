"""The tray icons: every state x variant x size is rendered, sized right, and tells the
states apart by shape (alpha alone), not only by colour."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image, ImageChops, ImageStat

from traceagent import icons
from traceagent.icons import IconState

ROOT = Path(__file__).resolve().parents[2]
ICON_DIR = ROOT / "assets" / "icons"


def _render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_icons", ROOT / "assets" / "render_icons.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _open(state: IconState, variant: str, size: int) -> Image.Image:
    path = ICON_DIR / "tray" / f"{state.value}-{variant}-{size}.png"
    with Image.open(path) as img:
        img.load()
        loaded: Image.Image = img
        return loaded


def _mean_diff(a: Image.Image, b: Image.Image) -> float:
    return float(ImageStat.Stat(ImageChops.difference(a, b)).mean[0])


def test_the_script_and_the_loader_agree_on_the_set() -> None:
    render = _render_module()
    assert tuple(render.STATES) == tuple(s.value for s in IconState)
    assert tuple(render.VARIANTS) == icons.VARIANTS
    assert tuple(render.SIZES) == icons.SIZES


@pytest.mark.parametrize("state", list(IconState))
@pytest.mark.parametrize("variant", icons.VARIANTS)
@pytest.mark.parametrize("size", icons.SIZES)
def test_every_png_exists_with_its_size(state: IconState, variant: icons.Variant, size: int) -> None:
    path = icons.icon_path(state, variant, size)
    assert path is not None and path.is_file()
    img = _open(state, variant, size)
    assert img.size == (size, size)
    assert img.mode == "RGBA"
    alpha = img.getchannel("A")
    assert alpha.getextrema() == (0, 255), "an icon has both transparent and solid pixels"
    # the picture fills the square (no tiny icon in a big frame) and is not clipped
    bbox = alpha.getbbox()
    assert bbox is not None
    assert bbox[2] - bbox[0] >= size * 0.8 and bbox[3] - bbox[1] >= size * 0.75


@pytest.mark.parametrize("size", icons.SIZES)
def test_states_differ_by_shape_not_only_colour(size: int) -> None:
    """Alpha alone (what a monochrome menu bar keeps) and grayscale both tell states apart."""
    for a, b in itertools.combinations(IconState, 2):
        alpha_a, alpha_b = _open(a, "light", size).getchannel("A"), _open(b, "light", size).getchannel("A")
        assert _mean_diff(alpha_a, alpha_b) > 15, (
            f"{a.value} and {b.value} have nearly the same shape at {size}px"
        )
        for variant in icons.VARIANTS:
            grey = []
            for state in (a, b):
                bg = Image.new(
                    "RGBA", (size, size), (255, 255, 255, 255) if variant == "light" else (40, 40, 40, 255)
                )
                grey.append(Image.alpha_composite(bg, _open(state, variant, size)).convert("L"))
            assert _mean_diff(*grey) > 8, f"{a.value}/{b.value} look alike in grayscale ({variant}, {size}px)"


@pytest.mark.parametrize("state", list(IconState))
def test_light_and_dark_share_the_shape_but_not_the_colour(state: IconState) -> None:
    light, dark = _open(state, "light", 32), _open(state, "dark", 32)
    assert _mean_diff(light.getchannel("A"), dark.getchannel("A")) == 0
    solid = (16, 16) if state is not IconState.OFFLINE else (16, 1)
    assert light.getpixel(solid) != dark.getpixel(solid)
    # on its own panel each variant stands out: light panels get deep colours, dark ones tints
    assert sum(light.getpixel(solid)[:3]) < sum(dark.getpixel(solid)[:3])  # type: ignore[index]


def test_app_icon() -> None:
    path = icons.app_icon_path()
    assert path is not None and path.name == "traceagent-256.png"
    with Image.open(path) as img:
        assert img.size == (256, 256)
        assert img.mode == "RGBA"


def test_pngs_are_up_to_date_with_the_script(tmp_path: Path) -> None:
    render = _render_module()
    assert render.main(["--out", str(tmp_path)]) == 0
    for state, variant, size in itertools.product(IconState, icons.VARIANTS, icons.SIZES):
        name = f"tray/{state.value}-{variant}-{size}.png"
        with Image.open(tmp_path / name) as fresh, Image.open(ICON_DIR / name) as committed:
            diff = ImageChops.difference(fresh.convert("RGBA"), committed.convert("RGBA"))
            assert max(hi for _, hi in ImageStat.Stat(diff).extrema) <= 2, (
                f"{name} is stale: run assets/render_icons.py"
            )


def test_load_icon_sizes_and_variants() -> None:
    img = icons.load_icon(IconState.PAUSED, size=32, variant="dark")
    assert img.size == (32, 32) and img.mode == "RGBA"
    assert img.tobytes() == _open(IconState.PAUSED, "dark", 32).tobytes()
    odd = icons.load_icon(IconState.SYNCING, size=30, variant="light")  # a panel's own size
    assert odd.size == (30, 30)
    assert icons.best_size(30) == 32 and icons.best_size(16) == 16 and icons.best_size(200) == 64


def test_load_icon_without_pngs_draws_a_disc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icons, "icon_dirs", list)
    img = icons.load_icon(IconState.ERROR, size=24, variant="light")
    assert img.size == (24, 24)
    assert img.getpixel((12, 12))[3] == 255  # type: ignore[index]
    assert img.getpixel((0, 0))[3] == 0  # type: ignore[index]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TRACEAGENT_ICON_THEME": "light"}, "light"),
        ({"TRACEAGENT_ICON_THEME": "DARK"}, "dark"),
        ({"GTK_THEME": "Adwaita:dark"}, "dark"),
        ({"GTK_THEME": "Adwaita"}, "light"),
    ],
)
def test_detect_variant(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name in ("TRACEAGENT_ICON_THEME", "GTK_THEME", "XDG_CURRENT_DESKTOP"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.platform", "linux")
    icons.detect_variant.cache_clear()
    try:
        assert icons.detect_variant() == expected
    finally:
        icons.detect_variant.cache_clear()


def test_kde_colour_scheme(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TRACEAGENT_ICON_THEME", "GTK_THEME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CURRENT_DESKTOP", "KDE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr("sys.platform", "linux")
    (tmp_path / "kdeglobals").write_text("[General]\nColorScheme=BreezeLight\n")
    icons.detect_variant.cache_clear()
    try:
        assert icons.detect_variant() == "light"
        (tmp_path / "kdeglobals").write_text("[General]\nColorScheme=BreezeDark\n")
        icons.detect_variant.cache_clear()
        assert icons.detect_variant() == "dark"
    finally:
        icons.detect_variant.cache_clear()


def test_importing_icons_does_not_import_pillow_or_pystray() -> None:
    import subprocess
    import sys

    code = "import sys, traceagent.icons, traceagent.tray.model; print('pystray' in sys.modules, 'PIL' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
