"""The house rules, read from the code: rooms import only rooms below them, and no module imports
itself back through others (lazy imports inside functions count too: they are how circles hide).

The rooms, from the bottom (each may import the rooms below it and its own, never one above):
the basics and the pure key/destination rules; config, status and icons; the sources (agents) and the
redactor; the sinks; the Hub client and the sync engine (side by side, and neither imports the other);
start at login; the application; the tray; the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = SRC / "traceagent"

#: room (a module or a package, as a dotted prefix) -> floor. The longest matching prefix decides.
FLOORS: dict[str, int] = {
    "traceagent": 0,
    "traceagent.errors": 0,
    "traceagent.paths": 0,
    "traceagent.memory": 0,
    "traceagent.logsetup": 0,
    "traceagent.entrypoints": 0,
    "traceagent.sinks.keys": 0,
    "traceagent.config": 1,
    "traceagent.status": 1,
    "traceagent.icons": 1,
    "traceagent.templates": 1,
    "traceagent.agents": 2,
    "traceagent.redact": 2,
    "traceagent.sinks": 3,
    "traceagent.hub": 4,
    "traceagent.sync": 4,
    "traceagent.autostart": 5,
    "traceagent.app": 6,
    "traceagent.tray": 7,
    "traceagent.cli": 8,
    "traceagent.__main__": 9,
}
#: Rooms that must not know each other: sync and hub sit side by side; the tray sees the engine as a
#: Protocol (tray/model.py's TrayEngine), so it never imports the application, the engine or the Hub.
APART = {
    ("traceagent.sync", "traceagent.hub"),
    ("traceagent.hub", "traceagent.sync"),
    ("traceagent.tray", "traceagent.app"),
    ("traceagent.tray", "traceagent.sync"),
    ("traceagent.tray", "traceagent.hub"),
}
#: Third-party packages the engine room never imports (the daemon stays small; the tray is a view).
ENGINE_NEVER = ("pystray", "huggingface_hub", "hf_xet", "gi")


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every traceagent module ``name`` imports (at any depth of the file), resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            submodules = {f"{mod}.{a.name}" for a in node.names} & known
            out.update(submodules)  # `from traceagent.sync import engine` imports a module
            if len(submodules) < len(node.names):
                out.add(mod)  # ...and a name defined in the package itself
    return {m for m in out if m in known and m != name}


def _third_party(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def _room(name: str) -> str:
    best = max((p for p in FLOORS if name == p or name.startswith(p + ".")), key=len)
    return best


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {n: _imports(n, p, known) for n, p in mods.items()}


def test_every_module_has_a_room() -> None:
    for name in _modules():
        assert _room(name) in FLOORS, name


def test_no_module_imports_a_room_above_its_own() -> None:
    upward = []
    for name, deps in sorted(_graph().items()):
        room = _room(name)
        for dep in sorted(deps):
            if dep == "traceagent":  # the package's face (__version__)
                continue
            dep_room = _room(dep)
            if FLOORS[dep_room] > FLOORS[room] or (room, dep_room) in APART:
                upward.append(f"{name} ({room}) imports {dep} ({dep_room})")
    assert not upward, "\n".join(upward)


def test_no_two_modules_import_each_other_even_through_others() -> None:
    graph = _graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if d == "traceagent":
                continue
            if state.get(d) == 1:
                circles.append([*stack[stack.index(d) :], d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not circles, "\n".join(" -> ".join(c) for c in circles)


@pytest.mark.parametrize("room", ["traceagent.sync", "traceagent.sinks", "traceagent.agents"])
def test_the_engine_room_never_imports_the_hub_client_or_the_tray(room: str) -> None:
    mods = _modules()
    offending = {
        name: sorted(_third_party(path) & set(ENGINE_NEVER))
        for name, path in mods.items()
        if _room(name) == room or name.startswith(room + ".")
    }
    assert not {k: v for k, v in offending.items() if v}, offending


def test_the_rule_checker_sees_a_circle_and_an_upward_import(tmp_path: Path) -> None:
    """The checker itself can fail: a made-up pair importing each other, lazily, is found."""
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from traceagent.cli import main\n", encoding="utf-8")
    assert _imports("traceagent.sync.state", a, {"traceagent.cli", "traceagent.sync.state"}) == {
        "traceagent.cli"
    }
    assert FLOORS[_room("traceagent.cli")] > FLOORS[_room("traceagent.sync.state")]
