"""Hand-made observations of the seed topology for model and findings tests.

Keys are obviously fake strings; no test ever holds anything that looks like a private key.
Every factory's defaults describe the healthy seed: alpha on gateway-01, beta on gateway-02, one
LB whose sh service has sh-fallback set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wgconsole.core.fleet import Fleet
from wgconsole.core.fleet_builder import build_fleet
from wgconsole.core.inventory import (
    Client,
    Gateway,
    Inventory,
    LoadBalancer,
    Service,
    SshSettings,
    Tunnel,
)
from wgconsole.core.records import (
    Endpoint,
    GatewayObservation,
    HostStatus,
    IpvsConn,
    IpvsDest,
    IpvsService,
    LbObservation,
    ServiceFlag,
    WgInterface,
    WgPeer,
)

NOW = 1_700_000_000.0
VIP = Endpoint("172.16.0.1", 51280)
GW1, GW2 = "wg-gateway-01", "wg-gateway-02"
GW1_RS = Endpoint("10.211.55.118", 51280)
GW2_RS = Endpoint("10.211.55.119", 51280)
ALPHA_EP = Endpoint("10.211.55.10", 40001)
BETA_EP = Endpoint("10.211.55.11", 40002)
GW_KEY = "gateway-fake-public-key"
ALPHA = "alpha-fake-public-key"
BETA = "beta-fake-public-key"
FALLBACK = ServiceFlag.HASHED | ServiceFlag.SH_FALLBACK


def make_inventory(
    clients: Sequence[tuple[str, str, str]] = (
        ("alpha", ALPHA, "10.255.0.2"),
        ("beta", BETA, "10.255.0.3"),
    ),
    gateways: Sequence[tuple[str, Endpoint]] = ((GW1, GW1_RS), (GW2, GW2_RS)),
    lbs: Sequence[str] = ("wg-lb",),
) -> Inventory:
    ssh = SshSettings()
    return Inventory(
        path="inventory.yaml",
        service=Service("udp", VIP.address, VIP.port, "sh"),
        ssh=ssh,
        load_balancers=tuple(LoadBalancer(n, "10.211.55.120", ssh) for n in lbs),
        gateways=tuple(Gateway(n, rs.address, ssh, real_server=rs) for n, rs in gateways),
        tunnel=Tunnel("10.255.0.0/24", "10.255.0.1"),
        clients=tuple(Client(n, k, a) for n, k, a in clients),
    )


def dest(
    endpoint: Endpoint, weight: int = 1, active: int = 0, inactive: int = 0, **kw: int
) -> IpvsDest:
    """`kw`: IpvsDest's optional thresholds and counters (u_threshold, in_packets, ...)."""
    return IpvsDest(endpoint, weight, "masq", active, inactive, **kw)


def service(
    dests: Sequence[IpvsDest] | None = None,
    flags: int = FALLBACK,
    scheduler: str = "sh",
    vip: Endpoint = VIP,
) -> IpvsService:
    dests = (dest(GW2_RS), dest(GW1_RS)) if dests is None else dests
    return IpvsService("udp", vip, scheduler, int(flags), dests=tuple(dests))


def conn(client: Endpoint, to: Endpoint, virtual: Endpoint = VIP) -> IpvsConn:
    return IpvsConn("udp", client, virtual, to, "UDP", 299)


HEALTHY_CONNS = (conn(ALPHA_EP, GW1_RS), conn(BETA_EP, GW2_RS))


def lb_obs(
    services: Sequence[IpvsService] | None = None,
    conns: Sequence[IpvsConn] = HEALTHY_CONNS,
    *,
    expire_nodest_conn: bool | None = True,
    host: str = "wg-lb",
) -> LbObservation:
    """`services` None: the healthy seed service; [] for an LB that lacks it."""
    services = (service(),) if services is None else services
    return LbObservation(host, NOW, tuple(services), tuple(conns), expire_nodest_conn)


def peer(
    key: str,
    endpoint: Endpoint | None = None,
    age: float | None = None,
    allowed: tuple[str, ...] = (),
    keepalive: int = 15,
    clock: float = NOW,
) -> WgPeer:
    handshake = 0 if age is None else int(clock - age)
    return WgPeer(
        key,
        has_preshared_key=False,
        endpoint=endpoint,
        allowed_ips=allowed,
        latest_handshake=handshake,
        rx_bytes=1000,
        tx_bytes=2000,
        keepalive=keepalive,
    )


def gw_obs(
    host: str,
    peers: Sequence[WgPeer],
    clock: float = NOW,
    *,
    link_up: bool | None = True,
    public_key: str = GW_KEY,
    listen_port: int = 51280,
    interface: bool = True,
    error: str | None = None,
) -> GatewayObservation:
    iface = WgInterface("wg0", public_key, listen_port, 0, tuple(peers)) if interface else None
    return GatewayObservation(host, clock, link_up, iface, error)


def alpha_on(
    endpoint: Endpoint | None, age: float | None, keepalive: int = 15, clock: float = NOW
) -> WgPeer:
    return peer(ALPHA, endpoint, age, ("10.255.0.2/32",), keepalive, clock)


def beta_on(endpoint: Endpoint | None, age: float | None, clock: float = NOW) -> WgPeer:
    return peer(BETA, endpoint, age, ("10.255.0.3/32",), clock=clock)


def healthy_gateways(clock2: float = NOW) -> dict[str, GatewayObservation | None]:
    """alpha lives on gateway-01, beta on gateway-02, as the LB entries say.

    `clock2`: gateway-02's own clock, to skew it from NOW; its peers' handshakes are as old on
    that clock as they would be on NOW.
    """
    return {
        GW1: gw_obs(GW1, [alpha_on(ALPHA_EP, 30), beta_on(None, None)]),
        GW2: gw_obs(
            GW2,
            [alpha_on(None, None, clock=clock2), beta_on(BETA_EP, 40, clock=clock2)],
            clock=clock2,
        ),
    }


def hosts_ok(inventory: Inventory | None = None) -> list[HostStatus]:
    """Every host of the inventory (the seed's by default) answered at NOW: LBs, then gateways."""
    inventory = inventory or make_inventory()
    roles = [(lb.name, "lb") for lb in inventory.load_balancers]
    roles += [(gw.name, "gateway") for gw in inventory.gateways]
    return [HostStatus(n, r, reachable=True, error=None, last_success=NOW) for n, r in roles]  # type: ignore[arg-type]


HEALTHY_LB = lb_obs()


def fleet(
    inventory: Inventory | None = None,
    lbs: Mapping[str, LbObservation | None] | None = None,
    gateways: Mapping[str, GatewayObservation | None] | None = None,
    hosts: Sequence[HostStatus] | None = None,
    lb: LbObservation | None = HEALTHY_LB,
) -> Fleet:
    """The fleet built at NOW; what is left out is the healthy seed's.

    `lb`: the seed's one LB (None: it did not answer); `lbs`, when given, replaces it, for
    inventories with other LBs.
    """
    inventory = inventory or make_inventory()
    return build_fleet(
        inventory,
        {"wg-lb": lb} if lbs is None else lbs,
        healthy_gateways() if gateways is None else gateways,
        hosts_ok(inventory) if hosts is None else hosts,
        NOW,
    )
