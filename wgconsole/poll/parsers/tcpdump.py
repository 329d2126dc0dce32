"""tcpdump's text output (`tcpdump -n -l -tt -x -i any`, Debian's 4.99) to `Packet` records.

Each packet is a header line, `EPOCH.USEC IFNAME DIR PROTO ...` (DIR: In, Out, B, M, P, the
Linux cooked v2 header's packet type), then its captured bytes from the network header on,
as hex lines `\\t0x0000:  4500 00b0 ...`. Only the time, the interface and the direction are
taken from the header line; the addresses, ports and lengths are read from the bytes
themselves (tcpdump's decoded text varies with versions and options). A packet is complete
when the next header line, or the end, comes: `TcpdumpReader` is fed line by line.
"""

from __future__ import annotations

import ipaddress
import re
import struct

from wgconsole.core.records import Endpoint
from wgconsole.core.trace import CaptureKind, Direction, Packet
from wgconsole.poll.parsers.errors import ParseError, excerpt

SOURCE = "tcpdump"
_HEADER = re.compile(r"(\d{1,12}\.\d{1,9}) (\S{1,32})\s+(In|Out|B|M|P)\s+(\S.*)")
_HEX = re.compile(r"\s+0x([0-9a-f]{4}):((?:\s+[0-9a-f]{2,4}){1,8})\s*")
_DIRECTIONS: dict[str, Direction | None] = {"In": "in", "Out": "out"}
UDP = 17
# A captured packet's bytes are bounded by its capture's snapshot length (a few hundred):
# more hex than this is not tcpdump's output for our captures.
MAX_CAPTURED = 4096


class TcpdumpReader:
    """Packets from one capture's output, fed a line at a time (`feed`, then `end`)."""

    def __init__(self, host: str, capture: CaptureKind) -> None:
        self.host = host
        self.capture = capture
        self.lines = 0
        self._header: tuple[float, str, Direction | None] | None = None
        self._header_line = 0
        self._data = bytearray()

    def feed(self, line: str) -> Packet | None:
        """The packet that `line` completes (the one before a new header), if any."""
        self.lines += 1
        if not line.strip():
            return None
        hexline = _HEX.fullmatch(line)
        if hexline is not None:
            if self._header is None:
                raise ParseError(SOURCE, self.lines, "packet bytes before any packet line")
            offset = int(hexline.group(1), 16)
            if offset != len(self._data):
                raise ParseError(SOURCE, self.lines, "packet bytes out of order")
            self._data += bytes.fromhex(hexline.group(2).replace(" ", "").replace("\t", ""))
            if len(self._data) > MAX_CAPTURED:
                raise ParseError(SOURCE, self.lines, "more packet bytes than any capture takes")
            return None
        header = _HEADER.fullmatch(line.rstrip("\n"))
        if header is None:
            raise ParseError(SOURCE, self.lines, f"not a tcpdump packet line: {excerpt(line)}")
        done = self.end()
        self._header = (float(header.group(1)), header.group(2), _DIRECTIONS.get(header.group(3)))
        self._header_line = self.lines
        return done

    def end(self) -> Packet | None:
        """The last packet, once the output ended."""
        if self._header is None:
            return None
        at, interface, direction = self._header
        data = bytes(self._data)
        self._header = None
        self._data = bytearray()
        try:
            return _packet(self.host, self.capture, at, interface, direction, data)
        except ValueError as exc:
            raise ParseError(SOURCE, self._header_line, str(exc)) from None


def _packet(
    host: str,
    capture: CaptureKind,
    at: float,
    interface: str,
    direction: Direction | None,
    data: bytes,
) -> Packet:
    if not data:
        raise ValueError("a packet line without its bytes")
    version = data[0] >> 4
    if version == 4:
        if len(data) < 20:
            raise ValueError("an IPv4 header cut short")
        header_len = (data[0] & 0x0F) * 4
        total, proto = struct.unpack_from(">H", data, 2)[0], data[9]
        src = str(ipaddress.IPv4Address(data[12:16]))
        dst = str(ipaddress.IPv4Address(data[16:20]))
    elif version == 6:
        if len(data) < 40:
            raise ValueError("an IPv6 header cut short")
        header_len = 40
        total, proto = 40 + struct.unpack_from(">H", data, 4)[0], data[6]
        src = str(ipaddress.IPv6Address(data[8:24]))
        dst = str(ipaddress.IPv6Address(data[24:40]))
    else:
        raise ValueError(f"not an IP packet (version {version})")
    if capture == "tunnel" or proto != UDP:
        if capture != "tunnel":
            raise ValueError("not a UDP packet in a capture of UDP")
        return Packet(host, capture, at, interface, direction, Endpoint(src, 0), Endpoint(dst, 0),
                      total)  # fmt: skip
    udp = data[header_len : header_len + 8]
    if len(udp) < 8:
        raise ValueError("a UDP header cut short")
    sport, dport, udp_len = struct.unpack_from(">HHH", udp)
    return Packet(
        host=host,
        capture=capture,
        time=at,
        interface=interface,
        direction=direction,
        src=Endpoint(src, sport),
        dst=Endpoint(dst, dport),
        length=max(0, udp_len - 8),
        head=data[header_len + 8 :],
    )
