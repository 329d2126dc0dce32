"""The names wgconsole accepts for a gateway's WireGuard interface.

The name reaches commands on the gateway (`wg show IF dump`, `wg set IF ...`), so it must
name one interface and nothing else: `wg show all dump` prints EVERY interface's private
key and the peers' preshared keys in a shape the dump filter does not expect, and
`interfaces` is the other word `wg show` reads instead of a name. The rest is the kernel's
rule (dev_valid_name: 1-15 bytes, not `.` or `..`, no `/`, `:` or whitespace), narrowed to
wg-quick's characters, as the interface is brought up from /etc/wireguard/IF.conf.
"""

from __future__ import annotations

import re

MAX_LENGTH = 15  # IFNAMSIZ - 1
# `wg show` reads these words where an interface name goes.
WG_SHOW_WORDS = {
    "all": "`wg show all` is every interface, with its private key",
    "interfaces": "`wg show interfaces` is the list of interfaces",
}
_WG_QUICK = re.compile(r"[a-zA-Z0-9_=+.-]+")


def interface_name_problem(name: str) -> str | None:
    """Why `name` cannot be a gateway's interface name (a phrase without the name), or None."""
    if not name:
        return "it is empty"
    if name in WG_SHOW_WORDS:
        return WG_SHOW_WORDS[name]
    if len(name) > MAX_LENGTH:
        return f"it is longer than {MAX_LENGTH} characters (the kernel's limit)"
    if name in (".", ".."):
        return "the kernel refuses `.` and `..`"
    if not _WG_QUICK.fullmatch(name):
        return "only letters, digits and _=+.- are allowed (wg-quick's rule)"
    return None


def is_interface_name(name: str) -> bool:
    return interface_name_problem(name) is None


def check_interface_name(name: str) -> str:
    """`name`, or ValueError saying why it cannot be an interface name."""
    problem = interface_name_problem(name)
    if problem is not None:
        raise ValueError(f"{name[:40]!r} is not an interface name: {problem}")
    return name
