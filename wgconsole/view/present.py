"""The words, symbols and tones every console view uses for a status, and compact number text.

One table per kind of status so that a stale client is called "✖ stale" with the same
tone in every view, and so that no status is told by colour alone (the high-contrast
theme relies on the symbol and the word). Tones are semantic names; the UI maps each to
a theme variable ($success, $warning, $error, $text-muted, $accent).
"""

from __future__ import annotations

from collections.abc import Sequence

from wgconsole.core.fleet import ClientStatus, RealServerState, Severity

# Semantic tones: the UI owns how each one looks.
GOOD = "good"
WARN = "warn"
BAD = "bad"
MUTED = "muted"
STALE = "stale"  # data kept from a host that no longer answers
ACCENT = "accent"
PLAIN = ""

TONES: tuple[str, ...] = (PLAIN, GOOD, WARN, BAD, MUTED, STALE, ACCENT)

# Handshake status (fleet.CLIENT_STATUSES).
CLIENT_STATUS: dict[ClientStatus, tuple[str, str]] = {
    "fresh": ("✔", GOOD),
    "ageing": ("⚠", WARN),
    "stale": ("✖", BAD),
    "never": ("∅", MUTED),
}

# Real server state (fleet.REAL_SERVER_STATES).
SERVER_STATE: dict[RealServerState, tuple[str, str]] = {
    "active": ("✔", GOOD),
    "drained": ("○", MUTED),
    "evicted": ("⊘", WARN),
    "quiescent": ("◐", WARN),
    "missing": ("✖", BAD),
    "unreachable": ("✖", BAD),
}

SEVERITY: dict[Severity, tuple[str, str]] = {
    "critical": ("✖", BAD),
    "warning": ("⚠", WARN),
    "info": ("ℹ", ACCENT),  # noqa: RUF001 - the information sign is meant
}

# Client finding codes shown in the clients table, each with its tone.
CLIENT_FINDING_TONE: dict[str, str] = {
    "bypassing-lb": BAD,
    "split": WARN,
    "unknown-peer": ACCENT,
    "stale": BAD,
    "never": MUTED,
    "not-on-sh-choice": ACCENT,  # info: a rebalance would move it
    "failover-moves": WARN,  # a failover would send it to another gateway
    "no-synced-entry": MUTED,  # info: the backup schedules it by its own table
}

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def client_status(status: ClientStatus) -> tuple[str, str]:
    """('✔ fresh', tone) for a handshake status."""
    mark, tone = CLIENT_STATUS.get(status, ("?", MUTED))
    return f"{mark} {status}", tone


def server_state(state: RealServerState) -> tuple[str, str]:
    mark, tone = SERVER_STATE.get(state, ("?", MUTED))
    return f"{mark} {state}", tone


def severity(level: Severity) -> tuple[str, str]:
    mark, tone = SEVERITY.get(level, ("?", MUTED))
    return f"{mark} {level}", tone


def reachable(*, ok: bool) -> tuple[str, str]:
    return ("✔ up", GOOD) if ok else ("✖ down", BAD)


def link_state(*, up: bool | None) -> tuple[str, str]:
    if up is None:
        return "✖ missing", BAD
    return ("✔ up", GOOD) if up else ("✖ down", BAD)


def age(seconds: float | None) -> str:
    """Compact age: 45s, 2m05s, 3h12m, 4d; '-' when unknown."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


def handshake(status: ClientStatus, seconds: float | None) -> tuple[str, str]:
    """The handshake cell: symbol, word and age, e.g. '✔ fresh 84s' or '∅ never'."""
    text, tone = client_status(status)
    if seconds is None:
        return text, tone
    return f"{text} {age(seconds)}", tone


def stale_note(seconds: float | None) -> str:
    """How old kept data is: 'stale 12s', or 'stale' if the host never answered."""
    return "stale" if seconds is None else f"stale {age(seconds)}"


def _scaled(value: float, units: Sequence[str], step: float) -> str:
    for unit in units[:-1]:
        if abs(value) < step:
            return f"{value:.0f}{unit}" if unit == units[0] else f"{value:.1f}{unit}"
        value /= step
    return f"{value:.1f}{units[-1]}"


def byte_rate(bps: float | None) -> str:
    """Bytes per second, compact: 0B/s, 812B/s, 1.2kB/s, 3.4MB/s."""
    if bps is None:
        return "-"
    return _scaled(bps, ("B/s", "kB/s", "MB/s", "GB/s"), 1000.0)


def packet_rate(pps: float | None) -> str:
    if pps is None:
        return "-"
    return _scaled(pps, ("p/s", "kp/s", "Mp/s"), 1000.0)


def count(n: int) -> str:
    """Thousands separated by a thin space, readable in a narrow column."""
    return f"{n:,}".replace(",", " ")


def sparkline(values: Sequence[float], width: int) -> str:
    """The last `width` values as block characters scaled to their own maximum."""
    shown = list(values)[-width:]
    if not shown:
        return ""
    top = max(shown)
    if top <= 0:
        return SPARK_BLOCKS[0] * len(shown)
    last = len(SPARK_BLOCKS) - 1
    return "".join(SPARK_BLOCKS[min(last, int(v / top * last + 0.5))] for v in shown)


def signed_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}s"
