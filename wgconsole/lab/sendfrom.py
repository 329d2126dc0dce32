"""Send one UDP datagram from each of many source addresses (run inside a lab namespace).

Used to ask the real kernel where `sh` sends each source: every datagram that IPVS accepts
leaves a connection entry naming its real server; a source that gets no entry was dropped.
Standard library only (a raw socket with IP_HDRINCL), so it starts quickly in the guest.
Bounded: at most 100,000 datagrams per run, paced by --interval.

    python -m wgconsole.lab.sendfrom VIP PORT < sources.txt   (lines: ADDR or ADDR:PORT)
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time

MAX_DATAGRAMS = 100_000
PAYLOAD = b"wgconsole-lab-probe"


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


def datagram(src: str, sport: int, dst: str, dport: int) -> bytes:
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    udp_len = 8 + len(PAYLOAD)
    pseudo = s + d + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + PAYLOAD
    udp = udp[:6] + struct.pack("!H", _checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    total = 20 + udp_len
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, socket.IPPROTO_UDP, 0, s, d)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return ip + udp


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("vip")
    p.add_argument("port", type=int)
    p.add_argument("--interval", type=float, default=0.0005, help="seconds between datagrams")
    args = p.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    sent = 0
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        if sent >= MAX_DATAGRAMS:
            break
        addr, _, port = text.partition(":")
        sock.sendto(datagram(addr, int(port or 40000), args.vip, args.port), (args.vip, 0))
        sent += 1
        if args.interval:
            time.sleep(args.interval)
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
