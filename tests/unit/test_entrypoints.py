"""Module names written as strings: the registry imports, and every text names only modules that exist.

A dotted name in a string (``python -m traceagent.tray.signin_dialog``, an installer's
``-m traceagent.autostart``, a docstring's :mod:`traceagent.hub.whoami`) is invisible to imports and
mypy, so a move leaves it pointing nowhere. :mod:`traceagent.entrypoints` holds the ones the code runs;
this file imports each and scans the repository's texts (installers, templates, benchmarks, docs,
docstrings) for ``traceagent.x.y`` names that no longer resolve.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from traceagent import entrypoints

THIS = Path(__file__).resolve()
REPO = THIS.parents[2]
INSTALLERS = REPO / "installers"

# ``traceagent.<x>`` where <x> is a file suffix, not a module: traceagent.log, traceagent.service, ...
FILE_SUFFIXES = {"log", "service", "desktop", "plist", "exe", "spec", "png", "ico", "icns", "iconset", "in"}
# A dotted name not inside a longer one (io.github.traceagent.plist, src/traceagent/...), with an
# optional ``:attribute`` (pyproject's ``module:function``).
DOTTED = re.compile(r"(?<![\w.\-/])traceagent((?:\.\w+)+)(?::(\w+))?")


@cache
def _top_level_names(path: str) -> frozenset[str]:
    """Names a module defines or imports at top level, read from its source (nothing is imported)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(names)


def resolves(dotted: str) -> bool:
    """Whether ``a.b.c`` is a module, or a module's top-level name (read without importing it: the
    tray's modules would pick a display backend)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            spec = importlib.util.find_spec(".".join(parts[:i]))
        except ImportError:
            spec = None
        if spec is None:
            continue
        rest = parts[i:]
        if not rest:
            return True
        if rest[0].startswith("__") and rest[0].endswith("__"):
            return True  # __version__, __file__
        if spec.origin and spec.origin.endswith(".py"):  # a.b.Class.method: the class is enough
            return rest[0] in _top_level_names(spec.origin)
        return False
    return False


def _is_module(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except ImportError:
        return False


def stale_names(text: str) -> list[str]:
    """The ``traceagent.x.y`` names in ``text`` that are neither modules nor their attributes."""
    bad = []
    for m in DOTTED.finditer(text):
        segments = m.group(1)[1:].split(".")
        if segments[0] in FILE_SUFFIXES:
            continue
        dotted = ".".join(["traceagent", *segments, *([m.group(2)] if m.group(2) else [])])
        if not resolves(dotted):
            bad.append(m.group(0))
    return bad


def _tracked_texts() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    paths = [REPO / p for p in out.decode().split("\0") if p]
    texts = []
    for path in paths:
        # This file names stale modules on purpose (the scan's own test).
        if path.is_file() and path.suffix not in {".png", ".ico", ".icns", ".svg", ".db"} and path != THIS:
            texts.append(path)
    return texts


# -- the registry ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", entrypoints.RUN_AS_MAIN)
def test_every_registered_module_imports_and_runs_as_main(name: str) -> None:
    """``python -m NAME`` needs the module (or a package's ``__main__``) and a main guard in it."""
    module = importlib.import_module(name)
    assert module.__name__ == name
    spec = importlib.util.find_spec(f"{name}.__main__") if hasattr(module, "__path__") else module.__spec__
    assert spec is not None and spec.origin, f"python -m {name}: nothing to run"
    source = Path(spec.origin).read_text(encoding="utf-8")
    assert re.search(r"^if __name__ == .__main__.:", source, re.M), f"python -m {name} would do nothing"


def test_the_registered_modules_start_as_processes() -> None:
    """The signin dialog and the autostart tool answer ``--help`` when started by their registered name."""
    for name in (entrypoints.SIGNIN_DIALOG, entrypoints.AUTOSTART):
        result = subprocess.run(
            [sys.executable, "-m", name, "--help"], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"python -m {name} --help:\n{result.stderr}"


def test_pyproject_scripts_are_the_registered_console_script() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"] == {"traceagent": entrypoints.CONSOLE_SCRIPT}
    assert project["gui-scripts"] == {"traceagentw": entrypoints.CONSOLE_SCRIPT}
    module, _, func = entrypoints.CONSOLE_SCRIPT.partition(":")
    assert callable(getattr(importlib.import_module(module), func))


def test_no_module_name_is_spelled_in_code_outside_the_registry() -> None:
    """A string literal that is a module's dotted name (not a docstring or a logger's name) lives in
    traceagent.entrypoints."""
    found = []
    for path in sorted((REPO / "src" / "traceagent").rglob("*.py")):
        if path.name == "entrypoints.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        # A logger's name is what a log line shows, not a module to run: logging.getLogger("...") may name one.
        docstrings |= {
            id(arg)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "getLogger"
            for arg in node.args
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for word in node.value.split():
                    if re.fullmatch(r"traceagent(\.\w+)+", word) and resolves(word) and _is_module(word):
                        found.append(f"{path.relative_to(REPO)}:{node.lineno}: {word}")
    assert not found, "module names spelled as strings; use traceagent.entrypoints:\n" + "\n".join(found)


# -- texts that name modules --------------------------------------------------------------------------------------


def test_every_text_names_only_modules_that_exist() -> None:
    """Installers, templates, benchmarks, READMEs, docstrings and comments: no stale ``traceagent.x``."""
    found = []
    for path in _tracked_texts():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for name in stale_names(text):
            found.append(f"{path.relative_to(REPO)}: {name}")
    assert not found, "names of modules that do not exist:\n" + "\n".join(found)


def test_the_stale_name_scan_sees_a_moved_module() -> None:
    """The scan itself: a moved module and a vanished function are found; file names are not modules."""
    assert stale_names("python -m traceagent.signin_dialog") == ["traceagent.signin_dialog"]
    assert stale_names(":func:`traceagent.hub.auth.whoami_cached`") == ["traceagent.hub.auth.whoami_cached"]
    assert stale_names("traceagent = 'traceagent.cli:nomain'") == ["traceagent.cli:nomain"]
    assert (
        stale_names("traceagent.log, traceagent.service, io.github.traceagent.plist, src/traceagent/x") == []
    )
    assert (
        stale_names("traceagent.hub.whoami.whoami_cached, traceagent.cli:main, traceagent.__version__") == []
    )


def test_installers_run_the_registered_modules() -> None:
    """Shell and PowerShell cannot import the registry: what they run with ``-m`` must be in it."""
    runs: set[str] = set()
    for path in INSTALLERS.rglob("*"):
        if path.is_file() and path.suffix in {".sh", ".ps1"}:
            text = path.read_text(encoding="utf-8")
            runs.update(re.findall(r"-m\s+[\"']?(traceagent[\w.]*)", text))
            runs.update(re.findall(r"\"-m\",\s*\"(traceagent[\w.]*)\"", text))
    assert runs, "the installers run traceagent.autostart"
    assert runs <= set(entrypoints.RUN_AS_MAIN), runs - set(entrypoints.RUN_AS_MAIN)


def test_the_macos_bundle_is_named_as_py2app_builds_it() -> None:
    """py2app writes ``dist/<setup name>.app``; the installers must name that bundle, nothing longer
    (a module rename once turned every ``traceagent.app`` here into ``traceagent.app.wiring``)."""
    recipe = ast.parse((INSTALLERS / "macos" / "setup_py2app.py").read_text(encoding="utf-8"))
    names = [
        kw.value.value
        for node in ast.walk(recipe)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup"
        for kw in node.keywords
        if kw.arg == "name" and isinstance(kw.value, ast.Constant)
    ]
    assert names == ["traceagent"]
    bundle = f"{names[0]}.app"
    for path in INSTALLERS.rglob("*"):
        if path.is_file() and path.suffix in {".sh", ".md", ".py"}:
            for mention in re.findall(r"(?<![\w.])traceagent\.app[\w.]*", path.read_text(encoding="utf-8")):
                assert mention == bundle, (
                    f"{path.relative_to(REPO)} names {mention!r}, py2app builds {bundle!r}"
                )


@pytest.mark.parametrize(
    ("name", "says"),
    [
        (entrypoints.SIGNIN_DIALOG, "Ask for a Hugging Face token"),
        (entrypoints.AUTOSTART, "Start traceagent at login"),
    ],
)
def test_a_frozen_app_runs_the_registered_modules(name: str, says: str) -> None:
    """In a frozen build ``sys.executable`` is the app itself, so the tray's ``[sys.executable, "-m",
    SIGNIN_DIALOG]`` reaches the frozen entry point: it must run the module, not the CLI (which
    would refuse ``-m`` and the tray would say it cannot open the sign-in window)."""
    result = subprocess.run(
        [sys.executable, str(INSTALLERS / "app_entry.py"), "-m", name, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert says in result.stdout


def test_a_frozen_app_runs_no_other_module() -> None:
    """Only the registered modules: anything else after ``-m`` is the CLI's to refuse."""
    result = subprocess.run(
        [sys.executable, str(INSTALLERS / "app_entry.py"), "-m", "traceagent.sync.engine"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
