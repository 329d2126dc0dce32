"""Add or remove one item of the inventory's `clients:` (or `probes:`) list, keeping everything
else as it is.

Operators write this file by hand, with comments: it is edited as text, at positions taken
from the YAML node tree (which keeps them), never re-dumped. Every byte outside the item is
kept (line ends too); a new item copies the layout of the item before it (flow `{...}` or
block, its indentation); a removed item takes only its own lines, and the comment beside
them, with it. The new text is loaded with the real loader before it replaces the file
(atomically, same mode), and must hold exactly the expected clients; a file that changed
meanwhile is not overwritten.

Not ruamel.yaml's round trip, which re-emits the whole file. Measured on 18 hand-written
inventories (45 adds and removes), its best setting (indentation taken from `clients:`) left
17 edits byte-identical outside the item, against 39 here (the other 6 here change only the
item's own line: `[a, new]`, a new `clients:` key, a final line end). It sets one indentation
for every list of the file, respaces `{ name: x }`, drops `---` and `...`, moves a comment off
an anchored key's line, deletes the comment below a removed item (removing `alpha` deleted
`# beta is the laptop`), and removing the only client wrote `[]` under `clients:` on a line
of its own: invalid YAML.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable
from typing import Literal

import yaml

from wgconsole.config.inventory_file import InventoryError, load_inventory
from wgconsole.core.inventory import Client, Inventory, Probe

_ITEM_INDENT = "  "
_NULL_TAG = "tag:yaml.org,2002:null"


# An item of one of the lists edited here: a client (`clients:`) or a prober (`probes:`).
Entry = Client | Probe
Section = Literal["clients", "probes"]


class InventoryEditError(Exception):
    """The inventory could not be edited as asked; nothing was written."""


def client_line(client: Entry) -> str:
    """`{name: N, public_key: K, address: A}` (a probe has no address), each value plain unless
    YAML would misread it."""
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in _fields(client)) + "}"


def _fields(entry: Entry) -> tuple[tuple[str, str], ...]:
    if isinstance(entry, Probe):
        return (("name", entry.name), ("public_key", entry.public_key))
    return (("name", entry.name), ("public_key", entry.public_key), ("address", entry.address))


def _section(entry: Entry) -> Section:
    return "probes" if isinstance(entry, Probe) else "clients"


def _listed(inventory: Inventory, section: Section) -> tuple[Entry, ...]:
    return inventory.probes if section == "probes" else inventory.clients


def _scalar(value: str) -> str:
    try:
        plain_ok = yaml.safe_load("{k: " + value + "}") == {"k": value}
    except yaml.YAMLError:
        plain_ok = False
    # A JSON string is a valid YAML double-quoted scalar ("yes", "1e3", "null" stay strings).
    return value if plain_ok else json.dumps(value)


def add_client(path: str, client: Entry) -> Inventory:
    """Append the client to `clients:` (a probe to `probes:`); returns the inventory as
    re-loaded from the file."""
    before = _load(path)
    section = _section(client)
    expected = (*_listed(before, section), client)
    return _edit(path, lambda text: insert_client_text(text, client), section, expected)


def remove_client(path: str, public_key: str, section: Section = "clients") -> Inventory:
    """Delete the key's item from `clients:` (or `probes:`); no change if it is not listed."""
    before = _load(path)
    listed = _listed(before, section)
    expected = tuple(c for c in listed if c.public_key != public_key)
    if len(expected) == len(listed):
        return before
    return _edit(
        path, lambda text: delete_client_text(text, public_key, section), section, expected
    )


def _load(path: str) -> Inventory:
    try:
        return load_inventory(path)
    except InventoryError as exc:
        raise InventoryEditError(f"the inventory cannot be edited: {exc}") from None


def _read(path: str) -> str:
    # newline="": the text as it is on disk, so that CRLF files stay CRLF.
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def _edit(
    path: str, change: Callable[[str], str], section: Section, expected: tuple[Entry, ...]
) -> Inventory:
    original = _read(path)
    try:
        new_text = change(original)
    except yaml.YAMLError:
        raise InventoryEditError(f"{path} is no longer valid YAML; not edited") from None
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".inventory-", suffix=".yaml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(new_text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        _check(tmp, path, section, expected)
        if _read(path) != original:
            raise InventoryEditError(f"{path} changed while it was being edited; not overwritten")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    after = _load(path)
    if _listed(after, section) != expected:
        raise InventoryEditError(f"{path}: the {section} read back are not the expected ones")
    return after


def _check(tmp: str, path: str, section: Section, expected: tuple[Entry, ...]) -> None:
    try:
        edited = load_inventory(tmp)
    except InventoryError as exc:
        raise InventoryEditError(
            f"{path}: the edit would break the inventory ({exc.reason})"
        ) from None
    if _listed(edited, section) != expected:
        raise InventoryEditError(
            f"{path}: the edit would not give the expected {section}; not written"
        )


# --- the text edits (pure) ------------------------------------------------------------


def _root(text: str) -> yaml.MappingNode:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode) or node.flow_style:
        raise InventoryEditError(
            "the inventory is not a block mapping at the top: edit `clients:` by hand"
        )
    return node


def _list_entry(root: yaml.MappingNode, section: Section) -> tuple[yaml.Node, yaml.Node] | None:
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == section:
            return key, value
    return None


def _newline(text: str) -> str:
    """The file's line end, for the lines added: CRLF if its first line has one."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def _has_break(line: str) -> bool:
    return line != line.splitlines()[0]


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
        raise InventoryEditError("a list item does not start on its `-` line: edit it by hand")
    return dash


# How a new item is laid out: the text before its `-`, and the column of its keys when it is
# a block mapping (None: one `{...}` line).
_Layout = tuple[str, int | None]


def _layout_of(lines: list[str], item: yaml.Node) -> _Layout:
    dash = _dash_column(lines, item)
    prefix = lines[item.start_mark.line][:dash]
    if isinstance(item, yaml.MappingNode) and not item.flow_style:
        return prefix, int(item.start_mark.column)
    return prefix, None


def _default_layout(root: yaml.MappingNode, lines: list[str]) -> _Layout:
    """For a first item: the layout of the other top-level lists' items (the gateways')."""
    for _key, value in reversed(root.value):
        if isinstance(value, yaml.SequenceNode) and not value.flow_style and value.value:
            try:
                return _layout_of(lines, value.value[-1])
            except InventoryEditError:
                continue
    return _ITEM_INDENT, None


def _item_text(client: Entry, layout: _Layout, nl: str) -> str:
    prefix, key_column = layout
    if key_column is None:
        return f"{prefix}- {client_line(client)}{nl}"
    rows = [f"{k}: {_scalar(v)}" for k, v in _fields(client)]
    first = prefix + "-" + " " * (key_column - len(prefix) - 1) + rows[0] + nl
    return first + "".join(" " * key_column + row + nl for row in rows[1:])


def insert_client_text(text: str, client: Entry) -> str:
    """The text with the client appended to `clients:` (a probe to `probes:`)."""
    section = _section(client)
    root = _root(text)
    found = _list_entry(root, section)
    nl = _newline(text)
    lines = text.splitlines(keepends=True)
    if lines and not _has_break(lines[-1]):
        lines[-1] += nl
    if found is None:
        item = _item_text(client, _default_layout(root, lines), nl)
        return "".join([*lines, f"{section}:{nl}", item])
    key, value = found
    if isinstance(value, yaml.ScalarNode) and value.tag == _NULL_TAG:
        item = _item_text(client, _default_layout(root, lines), nl)
        return _fill_null(lines, key, value, item)
    if not isinstance(value, yaml.SequenceNode):
        raise InventoryEditError(f"`{section}:` is not a list: edit it by hand")
    if value.flow_style:
        return _append_flow(text, value, client_line(client), nl)
    last = value.value[-1]
    item = _item_text(client, _layout_of(lines, last), nl)
    at = _end_line(last) + 1
    return "".join([*lines[:at], item, *lines[at:]])


def _append_flow(text: str, seq: yaml.SequenceNode, entry: str, nl: str) -> str:
    """`[a, b]` → `[a, b, new]`; in a list written one item a line, on a line of its own."""
    close = seq.end_mark.index - 1
    if text[close] != "]":
        raise InventoryEditError("a `[...]` list could not be edited: edit it by hand")
    if not seq.value:
        return text[:close] + entry + text[close:]
    last = seq.value[-1]
    at = last.end_mark.index
    indent = text[_line_start(text, last.start_mark.index) : last.start_mark.index]
    comma = _skip_blanks(text, at)
    has_comma = text[comma : comma + 1] == ","
    eol = _past_line(text, _skip_blanks(text, comma + 1) if has_comma else comma)
    if last.start_mark.line == seq.start_mark.line or indent.strip():
        return text[:at] + ", " + entry + text[at:]
    if eol is None:  # `]` (or `,]`) closes the list on the last item's line
        return text[:at] + "," + nl + indent + entry + text[at:]
    if has_comma:
        return text[:eol] + indent + entry + "," + nl + text[eol:]
    return text[:at] + "," + text[at:eol] + indent + entry + nl + text[eol:]


def _fill_null(lines: list[str], key: yaml.Node, value: yaml.Node, item: str) -> str:
    """`clients:` (or `clients: ~`/`null`, or the same of `probes:`) with nothing: keep any
    comment, add the item."""
    row = key.start_mark.line
    line = lines[row]
    if line[: key.start_mark.column].strip():
        raise InventoryEditError("an empty list could not be edited: edit it by hand")
    if value.value:
        # `~` or `null` written out: blanked, so that a comment after it keeps its column.
        if not value.start_mark.line == value.end_mark.line == row:
            raise InventoryEditError("an empty list could not be edited: edit it by hand")
        body = line.splitlines()[0]
        start, end = value.start_mark.column, value.end_mark.column
        rest = body[end:]
        body = body[:start] + " " * (end - start) + rest if rest.strip() else body[:start].rstrip()
        line = body + line[len(line.splitlines()[0]) :]
    # Comment lines under the key, indented as its items would be, stay above the first.
    at = row + 1
    while at < len(lines) and lines[at].lstrip().startswith("#"):
        if len(lines[at]) - len(lines[at].lstrip()) <= key.start_mark.column:
            break
        at += 1
    return "".join([*lines[:row], line, *lines[row + 1 : at], item, *lines[at:]])


def _item_key(item: yaml.Node) -> str | None:
    if isinstance(item, yaml.MappingNode):
        for k, v in item.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "public_key":
                return str(v.value) if isinstance(v, yaml.ScalarNode) else None
    return None


def delete_client_text(text: str, public_key: str, section: Section = "clients") -> str:
    root = _root(text)
    found = _list_entry(root, section)
    if found is None or not isinstance(found[1], yaml.SequenceNode):
        raise InventoryEditError(f"no `{section}:` list to remove the key from")
    seq = found[1]
    items = [i for i in seq.value if _item_key(i) == public_key]
    if len(items) != 1:
        raise InventoryEditError(
            f"the inventory lists the key {len(items)} times under `{section}:`"
        )
    item = items[0]
    if seq.flow_style:
        return _cut_flow_item(text, item)
    lines = text.splitlines(keepends=True)
    _dash_column(lines, item)
    first, last = item.start_mark.line, _end_line(item)
    return "".join([*lines[:first], *lines[last + 1 :]])


def _skip_blanks(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t":
        at += 1
    return at


def _line_start(text: str, at: int) -> int:
    return max(text.rfind("\n", 0, at), text.rfind("\r", 0, at)) + 1


def _past_line(text: str, at: int) -> int | None:
    """Past the line break ending the line, if from `at` on there are only blanks and a comment."""
    at = _skip_blanks(text, at)
    if text.startswith("#", at) and text[at - 1] in " \t":
        while at < len(text) and text[at] not in "\r\n":
            at += 1
    if text.startswith("\r\n", at):
        return at + 2
    if at == len(text) or text[at] in "\r\n":
        return min(at + 1, len(text))
    return None


def _cut_flow_item(text: str, item: yaml.Node) -> str:
    start, end = item.start_mark.index, item.end_mark.index
    after = _skip_blanks(text, end)
    has_comma = text[after : after + 1] == ","
    if has_comma:
        after = _skip_blanks(text, after + 1)
    line_start = _line_start(text, start)
    eol = _past_line(text, after)
    if not text[line_start:start].strip() and eol is not None:
        # The item had its line to itself: the line goes, with a comment beside the item.
        if has_comma:
            return text[:line_start] + text[eol:]
        before = line_start
        while before > 0 and text[before - 1] in " \t\r\n":
            before -= 1
        if before > 0 and text[before - 1] == ",":  # it was the last: its comma goes too
            return text[: before - 1] + text[before:line_start] + text[eol:]
        return text[:line_start] + text[eol:]
    if has_comma:
        return text[:start] + text[after:]
    before = start
    while before > 0 and text[before - 1] in " \t\r\n":
        before -= 1
    if before > 0 and text[before - 1] == ",":
        return text[: before - 1] + text[end:]
    return text[:start] + text[end:]
