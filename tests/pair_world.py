"""A fake director pair for the console: two LB observations with their director fields
(addresses, VRRP, sync daemons), polled frame by frame under a frozen clock.

No lab is needed: each frame is the observations the collector would have parsed, built as
tests/observations.py builds the seed's (alpha on gateway-01, beta and gamma on gateway-02).
The backup's table is planted to differ from the holder's: gateway-01 has weight 2 there (the
holder's has 1), so 128 buckets, not all, send new clients elsewhere after a failover. alpha's
entry is synced to the backup (it keeps its gateway); beta's and gamma's are not: beta's bucket
agrees (it stays), gamma's differs (a failover sends it to gateway-01).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from tests.observations import (
    ALPHA,
    ALPHA_EP,
    BETA,
    BETA_EP,
    GW1,
    GW1_RS,
    GW2,
    GW2_RS,
    NOW,
    VIP,
    alpha_on,
    beta_on,
    conn,
    dest,
    gw_obs,
    lb_obs,
    make_inventory,
    peer,
    service,
)
from wgconsole.core.inventory import Host, Inventory
from wgconsole.core.records import (
    Endpoint,
    GatewayObservation,
    IpvsDest,
    IpvsTimeouts,
    KeepalivedReport,
    LbObservation,
    SyncDaemon,
    SyncRole,
    VrrpInstance,
    VrrpState,
    VsSysctls,
    WgPeer,
)
from wgconsole.ops.hostcmd import entrysync
from wgconsole.poll.collector import FleetCollector, HostPoll, PollResult
from wgconsole.poll.transport.base import CommandResult, Transport, TransportError

LB1, LB2 = "wg-lb-1", "wg-lb-2"
GAMMA = "gamma-fake-public-key"
GAMMA_EP = Endpoint("10.211.55.12", 40003)  # bucket 28: gateway-02 on the holder, 01 on the backup
PAIR = make_inventory(
    clients=(
        ("alpha", ALPHA, "10.255.0.2"),
        ("beta", BETA, "10.255.0.3"),
        ("gamma", GAMMA, "10.255.0.4"),
    ),
    lbs=(LB1, LB2),
)
CONNS = (conn(ALPHA_EP, GW1_RS), conn(BETA_EP, GW2_RS), conn(GAMMA_EP, GW2_RS))
HOLDER_DESTS = (dest(GW2_RS), dest(GW1_RS))
# The planted mismatch: the same dests in the same order, gateway-01 weighted 2.
BACKUP_DESTS = (dest(GW2_RS), dest(GW1_RS, weight=2))
INTERVAL = 2.0  # seconds between the frames' clocks

Frame = Mapping[str, LbObservation | GatewayObservation | None]


def keepalived(state: VrrpState, priority: int) -> KeepalivedReport:
    instance = VrrpInstance("VI_1", state, priority, priority, 51, "eth0", (VIP.address,))
    return KeepalivedReport("json", (instance,), "/etc/keepalived/keepalived.conf", ())


def director(
    host: str,
    *,
    holds: bool,
    state: VrrpState,
    priority: int,
    dests: Sequence[IpvsDest] = HOLDER_DESTS,
    conns: Sequence[object] = CONNS,
    daemons: tuple[SyncDaemon, ...] | None = None,
) -> LbObservation:
    addresses = ("127.0.0.1", "10.211.55.120", *((VIP.address,) if holds else ()))
    role: SyncRole = "master" if holds else "backup"
    return replace(
        lb_obs(services=[service(dests)], conns=conns, host=host),  # type: ignore[arg-type]
        addresses=addresses,
        sync_daemons=(SyncDaemon(role, "eth0", 1),) if daemons is None else daemons,
        timeouts=IpvsTimeouts(900, 120, 300),
        sysctls=VsSysctls(
            (("backup_only", "0"), ("sync_threshold", "3 50"), ("sync_version", "1"))
        ),
        keepalived=keepalived(state, priority),
    )


def gamma_on(endpoint: Endpoint | None, age: float | None) -> WgPeer:
    return peer(GAMMA, endpoint, age, ("10.255.0.4/32",))


def gateways() -> dict[str, GatewayObservation | None]:
    """alpha on gateway-01, beta and gamma on gateway-02, as the holder's entries say."""
    return {
        GW1: gw_obs(GW1, [alpha_on(ALPHA_EP, 30), beta_on(None, None), gamma_on(None, None)]),
        GW2: gw_obs(GW2, [alpha_on(None, None), beta_on(BETA_EP, 40), gamma_on(GAMMA_EP, 50)]),
    }


def steady() -> Frame:
    """wg-lb-1 holds the VIP; wg-lb-2, the backup, has alpha's entry synced (not beta's)."""
    return {
        LB1: director(LB1, holds=True, state="MASTER", priority=150),
        LB2: director(
            LB2,
            holds=False,
            state="BACKUP",
            priority=100,
            dests=BACKUP_DESTS,
            conns=(conn(ALPHA_EP, GW1_RS),),
        ),
        **gateways(),
    }


def failed_over() -> Frame:
    """The VIP moved to wg-lb-2 (MASTER); wg-lb-1 went BACKUP and its sync daemon stopped."""
    return {
        LB1: director(LB1, holds=False, state="BACKUP", priority=100, daemons=()),
        LB2: director(
            LB2,
            holds=True,
            state="MASTER",
            priority=150,
            dests=BACKUP_DESTS,
            # gamma's next packet was scheduled by wg-lb-2's own table: gateway-01.
            conns=(conn(ALPHA_EP, GW1_RS), conn(BETA_EP, GW2_RS), conn(GAMMA_EP, GW1_RS)),
        ),
        **gateways(),
    }


class _NoTransport:
    """The frames are observations already: no command is sent, except rebalance's plan-time
    check that the LB can make its private interface, answered as the lab's LBs do (checked
    there: tests/lab/test_rebalance_lab.py)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        if command == entrysync.interface_check_command() and not mutating:
            return CommandResult("", "", 0, 0.0, 0)
        raise TransportError(f"{self.name}: the pair world sends no command")

    def close(self) -> None:
        pass


class PairClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class PairCollector(FleetCollector):
    """Polls return the next frame (the last one again once they run out)."""

    def __init__(self, frames: Sequence[Frame], inventory: Inventory = PAIR) -> None:
        self.clock_ = PairClock()
        super().__init__(
            inventory,
            transport_factory=lambda host: _transport(host),
            clock=self.clock_,
            read_only=True,
        )
        self.frames = list(frames)
        self.polls = 0

    def poll(
        self, roles: tuple[str, ...] = ("lb", "gateway"), *, lb_conns: bool = True
    ) -> PollResult:
        frame = self.frames[min(self.polls, len(self.frames) - 1)]
        self.clock_.now = NOW + INTERVAL * self.polls
        self.polls += 1
        hosts = []
        for lb in self.inventory.load_balancers:
            obs = frame.get(lb.name)
            hosts.append(HostPoll(lb.name, "lb", obs, None if obs else "lost", 0.0, 0))
        for gw in self.inventory.gateways:
            obs = frame.get(gw.name)
            hosts.append(HostPoll(gw.name, "gateway", obs, None if obs else "lost", 0.0, 0))
        return PollResult(self.clock_.now, 0.0, tuple(hosts))


def _transport(host: Host) -> Transport:
    return _NoTransport(host.name)


def pair_console(frames: Sequence[Frame], **kwargs: object) -> tuple[object, PairCollector]:
    """A ConsoleApp over the fake pair; it polls once at start, then on `step`."""
    from wgconsole.tui.app import ConsoleApp

    collector = PairCollector(frames)
    app = ConsoleApp(
        collector.inventory,
        collector,
        interval=3600,
        clock=collector.clock_,
        **kwargs,  # type: ignore[arg-type]
    )
    return app, collector
