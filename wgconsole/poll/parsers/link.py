"""`ip -o link show dev IF` (iproute2) and `date +%s.%N` (coreutils)."""

from __future__ import annotations

import math
import re

from wgconsole.poll.parsers.errors import ParseError, excerpt

SOURCE_LINK = "ip link show"
SOURCE_CLOCK = "date"

# `5: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 ...`; a name may carry `@PEER`.
_LINK_LINE = re.compile(r"\d+: (?P<name>[^\s:]+): <(?P<flags>[A-Z0-9_,-]*)>")
# iproute2 6.1 prints the first; older versions and other subcommands the second.
_MISSING_DEVICE = re.compile(r'Device "[^"]*" does not exist\.|Cannot find device "[^"]*"')
_CLOCK = re.compile(r"[0-9]+(\.[0-9]+)?")


def parse_link_state(text: str) -> bool | None:
    """Whether the link is administratively UP; None when the device does not exist.

    The lower layer (LOWER_UP, operstate) is not considered: a WireGuard link is
    `state UNKNOWN` even when working.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and _MISSING_DEVICE.fullmatch(lines[0].strip()):
        return None
    if len(lines) != 1:
        raise ParseError(SOURCE_LINK, None, f"expected one link line, got {excerpt(text)}")
    match = _LINK_LINE.match(lines[0])
    if match is None:
        raise ParseError(SOURCE_LINK, 1, f"not a link line: {excerpt(text)}")
    return "UP" in match.group("flags").split(",")


def parse_clock(text: str) -> float:
    """Epoch seconds from `date +%s.%N` (a date without %N support is rejected)."""
    value = text.strip()
    if not _CLOCK.fullmatch(value) or not math.isfinite(seconds := float(value)):
        raise ParseError(SOURCE_CLOCK, None, f"expected epoch seconds, got {excerpt(text)}")
    return seconds
