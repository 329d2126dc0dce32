"""One round of probes over an inventory: every gateway's real-server address, then the VIP.

What the exporter and the console run after each poll. The gateways' one public key is taken
from the poll (every gateway that answered must tell the same); the last one told is kept, so
that a round still probes while SSH to every gateway is down: that is when a probe matters.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Protocol

from wgconsole.core.inventory import Inventory
from wgconsole.core.wgkey import is_wireguard_key
from wgconsole.probe.handshake import ProbeKey
from wgconsole.probe.prober import DEFAULT_TIMEOUT, ProbeResult, Target, address_text, probe

VIP = "vip"  # the target name of the probe through the load balancer


def targets(inventory: Inventory, names: Sequence[str] = ()) -> tuple[list[Target], Target | None]:
    """The gateways named (all when none is) and the VIP (when named, or none is). Names that
    are neither are the caller's to refuse (`unknown_targets`)."""
    by_name = {g.name: Target(g.name, g.real_server) for g in inventory.gateways}
    wanted = list(dict.fromkeys(names)) or [*by_name, VIP]
    vip = Target(VIP, inventory.service.endpoint) if VIP in wanted else None
    return [by_name[n] for n in wanted if n in by_name], vip


def unknown_targets(inventory: Inventory, names: Sequence[str]) -> list[str]:
    known = {g.name for g in inventory.gateways} | {VIP}
    return [n for n in dict.fromkeys(names) if n not in known]


def _unprobed(inventory: Inventory, error: str) -> tuple[ProbeResult, ...]:
    gateways, vip = targets(inventory)
    every = [*gateways, *([vip] if vip else [])]
    return tuple(
        ProbeResult(t.name, address_text(t.endpoint), ok=False, rtt_ms=None, error=error)
        for t in every
    )


class ProbeRounds(Protocol):
    """What runs a round of probes after each poll: a FleetProber (tests replay rounds)."""

    def round(
        self, inventory: Inventory, told_keys: Iterable[str | None]
    ) -> tuple[ProbeResult, ...]: ...


class FleetProber:
    """Probes an inventory's targets, one round per call, with one key."""

    def __init__(self, key: ProbeKey, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._key = key
        self._timeout = timeout
        self._server: bytes | None = None

    def round(
        self, inventory: Inventory, told_keys: Iterable[str | None]
    ) -> tuple[ProbeResult, ...]:
        """`told_keys`: the public keys the gateways told in the poll (None: not read)."""
        keys = {k for k in told_keys if k is not None and is_wireguard_key(k)}
        if len(keys) > 1:
            return _unprobed(inventory, "the gateways' public keys differ: not probed")
        if keys:
            self._server = base64.b64decode(keys.pop())
        if self._server is None:
            return _unprobed(inventory, "no gateway has told its public key yet: not probed")
        gateways, vip = targets(inventory)
        return tuple(probe(gateways, vip, self._key, self._server, timeout=self._timeout))
