"""`host: local`: read IPVS and WireGuard straight from this machine's kernel over netlink.

Netlink has no command that lists IPVS connections, so the table still comes from
/proc/net/ip_vs_conn. Of the director facts, the addresses come from netlink and the
net.ipv4.vs sysctls from /proc/sys; the sync daemons and the timeouts (pyroute2 0.9.7 leaves
IPVS_CMD_GET_DAEMON/GET_CONFIG undecoded) and keepalived's report (it answers only a signal,
with a file) come from commands only: a local LB's observation has them None.

Raw attributes are read with `.get()`: pyroute2's `from_message()`
drops the statistics. WireGuard replies are merged across messages (large peer lists are
split) and the private key attribute is never read.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wgconsole.core.records import (
    FWD_METHODS,
    Endpoint,
    GatewayObservation,
    IpvsDest,
    IpvsService,
    LbObservation,
    VsSysctls,
    WgInterface,
    WgPeer,
)
from wgconsole.poll.parsers.director import parse_sysctls
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.parsers.ipvs_proc import parse_bool_sysctl, parse_ip_vs_conn
from wgconsole.poll.parsers.op_records import local_state_text, parse_op_state

PROTOCOLS = {socket.IPPROTO_UDP: "udp", socket.IPPROTO_TCP: "tcp", 132: "sctp"}
IFF_UP = 0x1
EXPIRE_NODEST = Path("/proc/sys/net/ipv4/vs/expire_nodest_conn")
VS_SYSCTLS = Path("/proc/sys/net/ipv4/vs")
IP_VS_CONN = Path("/proc/net/ip_vs_conn")


def read_lb(name: str, *, conns: bool = True) -> LbObservation:
    from pyroute2 import IPVS, IPVSService  # imported late: it is slow to import

    clock = time.time()
    services = []
    with IPVS() as ipvs:
        for msg in ipvs.service("dump"):
            svc = msg.get("IPVS_CMD_ATTR_SERVICE")
            key = IPVSService(
                af=svc.get("IPVS_SVC_ATTR_AF"),
                protocol=svc.get("IPVS_SVC_ATTR_PROTOCOL"),
                addr=svc.get("IPVS_SVC_ATTR_ADDR"),
                port=svc.get("IPVS_SVC_ATTR_PORT"),
            )
            dests = tuple(
                _dest(d.get("IPVS_CMD_ATTR_DEST")) for d in ipvs.dest("dump", service=key)
            )
            services.append(_service(svc, dests))
    try:
        expire: bool | None = parse_bool_sysctl(EXPIRE_NODEST.read_text())
    except OSError:
        expire = None
    table = parse_ip_vs_conn(IP_VS_CONN.read_text()) if conns and IP_VS_CONN.exists() else []
    drains, locks = parse_op_state(local_state_text())
    problems: list[str] = []
    try:
        sysctls: VsSysctls | None = parse_sysctls(_sysctl_text())
    except ParseError as exc:
        sysctls = None
        problems.append(str(exc))
    return LbObservation(
        host=name,
        clock=clock,
        services=tuple(services),
        conns=tuple(table),
        expire_nodest_conn=expire,
        drain_records=drains,
        locks=locks,
        addresses=_addresses(),
        sysctls=sysctls,
        director_problems=tuple(problems),
    )


def _addresses() -> tuple[str, ...]:
    """Every local address, as `ip -o addr` lists them (parsers.director.parse_addresses)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = (msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS") for msg in ipr.get_addr())
        return tuple(ipaddress.ip_address(a).compressed for a in found if a)


def _sysctl_text() -> str:
    """The net.ipv4.vs sysctls as `grep -s . DIR/*` prints them (no IPVS module: none)."""
    lines = []
    for path in sorted(VS_SYSCTLS.glob("*")) if VS_SYSCTLS.is_dir() else []:
        try:
            value = path.read_text().strip()
        except OSError:
            continue  # grep -s skips it too
        if value:
            lines.append(f"{path}:{value}")
    return "\n".join(lines)


def _service(svc: Any, dests: tuple[IpvsDest, ...]) -> IpvsService:
    flags = svc.get("IPVS_SVC_ATTR_FLAGS") or {}
    return IpvsService(
        protocol=PROTOCOLS.get(svc.get("IPVS_SVC_ATTR_PROTOCOL"), "unknown"),
        vip=Endpoint(str(svc.get("IPVS_SVC_ATTR_ADDR")), int(svc.get("IPVS_SVC_ATTR_PORT") or 0)),
        scheduler=str(svc.get("IPVS_SVC_ATTR_SCHED_NAME")),
        flags=int(flags.get("flags", 0)),
        timeout=int(svc.get("IPVS_SVC_ATTR_TIMEOUT") or 0),
        dests=dests,
    )


def _dest(d: Any) -> IpvsDest:
    stats = d.get("IPVS_DEST_ATTR_STATS64") or d.get("IPVS_DEST_ATTR_STATS")

    def stat(key: str) -> int:
        return int(stats.get(key) or 0) if stats is not None else 0

    return IpvsDest(
        endpoint=Endpoint(str(d.get("IPVS_DEST_ATTR_ADDR")), int(d.get("IPVS_DEST_ATTR_PORT"))),
        weight=int(d.get("IPVS_DEST_ATTR_WEIGHT")),
        forward=FWD_METHODS.get(int(d.get("IPVS_DEST_ATTR_FWD_METHOD")) & 7, "unknown"),
        active_conns=int(d.get("IPVS_DEST_ATTR_ACTIVE_CONNS") or 0),
        inactive_conns=int(d.get("IPVS_DEST_ATTR_INACT_CONNS") or 0),
        u_threshold=int(d.get("IPVS_DEST_ATTR_U_THRESH") or 0),
        l_threshold=int(d.get("IPVS_DEST_ATTR_L_THRESH") or 0),
        conns=stat("IPVS_STATS_ATTR_CONNS"),
        in_packets=stat("IPVS_STATS_ATTR_INPKTS"),
        out_packets=stat("IPVS_STATS_ATTR_OUTPKTS"),
        in_bytes=stat("IPVS_STATS_ATTR_INBYTES"),
        out_bytes=stat("IPVS_STATS_ATTR_OUTBYTES"),
    )


def read_gateway(name: str, interface: str) -> GatewayObservation:
    from pyroute2 import IPRoute, WireGuard  # imported late: it is slow to import

    clock = time.time()
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=interface)
        if not index:
            return GatewayObservation.missing(name, clock, interface)
        link = ipr.get_links(index[0])[0]
        link_up = bool(link["flags"] & IFF_UP)
    with WireGuard() as wg:
        messages = wg.info(interface)
        wgi = _interface(interface, messages)
    return GatewayObservation(host=name, clock=clock, link_up=link_up, interface=wgi)


def _interface(interface: str, messages: Iterable[Any]) -> WgInterface:
    public_key = ""
    listen_port = 0
    fwmark = 0
    peers: list[WgPeer] = []
    for msg in messages:
        # Only public attributes are read: WGDEVICE_A_PRIVATE_KEY is never touched.
        if msg.get("WGDEVICE_A_PUBLIC_KEY") is not None:
            public_key = _key(msg.get("WGDEVICE_A_PUBLIC_KEY"))
            listen_port = int(msg.get("WGDEVICE_A_LISTEN_PORT") or 0)
            fwmark = int(msg.get("WGDEVICE_A_FWMARK") or 0)
        peers.extend(_peer(p) for p in msg.get("WGDEVICE_A_PEERS") or ())
    return WgInterface(
        name=interface,
        public_key=public_key,
        listen_port=listen_port,
        fwmark=fwmark,
        peers=tuple(peers),
    )


def _key(value: Any) -> str:
    raw = value.get("value") if hasattr(value, "get") else value
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _peer(p: Any) -> WgPeer:
    endpoint = p.get("WGPEER_A_ENDPOINT")
    handshake = p.get("WGPEER_A_LAST_HANDSHAKE_TIME")
    psk = p.get("WGPEER_A_PRESHARED_KEY")
    return WgPeer(
        public_key=_key(p.get("WGPEER_A_PUBLIC_KEY")),
        has_preshared_key=psk is not None and _key(psk) != "A" * 43 + "=",
        endpoint=Endpoint(endpoint["addr"], int(endpoint["port"])) if endpoint else None,
        allowed_ips=tuple(a["addr"] for a in p.get("WGPEER_A_ALLOWEDIPS") or () if "addr" in a),
        latest_handshake=int(handshake["tv_sec"]) if handshake else 0,
        rx_bytes=int(p.get("WGPEER_A_RX_BYTES") or 0),
        tx_bytes=int(p.get("WGPEER_A_TX_BYTES") or 0),
        keepalive=int(p.get("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL") or 0),
    )
