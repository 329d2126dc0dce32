"""keepalived's switchover hook: the `track_file` through which `wgconsole failover` moves the VIP.

A planned switchover must survive a keepalived reload or restart. A priority written into the
config, an address removed by hand or a stopped keepalived would each be undone (or undo the
pair) at the next reload; a track file is not: keepalived re-reads the file whenever it
changes (no reload), adds its value times the track's weight to the instance's priority, and
a reload or a restart reads the same file again (`init_file` writes it only when it is
missing). So wgconsole moves the VIP by writing numbers into that file on each director.

The hook, as the config must hold it (`HOOK_EXAMPLE`): a `track_file wgconsole_switchover`
block (or the deprecated `vrrp_track_file`) naming the file, tracked by the VRRP instance that
carries the VIP (or by the `vrrp_sync_group` that instance belongs to), with a non-zero weight
(weight 0 turns any non-zero value into FAULT, which would take the director out of the pair
instead of making it a backup).

The config's statements are read by `poll.parsers.director`'s tokenizer, as the
`virtual_server` blocks are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wgconsole.core.lb_state import SWITCHOVER_TRACK_FILE
from wgconsole.poll.parsers.director import SOURCE_KEEPALIVED_CONF, _Statement, _statements
from wgconsole.poll.parsers.errors import ParseError

_TRACK_BLOCKS = ("track_file", "vrrp_track_file")
_TRUE = ("true", "on", "yes", "1")

HOOK_EXAMPLE = f"""\
track_file {SWITCHOVER_TRACK_FILE} {{
    file "/var/lib/wgconsole/vrrp-switchover"
    weight 1
    init_file 0
}}
vrrp_instance INSTANCE {{
    ...
    track_file {{
        {SWITCHOVER_TRACK_FILE}
    }}
}}"""


@dataclass(frozen=True, slots=True)
class SwitchoverHook:
    """Where one director's switchover value lives, and what it does to the priority."""

    instance: str
    file: str
    # What one unit in the file adds to the priority: the track's weight, negated by
    # `reverse` (keepalived's rule), never 0.
    factor: int
    tracked_by: str  # "vrrp_instance NAME" or "vrrp_sync_group NAME"
    nopreempt: bool  # the instance never takes the VIP from a lower-priority master
    address_owner: bool  # priority 255: tracking cannot change it
    # Seconds it waits, on seeing a lower-priority master, before it takes the VIP.
    preempt_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class NoHook:
    """Why the config has no usable hook, in words for the operator."""

    reason: str


def parse_switchover_hook(text: str, instance: str) -> SwitchoverHook | NoHook:
    """The hook of VRRP instance `instance` in a keepalived config's text."""
    top = _statements(text)
    includes = any(s.words[0] == "include" for s in top)
    blocks = {
        s.words[1]: s
        for s in top
        if s.words[0] in _TRACK_BLOCKS and len(s.words) == 2 and s.block is not None
    }
    vi = next(
        (
            s
            for s in top
            if s.words[:2] == ["vrrp_instance", instance] and len(s.words) == 2 and s.block
        ),
        None,
    )
    if vi is None:
        where = " (it may be in an included file: not followed)" if includes else ""
        return NoHook(f"no `vrrp_instance {instance}` block in the config{where}")
    definition = blocks.get(SWITCHOVER_TRACK_FILE)
    if definition is None:
        where = " (an included file may hold it: not followed)" if includes else ""
        return NoHook(f"no `track_file {SWITCHOVER_TRACK_FILE} {{...}}` block{where}")
    path, default_weight, default_reverse = _definition(definition)
    if path is None:
        return NoHook(f"`track_file {SWITCHOVER_TRACK_FILE}` names no file")
    tracking = _tracking(vi.block or [])
    tracked_by = f"vrrp_instance {instance}"
    if tracking is None:
        group = _sync_group_of(top, instance)
        if group is not None:
            tracking = _tracking(group.block or [])
            tracked_by = f"vrrp_sync_group {group.words[1]}"
    if tracking is None:
        return NoHook(
            f"{tracked_by} does not track {SWITCHOVER_TRACK_FILE} (no `track_file {{ "
            f"{SWITCHOVER_TRACK_FILE} }}` in it)"
        )
    weight, reverse = tracking
    weight = default_weight if weight is None else weight
    reverse = default_reverse if reverse is None else reverse
    if weight == 0:
        return NoHook(
            f"{SWITCHOVER_TRACK_FILE} is tracked with weight 0: a non-zero value would put "
            "the instance in FAULT instead of lowering its priority; give it weight 1"
        )
    settings = {s.words[0]: s.words[1:] for s in vi.block or []}
    nopreempt = "nopreempt" in settings or (
        "preempt" in settings and bool(settings["preempt"]) and settings["preempt"][0] not in _TRUE
    )
    priority = settings.get("priority", [])
    owner = bool(priority) and priority[0] == "255"
    return SwitchoverHook(
        instance,
        path,
        -weight if reverse else weight,
        tracked_by,
        nopreempt,
        owner,
        _preempt_delay(settings.get("preempt_delay", [])),
    )


# keepalived's range for preempt_delay (keepalived.conf(5)).
MAX_PREEMPT_DELAY = 1000.0


def _preempt_delay(words: list[str]) -> float:
    """`preempt_delay SECONDS` (0 when absent); ParseError outside keepalived's range."""
    if not words:
        return 0.0
    try:
        delay = float(words[0])
    except ValueError:
        delay = math.nan
    if not 0.0 <= delay <= MAX_PREEMPT_DELAY:
        bound = f"0-{MAX_PREEMPT_DELAY:.0f} seconds"
        raise ParseError(SOURCE_KEEPALIVED_CONF, None, f"preempt_delay {words[0]!r} is not {bound}")
    return delay


def _definition(block: _Statement) -> tuple[str | None, int, bool]:
    """(file, default weight, reverse) of a `track_file NAME { ... }` block."""
    path: str | None = None
    weight, reverse = 1, False
    for s in block.block or []:
        key, args = s.words[0], s.words[1:]
        if key == "file" and args:
            path = " ".join(args).strip('"')
        elif key == "weight" and args:
            weight = _weight(args[0], s.line)
            reverse = len(args) > 1 and args[1] == "reverse"
    if path is not None and not path.startswith("/"):
        raise ParseError(SOURCE_KEEPALIVED_CONF, block.line, f"track file {path!r} is relative")
    return path, weight, reverse


def _tracking(block: list[_Statement]) -> tuple[int | None, bool | None] | None:
    """(weight, reverse) where `block` tracks the switchover file (None: not set there);
    None when it does not track it."""
    for s in block:
        if s.words[0] != "track_file" or s.block is None:
            continue
        for entry in s.block:
            if entry.words[0] != SWITCHOVER_TRACK_FILE:
                continue
            args = entry.words[1:]
            if len(args) >= 2 and args[0] == "weight":
                reverse = None
                if len(args) > 2:
                    reverse = args[2] == "reverse"
                return _weight(args[1], entry.line), reverse
            return None, None
    return None


def _sync_group_of(top: list[_Statement], instance: str) -> _Statement | None:
    for s in top:
        if s.words[0] != "vrrp_sync_group" or len(s.words) != 2 or s.block is None:
            continue
        for member in s.block:
            if member.words[0] == "group" and any(
                instance in (m.words or []) for m in member.block or []
            ):
                return s
    return None


def _weight(text: str, line: int) -> int:
    if not text.lstrip("-").isdigit() or len(text) > 11:
        raise ParseError(
            SOURCE_KEEPALIVED_CONF, line, f"track weight {text[:20]!r} is not a number"
        )
    return int(text)


def parse_switchover_value(text: str) -> int:
    """The number in a switchover file (keepalived reads the text as an integer)."""
    value = text.strip()
    if not value:
        return 0
    if not value.lstrip("-").isdigit() or len(value) > 11:
        raise ParseError("switchover file", None, f"not a number ({len(value)} characters)")
    return int(value)
