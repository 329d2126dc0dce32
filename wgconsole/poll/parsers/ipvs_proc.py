"""The kernel's own IPVS files: /proc/net/ip_vs_conn, /proc/net/ip_vs, and vs sysctls.

Addresses are printed in hex there (IPv4 as 8 digits in network order, IPv6 as full
colon-separated groups) and ports as 4 hex digits.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from functools import partial
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import TypeVar

from wgconsole.core.bulk import Columns, LineMemo
from wgconsole.core.records import (
    Endpoint,
    ForwardMethod,
    IpvsConn,
    IpvsDest,
    IpvsService,
    ServiceFlag,
)
from wgconsole.poll.parsers.errors import ParseError, excerpt
from wgconsole.poll.parsers.ipvsadm import FWM_ADDRESS_V4, FWM_ADDRESS_V6, FWM_PROTOCOL

SOURCE_CONN = "/proc/net/ip_vs_conn"
SOURCE_SERVICES = "/proc/net/ip_vs"
SOURCE_SYSCTL = "sysctl"

_CONN_TITLE = ["Pro", "FromIP", "FPrt", "ToIP", "TPrt", "DestIP", "DPrt", "State", "Expires"]
_CONN_FIELDS = 9  # PEName and PEData follow only for entries of a persistence engine
_SERVICES_TITLES = (
    ["Prot", "LocalAddress:Port", "Scheduler", "Flags"],
    ["->", "RemoteAddress:Port", "Forward", "Weight", "ActiveConn", "InActConn"],
)
# What the kernel's ip_vs_proto_name() prints; anything else means misaligned or garbage.
_PROTOCOL_NAMES = frozenset({"TCP", "UDP", "SCTP", "IP", "ICMPv6"})
_OTHER_PROTOCOL = re.compile(r"IP_[0-9]+")
# The kernel's ip_vs_fwd_name(): anything unknown is printed as Masq.
_FORWARD: dict[str, ForwardMethod] = {
    "Masq": "masq",
    "Local": "local",
    "Tunnel": "tunnel",
    "Route": "route",
}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_T = TypeVar("_T")


class _BadField(Exception):
    """A field that does not convert; the caller adds source and line."""


def _hex_address(text: str) -> str:
    if len(text) == 8 and _HEX_DIGITS.issuperset(text):
        return socket.inet_ntoa(bytes.fromhex(text))
    if ":" in text and "%" not in text:  # the kernel prints no scope id; ipaddress takes any
        try:
            return ipaddress.IPv6Address(text).compressed
        except ValueError:
            pass
    raise _BadField(f"bad address {text!r}: expected 8 hex digits or an IPv6 address")


def _hex_port(text: str) -> int:
    if len(text) == 4 and _HEX_DIGITS.issuperset(text):
        return int(text, 16)
    raise _BadField(f"bad port {text!r}: expected 4 hex digits")


def _protocol(text: str) -> str:
    if text in _PROTOCOL_NAMES or _OTHER_PROTOCOL.fullmatch(text):
        return text.lower()
    raise _BadField(f"unknown protocol {text!r}")


def _decimal(text: str, what: str) -> int:
    # 20 digits hold any of the kernel's counters; int() refuses 4,300+ with a ValueError.
    if text.isascii() and text.isdigit() and len(text) <= 20:
        return int(text)
    raise _BadField(f"{what}: expected a number up to 20 digits, got {text[:40]!r}")


class _Converted(dict[str, _T]):
    """Converts each distinct word once: few distinct addresses, ports, states repeat."""

    def __init__(self, convert: Callable[[str], _T]) -> None:
        super().__init__()
        self._convert = convert

    def __missing__(self, key: str) -> _T:
        value = self[key] = self._convert(key)
        return value


class _Endpoints(dict[tuple[str, str], Endpoint]):
    """(hex address, hex port) -> Endpoint, for the few virtual and real servers."""

    def __init__(self) -> None:
        super().__init__()
        self.addresses = _Converted(_hex_address)
        self.ports = _Converted(_hex_port)

    def __missing__(self, key: tuple[str, str]) -> Endpoint:
        value = self[key] = Endpoint(self.addresses[key[0]], self.ports[key[1]])
        return value


class _Remainders(dict[str, tuple[Endpoint, Endpoint, str, int]]):
    """An entry's text after the client port -> (virtual, dest, state, expires).

    That text repeats: a few virtual/real server pairs, a few states, and expiry seconds
    within the timeouts, so most of a table converts by one lookup per entry.
    """

    def __init__(self, endpoints: _Endpoints) -> None:
        super().__init__()
        self._endpoints = endpoints

    def __missing__(self, key: str) -> tuple[Endpoint, Endpoint, str, int]:
        f = key.split()
        if len(f) < _CONN_FIELDS - 3:
            raise _BadField(f"expected at least {_CONN_FIELDS} fields")
        virtual = self._endpoints[f[0], f[1]]
        dest = self._endpoints[f[2], f[3]]
        value = self[key] = (virtual, dest, f[4], _decimal(f[5], "Expires"))
        return value


def parse_ip_vs_conn(text: str, memo: LineMemo[IpvsConn] | None = None) -> list[IpvsConn]:
    """The entries of /proc/net/ip_vs_conn, in file order.

    Built for ~50,000 lines per poll. A column-wise pass does the work in C-level loops;
    anything it is not sure of (blank or short lines, any bad field) is left to the
    line-by-line pass, which is the reference behaviour and gives errors with line numbers.
    With a `memo` of the same LB's previous tables, an entry seen before is not parsed
    again (see _conns_reusing).
    """
    header, _, body = text.partition("\n")
    if header.split()[: len(_CONN_TITLE)] != _CONN_TITLE:
        raise ParseError(SOURCE_CONN, None, f"not {SOURCE_CONN}: {excerpt(text)}")
    lines = body.splitlines()
    conns = _conns_by_column(lines) if memo is None else _conns_reusing(lines, memo)
    if conns is None:
        conns = _conns_by_line(lines)
    return conns


def _conns_by_line(lines: list[str]) -> list[IpvsConn]:
    endpoints = _Endpoints()
    addresses, ports = endpoints.addresses, endpoints.ports
    protocols = _Converted(_protocol)
    states = _Converted(str)
    conns = []
    for number, line in enumerate(lines, 2):
        f = line.split()
        if not f:
            continue
        if len(f) < _CONN_FIELDS:
            raise ParseError(
                SOURCE_CONN, number, f"expected at least {_CONN_FIELDS} fields, got {len(f)}"
            )
        try:
            conn = IpvsConn(
                protocols[f[0]],
                Endpoint(addresses[f[1]], ports[f[2]]),
                endpoints[f[3], f[4]],
                endpoints[f[5], f[6]],
                states[f[7]],
                _decimal(f[8], "Expires"),
            )
        except _BadField as error:
            raise ParseError(SOURCE_CONN, number, str(error)) from None
        conns.append(conn)
    return conns


def _conns_by_column(lines: list[str]) -> list[IpvsConn] | None:
    """The same result as _conns_by_line, or None if any line is not as expected.

    Each line is split only into protocol, client address, client port and the rest,
    the columns are converted with map() (C-level loops) and the rest by _Remainders.
    """
    if not lines:
        return []
    columns = _ipv4_columns(lines)
    if columns is None:
        rows = list(map(str.split, lines, repeat(None), repeat(3)))
        if set(map(len, rows)) != {4}:
            return None  # blank or short lines: leave them to the reference pass
        columns = tuple(zip(*rows, strict=True))
        del rows
    protocols, addresses, ports, remainders = columns
    endpoints = _Endpoints()
    try:
        protocol_column = list(map(_Converted(_protocol).__getitem__, protocols))
        clients = _ENDPOINTS.build(_client_addresses(addresses, endpoints), _client_ports(ports))
        rests = map(_Remainders(endpoints).__getitem__, remainders)
        virtuals, dests, states, expires = zip(*rests, strict=True)
    except (_BadField, ValueError, OSError):
        return None
    return _CONNS.build(protocol_column, clients, virtuals, dests, states, expires)


# Where the kernel's "%-3s %08X %04X " puts the fields of an IPv4 entry of a 3-letter protocol.
_REST_FROM = 18
_PROTOCOL_AT, _ADDRESS_AT, _PORT_AT, _REST_AT = (
    itemgetter(slice(0, 3)),
    itemgetter(slice(4, 12)),
    itemgetter(slice(13, 17)),
    itemgetter(slice(_REST_FROM, None)),
)
_SPACES_AT = (itemgetter(3), itemgetter(12), itemgetter(17))


def _ipv4_columns(lines: list[str]) -> tuple[Sequence[str], ...] | None:
    """Protocol, client address, client port and the rest of every line, cut at their fixed
    places (no list per line, as str.split makes); None unless every line is an IPv4 entry
    of a 3-letter protocol (TCP, UDP), with nothing but hex digits in the cut fields."""
    if min(map(len, lines)) <= _REST_FROM or any(set(map(at, lines)) != {" "} for at in _SPACES_AT):
        return None
    addresses = list(map(_ADDRESS_AT, lines))
    ports = list(map(_PORT_AT, lines))
    if " " in "".join(addresses) or " " in "".join(ports):
        return None
    return list(map(_PROTOCOL_AT, lines)), addresses, ports, list(map(_REST_AT, lines))


def _conns_reusing(lines: list[str], memo: LineMemo[IpvsConn]) -> list[IpvsConn] | None:
    """`_conns_by_column(lines)`, parsing only the entries that `memo` does not know.

    An entry's expiry counts down between two polls, but the rest of its line (protocol,
    client, virtual and real server, state) stays the same for as long as the client does:
    entries are remembered by that rest. A known entry whose expiry did not move is the
    very record of the previous table; one whose expiry moved is copied with the new one.
    """
    if memo.empty:
        # A first poll: nothing to look up, and the table is indexed only if a next poll
        # looks it up.
        conns = _conns_by_column(lines)
        if conns is not None:
            memo.remember_later(partial(_by_rest, lines, conns))
        return conns
    split = _split_expiries(lines)
    if split is None:
        return _conns_by_column(lines)
    rests, expiries = split
    known = memo.recall(rests)
    unknown = [i for i, conn in enumerate(known) if conn is None]
    new = _conns_by_column([lines[i] for i in unknown])
    if new is None:
        return None
    if list(map(_EXPIRES, new)) != [expiries[i] for i in unknown]:
        # The expiry is not the last field of these lines (a persistence engine's fields
        # follow it): what precedes their last field does not identify them.
        return _conns_by_column(lines)
    fresh = iter(new)
    conns = [next(fresh) if conn is None else conn for conn in known]
    moved = []
    if list(map(_EXPIRES, conns)) != expiries:
        moved = [i for i, conn in enumerate(conns) if conn.expires != expiries[i]]
    if moved:
        old = [conns[i] for i in moved]
        copies = _CONNS.build(
            map(_PROTOCOL, old),
            map(_CLIENT, old),
            map(_VIRTUAL, old),
            map(_DEST, old),
            map(_STATE, old),
            [expiries[i] for i in moved],
        )
        for i, conn in zip(moved, copies, strict=True):
            conns[i] = conn
    memo.remember(rests, conns)
    return conns


def _split_expiries(lines: list[str]) -> tuple[tuple[str, ...], list[int]] | None:
    """Each line's text before its last field, and that field as a number; None if there
    are no lines, a blank one, or a last field that is not a number."""
    split = list(map(str.rsplit, lines, repeat(None), repeat(1)))
    if not split or set(map(len, split)) != {2}:
        return None
    rests, expiry_texts = zip(*split, strict=True)
    del split
    digits = "".join(expiry_texts)
    if not (digits.isascii() and digits.isdigit()):
        return None  # e.g. a persistence engine's fields after the expiry
    if max(map(len, expiry_texts)) > 20:
        return None  # not a kernel counter; the reference pass says so
    return rests, list(map(int, expiry_texts))


def _by_rest(lines: list[str], conns: list[IpvsConn]) -> dict[str, IpvsConn]:
    """The entries parsed from `lines`, by their rest (see _conns_reusing)."""
    split = _split_expiries(lines)
    if split is None or list(map(_EXPIRES, conns)) != split[1]:
        return {}  # the lines' last field is not their expiry: nothing to reuse
    return dict(zip(split[0], conns, strict=True))


def _client_addresses(column: Sequence[str], endpoints: _Endpoints) -> list[str]:
    """Client addresses are mostly distinct, so caching them would only cost time."""
    try:
        # fromhex rejects non-hex digits and inet_ntoa anything but 4 bytes, so this
        # accepts exactly the 8-digit IPv4 form.
        return list(map(socket.inet_ntoa, map(bytes.fromhex, column)))
    except (ValueError, OSError):
        return list(map(endpoints.addresses.__getitem__, column))  # IPv6, or an error


def _client_ports(column: Sequence[str]) -> list[int]:
    if set(map(len, column)) != {4}:
        raise _BadField("port")
    bytes.fromhex("".join(column))  # rejects what int(x, 16) would let through: 0x, _, -
    return list(map(int, column, repeat(16)))


def parse_ip_vs(text: str) -> list[IpvsService]:
    """Services and dests of /proc/net/ip_vs (kernel order), for hosts without ipvsadm.

    This file does not show the scheduler flags (sh-fallback, sh-port): they are 0 here.
    Persistence and one-packet scheduling are printed, and kept.
    """
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    _check_services_titles(lines, text)
    endpoints = _Endpoints()
    services: list[IpvsService] = []
    dests: list[IpvsDest] = []
    number = 0
    try:
        for number, tokens in lines[3:]:  # noqa: B007 - `number` is read on error
            if tokens[0] == "->":
                if not services:
                    raise _BadField("real server line before any service")
                dests.append(_proc_dest(tokens, endpoints))
                continue
            _attach(services, dests)
            services.append(_proc_service(tokens, endpoints))
            dests = []
    except _BadField as error:
        raise ParseError(SOURCE_SERVICES, number, str(error)) from None
    _attach(services, dests)
    return [_fwm_family(service) for service in services]


def parse_bool_sysctl(text: str, source: str = SOURCE_SYSCTL) -> bool:
    """A boolean sysctl read with `cat` (e.g. /proc/sys/net/ipv4/vs/expire_nodest_conn).

    The kernel stores these as ints and treats any non-zero value as on.
    """
    value = text.strip()
    digits = value[1:] if value.startswith("-") else value
    if not (digits.isascii() and digits.isdigit()):
        raise ParseError(source, None, f"expected 0 or 1, got {excerpt(text)}")
    return int(value) != 0


def _check_services_titles(lines: list[tuple[int, list[str]]], text: str) -> None:
    if not lines or lines[0][1][:3] != ["IP", "Virtual", "Server"]:
        raise ParseError(SOURCE_SERVICES, None, f"not {SOURCE_SERVICES}: {excerpt(text)}")
    for index, expected in enumerate(_SERVICES_TITLES, 1):
        if len(lines) <= index or lines[index][1] != expected:
            number = lines[index][0] if len(lines) > index else None
            raise ParseError(SOURCE_SERVICES, number, f"expected title line {' '.join(expected)!r}")


def _proc_service(tokens: list[str], endpoints: _Endpoints) -> IpvsService:
    """`UDP  AC100001:C850 sh`, `TCP  [2001:0db8:...]:0050 rr`, `FWM  00000005 sh`.

    Any of them may go on with `ops` and `persistent TIMEOUT NETMASK`.
    """
    if len(tokens) < 3:
        raise _BadField(f"service line needs protocol, address and scheduler, got {tokens!r}")
    if tokens[0] == "FWM":
        mark = _hex_int(tokens[1], "firewall mark")
        # The family is only known from the dests; _fwm_family() fixes it afterwards.
        vip = Endpoint(FWM_ADDRESS_V4, mark)
        protocol = FWM_PROTOCOL
    else:
        vip = _hex_endpoint(tokens[1], endpoints)
        protocol = _protocol(tokens[0])
    flags, timeout = _proc_options(tokens[3:])
    return IpvsService(protocol, vip, tokens[2], flags, timeout)


def _proc_options(tokens: list[str]) -> tuple[int, int]:
    flags = 0
    timeout = 0
    if tokens[:1] == ["ops"]:
        flags |= int(ServiceFlag.ONEPACKET)
        tokens = tokens[1:]
    if tokens[:1] == ["persistent"]:
        if len(tokens) != 3 or not (tokens[1].isascii() and tokens[1].isdigit()):
            raise _BadField("expected 'persistent TIMEOUT NETMASK'")
        flags |= int(ServiceFlag.PERSISTENT)
        timeout = int(tokens[1])
    elif tokens:
        raise _BadField(f"unknown service option {tokens[0]!r}")
    return flags, timeout


def _proc_dest(tokens: list[str], endpoints: _Endpoints) -> IpvsDest:
    if len(tokens) != 6:
        raise _BadField(
            f"real server line needs address, forward, weight, active, inactive; "
            f"got {len(tokens) - 1} fields"
        )
    forward = _FORWARD.get(tokens[2])
    if forward is None:
        raise _BadField(f"unknown forwarding method {tokens[2]!r}")
    weight = _decimal(tokens[3], "Weight")
    active = _decimal(tokens[4], "ActiveConn")
    inactive = _decimal(tokens[5], "InActConn")
    endpoint = _hex_endpoint(tokens[1], endpoints)
    return IpvsDest(endpoint, weight, forward, active, inactive)


def _hex_endpoint(text: str, endpoints: _Endpoints) -> Endpoint:
    """`AC100001:C850` or `[2001:0db8:...:0001]:C850`."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise _BadField(f"expected ADDRESS:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise _BadField(f"bad IPv6 address in {text!r}")
    return endpoints[host, port]


def _hex_int(text: str, what: str) -> int:
    if text and _HEX_DIGITS.issuperset(text):
        return int(text, 16)
    raise _BadField(f"{what}: expected hex digits, got {text!r}")


def _attach(services: list[IpvsService], dests: list[IpvsDest]) -> None:
    if services and dests:
        services[-1] = dataclasses.replace(services[-1], dests=tuple(dests))


def _fwm_family(service: IpvsService) -> IpvsService:
    if service.protocol != FWM_PROTOCOL or not service.dests:
        return service
    if ":" not in service.dests[0].endpoint.address:
        return service
    return dataclasses.replace(service, vip=Endpoint(FWM_ADDRESS_V6, service.vip.port))


# Records built column-wise (see bulk.Columns): equal to IpvsConn(...) / Endpoint(...), and
# checked against the classes' fields at import.
_CONNS = Columns(IpvsConn, ("protocol", "client", "virtual", "dest", "state", "expires"))
_ENDPOINTS = Columns(Endpoint, ("address", "port"))
_PROTOCOL = attrgetter("protocol")
_CLIENT = attrgetter("client")
_VIRTUAL = attrgetter("virtual")
_DEST = attrgetter("dest")
_STATE = attrgetter("state")
_EXPIRES = attrgetter("expires")
