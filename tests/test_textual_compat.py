"""Textual's internals the console relies on are still there, and used in textual_compat only.

Textual may change a private name in any release, and a DataTable subclass that overrides a
method Textual renamed is silently never called. These tests fail instead, on an upgrade of
Textual (each entry of wgconsole.tui.textual_compat against the installed Textual) or on a
private name used anywhere else in wgconsole.tui.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap
import tomllib
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from textual.widgets import DataTable

import wgconsole.tui
from wgconsole.tui import textual_compat
from wgconsole.tui.textual_compat import (
    ATTRIBUTES,
    CALLED,
    CELL_CACHE_KEY,
    LEFT_IN_PLACE,
    LINE_CACHE_KEY,
    OVERRIDDEN,
    PIN,
    REMOVE_ROW_USES,
    ROW_CACHE_KEY,
)

ROOT = Path(__file__).parent.parent
TUI = ROOT / "wgconsole" / "tui"
COMPAT = TUI / "textual_compat.py"
SELF_PRIVATE = re.compile(r"\bself\.(_[A-Za-z]\w*)")


def _tree(function: Callable[..., Any]) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(function)))


def _tuple_assigned(function: Callable[..., Any], name: str) -> tuple[str, ...]:
    for node in ast.walk(_tree(function)):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        value = getattr(node, "value", None)
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            assert isinstance(value, ast.Tuple), f"{name} in {function.__qualname__}"
            return tuple(ast.unparse(element) for element in value.elts)
    raise AssertionError(f"no {name} in {function.__qualname__}")


def _attributes_of(function: Callable[..., Any], name: str) -> set[str]:
    return {
        node.attr
        for node in ast.walk(_tree(function))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == name
    }


# --- the pin ------------------------------------------------------------------------------


def test_the_installed_textual_is_the_version_pinned() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if re.match(r"textual\b", d)]
    assert pins == [PIN], "raise the pin with textual_compat.PIN, after reviewing that module"
    assert version("textual") in SpecifierSet(PIN.removeprefix("textual"))


# --- what textual_compat relies on is still in Textual ------------------------------------


def test_the_private_methods_overridden_and_called_keep_their_signatures() -> None:
    for name, signature in {**OVERRIDDEN, **CALLED}.items():
        method = getattr(DataTable, name, None)
        assert method is not None, f"DataTable.{name} is gone"
        assert str(inspect.signature(method)) == signature, f"DataTable.{name}"


def test_the_private_attributes_used_keep_their_types() -> None:
    table: DataTable[str] = DataTable()
    for name, kind in ATTRIBUTES.items():
        assert isinstance(getattr(table, name, None), kind), f"DataTable.{name}"


def test_datatable_render_caches_depend_on_what_keyed_table_accounts_for() -> None:
    assert _tuple_assigned(DataTable._render_line, "cache_key") == LINE_CACHE_KEY
    assert _tuple_assigned(DataTable._render_line_in_row, "cache_key") == ROW_CACHE_KEY
    assert _tuple_assigned(DataTable._render_cell, "cell_cache_key") == CELL_CACHE_KEY


def test_remove_rows_does_all_that_remove_row_does() -> None:
    assert _attributes_of(DataTable.remove_row, "self") == REMOVE_ROW_USES
    assert _attributes_of(textual_compat.remove_rows, "table") >= REMOVE_ROW_USES


# --- and nothing else in wgconsole.tui touches Textual's internals -------------------------


def _modules() -> Iterator[tuple[str, Path]]:
    for info in pkgutil.walk_packages(wgconsole.tui.__path__, "wgconsole.tui."):
        path = ROOT / (info.name.replace(".", "/") + ("/__init__.py" if info.ispkg else ".py"))
        if path != COMPAT:
            yield info.name, path


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def _private_textual_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        else:
            continue
        found += [m for m in modules if m.split(".")[0] == "textual" and _private(m)]
    return found


def test_no_private_textual_module_is_imported_but_by_textual_compat() -> None:
    found = {name: _private_textual_imports(path.read_text()) for name, path in _modules()}
    assert not {name: modules for name, modules in found.items() if modules}


def _textual_private_names(cls: type) -> set[str]:
    names: set[str] = set()
    for base in cls.__mro__:
        if base.__module__.split(".")[0] != "textual":
            continue
        names |= {n for n in vars(base) if n.startswith("_") and not n.startswith("__")}
        names |= set(SELF_PRIVATE.findall(inspect.getsource(base)))
    return names


def _names_used(cls: type) -> set[str]:
    """Private names a class of ours defines or uses on itself (from its own source)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0]
    assert isinstance(body, ast.ClassDef)
    names = set(SELF_PRIVATE.findall(ast.unparse(body)))
    for node in body.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    for node in ast.walk(body):  # type: ignore[assignment]  # super()._name(...)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "super"
        ):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _textual_names_used(cls: type) -> set[str]:
    """Textual's private names that `cls` uses, but DataTable's overrides listed."""
    allowed = set(OVERRIDDEN) if issubclass(cls, DataTable) else set()
    return (_names_used(cls) & _textual_private_names(cls)) - allowed


def test_no_private_textual_name_is_used_but_the_overrides_listed() -> None:
    # A Textual class's private name in a subclass of ours is either a deliberate use (it
    # belongs in textual_compat) or a clash that silently changes what Textual does.
    found = []
    for module_name, _ in _modules():
        module = importlib.import_module(module_name)
        for cls in vars(module).values():
            if inspect.isclass(cls) and cls.__module__ == module_name:
                found += [f"{module_name}.{cls.__qualname__}.{n}" for n in _textual_names_used(cls)]
    assert sorted(set(found) - set(LEFT_IN_PLACE)) == []


def test_what_is_left_in_place_is_still_there() -> None:
    # An entry whose use is gone (renamed by its owner) is to be removed from the list.
    for where in LEFT_IN_PLACE:
        module_name, class_name, name = where.rsplit(".", 2)
        cls = getattr(importlib.import_module(module_name), class_name)
        assert name in _names_used(cls) & _textual_private_names(cls), where


def test_the_scans_see_a_planted_private_use() -> None:
    # The scans above pass silently if they see nothing: they must see these.
    planted = "from textual._types import SegmentLines\nimport textual.widgets._data_table\n"
    assert _private_textual_imports(planted) == [
        "textual._types",
        "textual._types.SegmentLines",
        "textual.widgets._data_table",
    ]

    class Planted(DataTable[str]):
        _update_count = 0

        def _render_line(self, y: int, x1: int, x2: int, base_style: Any) -> Any:
            self._show_hover_cursor = False
            return super()._get_offsets(y)

    assert _textual_names_used(Planted) == {
        "_update_count",
        "_show_hover_cursor",
        "_get_offsets",
    }
