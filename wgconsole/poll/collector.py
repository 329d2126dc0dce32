"""Polling: one round trip per host, all hosts at once, observations in, a Fleet out.

Over SSH each host gets a single `sh -c` script (`poll.remote_scripts`) whose sections carry
every output the fleet needs; `host: local` reads the same facts over netlink. A host that
fails is reported with its error and the age of its last good poll; the others are still used.

A poll never waits for a host longer than its deadline: a host that has not answered by
then (a hung command, a connection attempt into a dead network) is reported as not
answering, its request goes on in the background, and the next polls report it as still
pending instead of sending it a second request, without waiting for it again. A host whose
last request got no answer is not waited for past the hosts that answered theirs (unless
none did) and a moment: a dead host costs one poll its deadline, never the next polls nor
the other hosts' data; once one of its requests is answered it is waited for again. A host
whose answers usually take longer than the deadline (a 50,000-entry LB table) is given three
times its usual time, up to the command timeout. A poll reports what its own requests read,
or a request another poll made and still waits for (the console's polls and an operation's
reading share the hosts); an answer that comes after its poll's deadline is dropped (its host
is asked again at the next poll), never shown as a later poll's. Nothing a host
sends back can end a poll with an exception: output that does not parse is that host's
error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from wgconsole.core.bulk import LineMemo, gc_paused
from wgconsole.core.fleet import Fleet
from wgconsole.core.fleet_builder import FleetBuilder, build_fleet
from wgconsole.core.ifname import interface_name_problem
from wgconsole.core.inventory import Gateway, Host, Inventory
from wgconsole.core.records import (
    GatewayObservation,
    HostErrorKind,
    HostRole,
    HostStatus,
    IpvsConn,
    LbObservation,
    WgPeer,
)
from wgconsole.poll.parsers.director import (
    keepalived_report,
    parse_addresses,
    parse_daemon,
    parse_keepalived_section,
    parse_sysctls,
    parse_timeout,
)
from wgconsole.poll.parsers.errors import ParseError, redact
from wgconsole.poll.parsers.ipvs_proc import parse_bool_sysctl, parse_ip_vs_conn
from wgconsole.poll.parsers.ipvsadm import merge_stats, parse_ipvsadm_list, parse_ipvsadm_stats
from wgconsole.poll.parsers.link import parse_clock, parse_link_state
from wgconsole.poll.parsers.op_records import parse_op_state
from wgconsole.poll.parsers.sections import (
    Section,
    section_messages,
    section_text,
    split_sections,
)
from wgconsole.poll.parsers.wg_dump import parse_wg_dump
from wgconsole.poll.remote_scripts import gateway_script, lb_script
from wgconsole.poll.transport import netlink
from wgconsole.poll.transport.base import (
    MAX_OUTPUT,
    HostKeyChanged,
    HostKeyUnknown,
    Transport,
    TransportError,
    sudo_refusal,
)
from wgconsole.poll.transport.local import LocalTransport
from wgconsole.poll.transport.ssh import SshTransport

POLL_TIMEOUT = 30.0
# The least a host that did not answer its last request is given past the hosts that did: a
# host that is back answers within it (one that is not costs the poll no more than this or
# twice the others' time), and replayed hosts in the tests, answering at once, always do.
UNANSWERED_GRACE = 1.0
# How many times its usual answer time a host is given when that is above the deadline.
SLOW_HOST = 3.0
# SSH (zlib) compression is on unless the caller says otherwise. One poll of a fleet of
# 50,000 LB entries and 3 x 10,000 peers is 5.9 MB of text and 1.45 MB compressed: at one
# poll every 2 s, 24 Mbit/s against 6 Mbit/s from the bastion's link. In the emulated lab,
# zlib costs the hosts about what encrypting the bytes it saves costs there (poll times
# measured equal, benchmarks/bench_scale.py); on real CPUs it is ~50x cheaper than there.
# A small fleet sends a few KB per poll either way.
COMPRESS = True
_T = TypeVar("_T")

# What each privileged section ran, for a "missing sudo right" message.
_PRIVILEGED = {
    "ipvsadm": "ipvsadm -Ln --nosort",
    "stats": "ipvsadm -Ln --stats --exact --nosort",
    "conn": "cat /proc/net/ip_vs_conn",
    "dump": "wg show IF dump",
    "daemon": "ipvsadm -Ln --daemon",
    "timeout": "ipvsadm -Ln --timeout",
    "keepalived": "sh -c <keepalived script>",
}


def _section(
    sections: Mapping[str, Section],
    name: str,
    *,
    allow_failure: bool = False,
    command: str | None = None,
) -> str:
    """`section_text`, except that sudo refusing a command is said as such."""
    section = sections.get(name)
    if section is not None and section.rc not in (None, 0) and name in _PRIVILEGED:
        refusal = sudo_refusal(section_messages(sections, name))
        if refusal is not None:
            what = command or _PRIVILEGED[name]
            raise ParseError(name, None, f"missing sudo right for `{what}` ({refusal})")
    return section_text(sections, name, allow_failure=allow_failure)


class ParseMemos:
    """Per host, the records made from its latest output: the next poll's unchanged lines
    (most of them) give those records again instead of being parsed anew; a gateway's line
    that another gateway's latest dump had gives that one's record.

    Each collector holds its own, for the hosts it polls one request at a time: two
    collectors in one process (a console and an exporter, two sites) never share one. A
    reading outside a collector (an operation's check) is parsed without any.
    """

    def __init__(self) -> None:
        self._conns: dict[str, LineMemo[IpvsConn]] = {}
        self._peers: dict[str, LineMemo[WgPeer]] = {}

    def conns(self, lb: str) -> LineMemo[IpvsConn]:
        """The memo of `lb`'s connection tables."""
        return self._conns.setdefault(lb, LineMemo())

    def peers(self, gateway: str) -> LineMemo[WgPeer]:
        """The memo of `gateway`'s dumps, which looks up the other gateways' too."""
        return self._peers.setdefault(gateway, LineMemo(self._peers))


def parse_lb_output(
    name: str, text: str, *, conns: bool = True, memos: ParseMemos | None = None
) -> LbObservation:
    """`memos`: what this LB's previous outputs gave (its collector's); None: parse all."""
    with gc_paused():
        return _parse_lb_output(name, text, conns=conns, memos=memos)


def _parse_lb_output(
    name: str, text: str, *, conns: bool, memos: ParseMemos | None
) -> LbObservation:
    sections = split_sections(text)
    services = parse_ipvsadm_list(_section(sections, "ipvsadm"))
    stats = parse_ipvsadm_stats(_section(sections, "stats"))
    expire_text = section_text(sections, "expire", allow_failure=True)
    try:
        expire: bool | None = parse_bool_sysctl(expire_text)
    except ParseError:
        expire = None
    # Captures made before the section existed have no "ops": nothing recorded then.
    ops = sections.get("ops")
    drains, locks = parse_op_state(ops.text if ops is not None and ops.ok else "")
    conn_memo = None if memos is None else memos.conns(name)
    return LbObservation(
        host=name,
        clock=parse_clock(section_text(sections, "clock")),
        services=tuple(merge_stats(services, stats)),
        conns=tuple(parse_ip_vs_conn(_section(sections, "conn"), conn_memo)) if conns else (),
        expire_nodest_conn=expire,
        drain_records=drains,
        locks=locks,
        **_director_facts(sections),
    )


def _director_facts(sections: Mapping[str, Section]) -> dict[str, Any]:
    """The LB's director fields of LbObservation. A section missing (a capture made before it
    existed) leaves its field None; one that fails or does not parse leaves it None too, with
    its message in `director_problems`: the rest of the LB's poll stands."""
    problems: list[str] = []

    def read(name: str, parse: Callable[[str], _T]) -> _T | None:
        if name not in sections:
            return None
        try:
            return parse(_section(sections, name))
        except ParseError as exc:
            problems.append(str(exc))
            return None

    facts: dict[str, Any] = {
        "addresses": read("addr", parse_addresses),
        "sync_daemons": read("daemon", parse_daemon),
        "timeouts": read("timeout", parse_timeout),
        "sysctls": read("sysctls", parse_sysctls),
    }
    header = read("keepalived", parse_keepalived_section)
    # Unknown is not "none runs": a section that failed, or a keepalived whose report failed.
    facts["keepalived_unknown"] = "keepalived" in sections and header is None
    if header is not None and header.running:
        if header.problem is not None:
            problems.append(f"keepalived: {header.problem}")
            facts["keepalived_unknown"] = True
        else:
            try:
                facts["keepalived"] = keepalived_report(header)
            except ParseError as exc:
                problems.append(str(exc))
                facts["keepalived_unknown"] = True
    facts["director_problems"] = tuple(problems)
    return facts


def parse_gateway_output(
    name: str, interface: str, text: str, memos: ParseMemos | None = None
) -> GatewayObservation:
    """`memos`: what the gateways' previous outputs gave (their collector's); None: parse
    all."""
    with gc_paused():
        return _parse_gateway_output(name, interface, text, memos)


def _parse_gateway_output(
    name: str, interface: str, text: str, memos: ParseMemos | None
) -> GatewayObservation:
    sections = split_sections(text)
    clock = parse_clock(section_text(sections, "clock"))
    link_up = parse_link_state(section_text(sections, "link", allow_failure=True))
    if link_up is None:
        return GatewayObservation.missing(name, clock, interface)
    return GatewayObservation(
        host=name,
        clock=clock,
        link_up=link_up,
        interface=parse_wg_dump(
            _section(sections, "dump", command=f"wg show {interface} dump"),
            interface,
            None if memos is None else memos.peers(name),
        ),
    )


def observe_lb(
    host: Host,
    transport: Transport,
    timeout: float,
    *,
    conns: bool = True,
    keepalived: bool = True,
    memos: ParseMemos | None = None,
) -> tuple[LbObservation, int]:
    """One reading of a load balancer and the bytes it cost (0 over netlink).

    Without `conns` the connection table is not read (its observation has none): with
    50,000 entries it is nearly all of an LB poll's time. Without `keepalived` neither is
    keepalived's report (its observation has none, as where none runs): a director's
    keepalived is signalled for a dump, then waited for. `memos`: see parse_lb_output.
    """
    if host.is_local:
        return netlink.read_lb(host.name, conns=conns), 0
    script = lb_script(sudo=host.ssh.sudo, conns=conns, keepalived=keepalived)
    result = transport.run(script, timeout=timeout)
    return parse_lb_output(
        host.name, result.stdout, conns=conns, memos=memos
    ), result.bytes_received


def observe_gateway(
    gw: Gateway, transport: Transport, timeout: float, memos: ParseMemos | None = None
) -> tuple[GatewayObservation, int]:
    """One reading of a gateway and the bytes it cost (0 over netlink); `memos`: see
    parse_gateway_output."""
    problem = interface_name_problem(gw.interface)
    if problem is not None:
        # The inventory loader refuses it too; an inventory made otherwise is not trusted.
        raise TransportError(f"not polled: interface {gw.interface[:40]!r}: {problem}")
    if gw.is_local:
        return netlink.read_gateway(gw.name, gw.interface), 0
    result = transport.run(gateway_script(gw.interface, sudo=gw.ssh.sudo), timeout=timeout)
    obs = parse_gateway_output(gw.name, gw.interface, result.stdout, memos)
    return obs, result.bytes_received


@dataclass(frozen=True, slots=True)
class HostPoll:
    name: str
    role: HostRole
    observation: LbObservation | GatewayObservation | None
    error: str | None
    seconds: float
    bytes_received: int
    error_kind: HostErrorKind | None = None


@dataclass(frozen=True, slots=True)
class PollResult:
    taken_at: float
    seconds: float
    hosts: tuple[HostPoll, ...]

    @property
    def bytes_received(self) -> int:
        return sum(h.bytes_received for h in self.hosts)


TransportFactory = Callable[[Host], Transport]


def _error_kind(exc: Exception) -> HostErrorKind | None:
    """The kind of failure the transport's exception tells apart (a host key not trusted)."""
    if isinstance(exc, HostKeyChanged):
        return "host-key-changed"
    if isinstance(exc, HostKeyUnknown):
        return "host-key-unknown"
    return None


class FleetCollector:
    """Owns one transport per host; a host never has two requests in flight at once.

    It also owns what its polls remember from one to the next (`parse_memos`, per host;
    `fleet_builder`, the model's): a poll of a large fleet is cheap because most of it is
    what the previous poll of the same collector already made.

    `poll()` returns after `poll_deadline` seconds at most (default: `timeout`, the
    per-command timeout): hosts that have not answered by then are reported as pending, and
    their request is not repeated until it ended. `last_success` seeds the age of each host's
    last good poll (e.g. from an earlier run), so a lost host shows how long it has been gone.
    `max_output`: the bytes one command may return before it is stopped and is that host's
    error (the default transports'; see base.MAX_OUTPUT for its size).
    """

    def __init__(
        self,
        inventory: Inventory,
        *,
        accept_new_host_keys: bool = False,
        read_only: bool = False,
        compress: bool = COMPRESS,
        timeout: float = POLL_TIMEOUT,
        poll_deadline: float | None = None,
        transport_factory: TransportFactory | None = None,
        clock: Callable[[], float] = time.time,
        last_success: Mapping[str, float] | None = None,
        max_output: int = MAX_OUTPUT,
    ) -> None:
        self.clock = clock
        self.inventory = inventory
        self.timeout = timeout
        self.poll_deadline = timeout if poll_deadline is None else poll_deadline
        self.read_only = read_only

        def default_factory(host: Host) -> Transport:
            if host.is_local:
                return LocalTransport(host.name, read_only=read_only, max_output=max_output)
            return SshTransport(
                host,
                accept_new_host_keys=accept_new_host_keys,
                read_only=read_only,
                compress=compress,
                max_output=max_output,
            )

        factory = transport_factory or default_factory
        self.transports: dict[str, Transport] = {h.name: factory(h) for h in inventory.hosts}
        names = {h.name for h in inventory.hosts}
        self._last_success: dict[str, float] = {
            k: v for k, v in (last_success or {}).items() if k in names
        }
        self._lock = threading.Lock()
        self._inflight: dict[str, tuple[Future[HostPoll], float]] = {}
        # Hosts whose last request got no answer (an error, or none by its poll's deadline).
        self._unanswered: set[str] = set()
        # How long each host's last answered request took.
        self._usual: dict[str, float] = {}
        self.parse_memos = ParseMemos()
        self.fleet_builder = FleetBuilder()

    @property
    def last_successes(self) -> dict[str, float]:
        """Bastion time of each host's last good poll (to carry over to a later run)."""
        return dict(self._last_success)

    def _poll_lb(self, host: Host, *, conns: bool) -> HostPoll:
        memos = self.parse_memos
        return self._poll_host(
            host, "lb", lambda t: observe_lb(host, t, self.timeout, conns=conns, memos=memos)
        )

    def _poll_gateway(self, gw: Gateway) -> HostPoll:
        memos = self.parse_memos
        return self._poll_host(gw, "gateway", lambda t: observe_gateway(gw, t, self.timeout, memos))

    def _poll_host(
        self,
        host: Host,
        role: HostRole,
        observe: Callable[[Transport], tuple[LbObservation | GatewayObservation, int]],
    ) -> HostPoll:
        started = time.monotonic()
        try:
            obs, received = observe(self.transports[host.name])
        except (TransportError, ParseError, OSError) as exc:
            seconds = time.monotonic() - started
            return HostPoll(host.name, role, None, str(exc), seconds, 0, _error_kind(exc))
        except Exception as exc:  # a parser bug is this host's error, never the poll's end
            error = redact(f"cannot read its output ({type(exc).__name__}: {exc})")
            return HostPoll(host.name, role, None, error, time.monotonic() - started, 0)
        return HostPoll(host.name, role, obs, None, time.monotonic() - started, received)

    def _start(self, name: str, work: Callable[[], HostPoll]) -> None:
        """Run `work` on a daemon thread: a host hung past the deadline never blocks exit."""
        future: Future[HostPoll] = Future()

        def run() -> None:
            try:
                future.set_result(work())
            except BaseException as exc:  # _poll_host catches everything; belt and braces
                future.set_exception(exc)

        def settled(done: Future[HostPoll]) -> None:
            result = None if done.cancelled() or done.exception() else done.result()
            with self._lock:
                if self._inflight.get(name, (None, 0.0))[0] is not done:
                    return  # a newer request of this host speaks for it
                if result is not None and result.observation is not None:
                    self._unanswered.discard(name)
                    self._usual[name] = result.seconds
                else:
                    self._unanswered.add(name)

        future.add_done_callback(settled)
        self._inflight[name] = (future, time.monotonic())
        threading.Thread(target=run, name=f"wgc-poll-{name}", daemon=True).start()

    def _allowance(self, name: str) -> float:
        """How long a poll waits for `name`: its deadline, or SLOW_HOST times what its last
        answer took when that is longer (a 50,000-entry LB table, a 10,000-peer gateway), up
        to the command timeout: a host slower than the deadline is not down at every poll,
        and a link cut is still found within the deadline on the usual, quick host."""
        return max(self.poll_deadline, min(self.timeout, SLOW_HOST * self._usual.get(name, 0.0)))

    def poll(
        self, roles: tuple[str, ...] = ("lb", "gateway"), *, lb_conns: bool = True
    ) -> PollResult:
        """One reading of every host of `roles`; `lb_conns=False` skips the LB tables of
        connections (for answers that need the services only, such as `whereis`)."""
        started = time.monotonic()
        taken_at = self.clock()
        chosen: list[tuple[Host, HostRole]] = []
        if "lb" in roles:
            chosen += [(lb, "lb") for lb in self.inventory.load_balancers]
        if "gateway" in roles:
            chosen += [(g, "gateway") for g in self.inventory.gateways]
        fresh: dict[str, Future[HostPoll]] = {}
        # A request another poll (the console's poll loop, an operation's planning) started and
        # still gives time: waited for and reported here too, never a second one.
        shared: dict[str, Future[HostPoll]] = {}
        with self._lock:
            allowed = {host.name: self._allowance(host.name) for host, _ in chosen}
            for host, role in chosen:
                running = self._inflight.get(host.name)
                if running is not None and not running[0].done():
                    if started - running[1] < allowed[host.name]:
                        shared[host.name] = running[0]
                    continue  # still waiting for the previous request: never a second one
                if role == "lb":
                    self._start(host.name, partial(self._poll_lb, host, conns=lb_conns))
                else:
                    assert isinstance(host, Gateway)
                    self._start(host.name, partial(self._poll_gateway, host))
                fresh[host.name] = self._inflight[host.name][0]
            unanswered = set(self._unanswered)
        asked = {**shared, **fresh}
        # The hosts that answered their last request first, each up to its own deadline; a
        # host that did not (dead, or its link cut) is then given as long again as they took
        # (at least UNANSWERED_GRACE), never its whole deadline again. A request a previous
        # poll left past its deadline is not waited for at all.
        answering = {n: f for n, f in asked.items() if n not in unanswered}
        for name, future in sorted(answering.items(), key=lambda item: allowed[item[0]]):
            wait([future], timeout=max(0.0, started + allowed[name] - time.monotonic()))
        took = time.monotonic() - started
        for name, future in asked.items():
            if name in answering:
                continue
            limit = (
                allowed[name]
                if not answering
                else min(allowed[name], max(2 * took, UNANSWERED_GRACE))
            )
            wait([future], timeout=max(0.0, started + limit - time.monotonic()))
        hosts = []
        for host, role in chosen:
            answer = asked.get(host.name)
            if answer is not None and answer.done():
                hosts.append(answer.result())
                continue
            with self._lock:
                current, since = self._inflight[host.name]
                if not current.done():  # else its own callback said whether it answered
                    self._unanswered.add(host.name)
            waited = time.monotonic() - since
            hosts.append(
                HostPoll(
                    host.name,
                    role,
                    None,
                    f"no answer within {waited:.0f} s (still waiting for it)",
                    waited,
                    0,
                )
            )
        return PollResult(taken_at=taken_at, seconds=time.monotonic() - started, hosts=tuple(hosts))

    def presume_silent(self, name: str) -> None:
        """Another sign says `name` is dead (the guard's probes): the next poll gives it only
        the grace of a host that did not answer its last request, not its whole deadline. Its
        next answer clears that, as any answer does."""
        with self._lock:
            self._unanswered.add(name)

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
                    error_kind=hp.error_kind,
                )
            )
        return tuple(statuses)

    def fleet(self, poll: PollResult) -> Fleet:
        return fleet_from_poll(self.inventory, poll, self.host_status(poll), self.fleet_builder)

    def read_fleet(self) -> Fleet:
        return self.fleet(self.poll())

    def close(self) -> None:
        """Close every connection now; requests still in flight then fail on their own."""
        for t in self.transports.values():
            t.close()


def fleet_from_poll(
    inventory: Inventory,
    poll: PollResult,
    statuses: tuple[HostStatus, ...],
    builder: FleetBuilder | None = None,
) -> Fleet:
    """The fleet of `poll`; `builder`: the one that built the previous polls' fleets (a
    collector's), None for a fleet built once."""
    lbs: dict[str, LbObservation | None] = {}
    gws: dict[str, GatewayObservation | None] = {}
    for hp in poll.hosts:
        if hp.role == "lb":
            lbs[hp.name] = hp.observation if isinstance(hp.observation, LbObservation) else None
        else:
            obs = hp.observation
            gws[hp.name] = obs if isinstance(obs, GatewayObservation) else None
    if builder is None:
        return build_fleet(inventory, lbs, gws, statuses, poll.taken_at)
    return builder.build(inventory, lbs, gws, statuses, poll.taken_at)
