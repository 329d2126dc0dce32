"""One trace: the client resolved from a fresh poll, every capture at once, the report.

A session reports immutable `TraceReport` snapshots as packets come (at most every
`SNAPSHOT_INTERVAL` seconds, from the captures' threads) and returns the final one, with its
verdict. It is stopped early by setting its `stop` event; every capture then ends on its host.
"""

from __future__ import annotations

import base64
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Inventory
from wgconsole.core.records import GatewayObservation, LbObservation
from wgconsole.core.trace import (
    CaptureStatus,
    Packet,
    Role,
    TraceError,
    TraceReport,
    TraceTarget,
    resolve_target,
    timeline,
    verdict,
)
from wgconsole.poll.capture import (
    CaptureArmed,
    CapturedPacket,
    CaptureEnded,
    CaptureEvent,
    CaptureSpec,
    capture_specs,
    run_captures,
)
from wgconsole.poll.collector import PollResult
from wgconsole.poll.transport.base import Transport
from wgconsole.probe.handshake import mac1_matches

DEFAULT_SECONDS = 10.0
MAX_SECONDS = 300.0
SNAPSHOT_INTERVAL = 0.25
SKEW_FLOOR = 1.0  # seconds: a host whose reading is off the others' by less shares theirs


def clock_skews(poll: PollResult) -> dict[str, float]:
    """Each host's clock minus the bastion's when the poll read it (seconds), from the poll's
    reading of every host's `date +%s.%N`; the command's own latency stays in each.

    Hosts whose readings agree (within SKEW_FLOOR of their median: NTP-synced hosts, or the
    lab's namespaces on one clock) share one correction, the median: corrected one by one,
    their readings' different latencies would misorder hops that crossed them in a few
    milliseconds. Only a host off by more than that gets its own."""
    raw = {
        hp.name: hp.observation.clock - poll.taken_at
        for hp in poll.hosts
        if isinstance(hp.observation, LbObservation | GatewayObservation)
    }
    if not raw:
        return {}
    common = statistics.median(raw.values())
    return {
        name: skew if abs(skew - common) >= SKEW_FLOOR else common for name, skew in raw.items()
    }


def mac1_check(fleet: Fleet) -> Callable[[bytes], bool] | None:
    """Whether an initiation's mac1 was made for one of the gateways' public keys (they
    share one in a healthy fleet); None when no gateway told its key."""
    keys = {base64.b64decode(g.public_key) for g in fleet.gateways if g.public_key}
    if not keys:
        return None
    return lambda head: any(mac1_matches(head, key) for key in keys)


class TraceCollector(Protocol):
    """What a trace needs of a FleetCollector (the console's, the command line's)."""

    inventory: Inventory

    @property
    def transports(self) -> Mapping[str, Transport]: ...

    def poll(self) -> PollResult: ...

    def fleet(self, poll: PollResult) -> Fleet: ...


class TraceSession:
    """A trace of one client (resolve, then `run`)."""

    def __init__(
        self,
        collector: TraceCollector,
        query: str,
        *,
        seconds: float = DEFAULT_SECONDS,
    ) -> None:
        if not 0 < seconds <= MAX_SECONDS:
            raise TraceError(f"--seconds must be more than 0 and at most {MAX_SECONDS:g}")
        self.collector = collector
        self.inventory: Inventory = collector.inventory
        self.query = query
        self.seconds = seconds
        self.stop = threading.Event()
        self.target: TraceTarget | None = None
        self.specs: list[CaptureSpec] = []
        self._skews: dict[str, float] = {}
        self._mac1: Callable[[bytes], bool] | None = None

    def resolve(self) -> TraceTarget:
        """The client, from a fresh poll of the whole fleet (its LB entry, its sh choice,
        its handshake gateway; the gateways' key; the hosts' clocks)."""
        poll = self.collector.poll()
        fleet = self.collector.fleet(poll)
        target = resolve_target(self.inventory, fleet, self.query)
        if target.source is None:
            raise TraceError(
                f"{target.label}: its outer address is not known (no LB entry, no endpoint on "
                "any gateway): give it as ADDR[:PORT]"
            )
        self.target = target
        self._skews = clock_skews(poll)
        self._mac1 = mac1_check(fleet)
        self.specs = capture_specs(self.inventory, target)
        return target

    def run(self, on_report: Callable[[TraceReport], None] | None = None) -> TraceReport:
        """Capture for the session's seconds (or until `stop`), reporting as it goes."""
        target = self.target if self.target is not None else self.resolve()
        roles: dict[str, Role] = {s.host: s.role for s in self.specs}
        lock = threading.Lock()
        packets: list[Packet] = []
        statuses: dict[tuple[str, str], CaptureStatus] = {
            (s.host, s.capture): CaptureStatus(s.host, s.role, s.capture, "pending")
            for s in self.specs
        }
        started = [time.time()]
        last = [0.0]

        def report(*, final: bool) -> TraceReport:
            with lock:
                got = list(packets)
                captures = tuple(statuses.values())
            hops = timeline(
                got, roles, target, started=started[0], skews=self._skews, mac1_ok=self._mac1
            )
            return TraceReport(
                target=target,
                seconds=self.seconds,
                hops=hops,
                captures=captures,
                verdict=verdict(target, hops, captures, self.seconds) if final else None,
                finished=final,
                stopped_early=final and self.stop.is_set(),
            )

        def on_event(event: CaptureEvent) -> None:
            with lock:
                if isinstance(event, CapturedPacket):
                    packets.append(event.packet)
                elif isinstance(event, CaptureArmed):
                    key = (event.host, event.capture)
                    statuses[key] = _running(statuses[key])
                elif isinstance(event, CaptureEnded):
                    statuses[(event.status.host, event.status.capture)] = event.status
            now = time.monotonic()
            if on_report is not None and now - last[0] >= SNAPSHOT_INTERVAL:
                last[0] = now
                on_report(report(final=False))

        started[0] = run_captures(
            self.inventory,
            self.collector.transports,
            self.specs,
            self.seconds,
            on_event,
            self.stop,
        )
        final = report(final=True)
        if on_report is not None:
            on_report(final)
        return final


def _running(status: CaptureStatus) -> CaptureStatus:
    return CaptureStatus(status.host, status.role, status.capture, "running", status.error)


def trace_once(
    collector: TraceCollector,
    query: str,
    *,
    seconds: float = DEFAULT_SECONDS,
    on_report: Callable[[TraceReport], None] | None = None,
    stop: threading.Event | None = None,
) -> TraceReport:
    session = TraceSession(collector, query, seconds=seconds)
    if stop is not None:
        session.stop = stop
    session.resolve()
    return session.run(on_report)
