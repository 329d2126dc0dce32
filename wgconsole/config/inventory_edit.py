"""Add or remove one line of the inventory's `clients:` list, keeping everything else as it is.

Operators write this file by hand, with comments: it is edited as text, at positions taken
from the YAML node tree (which keeps them), never re-dumped. The new text is loaded with the
real loader before it replaces the file (atomically, same mode), and must hold exactly the
expected clients; a file that changed meanwhile is not overwritten.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable

import yaml

from wgconsole.config.inventory_file import InventoryError, load_inventory
from wgconsole.core.inventory import Client, Inventory

_ITEM_INDENT = "  "


class InventoryEditError(Exception):
    """The inventory could not be edited as asked; nothing was written."""



def client_line(client: Client) -> str:
    """`{name: N, public_key: K, address: A}`, each value plain unless YAML would misread it."""
    fields = (("name", client.name), ("public_key", client.public_key), ("address", client.address))
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in fields) + "}"


def _scalar(value: str) -> str:
    try:
        plain_ok = yaml.safe_load("{k: " + value + "}") == {"k": value}
    except yaml.YAMLError:
        plain_ok = False
    # A JSON string is a valid YAML double-quoted scalar ("yes", "1e3", "null" stay strings).
    return value if plain_ok else json.dumps(value)


def add_client(path: str, client: Client) -> Inventory:
    """Append the client to `clients:`; returns the inventory as re-loaded from the file."""
    before = _load(path)
    expected = (*before.clients, client)
    return _edit(path, lambda text: insert_client_text(text, client), expected)


def remove_client(path: str, public_key: str) -> Inventory:
    """Delete the client's item from `clients:` (no change if it is not listed)."""
    before = _load(path)
    expected = tuple(c for c in before.clients if c.public_key != public_key)
    if len(expected) == len(before.clients):
        return before
    return _edit(path, lambda text: delete_client_text(text, public_key), expected)


def _load(path: str) -> Inventory:
    try:
        return load_inventory(path)
    except InventoryError as exc:
        raise InventoryEditError(f"the inventory cannot be edited: {exc}") from None


def _edit(path: str, change: Callable[[str], str], expected: tuple[Client, ...]) -> Inventory:
    with open(path, encoding="utf-8") as fh:
        original = fh.read()
    try:
        new_text = change(original)
    except yaml.YAMLError:
        raise InventoryEditError(f"{path} is no longer valid YAML; not edited") from None
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".inventory-", suffix=".yaml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new_text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        _check(tmp, path, expected)
        with open(path, encoding="utf-8") as fh:
            if fh.read() != original:
                raise InventoryEditError(
                    f"{path} changed while it was being edited; not overwritten"
                )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    after = _load(path)
    if after.clients != expected:
        raise InventoryEditError(f"{path}: the clients read back are not the expected ones")
    return after


def _check(tmp: str, path: str, expected: tuple[Client, ...]) -> None:
    try:
        edited = load_inventory(tmp)
    except InventoryError as exc:
        raise InventoryEditError(
            f"{path}: the edit would break the inventory ({exc.reason})"
        ) from None
    if edited.clients != expected:
        raise InventoryEditError(
            f"{path}: the edit would not give the expected clients; not written"
        )


# --- the text edits (pure) ------------------------------------------------------------


def _root(text: str) -> yaml.MappingNode:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode) or node.flow_style:
        raise InventoryEditError(
            "the inventory is not a block mapping at the top: edit `clients:` by hand"
        )
    return node


def _clients_entry(root: yaml.MappingNode) -> tuple[yaml.Node, yaml.Node] | None:
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "clients":
            return key, value
    return None


def _end_line(node: yaml.Node) -> int:
    """The 0-based line holding the node's last character."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        mark = node.end_mark
        return int(mark.line) - 1 if mark.column == 0 and mark.line > 0 else int(mark.line)
    # A block collection's end mark is where the next token starts: use its last leaf.
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            children += [k, v]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    return max((_end_line(c) for c in children), default=int(node.start_mark.line))


def _dash_column(lines: list[str], item: yaml.Node) -> int:
    line = lines[item.start_mark.line]
    dash = line.rfind("-", 0, item.start_mark.column)
    if dash < 0 or line[:dash].strip() or line[dash + 1 : item.start_mark.column].strip():
        raise InventoryEditError(
            "a `clients:` item does not start on its `-` line: edit it by hand"
        )
    return dash


def insert_client_text(text: str, client: Client) -> str:
    entry = client_line(client)
    root = _root(text)
    found = _clients_entry(root)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if found is None:
        return "".join([*lines, "clients:\n", f"{_ITEM_INDENT}- {entry}\n"])
    key, value = found
    if isinstance(value, yaml.ScalarNode) and value.tag == "tag:yaml.org,2002:null":
        return _fill_null(lines, key, entry)
    if not isinstance(value, yaml.SequenceNode):
        raise InventoryEditError("`clients:` is not a list: edit it by hand")
    if value.flow_style:
        close = value.end_mark.index - 1
        if text[close] != "]":
            raise InventoryEditError("`clients: [...]` could not be edited: edit it by hand")
        return text[:close] + (", " if value.value else "") + entry + text[close:]
    last = value.value[-1]
    indent = lines[last.start_mark.line][: _dash_column(lines, last)]
    at = _end_line(last) + 1
    return "".join([*lines[:at], f"{indent}- {entry}\n", *lines[at:]])


def _fill_null(lines: list[str], key: yaml.Node, entry: str) -> str:
    """`clients:` (or `clients: ~`/`null`) with nothing: keep any comment, add the item."""
    row = key.start_mark.line
    line = lines[row]
    comment = line.find(" #")
    tail = line[comment:].rstrip("\n") if comment >= 0 else ""
    head = line[: key.start_mark.column] + "clients:" + tail + "\n"
    if line[: key.start_mark.column].strip():
        raise InventoryEditError("`clients:` could not be edited: edit it by hand")
    return "".join([*lines[:row], head, f"{_ITEM_INDENT}- {entry}\n", *lines[row + 1 :]])


def _item_key(item: yaml.Node) -> str | None:
    if isinstance(item, yaml.MappingNode):
        for k, v in item.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "public_key":
                return str(v.value) if isinstance(v, yaml.ScalarNode) else None
    return None


def delete_client_text(text: str, public_key: str) -> str:
    root = _root(text)
    found = _clients_entry(root)
    if found is None or not isinstance(found[1], yaml.SequenceNode):
        raise InventoryEditError("no `clients:` list to remove the client from")
    seq = found[1]
    items = [i for i in seq.value if _item_key(i) == public_key]
    if len(items) != 1:
        raise InventoryEditError(f"the inventory lists the key {len(items)} times under `clients:`")
    item = items[0]
    if seq.flow_style:
        return _cut_flow_item(text, item)
    lines = text.splitlines(keepends=True)
    _dash_column(lines, item)
    first, last = item.start_mark.line, _end_line(item)
    return "".join([*lines[:first], *lines[last + 1 :]])


def _cut_flow_item(text: str, item: yaml.Node) -> str:
    start, end = item.start_mark.index, item.end_mark.index
    after = end
    while after < len(text) and text[after] in " \t":
        after += 1
    if after < len(text) and text[after] == ",":
        after += 1
        while after < len(text) and text[after] in " \t":
            after += 1
        return text[:start] + text[after:]
    before = start
    while before > 0 and text[before - 1] in " \t":
        before -= 1
    if before > 0 and text[before - 1] == ",":
        return text[: before - 1] + text[end:]
    return text[:start] + text[end:]
