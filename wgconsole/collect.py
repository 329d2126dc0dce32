"""Polling: one round trip per host, all hosts at once, observations in, a Fleet out.

Over SSH each host gets a single `sh -c` script whose sections carry every output the
model needs; `host: local` reads the same facts over netlink. A host that fails is reported
with its error and the age of its last good poll; the others are still used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from wgconsole.inventory_types import Gateway, Host, Inventory
from wgconsole.model import Fleet, build_fleet
from wgconsole.observed import GatewayObservation, HostStatus, LbObservation
from wgconsole.parsers.errors import ParseError
from wgconsole.parsers.ipvs_proc import parse_bool_sysctl, parse_ip_vs_conn
from wgconsole.parsers.ipvsadm import merge_stats, parse_ipvsadm_list, parse_ipvsadm_stats
from wgconsole.parsers.link import parse_clock, parse_link_state
from wgconsole.parsers.sections import (
    section_command,
    section_command_through,
    section_text,
    split_sections,
)
from wgconsole.parsers.wg_dump import parse_wg_dump
from wgconsole.transport import netlink
from wgconsole.transport.base import Transport, TransportError, privileged, quote_argv
from wgconsole.transport.local import LocalTransport
from wgconsole.transport.ssh import SshTransport

POLL_TIMEOUT = 30.0

# The dump's first field is the private key, and each peer's second its preshared key: both
# are replaced on the gateway itself, so no secret crosses the wire (the parser drops them too).
_HIDE_SECRETS = (
    "awk -F'\\t' -v OFS='\\t' "
    '\'NR==1 && NF==4 {$1="(hidden)"} NF==8 && $2!="(none)" {$2="(hidden)"} {print}\''
)


def lb_script(sudo: bool) -> str:
    parts = [
        section_command("clock", "date +%s.%N"),
        section_command("ipvsadm", privileged(["ipvsadm", "-Ln", "--nosort"], sudo) + " 2>&1"),
        section_command(
            "stats",
            privileged(["ipvsadm", "-Ln", "--stats", "--exact", "--nosort"], sudo) + " 2>&1",
        ),
        section_command("conn", privileged(["cat", "/proc/net/ip_vs_conn"], sudo) + " 2>&1"),
        section_command("expire", "cat /proc/sys/net/ipv4/vs/expire_nodest_conn 2>&1"),
    ]
    return quote_argv(["sh", "-c", "\n".join(parts)])


def gateway_script(interface: str, sudo: bool) -> str:
    dump = privileged(["wg", "show", interface, "dump"], sudo)
    parts = [
        section_command("clock", "date +%s.%N"),
        section_command(
            "link", quote_argv(["ip", "-o", "link", "show", "dev", interface]) + " 2>&1"
        ),
        # Streamed through the filter (the status line passes unchanged): with 10,000 peers,
        # holding the dump in a shell variable first cost the emulated lab gateway ~40% more
        # than `wg show` itself.
        section_command_through("dump", f"{dump} 2>&1", _HIDE_SECRETS),
    ]
    return quote_argv(["sh", "-c", "\n".join(parts)])


def parse_lb_output(name: str, text: str) -> LbObservation:
    sections = split_sections(text)
    services = parse_ipvsadm_list(section_text(sections, "ipvsadm"))
    stats = parse_ipvsadm_stats(section_text(sections, "stats"))
    expire_text = section_text(sections, "expire", allow_failure=True)
    try:
        expire: bool | None = parse_bool_sysctl(expire_text)
    except ParseError:
        expire = None
    return LbObservation(
        host=name,
        clock=parse_clock(section_text(sections, "clock")),
        services=tuple(merge_stats(services, stats)),
        conns=tuple(parse_ip_vs_conn(section_text(sections, "conn"))),
        expire_nodest_conn=expire,
    )


def parse_gateway_output(name: str, interface: str, text: str) -> GatewayObservation:
    sections = split_sections(text)
    clock = parse_clock(section_text(sections, "clock"))
    link_up = parse_link_state(section_text(sections, "link", allow_failure=True))
    if link_up is None:
        return GatewayObservation.missing(name, clock, interface)
    return GatewayObservation(
        host=name,
        clock=clock,
        link_up=link_up,
        interface=parse_wg_dump(section_text(sections, "dump"), interface),
    )


def observe_lb(host: Host, transport: Transport, timeout: float) -> tuple[LbObservation, int]:
    """One reading of a load balancer and the bytes it cost (0 over netlink)."""
    if host.is_local:
        return netlink.read_lb(host.name), 0
    result = transport.run(lb_script(host.ssh.sudo), timeout=timeout)
    return parse_lb_output(host.name, result.stdout), result.bytes_received


def observe_gateway(
    gw: Gateway, transport: Transport, timeout: float
) -> tuple[GatewayObservation, int]:
    """One reading of a gateway and the bytes it cost (0 over netlink)."""
    if gw.is_local:
        return netlink.read_gateway(gw.name, gw.interface), 0
    result = transport.run(gateway_script(gw.interface, gw.ssh.sudo), timeout=timeout)
    return parse_gateway_output(gw.name, gw.interface, result.stdout), result.bytes_received


@dataclass(frozen=True, slots=True)
class HostPoll:
    name: str
    role: Literal["lb", "gateway"]
    observation: LbObservation | GatewayObservation | None
    error: str | None
    seconds: float
    bytes_received: int


@dataclass(frozen=True, slots=True)
class PollResult:
    taken_at: float
    seconds: float
    hosts: tuple[HostPoll, ...]

    @property
    def bytes_received(self) -> int:
        return sum(h.bytes_received for h in self.hosts)


TransportFactory = Callable[[Host], Transport]


class FleetCollector:
    """Owns one transport per host; `poll()` never runs twice at once for the same host."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        accept_new_host_keys: bool = False,
        read_only: bool = False,
        compress: bool = False,
        timeout: float = POLL_TIMEOUT,
        transport_factory: TransportFactory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.inventory = inventory
        self.timeout = timeout
        self.read_only = read_only

        def default_factory(host: Host) -> Transport:
            if host.is_local:
                return LocalTransport(host.name, read_only=read_only)
            return SshTransport(
                host,
                accept_new_host_keys=accept_new_host_keys,
                read_only=read_only,
                compress=compress,
            )

        factory = transport_factory or default_factory
        self.transports: dict[str, Transport] = {h.name: factory(h) for h in inventory.hosts}
        self._last_success: dict[str, float] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(inventory.hosts)), thread_name_prefix="wgc-poll"
        )

    def _poll_lb(self, host: Host) -> HostPoll:
        return self._poll_host(host, "lb", lambda t: observe_lb(host, t, self.timeout))

    def _poll_gateway(self, gw: Gateway) -> HostPoll:
        return self._poll_host(gw, "gateway", lambda t: observe_gateway(gw, t, self.timeout))

    def _poll_host(
        self,
        host: Host,
        role: Literal["lb", "gateway"],
        observe: Callable[[Transport], tuple[LbObservation | GatewayObservation, int]],
    ) -> HostPoll:
        started = time.monotonic()
        try:
            obs, received = observe(self.transports[host.name])
        except (TransportError, ParseError, OSError) as exc:
            return HostPoll(host.name, role, None, str(exc), time.monotonic() - started, 0)
        return HostPoll(host.name, role, obs, None, time.monotonic() - started, received)

    def poll(self, roles: tuple[str, ...] = ("lb", "gateway")) -> PollResult:
        started = time.monotonic()
        taken_at = self.clock()
        futures = []
        if "lb" in roles:
            futures += [
                self._pool.submit(self._poll_lb, lb) for lb in self.inventory.load_balancers
            ]
        if "gateway" in roles:
            futures += [self._pool.submit(self._poll_gateway, g) for g in self.inventory.gateways]
        hosts = tuple(f.result() for f in futures)
        return PollResult(taken_at=taken_at, seconds=time.monotonic() - started, hosts=hosts)

    def host_status(self, poll: PollResult) -> tuple[HostStatus, ...]:
        statuses = []
        for hp in poll.hosts:
            if hp.observation is not None:
                self._last_success[hp.name] = poll.taken_at
            statuses.append(
                HostStatus(
                    name=hp.name,
                    role=hp.role,
                    reachable=hp.observation is not None,
                    error=hp.error,
                    last_success=self._last_success.get(hp.name),
                    poll_seconds=hp.seconds,
                )
            )
        return tuple(statuses)

    def fleet(self, poll: PollResult) -> Fleet:
        return fleet_from_poll(self.inventory, poll, self.host_status(poll))

    def snapshot(self) -> Fleet:
        return self.fleet(self.poll())

    def close(self) -> None:
        for t in self.transports.values():
            t.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def fleet_from_poll(
    inventory: Inventory, poll: PollResult, statuses: tuple[HostStatus, ...]
) -> Fleet:
    lbs: dict[str, LbObservation | None] = {}
    gws: dict[str, GatewayObservation | None] = {}
    for hp in poll.hosts:
        if hp.role == "lb":
            lbs[hp.name] = hp.observation if isinstance(hp.observation, LbObservation) else None
        else:
            obs = hp.observation
            gws[hp.name] = obs if isinstance(obs, GatewayObservation) else None
    return build_fleet(inventory, lbs, gws, statuses, poll.taken_at)
