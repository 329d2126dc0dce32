"""What operations left on a load balancer: drain records and service locks (/run/wgconsole).

The LB poll lists them in one section, one line each: `drain-<gateway>.json<TAB><json>` and
`lock-<service>/owner<TAB><json>` (captures made before the owner's file was named say
`lock`). The operations read the same files (ops.hostcmd.drainrecord, ops.machinery.lock) and
parse them here too: one validation for both sides.

A record is input like any other: another version, a person or a failed write may have left
anything in it. So its size, nesting, types and ranges are checked, and a record that does not
pass keeps only its `problem` (what is wrong, for the finding and the operation's refusal),
never an error for the whole poll: the LB's IPVS state matters more.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from wgconsole.core.input_rules import MAX_WEIGHT
from wgconsole.core.lb_state import STATE_DIR, drain_record_gateway
from wgconsole.core.records import DRAIN_PHASES, DrainPhase, DrainRecord, LockRecord

# Ours are under 200 bytes; one byte more than this is read, to tell a record too large.
MAX_RECORD = 2048
_MAX_DEPTH = 4  # ours are flat objects (depth 1)
_MAX_TEXT = 100  # characters of a text field (an operator, an action)
_MAX_DIGITS = 20  # of an integer: Python's int() from text is limited (and slow) far above
_LATEST_TIME = 253402300799.0  # 9999-12-31T23:59:59Z: no epoch time of ours is later
_LOCK_FILE = re.compile(r"lock-[A-Za-z0-9.:_-]{1,100}/owner")
_SHOWN = 40

# Shell for the LB's poll: always exits 0; a missing directory lists nothing.
STATE_COMMAND = (
    f"( cd {STATE_DIR} 2>/dev/null || exit 0; "
    'for f in drain-*.json; do [ -f "$f" ] && '
    f'printf \'%s\\t%s\\n\' "$f" "$(head -c {MAX_RECORD + 1} "$f" | tr -d \'\\n\\t\')"; done; '
    'for d in lock-*; do [ -d "$d" ] && '
    "printf '%s\\t%s\\n' \"$d/owner\" "
    f'"$(head -c {MAX_RECORD + 1} "$d/owner" 2>/dev/null | tr -d \'\\n\\t\')"; '
    "done; true )"
)


class BadRecord(ValueError):
    """A record that cannot be used; its text says what is wrong with it."""


def parse_op_state(text: str) -> tuple[tuple[DrainRecord, ...], tuple[LockRecord, ...]]:
    drains: list[DrainRecord] = []
    locks: list[LockRecord] = []
    for line in text.splitlines():
        name, sep, body = line.partition("\t")
        if not sep:
            continue
        if name == "lock" or name.startswith("lock-"):
            # A lock directory is a held lock whatever its owner file holds.
            file = f"{STATE_DIR}/{name}" if _LOCK_FILE.fullmatch(name) else None
            locks.append(parse_lock_owner(body, file))
            continue
        gateway = drain_record_gateway(name)
        if gateway is not None:
            drains.append(parse_drain_record(gateway, body))
    return tuple(drains), tuple(locks)


def parse_drain_record(gateway: str, text: str) -> DrainRecord:
    """`gateway`'s drain record from the text of its file (a bad one keeps its problem)."""
    try:
        data = load_record(text)
        recorded = data.get("gateway", gateway)
        if recorded != gateway:
            raise BadRecord(f"gateway {_shown(recorded)} is not the one its file is named for")
        weight = data.get("previous_weight")
        if weight is None:
            raise BadRecord("previous_weight is missing")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise BadRecord(f"previous_weight {_shown(weight)} is not an integer")
        if not 0 <= weight <= MAX_WEIGHT:
            raise BadRecord(f"previous_weight {weight} is out of range 0..{MAX_WEIGHT}")
        phase = _phase(data.get("phase"))
        started = _time(data, "started")
        _time(data, "written")
        fenced = data.get("fenced", False)
        if not isinstance(fenced, bool):
            raise BadRecord(f"fenced {_shown(fenced)} is not true or false")
        action = data.get("action", "drain")
        if action not in ("drain", "evict"):
            raise BadRecord(f"action {_shown(action)} is neither drain nor evict")
    except BadRecord as exc:
        return DrainRecord(gateway, None, None, None, str(exc))
    return DrainRecord(gateway, weight, phase, started, fenced=fenced, evicted=action == "evict")


def parse_lock_owner(text: str, file: str | None = None) -> LockRecord:
    """The owner of a held lock from its owner file's text (a bad one keeps its problem)."""
    try:
        data = load_record(text)
        operator = _text(data, "operator")
        action = _text(data, "action")
        since = _time(data, "since")
        if since is None:
            raise BadRecord("since is missing")
        token = data.get("token")
        if token is not None and not isinstance(token, str):
            raise BadRecord(f"token {_shown(token)} is not text")
        site = _text(data, "site") if "site" in data else None
    except BadRecord as exc:
        return LockRecord("unknown operator", "unknown action", None, str(exc), file)
    return LockRecord(operator, action, since, None, file, site)


def load_record(text: str) -> dict[str, object]:
    """The JSON object in a record's text; raises BadRecord saying what is wrong.

    Newlines and tabs are dropped first, as the poll's shell does, so that both sides see
    the same text."""
    text = text.replace("\n", "").replace("\t", "")
    if not text.strip():
        raise BadRecord("it is empty")
    if len(text.encode("utf-8", "replace")) > MAX_RECORD:
        raise BadRecord(f"it is larger than {MAX_RECORD} bytes")
    if _depth(text) > _MAX_DEPTH:
        raise BadRecord(f"it is nested deeper than {_MAX_DEPTH} levels")
    try:
        data = json.loads(text, parse_int=_integer, parse_constant=_constant)
    except BadRecord:
        raise
    except (ValueError, RecursionError):
        raise BadRecord("it is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRecord(f"it is not a JSON object (it is {_kind(data)})")
    return data


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_DIGITS:
        raise BadRecord(f"it holds an integer of more than {_MAX_DIGITS} digits")
    return int(digits)


def _constant(name: str) -> float:
    raise BadRecord(f"it holds {name}, which is not a number in JSON")


def _depth(text: str) -> int:
    """How deep the brackets of `text` nest, outside strings (before parsing it: Python's
    parser recurses once per level)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _phase(value: object) -> DrainPhase | None:
    if value is None:
        return None  # records from before phases were recorded
    for phase in DRAIN_PHASES:
        if value == phase:
            return phase
    raise BadRecord(f"phase {_shown(value)} is not one of {', '.join(DRAIN_PHASES)}")


def _time(data: dict[str, object], key: str) -> float | None:
    """An epoch time, if the record has one; anything else there is a problem."""
    value = data.get(key)
    if value is None and key not in data:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRecord(f"{key} {_shown(value)} is not a time (seconds since the epoch)")
    if not (math.isfinite(value) and 0 <= value <= _LATEST_TIME):
        raise BadRecord(f"{key} {_shown(value)} is not a time (seconds since the epoch)")
    return float(value)


def _text(data: dict[str, object], key: str) -> str:
    value = data.get(key)
    if value is None:
        raise BadRecord(f"{key} is missing")
    if not isinstance(value, str):
        raise BadRecord(f"{key} {_shown(value)} is not text")
    if not value.strip():
        raise BadRecord(f"{key} is empty")
    if len(value) > _MAX_TEXT:
        raise BadRecord(f"{key} is longer than {_MAX_TEXT} characters")
    # Control characters are not refused here: text is made printable where it is shown.
    return value


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def _shown(value: object) -> str:
    """A value from a record, for a message: JSON with every non-ASCII and control character
    escaped, and short."""
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def local_state_text(directory: Path = Path(STATE_DIR)) -> str:
    """The same lines as STATE_COMMAND, read on this machine (`host: local`)."""
    lines = []
    try:
        drains = sorted(directory.glob("drain-*.json"))
        locks = sorted(p for p in directory.glob("lock-*") if p.is_dir())
    except OSError:
        return ""
    for path in drains:
        lines.append(f"{path.name}\t{_read(path)}")
    for path in locks:
        lines.append(f"{path.name}/owner\t{_read(path / 'owner')}")
    return "\n".join(lines)


def _read(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_RECORD + 1)
    except OSError:
        return ""
    return raw.decode(errors="replace").replace("\n", "").replace("\t", "")
