"""YAML read safely into a node tree: PyYAML's safe loader, depth-limited, errors without text.

The inventory is composed into nodes (not constructed into plain dicts) because only the
nodes keep their line numbers; its schema is checked on those nodes by `config.inventory_file`.
Nothing here echoes the source: an error says where and what, never a snippet of the line
(it may hold a key pasted into the wrong place).
"""

from __future__ import annotations

import yaml

MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
NULL_TAG = "tag:yaml.org,2002:null"
MERGE_TAG = "tag:yaml.org,2002:merge"
# How deep the YAML may nest: an inventory needs 5 levels (gateways, an item, ssh, a value).
MAX_DEPTH = 32


class YamlLoadError(Exception):
    """Text that is not YAML the safe loader reads: `line` 1-based, or None when unknown."""

    def __init__(self, line: int | None, reason: str) -> None:
        super().__init__(line, reason)
        self.line = line
        self.reason = reason


def node_line(node: yaml.Node) -> int:
    """The 1-based line a node starts on."""
    return int(node.start_mark.line) + 1


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing to nest deeper than MAX_DEPTH: its composer recurses once
    per level, and an inventory nested 100,000 levels deep raised RecursionError."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _TooDeep(int(event.start_mark.line) + 1)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def compose(text: str) -> tuple[yaml.Node | None, yaml.SafeLoader]:
    """The node tree of one YAML document and its loader (the caller disposes of it);
    YamlLoadError for anything the safe loader refuses, never another exception."""
    loader = _Loader(text)
    try:
        return loader.get_single_node(), loader
    except _TooDeep as exc:
        reason = f"nested more than {MAX_DEPTH} levels deep (an inventory needs 5)"
        raise YamlLoadError(exc.line, reason) from None
    except RecursionError:
        # Not expected past the depth limit; a clear error all the same, never a traceback.
        raise YamlLoadError(None, "nested too deeply to read") from None
    except yaml.MarkedYAMLError as exc:
        # Built from the parts, not str(exc): that includes a snippet of the source line.
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else None
        reason = "; ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise YamlLoadError(line, f"YAML syntax error: {reason}") from None
    except yaml.YAMLError as exc:
        raise YamlLoadError(None, f"YAML error: {type(exc).__name__}") from None
