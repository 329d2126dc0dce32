"""Operator input, checked before any remote command is built."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from wgconsole.core.input_rules import MAX_WEIGHT as MAX_WEIGHT  # the one range, re-exported
from wgconsole.core.input_rules import NAME as NAME  # the one name rule, re-exported
from wgconsole.core.input_rules import name_problem
from wgconsole.core.inventory import Gateway, Inventory
from wgconsole.core.wgkey import wireguard_key_problem
from wgconsole.ops.machinery.errors import ValidationError

# A weight as an operator types it: ASCII digits (int() also takes other scripts' digits,
# `_`, and whitespace), few enough that int() is cheap and never hits its digit limit.
_WEIGHT_TEXT = re.compile(r"[+-]?[0-9]{1,9}")


def name(value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValidationError(f"name {value!r}: {problem}")
    return value


def public_key(value: str) -> str:
    """A WireGuard public key: standard base64 of exactly 32 bytes (core.wgkey)."""
    problem = wireguard_key_problem(value)
    if problem is not None:
        raise ValidationError(f"public key: {problem}")
    return value


def weight(value: int | str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError(f"weight {value!r}: not an integer")
    if isinstance(value, str) and not _WEIGHT_TEXT.fullmatch(value.strip()):
        shown = value if len(value) <= 20 else value[:17] + "..."
        raise ValidationError(f"weight {shown!r}: not an integer")
    w = int(value)
    if not 0 <= w <= MAX_WEIGHT:
        raise ValidationError(f"weight {w}: must be between 0 and {MAX_WEIGHT}")
    return w


def gateway(inventory: Inventory, value: str) -> Gateway:
    for gw in inventory.gateways:
        if gw.name == value:
            return gw
    known = ", ".join(g.name for g in inventory.gateways)
    raise ValidationError(f"no gateway named {value!r} in the inventory (known: {known})")


def ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError(f"address {value!r}: not an IP address") from None


def tunnel_address(inventory: Inventory, value: str, in_use: Iterable[str]) -> str:
    """An address inside the tunnel network, not the gateway's, not used by any peer."""
    addr = ip_address(value)
    net = ipaddress.ip_network(inventory.tunnel.network)
    if addr not in net:
        raise ValidationError(f"address {addr}: outside the tunnel network {net}")
    if addr in (net.network_address, net.broadcast_address):
        raise ValidationError(f"address {addr}: the network's own address")
    if addr == ipaddress.ip_address(inventory.tunnel.gateway_address):
        raise ValidationError(f"address {addr}: that is the gateways' tunnel address")
    if str(addr) in {str(ipaddress.ip_address(a)) for a in in_use}:
        raise ValidationError(f"address {addr}: already in use by a peer")
    return str(addr)


def next_free_address(inventory: Inventory, in_use: Iterable[str]) -> str:
    used = {str(ipaddress.ip_address(a)) for a in in_use}
    used.add(str(ipaddress.ip_address(inventory.tunnel.gateway_address)))
    for host in ipaddress.ip_network(inventory.tunnel.network).hosts():
        if str(host) not in used:
            return str(host)
    raise ValidationError(f"the tunnel network {inventory.tunnel.network} is full")
