"""Each client's byte counters, summed over the gateways and never going backwards.

A gateway counts a peer's bytes from the moment the peer was set on its interface: a client
that moves to another gateway keeps its old gateway's count there (until that interface is
re-created), and an interface re-created (undrain does it) starts every peer at 0 again. A
plain sum over the gateways would then go down, which Prometheus reads as a counter reset and
`rate()` as a burst of traffic. So the exporter keeps, per (client, gateway), the last values
it saw and what that gateway had counted before its counters were reset; a client's total is
the sum of both over its gateways, plus what gateways that no longer carry the peer had
counted. The state lives as long as the exporter runs: a restart starts from the gateways'
counts again, which Prometheus handles as the counter reset it is.

Not seen: a reset followed, before the next poll, by more bytes than the counter had before
(the two counts are then indistinguishable); a poll every few seconds makes that rare.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wgconsole.core.fleet import Fleet


@dataclass(slots=True)
class _OnGateway:
    rx: int  # the gateway's counters at the latest poll that read them
    tx: int
    rx_before: int = 0  # what the gateway had counted before its counters were reset
    tx_before: int = 0


@dataclass(slots=True)
class _Client:
    gateways: dict[str, _OnGateway] = field(default_factory=dict)
    rx_gone: int = 0  # counted by gateways that no longer carry the peer
    tx_gone: int = 0

    def totals(self) -> tuple[int, int]:
        rx = self.rx_gone + sum(g.rx + g.rx_before for g in self.gateways.values())
        tx = self.tx_gone + sum(g.tx + g.tx_before for g in self.gateways.values())
        return rx, tx

    def retire(self, gateway: str) -> None:
        gone = self.gateways.pop(gateway)
        self.rx_gone += gone.rx + gone.rx_before
        self.tx_gone += gone.tx + gone.tx_before


class ByteCounters:
    """The monotonic totals of a sequence of polls (one exporter's)."""

    def __init__(self) -> None:
        self._clients: dict[str, _Client] = {}

    def update(self, fleet: Fleet) -> dict[str, tuple[int, int]]:
        """(received, sent) by public key, for every client of `fleet`."""
        # Gateways whose interface was read this poll: a peer missing from one of them is
        # gone from it. A gateway that did not answer says nothing: its last values stay.
        read = {gw.name for gw in fleet.gateways if gw.peer_count is not None}
        totals: dict[str, tuple[int, int]] = {}
        present: set[str] = set()
        for view in fleet.clients:
            key = view.public_key
            present.add(key)
            state = self._clients.get(key)
            if state is None:
                state = self._clients[key] = _Client()
            here = set()
            for peer in view.per_gateway:
                here.add(peer.gateway)
                seen = state.gateways.get(peer.gateway)
                if seen is None:
                    state.gateways[peer.gateway] = _OnGateway(peer.rx_bytes, peer.tx_bytes)
                    continue
                if peer.rx_bytes < seen.rx or peer.tx_bytes < seen.tx:
                    # Counters only go down when the peer's counters were made anew.
                    seen.rx_before += seen.rx
                    seen.tx_before += seen.tx
                seen.rx, seen.tx = peer.rx_bytes, peer.tx_bytes
            for gateway in [g for g in state.gateways if g not in here and g in read]:
                state.retire(gateway)
            totals[key] = state.totals()
        for key in [k for k in self._clients if k not in present]:
            state = self._clients[key]
            for gateway in [g for g in state.gateways if g in read]:
                state.retire(gateway)
            if not state.gateways:
                # Gone from every gateway that carried it: a peer removed. Should it come
                # back, its series starts again (a new series to Prometheus).
                del self._clients[key]
        return totals
