"""The lab's topology: names, addresses and forwarded ports, as pure data.

The shape is the seed's (one LB with the VIP on lo and an IPVS UDP service with `sh` and
masquerade, N gateways with one identical wg0, M clients whose Endpoint is the VIP), but the
underlay addresses are the lab's own (10.77.x / 10.78.x inside the guest), never the seed's.
Clients sit behind the LB on their own segment, so every gateway reply crosses the LB, as on
the internet; management (sshd) has a segment of its own so that a test can cut a gateway's
data link and still watch it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SERVICE_PORT = 51280
VIP = "10.77.255.1"
TUNNEL_NETWORK = "10.255.0.0/24"
TUNNEL_GATEWAY = "10.255.0.1"
KEEPALIVE = 15
LB_LAN = "10.77.0.1"
LB_WAN = "10.77.1.1"
MGMT_ROOT = "10.78.0.1"
DEFAULT_BASE_PORT = 2220


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

    @property
    def ssh_hosts(self) -> tuple[LabHost, ...]:
        return (self.lb, *self.gateways)


def build_topology(
    gateways: int = 2, clients: int = 2, base_port: int = DEFAULT_BASE_PORT
) -> Topology:
    if not 1 <= gateways <= 50:
        raise ValueError("gateways must be between 1 and 50")
    if not 0 <= clients <= 200:
        raise ValueError("clients must be between 0 and 200")
    lb = LabHost(name="wg-lb", netns="lb", mgmt="10.78.0.2", ssh_port=base_port + 1)
    gws = tuple(
        LabGateway(
            name=f"wg-gateway-{i:02d}",
            netns=f"gw{i}",
            mgmt=f"10.78.0.{10 + i}",
            ssh_port=base_port + 1 + i,
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
    return Topology(base_port=base_port, lb=lb, gateways=gws, clients=cls, control_port=base_port)
