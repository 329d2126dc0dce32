"""The lab's topology: names, addresses and forwarded ports, as pure data.

The shape is the seed's (one LB with the VIP on lo and an IPVS UDP service with `sh` and
masquerade, N gateways with one identical wg0, M clients whose Endpoint is the VIP), but the
underlay addresses are the lab's own (10.77.x / 10.78.x inside the guest), never the seed's.
Clients sit behind the LB on their own segment, so every gateway reply crosses the LB, as on
the internet; management (sshd) has a segment of its own so that a test can cut a gateway's
data link and still watch it.

With `lbs=2` the LB is a director pair (`wg-lb-1`, the intended VRRP master, and `wg-lb-2`):
each has its own real address on every segment, and the addresses that the single LB holds
(the VIP, LB_LAN, LB_WAN) become VRRP virtual addresses that only the master holds. Gateways
and clients keep routing through LB_LAN and LB_WAN, so they reach the pair only through
whichever director is master.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

SERVICE_PORT = 51280
VIP = "10.77.255.1"
TUNNEL_NETWORK = "10.255.0.0/24"
TUNNEL_GATEWAY = "10.255.0.1"
KEEPALIVE = 15
LB_LAN = "10.77.0.1"
LB_WAN = "10.77.1.1"
MGMT_ROOT = "10.78.0.1"
DEFAULT_BASE_PORT = 2220
# The director pair's VRRP instance and IPVS sync daemon (one instance holds every virtual
# address, so the VIP and the routers the traffic goes through always move together).
VRRP_INSTANCE = "VI_WG"
VRRP_ROUTER_ID = 51
VRRP_ADVERT_INT = 1
SYNC_ID = 51
SYNC_INTERFACE = "lan"  # the segment VRRP adverts and the sync daemon's multicast use
MASTER_PRIORITY = 150
BACKUP_PRIORITY = 100


@dataclass(frozen=True, slots=True)
class LabHost:
    name: str  # inventory name
    netns: str  # namespace inside the guest
    mgmt: str  # address on the management segment (sshd)
    ssh_port: int  # 127.0.0.1 port on the host forwarded to its sshd


@dataclass(frozen=True, slots=True)
class LabGateway(LabHost):
    lan: str = ""

    @property
    def real_server(self) -> str:
        return f"{self.lan}:{SERVICE_PORT}"


@dataclass(frozen=True, slots=True)
class LabDirector(LabHost):
    """One LB of a director pair: its own real addresses (the VRRP ones are shared)."""

    lan: str = ""
    wan: str = ""
    priority: int = 0

    @property
    def initial_state(self) -> Literal["MASTER", "BACKUP"]:
        return "MASTER" if self.priority == MASTER_PRIORITY else "BACKUP"


@dataclass(frozen=True, slots=True)
class LabClient:
    name: str
    netns: str
    wan: str
    tunnel_address: str


@dataclass(frozen=True, slots=True)
class Topology:
    base_port: int
    lb: LabHost
    gateways: tuple[LabGateway, ...]
    clients: tuple[LabClient, ...]
    control_port: int = field(default=0)
    # The pair's other directors; `lb` is then the intended master (a LabDirector too).
    backup_lbs: tuple[LabDirector, ...] = ()

    @property
    def load_balancers(self) -> tuple[LabHost, ...]:
        return (self.lb, *self.backup_lbs)

    @property
    def directors(self) -> tuple[LabDirector, ...]:
        """The director pair, master first; empty for the single LB."""
        if isinstance(self.lb, LabDirector):
            return (self.lb, *self.backup_lbs)
        return ()

    @property
    def ssh_hosts(self) -> tuple[LabHost, ...]:
        return (*self.load_balancers, *self.gateways)


def topology_dict(topo: Topology) -> dict[str, object]:
    """The topology as topology.json records it (a single LB's record is as it always was)."""
    data = asdict(topo)
    if not topo.backup_lbs:
        del data["backup_lbs"]
    return data


def build_topology(
    gateways: int = 2, clients: int = 2, base_port: int = DEFAULT_BASE_PORT, lbs: int = 1
) -> Topology:
    if not 1 <= gateways <= 50:
        raise ValueError("gateways must be between 1 and 50")
    if not 0 <= clients <= 200:
        raise ValueError("clients must be between 0 and 200")
    if lbs not in (1, 2):
        raise ValueError("lbs must be 1 (one LB) or 2 (a director pair)")
    lb: LabHost
    backups: tuple[LabDirector, ...] = ()
    if lbs == 1:
        lb = LabHost(name="wg-lb", netns="lb", mgmt="10.78.0.2", ssh_port=base_port + 1)
    else:
        lb, *rest = (
            LabDirector(
                name=f"wg-lb-{k}",
                netns=f"lb{k}",
                mgmt=f"10.78.0.{1 + k}",
                ssh_port=base_port + k,
                lan=f"10.77.0.{1 + k}",
                wan=f"10.77.1.{1 + k}",
                priority=MASTER_PRIORITY if k == 1 else BACKUP_PRIORITY,
            )
            for k in (1, 2)
        )
        backups = tuple(rest)
    gws = tuple(
        LabGateway(
            name=f"wg-gateway-{i:02d}",
            netns=f"gw{i}",
            mgmt=f"10.78.0.{10 + i}",
            ssh_port=base_port + lbs + i,
            lan=f"10.77.0.{10 + i}",
        )
        for i in range(1, gateways + 1)
    )
    cls = tuple(
        LabClient(
            name=f"wg-client-{j}",
            netns=f"cl{j}",
            wan=f"10.77.1.{10 + j}",
            tunnel_address=f"10.255.0.{2 + j}",
        )
        for j in range(clients)
    )
    return Topology(
        base_port=base_port,
        lb=lb,
        gateways=gws,
        clients=cls,
        control_port=base_port,
        backup_lbs=backups,
    )
