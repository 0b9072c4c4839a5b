"""The README's one-way rule, checked on the source: no room imports a room above it.

Read from the source with ``ast`` (nothing is imported), so the check costs nothing and sees lazy
imports inside functions too, which is where an arrow running back up usually hides.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "traceagent"

#: Each room and the rooms it may import (besides itself and the foundations). The picture in the README's
#: "How it works" section, bottom to top.
FOUNDATIONS = {
    "errors", "paths", "memory", "logsetup", "entrypoints", "status", "icons", "templates", "config",
    "sinks", "agents", "redact",
}  # fmt: skip
MAY_IMPORT: dict[str, set[str]] = {
    "autostart": set(),
    "sync": set(),  # knows sinks/, never hub/
    "hub": set(),  # beside sync/, never imports it
    "app": {"autostart", "sync", "hub"},
    "tray": set(),  # sees the engine as a Protocol: never app/, sync/ or hub/
}
#: The front end at the top may import anything; nothing imports it.
TOP = {"cli", "cli_setup", "doctor", "__main__"}


def _room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "traceagent"


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every ``traceagent`` module the file imports, anywhere in it."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "traceagent":  # from traceagent import config (not __version__)
                names = [
                    a.name
                    for a in node.names
                    if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").is_file()
                ]
                yield from ((node.lineno, f"traceagent.{name}") for name in names)
            elif node.module.startswith("traceagent."):
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("traceagent."))


def test_no_room_imports_a_room_above_it() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "traceagent." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        room = _room(module)
        if room in TOP or room == "traceagent":
            continue
        allowed = FOUNDATIONS | {room} | MAY_IMPORT.get(room, set())
        for line, target in _imports(path):
            if _room(target) not in allowed:
                found.append(f"{path.relative_to(PACKAGE)}:{line}: {room}/ imports {target}")
    assert not found, "imports that run back up (see README, How it works):\n" + "\n".join(found)


def test_every_room_is_placed() -> None:
    """A new top-level module or folder gets a place in the picture (and in this file)."""
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    names -= {"__init__", "__pycache__", "_icons"}
    unplaced = names - FOUNDATIONS - set(MAY_IMPORT) - TOP
    assert not unplaced, f"not in the README's picture: {sorted(unplaced)}"
