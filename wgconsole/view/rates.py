"""Rates from successive fleets: packets and bytes per second per real server and per client.

Counters are cumulative in the kernel, so a rate needs two samples of the same counter.
A real server's counters come from the LB; a client's rx/tx come from each gateway's
`wg show` and are timed on that gateway's own clock (taken_at + clock_skew), because the
bastion's poll start is not when the gateway read its counters. A counter that went
down (a reset: interface re-created, LB stats zeroed) gives no rate for that interval.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from wgconsole.core.fleet import Fleet
from wgconsole.core.records import Endpoint

HISTORY = 30  # samples kept per real server for its sparkline


@dataclass(frozen=True, slots=True)
class ServerRates:
    in_pps: float | None
    out_pps: float | None
    in_bps: float | None
    out_bps: float | None
    history: tuple[float, ...] = ()  # in+out bytes per second, oldest first

    @property
    def total_bps(self) -> float | None:
        if self.in_bps is None or self.out_bps is None:
            return None
        return self.in_bps + self.out_bps


@dataclass(frozen=True, slots=True)
class ClientRates:
    rx_bps: float | None  # bytes per second the gateways received from the client
    tx_bps: float | None  # bytes per second the gateways sent to it


NO_SERVER_RATES = ServerRates(None, None, None, None)
NO_CLIENT_RATES = ClientRates(None, None)


@dataclass(frozen=True, slots=True)
class FleetRates:
    servers: Mapping[Endpoint, ServerRates] = field(default_factory=dict)
    clients: Mapping[str, ClientRates] = field(default_factory=dict)

    def server(self, address: Endpoint) -> ServerRates:
        return self.servers.get(address, NO_SERVER_RATES)

    def client(self, public_key: str) -> ClientRates:
        return self.clients.get(public_key, NO_CLIENT_RATES)


def _rate(now: int, before: int, seconds: float) -> float | None:
    if seconds <= 0 or now < before:
        return None
    return (now - before) / seconds


class RateTracker:
    """Keeps the previous sample of every counter; `update` returns this poll's rates.

    Not thread-safe: one poll worker owns it.
    """

    def __init__(self, history: int = HISTORY) -> None:
        self._history_len = history
        # address -> (time, in_packets, out_packets, in_bytes, out_bytes)
        self._servers: dict[Endpoint, tuple[float, int, int, int, int]] = {}
        self._history: dict[Endpoint, deque[float]] = {}
        # (public key, gateway) -> (gateway time, rx_bytes, tx_bytes)
        self._peers: dict[tuple[str, str], tuple[float, int, int]] = {}

    def update(self, fleet: Fleet) -> FleetRates:
        return FleetRates(servers=self._server_rates(fleet), clients=self._client_rates(fleet))

    def _server_rates(self, fleet: Fleet) -> dict[Endpoint, ServerRates]:
        now = fleet.taken_at
        rates: dict[Endpoint, ServerRates] = {}
        seen: dict[Endpoint, tuple[float, int, int, int, int]] = {}
        for rs in fleet.real_servers:
            if rs.weight is None:  # missing from the service: no counters at all
                continue
            sample = (now, rs.in_packets, rs.out_packets, rs.in_bytes, rs.out_bytes)
            seen[rs.address] = sample
            before = self._servers.get(rs.address)
            history = self._history.setdefault(rs.address, deque(maxlen=self._history_len))
            if before is None:
                rates[rs.address] = ServerRates(None, None, None, None, tuple(history))
                continue
            dt = now - before[0]
            in_pps = _rate(rs.in_packets, before[1], dt)
            out_pps = _rate(rs.out_packets, before[2], dt)
            in_bps = _rate(rs.in_bytes, before[3], dt)
            out_bps = _rate(rs.out_bytes, before[4], dt)
            if in_bps is not None and out_bps is not None:
                history.append(in_bps + out_bps)
            rates[rs.address] = ServerRates(in_pps, out_pps, in_bps, out_bps, tuple(history))
        # A real server the LB did not report this time keeps its last sample: when the LB
        # answers again, the rate spans the gap instead of starting over.
        self._servers.update(seen)
        return rates

    def _client_rates(self, fleet: Fleet) -> dict[str, ClientRates]:
        clocks = {
            gw.name: fleet.taken_at + gw.clock_skew
            for gw in fleet.gateways
            if gw.clock_skew is not None
        }
        rates: dict[str, ClientRates] = {}
        peers = self._peers
        seen: dict[tuple[str, str], tuple[float, int, int]] = {}
        for client in fleet.clients:
            rx_total = tx_total = 0.0
            measured = False
            for peer in client.per_gateway:
                when = clocks.get(peer.gateway, fleet.taken_at)
                key = (client.public_key, peer.gateway)
                before = peers.get(key)
                seen[key] = (when, peer.rx_bytes, peer.tx_bytes)
                if before is None:
                    continue
                rx = _rate(peer.rx_bytes, before[1], when - before[0])
                tx = _rate(peer.tx_bytes, before[2], when - before[0])
                if rx is None or tx is None:
                    continue
                rx_total += rx
                tx_total += tx
                measured = True
            if measured:
                rates[client.public_key] = ClientRates(rx_total, tx_total)
        # Samples from gateways that did not answer are kept for when they are back;
        # peers that are gone everywhere else are forgotten.
        for key, sample in peers.items():
            if key[1] not in clocks and key not in seen:
                seen[key] = sample
        self._peers = seen
        return rates
