"""What the guard does when its policy condemns a gateway: the `evict` operation (the drain,
fenced, on every LB, under the service lock, audited like an operator's), and the fleet it
watches to know which gateways are out of service.

Apart from `cli.guard` so that a dry run imports no SSH and no operation.

Two guards (two bastions, or one on each director) never fight: an eviction takes the
service lock on every LB, and plans from a fleet read after its probes condemned the
gateway; the guard that comes second finds the gateway already out of service (the first
one's drain record) and only says so. An operator's operation holding the lock defers the
guard (it tries again at its next condemning round); the guard's own eviction defers
operators with the lock's owner and action (`evict GATEWAY`), as any operation does.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from pathlib import Path

from wgconsole.cli.collecting import collector
from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Inventory
from wgconsole.ops.catalog import Evict, QuietEvicted
from wgconsole.ops.machinery.audit import AuditLog, default_audit_path
from wgconsole.ops.machinery.context import OpContext, progress_line
from wgconsole.ops.machinery.operation import Refused, plan, run
from wgconsole.poll.collector import FleetCollector

# How often the guard re-reads which gateways are in service (an operator's undrain puts a
# gateway back under its watch, a drain takes one out).
REFRESH_S = 15.0
# A gateway the guard condemned usually does not answer SSH either: its plan's poll does not
# wait for it the whole command timeout.
POLL_DEADLINE = 5.0
# A returned gateway whose SSH did not answer yet is looked at again this much later.
RETRY_S = 5.0


def out_of_service(fleet: Fleet) -> set[str]:
    """Gateways the LB sends no new client to: weight 0, or not a real server at all. An LB
    that did not answer says nothing: the set is then empty (the policy's other rules hold)."""
    return {
        rs.gateway
        for rs in fleet.real_servers
        if rs.gateway is not None and (rs.weight is None or rs.weight == 0)
    }


def server_key(fleet: Fleet) -> str | None:
    """The gateways' one public key as the fleet shows it; None if none or several."""
    keys = {g.public_key for g in fleet.gateways if g.reachable and g.public_key}
    return next(iter(keys)) if len(keys) == 1 else None


class Evictor:
    """The guard's hands: one collector and audit log for its lifetime."""

    def __init__(
        self,
        args: argparse.Namespace,
        inventory: Inventory,
        say: Callable[[str], None],
        *,
        site: str | None = None,
    ) -> None:
        """`site`: the site guarded when several are loaded (its locks and records say it)."""
        self.say = say
        self.collector: FleetCollector = collector(
            args, inventory, poll_deadline=min(POLL_DEADLINE, args.timeout)
        )
        audit = AuditLog(Path(args.audit_log) if args.audit_log else default_audit_path())
        self.ctx = OpContext(
            inventory,
            self.collector.transports,
            audit,
            lambda p: say(f"  {progress_line(p)}"),
            args.timeout,
            self.collector.parse_memos,
            site=site,
        )
        self._out: set[str] = set()
        # Per gateway, the last fleet in which it answered: who its clients were.
        self._known: dict[str, Fleet] = {}
        # Evicted (by the last reading, or by this guard), and those whose return was seen to.
        self._evicted: set[str] = set()
        self._quieted: set[str] = set()
        self._retry_at: dict[str, float] = {}
        self._lock = threading.Lock()
        # Polls and the eviction never overlap on the collector's connections.
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def read(self) -> Fleet:
        with self._busy:
            fleet = self.collector.read_fleet()
        with self._lock:
            self._out = out_of_service(fleet)
            self._evicted = {
                r.gateway for r in fleet.real_servers if r.state == "evicted" and r.gateway
            }
            self._quieted &= self._evicted
            for g in fleet.gateways:
                if g.reachable:
                    self._known[g.name] = fleet
        return fleet

    def start_refreshing(self) -> None:
        """Re-read the fleet every REFRESH_S on a thread: the probe rounds never wait for it."""

        def loop() -> None:
            while not self._stop.wait(REFRESH_S):
                try:
                    self.read()
                except Exception as exc:  # the guard must outlive a bad read
                    self.say(f"fleet not read: {exc}")

        self._refresher = threading.Thread(target=loop, name="guard-fleet", daemon=True)
        self._refresher.start()

    def out(self) -> set[str]:
        with self._lock:
            return set(self._out)

    def evict(self, gateway: str) -> bool:
        """Evict `gateway`; True when it is out of service afterwards (evicted now, or
        already), False when it could not be (deferred by a lock, or failed)."""
        with self._busy:
            return self._evict(gateway)

    def _evict(self, gateway: str) -> bool:
        with self._lock:
            known = self._known.get(gateway)
        # Its probes failed for the whole window: its planning poll does not wait for it.
        self.collector.presume_silent(gateway)
        planned = plan(Evict(gateway, known=known), self.ctx, self.collector.read_fleet, {})
        if isinstance(planned, Refused):
            if planned.kind == "already-out-of-service":
                self.say(f"{gateway}: {planned.reason}")
                self._mark_out(gateway)
                return True
            self.say(f"evict {gateway} NOT planned: {planned.reason}")
            return False
        for line in planned.preview:
            self.say(line)
        outcome = run(planned)
        if outcome.failed:
            self.say(f"evict {gateway} FAILED: {outcome.summary}")
            return False
        self.say(outcome.summary)
        self._mark_out(gateway)
        with self._lock:
            self._evicted.add(gateway)
        return True

    def back(self, answered: dict[str, bool]) -> None:
        """The out-of-service gateways' probes this round: an evicted one that answers came
        back, and its interface goes down (once per return: silent again, it is looked at
        again; `undrain` is still the way back)."""
        for gateway, ok in answered.items():
            self._back(gateway, answered=ok)

    def _back(self, gateway: str, *, answered: bool) -> None:
        with self._lock:
            if not answered:
                self._quieted.discard(gateway)
                return
            if gateway not in self._evicted or gateway in self._quieted:
                return
            if time.monotonic() < self._retry_at.get(gateway, 0.0):
                return
            self._quieted.add(gateway)
        with self._busy:
            planned = plan(QuietEvicted(gateway), self.ctx, self.collector.read_fleet, {})
            if isinstance(planned, Refused):
                self.say(f"{gateway} answers again; its interface is left: {planned.reason}")
                if planned.kind == "does-not-answer":
                    # WireGuard is back before SSH (a new connection takes longer than the
                    # grace a host that did not answer gets): looked at again shortly.
                    with self._lock:
                        self._quieted.discard(gateway)
                        self._retry_at[gateway] = time.monotonic() + RETRY_S
                return
            for line in planned.preview:
                self.say(line)
            outcome = run(planned)
        self.say(f"FAILED: {outcome.summary}" if outcome.failed else outcome.summary)

    def _mark_out(self, gateway: str) -> None:
        with self._lock:
            self._out.add(gateway)

    def close(self) -> None:
        self._stop.set()
        self.collector.close()
