"""`wg show IF dump` and `wg show all dump` (wireguard-tools), tab-separated.

The first line of an interface carries its private key. It is dropped on sight: no
record, repr or error message built here can contain it. Preshared keys are reduced to
"has one or not". Error messages therefore never quote a line of a dump, only single
fields of correctly split lines, and even those are withheld when they look like a piece
of a key (a damaged line can move one anywhere). ParseError redacts whole keys on top.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from itertools import repeat
from typing import NoReturn

from wgconsole.core.bulk import Columns, LineMemo
from wgconsole.core.records import Endpoint, WgInterface, WgPeer
from wgconsole.poll.parsers.errors import ParseError, excerpt

SOURCE_DUMP = "wg show dump"
SOURCE_DUMP_ALL = "wg show all dump"

NONE = "(none)"
NO_PUBLIC_KEY = ""  # WgInterface.public_key of an interface without a private key
_INTERFACE_FIELDS = 4  # private-key public-key listen-port fwmark
_PEER_FIELDS = 8
# 32 bytes in base64: 43 characters, the last one carrying 2 padding bits (so one of 16).
_PUBLIC_KEY = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
# A piece of a key, as far as error messages go: 8+ base64 characters that are neither a
# number nor an ordinary word (keys are random, so a fragment almost never is one).
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{8,}")
_PLAIN_RUN = re.compile(r"[A-Z]?[a-z]+|[0-9]+")


def parse_wg_dump(text: str, interface: str, memo: LineMemo[WgPeer] | None = None) -> WgInterface:
    """The interface `interface` from the output of `wg show <interface> dump`.

    With a `memo` of the same gateway's previous dumps, a peer line that has not changed
    gives the very peer record it gave then (idle peers' lines do not change).
    """
    lines = text.splitlines()
    head = _interface_fields(lines[0] if lines else "", _INTERFACE_FIELDS, SOURCE_DUMP, text, 1)
    builder = _InterfaceBuilder(interface, head, 1, SOURCE_DUMP)
    peer_lines = lines[1:]
    if memo is None:
        peers = _peers_by_column(peer_lines)
    else:
        peers = memo.parse(peer_lines, _peers_by_column)
    if peers is None:
        return _peers_by_line(builder, lines)
    builder.peers = peers
    return builder.build()


def _peers_by_line(builder: _InterfaceBuilder, lines: list[str]) -> WgInterface:
    """The reference pass over the peer lines, which names the line of any error."""
    for number, line in enumerate(lines[1:], 2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != _PEER_FIELDS:
            raise ParseError(
                SOURCE_DUMP, number, f"peer line: expected {_PEER_FIELDS} fields, got {len(fields)}"
            )
        builder.add_peer(fields, number)
    return builder.build()


def parse_wg_dump_all(text: str) -> dict[str, WgInterface]:
    """Every interface of `wg show all dump`, by name, in output order.

    Each line starts with the interface name; an interface line has 5 fields, a peer line
    9, and a peer follows the line of its own interface.
    """
    builders: dict[str, _InterfaceBuilder] = {}
    current: _InterfaceBuilder | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line.count("\t") == _PEER_FIELDS:
            fields = line.split("\t")
            if current is None or current.name != fields[0]:
                raise ParseError(
                    SOURCE_DUMP_ALL, number, "peer line does not follow its interface's line"
                )
            current.add_peer(fields[1:], number)
            continue
        head = _interface_fields(line, _INTERFACE_FIELDS + 1, SOURCE_DUMP_ALL, text, number)
        name = head.pop(0)
        if name in builders:
            raise ParseError(SOURCE_DUMP_ALL, number, f"interface {_shown(name)} listed twice")
        current = builders[name] = _InterfaceBuilder(name, head, number, SOURCE_DUMP_ALL)
    return {name: builder.build() for name, builder in builders.items()}


def _interface_fields(line: str, expected: int, source: str, text: str, number: int) -> list[str]:
    """The fields of an interface line, less the private key (the 4th field from the end)."""
    fields = line.split("\t")
    if len(fields) != expected:
        # Without tabs this is an error message (stderr is merged), which is worth showing;
        # with tabs it is a broken dump line that may hold a private key: never show it.
        if "\t" in line:
            raise ParseError(
                source,
                number,
                f"expected {expected} fields on an interface line"
                + (f" or {_PEER_FIELDS + 1} on a peer line" if source == SOURCE_DUMP_ALL else ""),
            )
        raise ParseError(source, number, f"unexpected output: {_message_lines(text)}")
    del fields[-4]
    return fields


def _message_lines(text: str) -> str:
    """What of `text` is safe to quote: lines that read like an error message.

    Dump lines are tab-separated; a dump cut short inside its first field has no tab but
    no space either, and is part of a private key. Messages (`Unable to access interface:
    No such device`) have spaces, and anything in them that could be a key is scrubbed.
    """
    if not text.strip():
        return "(no output)"
    shown = [line for line in text.splitlines() if " " in line and "\t" not in line]
    if not shown:
        return "(not shown: it may hold key material)"
    return excerpt(_scrub("\n".join(shown)))


class _InterfaceBuilder:
    def __init__(self, name: str, head: list[str], number: int, source: str) -> None:
        """`head`: public key, listen port, fwmark (the private key is already gone)."""
        self.name = name
        self._source = source
        public_key, port, fwmark = head
        self._public_key = self._interface_key(public_key, number)
        self._listen_port = _uint(port, "listen port", source, number)
        self._fwmark = _fwmark(fwmark, source, number)
        self.peers: list[WgPeer] = []

    def add_peer(self, fields: list[str], number: int) -> None:
        self.peers.append(_peer(fields, self._source, number))

    def build(self) -> WgInterface:
        return WgInterface(
            self.name, self._public_key, self._listen_port, self._fwmark, tuple(self.peers)
        )

    def _interface_key(self, key: str, number: int) -> str:
        if key == NONE:
            return NO_PUBLIC_KEY
        _check_key(key, "interface public key", self._source, number)
        return key


def _peer(fields: list[str], source: str, number: int) -> WgPeer:
    public_key, preshared, endpoint, allowed, handshake, rx, tx, keepalive = fields
    _check_key(public_key, "peer public key", source, number)
    if keepalive == "off":
        keepalive = "0"
    # One check for the four counters: this runs for every peer of every poll.
    numbers = handshake + rx + tx + keepalive
    if not (numbers.isascii() and numbers.isdigit()) or "" in (handshake, rx, tx, keepalive):
        _raise_bad_number(fields, source, number)
    return WgPeer(
        public_key,
        preshared != NONE,
        None if endpoint == NONE else _endpoint(endpoint, source, number),
        _allowed_ips(allowed, source, number),
        int(handshake),
        int(rx),
        int(tx),
        int(keepalive),
    )


_PEERS = Columns(
    WgPeer,
    (
        "public_key",
        "has_preshared_key",
        "endpoint",
        "allowed_ips",
        "latest_handshake",
        "rx_bytes",
        "tx_bytes",
        "keepalive",
    ),
)
_ENDPOINTS = Columns(Endpoint, ("address", "port"))
# Every public key of a dump, one per line: checked by one regex match instead of 10,000.
_PUBLIC_KEY_LINES = re.compile(r"(?:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=\n)*")
_NUMBER_FREE = {"off": "0"}


def _peers_by_column(lines: list[str]) -> list[WgPeer] | None:
    """The same peers as the line-by-line pass, or None if any line is not as expected.

    Built for 10,000 peers per gateway and poll: every check and conversion runs over a
    whole column at once (C-level loops, one regex match for all keys); anything unusual
    (a blank or short line, any bad field, an IPv6 endpoint) is left to the reference pass.
    """
    if not lines:
        return []
    rows = list(map(str.split, lines, repeat("\t")))
    if set(map(len, rows)) != {_PEER_FIELDS}:
        return None
    keys, preshared, endpoints, allowed, handshakes, rx, tx, keepalives = zip(*rows, strict=True)
    del rows
    if not _PUBLIC_KEY_LINES.fullmatch("\n".join(keys) + "\n"):
        return None
    keepalives = tuple(map(_NUMBER_FREE.get, keepalives, keepalives))
    counters = (handshakes, rx, tx, keepalives)
    digits = "".join(map("".join, counters))
    if not (digits.isascii() and digits.isdigit()) or any("" in c for c in counters):
        return None
    allowed_ips = _allowed_ips_column(allowed)
    peer_endpoints = _endpoints_column(endpoints)
    if allowed_ips is None or peer_endpoints is None:
        return None
    return _PEERS.build(
        keys,
        map(NONE.__ne__, preshared),
        peer_endpoints,
        allowed_ips,
        *(map(int, column) for column in counters),
    )


def _allowed_ips_column(column: tuple[str, ...]) -> list[tuple[str, ...]] | None:
    """`_allowed_ips` of each field, or None where the reference pass must decide."""
    networks = [() if text == NONE else tuple(text.split(",")) for text in column]
    slashes = [0 if text == NONE else text.count("/") for text in column]
    if slashes != list(map(len, networks)):
        return None
    return networks


def _endpoints_column(column: tuple[str, ...]) -> list[Endpoint | None] | None:
    """`_endpoint` of each field (None for `(none)`), or None for the reference pass.

    Only the IPv4 form is taken here: inet_pton checks every address, and the ports must
    be plain decimal numbers up to 65535.
    """
    present = [text for text in column if text != NONE]
    if not present:
        return [None] * len(column)
    hosts, seps, ports = zip(*map(str.rpartition, present, repeat(":")), strict=True)
    digits = "".join(ports)
    if "" in seps or "" in ports or not (digits.isascii() and digits.isdigit()):
        return None
    try:
        for _ in map(socket.inet_pton, repeat(socket.AF_INET), hosts):
            pass
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None
    numbers = list(map(int, ports))
    if max(numbers) > 0xFFFF:
        return None
    built = iter(_ENDPOINTS.build(hosts, numbers))
    return [None if text == NONE else next(built) for text in column]


def _raise_bad_number(fields: list[str], source: str, number: int) -> NoReturn:
    """Name the counter that failed _peer's combined check."""
    names = ("latest handshake", "rx bytes", "tx bytes", "keepalive")
    for name, value in zip(names, fields[4:], strict=True):
        if not (name == "keepalive" and value == "off"):
            _uint(value, name, source, number)
    raise AssertionError("unreachable: _peer found a bad counter")


def _check_key(key: str, what: str, source: str, number: int) -> None:
    if not _PUBLIC_KEY.fullmatch(key):
        # The value is not shown: a malformed key might be part of a private one.
        raise ParseError(source, number, f"{what} is not a 44-character base64 key")


def _endpoint(text: str, source: str, number: int) -> Endpoint:
    """`1.2.3.4:51820`, `[fd00::1]:51820` or `[fe80::1%eth0]:51820`, as wg prints them."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ParseError(source, number, f"bad endpoint {_shown(text)}")
    try:
        if host.startswith("[") and host.endswith("]"):
            address = str(ipaddress.IPv6Address(host[1:-1]))
        else:
            # inet_pton is strict (four decimal parts, no leading zeros) and ~10x cheaper
            # than ipaddress, which matters with thousands of peers.
            socket.inet_pton(socket.AF_INET, host)
            address = host
    except (ValueError, OSError):
        raise ParseError(source, number, f"bad endpoint {_shown(text)}") from None
    port_number = _uint(port, "endpoint port", source, number)
    if port_number > 0xFFFF:
        raise ParseError(source, number, f"bad endpoint {_shown(text)}")
    return Endpoint(address, port_number)


def _allowed_ips(text: str, source: str, number: int) -> tuple[str, ...]:
    if text == NONE:
        return ()
    networks = text.split(",")
    if text.count("/") != len(networks):  # cheap test first: one per peer and poll
        for network in networks:
            if network.count("/") != 1:
                raise ParseError(source, number, f"bad allowed IP {_shown(network)}")
    return tuple(networks)


def _fwmark(text: str, source: str, number: int) -> int:
    """`off`, or `0x...` as wg prints it (a plain number is accepted too)."""
    if text == "off":
        return 0
    digits, base = (text[2:], 16) if text[:2].lower() == "0x" else (text, 10)
    try:
        if digits.isascii() and digits.isalnum():
            return int(digits, base)
    except ValueError:
        pass
    raise ParseError(source, number, f"bad fwmark {_shown(text)}")


def _uint(text: str, what: str, source: str, number: int) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    raise ParseError(source, number, f"{what}: expected a number, got {_shown(text)}")


def _shown(value: str) -> str:
    """`value` quoted for an error message, unless it could be a piece of a key.

    Fields are only quoted when the line has the right number of fields, so they are not
    keys; but a damaged line can still carry a fragment of one into any column.
    """
    if _scrub(value) != value:
        return "(value not shown: it looks like key material)"
    return repr(value)


def _scrub(text: str) -> str:
    return _BASE64_RUN.sub(_scrub_run, text)


def _scrub_run(match: re.Match[str]) -> str:
    run = match.group()
    return run if _PLAIN_RUN.fullmatch(run) else "<redacted>"
