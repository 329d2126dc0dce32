"""What operations left on a load balancer: drain records and service locks (/run/wgconsole).

The LB poll lists them in one section, one line each: `drain-<gateway>.json<TAB><json>` and
`lock<TAB><json>`. A record that does not parse is kept as unreadable (it still shows that a
drain began), never an error for the whole poll: the LB's IPVS state matters more.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from wgconsole.core.records import DrainRecord, LockRecord

STATE_DIR = "/run/wgconsole"
_DRAIN_FILE = re.compile(r"drain-(?P<gateway>[A-Za-z0-9][A-Za-z0-9._-]{0,62})\.json")
_MAX_RECORD = 2048

# Shell for the LB's poll: always exits 0; a missing directory lists nothing.
STATE_COMMAND = (
    f"( cd {STATE_DIR} 2>/dev/null || exit 0; "
    'for f in drain-*.json; do [ -f "$f" ] && '
    f'printf \'%s\\t%s\\n\' "$f" "$(head -c {_MAX_RECORD} "$f" | tr -d \'\\n\\t\')"; done; '
    'for d in lock-*; do [ -d "$d" ] && '
    f"printf 'lock\\t%s\\n' "
    f'"$(head -c {_MAX_RECORD} "$d/owner" 2>/dev/null | tr -d \'\\n\\t\')"; '
    "done; true )"
)


def parse_op_state(text: str) -> tuple[tuple[DrainRecord, ...], tuple[LockRecord, ...]]:
    drains: list[DrainRecord] = []
    locks: list[LockRecord] = []
    for line in text.splitlines():
        name, sep, body = line.partition("\t")
        if not sep:
            continue
        data = _json(body)
        if name == "lock":
            locks.append(
                LockRecord(
                    operator=_str(data.get("operator")) or "unknown operator",
                    action=_str(data.get("action")) or "unknown action",
                    since=_number(data.get("since")),
                )
            )
            continue
        match = _DRAIN_FILE.fullmatch(name)
        if match is None:
            continue
        weight = data.get("previous_weight")
        drains.append(
            DrainRecord(
                gateway=match.group("gateway"),
                previous_weight=weight if isinstance(weight, int) and weight >= 0 else None,
                phase=_str(data.get("phase")) if data else "unreadable",
                started=_number(data.get("started")),
            )
        )
    return tuple(drains), tuple(locks)


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
        lines.append(f"lock\t{_read(path / 'owner')}")
    return "\n".join(lines)


def _read(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")[:_MAX_RECORD]
    except OSError:
        return ""
    return text.replace("\n", "").replace("\t", "")


def _json(text: str) -> dict[str, object]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _str(value: object) -> str:
    return value[:100] if isinstance(value, str) else ""


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
