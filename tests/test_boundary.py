"""The core never imports Textual: only app.py, screens/ and widgets/ may."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "wgconsole"
UI = ("app.py", "screens", "widgets")


def _is_ui(path: Path) -> bool:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] in UI


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def _core_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if not _is_ui(p)]


def test_core_never_imports_textual() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imports(path) if name == "textual" or name.startswith("textual.")
        )
        for path in _core_modules()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_never_imports_the_ui() -> None:
    ui_modules = ("wgconsole.app", "wgconsole.screens", "wgconsole.widgets")
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imports(path) if name.startswith(ui_modules)
        )
        for path in _core_modules()
    }
    # cli.py starts the console by importlib at run time, the one sanctioned way in.
    offenders.pop("cli.py", None)
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_scan_sees_the_ui() -> None:
    # Guards the guard: if the UI moved, the allow-list above would silently cover nothing.
    assert (PACKAGE / "app.py").exists()
    assert any(_is_ui(p) for p in PACKAGE.rglob("*.py") if p.name != "app.py")
    assert any("textual" in n for n in _imports(PACKAGE / "app.py"))
