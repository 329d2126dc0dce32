"""`wg show IF dump` and `wg show all dump` (wireguard-tools), tab-separated.

The first line of an interface carries its private key. It is dropped on sight: no
record, repr or error message built here can contain it. Preshared keys are reduced to
"has one or not". Error messages therefore never quote a line of a dump, only single
fields of correctly split lines, and even those are withheld when they look like a piece
of a key (a damaged line can move one anywhere). ParseError redacts whole keys on top.

Every field with a known form is checked: keys (44 base64 characters of 32 bytes), allowed
IPs (each an address with a prefix length, as wg prints them), endpoints (`(none)`, `a.b.c.d:port`
or `[v6]:port`, with `%scope` an interface name or index), and numbers (in their kernel
type's range). A line that does not fit is the gateway's ParseError: nothing a host sends
reaches the model, and so the screen, unchecked.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from itertools import chain, repeat

from wgconsole.core.bulk import Columns, LineMemo
from wgconsole.core.records import Endpoint, WgInterface, WgPeer
from wgconsole.core.wgkey import KEY_PATTERN, is_wireguard_key
from wgconsole.poll.parsers.errors import ParseError, excerpt

SOURCE_DUMP = "wg show dump"
SOURCE_DUMP_ALL = "wg show all dump"

NONE = "(none)"
NO_PUBLIC_KEY = ""  # WgInterface.public_key of an interface without a private key
_INTERFACE_FIELDS = 4  # private-key public-key listen-port fwmark
_PEER_FIELDS = 8
# A piece of a key, as far as error messages go: 8+ base64 characters that are neither a
# number nor an ordinary word (keys are random, so a fragment almost never is one).
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{8,}")
_PLAIN_RUN = re.compile(r"[A-Z]?[a-z]+|[0-9]+")
# What the dump filter leaves in the secret fields (see poll.collector); a key-shaped value
# is accepted too (a capture made by hand, or an older filter): it is dropped all the same.
HIDDEN = "(hidden)"
_SECRET = re.compile(r"\(none\)|\(hidden\)|[A-Za-z0-9+/]{43}=")
_U64 = 1 << 64
_U32 = 1 << 32
_U16 = 1 << 16
_MAX_DIGITS = 20  # of a u64: longer text is never converted (int() of huge text is slow)
_SHOWN_CHARS = 40
# A prefix length as wg prints it: no sign, no leading zero.
_PREFIX = re.compile(r"0|[1-9][0-9]{0,2}")
# An endpoint's scope id: an interface index, or a name by the kernel's rule (1-15
# characters, no `/`, `:` or whitespace), kept to printable ASCII.
_SCOPE = re.compile(r"[0-9]{1,10}|[!-9;-~]{1,15}")
_SCOPE_FORBIDDEN = frozenset("/%[]")


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
        # Without tabs this is an error message (older captures merged stderr), worth showing;
        # with tabs it is a broken dump line that may hold a private key: never show it.
        if "\t" in line:
            raise ParseError(
                source,
                number,
                f"expected {expected} fields on an interface line"
                + (f" or {_PEER_FIELDS + 1} on a peer line" if source == SOURCE_DUMP_ALL else ""),
            )
        raise ParseError(source, number, f"unexpected output: {_message_lines(text)}")
    if not _SECRET.fullmatch(fields[-4]):
        raise ParseError(source, number, "private key field is neither hidden nor a key")
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
        self._listen_port = _uint(port, "listen port", source, number, _U16)
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
    if not _SECRET.fullmatch(preshared):
        raise ParseError(source, number, "preshared key field is neither (none), hidden nor a key")
    return WgPeer(
        public_key,
        preshared != NONE,
        None if endpoint == NONE else parse_endpoint(endpoint, source, number),
        _allowed_ips(allowed, source, number),
        _uint(handshake, "latest handshake", source, number, _U64),
        _uint(rx, "rx bytes", source, number, _U64),
        _uint(tx, "tx bytes", source, number, _U64),
        0 if keepalive == "off" else _uint(keepalive, "keepalive", source, number, _U16),
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
_PUBLIC_KEY_LINES = re.compile(rf"(?:{KEY_PATTERN}\n)*")
_NUMBER_FREE = {"off": "0"}
_HIDDEN_SECRETS = frozenset({NONE, HIDDEN})
# IPv4 prefix lengths (0-32, as wg prints them), one per line: one regex match for all.
_PREFIX4_LINES = re.compile(r"(?:(?:[0-9]|[12][0-9]|3[0-2])\n)*")
_PREFIX6_LINES = re.compile(r"(?:(?:[0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])\n)*")
_FAMILIES = ((False, socket.AF_INET, _PREFIX4_LINES), (True, socket.AF_INET6, _PREFIX6_LINES))


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
    if not _HIDDEN_SECRETS.issuperset(preshared):
        return None
    keepalives = tuple(map(_NUMBER_FREE.get, keepalives, keepalives))
    counters = (handshakes, rx, tx, keepalives)
    digits = "".join(map("".join, counters))
    if not (digits.isascii() and digits.isdigit()) or any("" in c for c in counters):
        return None
    if max(map(len, chain.from_iterable(counters))) > _MAX_DIGITS:
        return None
    values = [list(map(int, column)) for column in counters]
    if max(map(max, values[:3])) >= _U64 or max(values[3]) >= _U16:
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
        *values,
    )


def _allowed_ips_column(column: tuple[str, ...]) -> list[tuple[str, ...]] | None:
    """`_allowed_ips` of each field, or None where the reference pass must decide.

    inet_pton checks every address, one regex match per family every prefix length; any
    bad field goes to the reference pass, which names it.
    """
    networks = [() if text == NONE else tuple(text.split(",")) for text in column]
    slashes = [0 if text == NONE else text.count("/") for text in column]
    if slashes != list(map(len, networks)):
        return None
    flat = [network for nets in networks for network in nets]
    for v6, family, prefix_lines in _FAMILIES:
        chosen = [network for network in flat if (":" in network) is v6]
        if not chosen:
            continue
        addresses, _, prefixes = zip(*map(str.partition, chosen, repeat("/")), strict=True)
        if not prefix_lines.fullmatch("\n".join(prefixes) + "\n"):
            return None
        try:
            for _ in map(socket.inet_pton, repeat(family), addresses):
                pass
        except (OSError, ValueError):  # ValueError: an embedded NUL
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
    if max(map(len, ports)) > 5:
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


def _check_key(key: str, what: str, source: str, number: int) -> None:
    if not is_wireguard_key(key):
        # The value is not shown: a malformed key might be part of a private one.
        raise ParseError(source, number, f"{what} is not a 44-character base64 key")


def parse_endpoint(text: str, source: str, number: int | None) -> Endpoint:
    """`1.2.3.4:51820`, `[fd00::1]:51820` or `[fe80::1%eth0]:51820`, as wg prints them;
    ParseError for anything else (a scope id must be an interface name or index)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ParseError(source, number, f"bad endpoint {_shown(text)}")
    try:
        if host.startswith("[") and host.endswith("]"):
            inner = host[1:-1]
            bare, percent, scope = inner.partition("%")
            if percent and not _valid_scope(scope):
                raise ValueError("scope id")
            # inet_pton first: ipaddress alone takes any text after a `%`.
            socket.inet_pton(socket.AF_INET6, bare)
            address = str(ipaddress.IPv6Address(inner))
        else:
            # inet_pton is strict (four decimal parts, no leading zeros) and ~10x cheaper
            # than ipaddress, which matters with thousands of peers.
            socket.inet_pton(socket.AF_INET, host)
            address = host
    except (ValueError, OSError):
        raise ParseError(source, number, f"bad endpoint {_shown(text)}") from None
    if not (port.isascii() and port.isdigit()):
        raise ParseError(source, number, f"endpoint port: expected a number, got {_shown(port)}")
    if len(port) > 5 or int(port) >= _U16:
        raise ParseError(source, number, f"bad endpoint {_shown(text)}")
    return Endpoint(address, int(port))


def _valid_scope(scope: str) -> bool:
    return bool(_SCOPE.fullmatch(scope)) and _SCOPE_FORBIDDEN.isdisjoint(scope)


def allowed_ip_problem(network: str) -> str | None:
    """Why `network` is not an allowed IP as wg prints one (`10.0.0.2/32`, `fd00::2/128`),
    or None. Only the form is checked (host bits may be set)."""
    address, slash, prefix = network.partition("/")
    if not slash or not _PREFIX.fullmatch(prefix):
        return "expected ADDRESS/PREFIX"
    family, bits = (socket.AF_INET6, 128) if ":" in address else (socket.AF_INET, 32)
    try:
        socket.inet_pton(family, address)
    except (OSError, ValueError):
        return "not an IP address"
    if int(prefix) > bits:
        return f"prefix length over {bits}"
    return None


def _allowed_ips(text: str, source: str, number: int) -> tuple[str, ...]:
    if text == NONE:
        return ()
    networks = text.split(",")
    for network in networks:
        problem = allowed_ip_problem(network)
        if problem is not None:
            raise ParseError(source, number, f"bad allowed IP {_shown(network)}: {problem}")
    return tuple(networks)


def _fwmark(text: str, source: str, number: int) -> int:
    """`off`, or `0x...` as wg prints it (a plain number is accepted too)."""
    if text == "off":
        return 0
    digits, base = (text[2:], 16) if text[:2].lower() == "0x" else (text, 10)
    try:
        if digits.isascii() and digits.isalnum() and len(digits) <= 10:
            value = int(digits, base)
            if value < _U32:
                return value
    except ValueError:
        pass
    raise ParseError(source, number, f"bad fwmark {_shown(text)}")


def _uint(text: str, what: str, source: str, number: int, limit: int) -> int:
    """`text` as a number below `limit` (the field's kernel type), or ParseError."""
    if text.isascii() and text.isdigit():
        if len(text) <= _MAX_DIGITS and int(text) < limit:
            return int(text)
        raise ParseError(source, number, f"{what}: {_shown(text)} is out of range")
    raise ParseError(source, number, f"{what}: expected a number, got {_shown(text)}")


def _shown(value: str) -> str:
    """`value` quoted for an error message, unless it could be a piece of a key.

    Fields are only quoted when the line has the right number of fields, so they are not
    keys; but a damaged line can still carry a fragment of one into any column.
    """
    if _scrub(value) != value:
        return "(value not shown: it looks like key material)"
    if len(value) > _SHOWN_CHARS:
        return repr(value[: _SHOWN_CHARS - 3]) + "..."
    return repr(value)


def _scrub(text: str) -> str:
    return _BASE64_RUN.sub(_scrub_run, text)


def _scrub_run(match: re.Match[str]) -> str:
    run = match.group()
    return run if _PLAIN_RUN.fullmatch(run) else "<redacted>"
