"""`ipvsadm -Ln --nosort` and `ipvsadm -Ln --stats --exact --nosort` (ipvsadm 1.31).

Firewall-mark services have no address, port or protocol, but IpvsService needs them: they
become protocol FWM_PROTOCOL with vip Endpoint("0.0.0.0" or "::", <mark>).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from wgconsole.core.records import Endpoint, ForwardMethod, IpvsDest, IpvsService, ServiceFlag
from wgconsole.poll.parsers.errors import ParseError, excerpt

FWM_PROTOCOL = "fwm"
FWM_ADDRESS_V4 = "0.0.0.0"
FWM_ADDRESS_V6 = "::"
SCHED3 = 0x20  # IP_VS_SVC_F_SCHED3: no scheduler in 6.1 uses it, ServiceFlag has no name for it

SOURCE_LIST = "ipvsadm -Ln"
SOURCE_STATS = "ipvsadm -Ln --stats"

_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
_FORWARD: dict[str, ForwardMethod] = {
    "Masq": "masq",
    "Local": "local",
    "Tunnel": "tunnel",
    "Route": "route",
    "Bypass": "bypass",
}
# ipvsadm names the three scheduler flag bits after the scheduler (sh-*, mh-*) or generically.
_SCHED_FLAGS = {
    "sh-fallback": int(ServiceFlag.SH_FALLBACK),
    "sh-port": int(ServiceFlag.SH_PORT),
    "mh-fallback": int(ServiceFlag.SH_FALLBACK),
    "mh-port": int(ServiceFlag.SH_PORT),
    "flag-1": int(ServiceFlag.SH_FALLBACK),
    "flag-2": int(ServiceFlag.SH_PORT),
    "flag-3": SCHED3,
}
_LIST_TITLE = ["Prot", "LocalAddress:Port", "Scheduler", "Flags"]
_LIST_DEST_TITLE = ["->", "RemoteAddress:Port", "Forward", "Weight", "ActiveConn", "InActConn"]
_STATS_TITLE = ["Prot", "LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]
_STATS_DEST_TITLE = ["->", "RemoteAddress:Port"]
_SUFFIXES = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
# Plain ints, so IpvsService.flags is an int as from netlink rather than a ServiceFlag.
_PERSISTENT = int(ServiceFlag.PERSISTENT)
_ONEPACKET = int(ServiceFlag.ONEPACKET)

ServiceKey = tuple[str, Endpoint]  # (protocol, vip), as in IpvsService


@dataclass(frozen=True, slots=True)
class DestStats:
    """Traffic counters of one real server (approximate when ipvsadm ran without --exact)."""

    conns: int
    in_packets: int
    out_packets: int
    in_bytes: int
    out_bytes: int


def parse_endpoint(text: str, source: str, line: int | None) -> Endpoint:
    """`1.2.3.4:80` or `[2001:db8::1]:80` as ipvsadm prints them; IPv6 normalized."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ParseError(source, line, f"expected ADDRESS:PORT, got {text!r}")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if "%" in host:  # ipvsadm prints no scope id, and ipaddress would take any text after one
        raise ParseError(source, line, f"bad address in {text[:60]!r}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ParseError(source, line, f"bad address in {text!r}") from None
    if (address.version == 6) != bracketed:
        raise ParseError(source, line, f"IPv6 addresses must be in brackets: {text!r}")
    return Endpoint(str(address), parse_port(port_text, source, line))


def parse_port(text: str, source: str, line: int | None) -> int:
    port = _parse_uint(text, source, line, "port")
    if port > 0xFFFF:
        raise ParseError(source, line, f"port {port} out of range")
    return port


def parse_ipvsadm_list(text: str) -> list[IpvsService]:
    """Services of `ipvsadm -Ln --nosort`, dests in printed (kernel, newest-first) order."""
    lines = _Lines(text, SOURCE_LIST)
    lines.expect_titles(_LIST_TITLE, _LIST_DEST_TITLE)
    services: list[IpvsService] = []
    dests: list[IpvsDest] = []
    for number, tokens in lines:
        if tokens[0] == "->":
            if not services:
                raise ParseError(SOURCE_LIST, number, "real server line before any service")
            dests.append(_list_dest(tokens, number))
            continue
        _attach(services, dests)
        services.append(_list_service(tokens, number))
        dests = []
    _attach(services, dests)
    return services


def parse_ipvsadm_stats(text: str) -> dict[ServiceKey, dict[Endpoint, DestStats]]:
    """Per-dest counters of `ipvsadm -Ln --stats [--exact] --nosort`, by service key."""
    lines = _Lines(text, SOURCE_STATS)
    lines.expect_titles(_STATS_TITLE, _STATS_DEST_TITLE)
    stats: dict[ServiceKey, dict[Endpoint, DestStats]] = {}
    current: dict[Endpoint, DestStats] | None = None
    for number, tokens in lines:
        if tokens[0] == "->":
            if current is None:
                raise ParseError(SOURCE_STATS, number, "real server line before any service")
            endpoint, counters = _stats_dest(tokens, number)
            if endpoint in current:
                raise ParseError(SOURCE_STATS, number, f"real server {endpoint} listed twice")
            current[endpoint] = counters
            continue
        key = _stats_service_key(tokens, number)
        if key in stats:
            raise ParseError(SOURCE_STATS, number, f"service {_key_text(key)} listed twice")
        current = stats[key] = {}
    return stats


def merge_stats(
    services: Iterable[IpvsService], stats: dict[ServiceKey, dict[Endpoint, DestStats]]
) -> list[IpvsService]:
    """Copies of `services` with each dest's counters filled in from `stats`.

    The two listings are separate commands, so a dest added in between has no counters:
    it keeps zeros rather than failing the poll.
    """
    merged = []
    for service in services:
        by_dest = stats.get((service.protocol, service.vip), {})
        dests = tuple(_with_stats(dest, by_dest.get(dest.endpoint)) for dest in service.dests)
        merged.append(dataclasses.replace(service, dests=dests))
    return merged


def _with_stats(dest: IpvsDest, counters: DestStats | None) -> IpvsDest:
    if counters is None:
        return dest
    return dataclasses.replace(
        dest,
        conns=counters.conns,
        in_packets=counters.in_packets,
        out_packets=counters.out_packets,
        in_bytes=counters.in_bytes,
        out_bytes=counters.out_bytes,
    )


def _attach(services: list[IpvsService], dests: list[IpvsDest]) -> None:
    if services and dests:
        services[-1] = dataclasses.replace(services[-1], dests=tuple(dests))


def _list_service(tokens: list[str], number: int) -> IpvsService:
    protocol, vip, rest = _service_head(tokens, number, SOURCE_LIST)
    if not rest:
        raise ParseError(SOURCE_LIST, number, "service line without a scheduler")
    scheduler = rest[0]
    flags, timeout = _service_options(rest[1:], number)
    return IpvsService(protocol, vip, scheduler, flags, timeout)


def _service_head(tokens: list[str], number: int, source: str) -> tuple[str, Endpoint, list[str]]:
    """(protocol, vip, remaining tokens) of a service line of either listing."""
    first = tokens[0]
    if first == "FWM":
        if len(tokens) < 2:
            raise ParseError(source, number, "FWM service line without a mark")
        mark = _parse_uint(tokens[1], source, number, "firewall mark")
        if len(tokens) > 2 and tokens[2] == "IPv6":
            return FWM_PROTOCOL, Endpoint(FWM_ADDRESS_V6, mark), tokens[3:]
        return FWM_PROTOCOL, Endpoint(FWM_ADDRESS_V4, mark), tokens[2:]
    protocol = _PROTOCOLS.get(first)
    if protocol is None:
        raise ParseError(source, number, f"unknown protocol {first!r}")
    if len(tokens) < 2:
        raise ParseError(source, number, "service line without an address")
    return protocol, parse_endpoint(tokens[1], source, number), tokens[2:]


def _service_options(tokens: list[str], number: int) -> tuple[int, int]:
    """(flags, persistence timeout) from what follows the scheduler name."""
    flags = 0
    timeout = 0
    words = iter(tokens)
    for word in words:
        if word.startswith("(") and word.endswith(")"):
            flags |= _sched_flags(word[1:-1], number)
        elif word == "persistent":
            flags |= _PERSISTENT
            timeout = _parse_uint(_operand(words, word, number), SOURCE_LIST, number, "timeout")
        elif word in ("mask", "pe"):
            _operand(words, word, number)  # persistence granularity / engine: not modelled
        elif word == "ops":
            flags |= _ONEPACKET
        else:
            raise ParseError(SOURCE_LIST, number, f"unknown service option {word!r}")
    return flags, timeout


def _operand(words: Iterator[str], option: str, number: int) -> str:
    value = next(words, None)
    if value is None:
        raise ParseError(SOURCE_LIST, number, f"{option!r} without a value")
    return value


def _sched_flags(text: str, number: int) -> int:
    flags = 0
    for name in text.split(","):
        bit = _SCHED_FLAGS.get(name)
        if bit is None:
            raise ParseError(SOURCE_LIST, number, f"unknown scheduler flag {name!r}")
        flags |= bit
    return flags


def _list_dest(tokens: list[str], number: int) -> IpvsDest:
    if len(tokens) != 6:
        raise ParseError(
            SOURCE_LIST,
            number,
            f"real server line needs address, forward, weight, active, inactive; "
            f"got {len(tokens) - 1} fields",
        )
    forward = _FORWARD.get(tokens[2])
    if forward is None:
        raise ParseError(SOURCE_LIST, number, f"unknown forwarding method {tokens[2]!r}")
    return IpvsDest(
        endpoint=parse_endpoint(tokens[1], SOURCE_LIST, number),
        weight=_parse_int(tokens[3], SOURCE_LIST, number, "weight"),
        forward=forward,
        active_conns=_parse_uint(tokens[4], SOURCE_LIST, number, "ActiveConn"),
        inactive_conns=_parse_uint(tokens[5], SOURCE_LIST, number, "InActConn"),
    )


def _stats_service_key(tokens: list[str], number: int) -> ServiceKey:
    protocol, vip, rest = _service_head(tokens, number, SOURCE_STATS)
    _counters(rest, number)  # service totals are not kept, but must be well formed
    return protocol, vip


def _stats_dest(tokens: list[str], number: int) -> tuple[Endpoint, DestStats]:
    if len(tokens) < 2:
        raise ParseError(SOURCE_STATS, number, "real server line without an address")
    return parse_endpoint(tokens[1], SOURCE_STATS, number), _counters(tokens[2:], number)


def _counters(tokens: list[str], number: int) -> DestStats:
    if len(tokens) != 5:
        raise ParseError(
            SOURCE_STATS, number, f"expected 5 counters after the address, got {len(tokens)}"
        )
    values = [_count(token, number) for token in tokens]
    return DestStats(*values)


def _count(token: str, number: int) -> int:
    """A counter: plain with --exact, else possibly scaled with a K/M/G/T suffix."""
    scale = _SUFFIXES.get(token[-1:], 1)
    digits = token[:-1] if scale != 1 else token
    return _parse_uint(digits, SOURCE_STATS, number, "counter") * scale


def _parse_uint(text: str, source: str, line: int | None, what: str) -> int:
    # int() alone would also accept "+5", "1_000" and non-ASCII digits.
    if not (text.isascii() and text.isdigit()):
        raise ParseError(source, line, f"{what}: expected a number, got {text[:60]!r}")
    if len(text) > 20:  # more than any kernel counter; int() refuses 4,300+ digits
        raise ParseError(source, line, f"{what}: {len(text)} digits, out of range")
    return int(text)


def _parse_int(text: str, source: str, line: int | None, what: str) -> int:
    if text.startswith("-"):
        return -_parse_uint(text[1:], source, line, what)
    return _parse_uint(text, source, line, what)


def _key_text(key: ServiceKey) -> str:
    return f"{key[0].upper()} {key[1]}"


class _Lines:
    """The non-blank lines after ipvsadm's three title lines, split into tokens."""

    def __init__(self, text: str, source: str) -> None:
        self._source = source
        self._text = text
        self._numbered = [
            (number, tokens)
            for number, tokens in enumerate((line.split() for line in text.splitlines()), 1)
            if tokens
        ]
        self._body_from = 0

    def expect_titles(self, title: list[str], dest_title: list[str]) -> None:
        numbered = self._numbered
        if not numbered or numbered[0][1][:3] != ["IP", "Virtual", "Server"]:
            # Usually ipvsadm's own error (module not loaded, no permission, not installed).
            raise ParseError(self._source, None, f"not ipvsadm output: {excerpt(self._text)}")
        for index, expected in ((1, title), (2, dest_title)):
            if len(numbered) <= index or numbered[index][1] != expected:
                number = numbered[index][0] if len(numbered) > index else None
                raise ParseError(
                    self._source, number, f"expected title line {' '.join(expected)!r}"
                )
        self._body_from = 3

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        return iter(self._numbered[self._body_from :])
