"""The inventory as typed, immutable records (the loader lives in `inventory`)."""

from __future__ import annotations

from dataclasses import dataclass

from wgconsole.core.records import Endpoint

LOCAL_HOST = "local"


@dataclass(frozen=True, slots=True)
class SshSettings:
    user: str = "root"
    port: int = 22
    identity_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    sudo: bool = False


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    host: str  # an address or DNS name, or "local" for this machine (netlink)
    ssh: SshSettings

    @property
    def is_local(self) -> bool:
        return self.host == LOCAL_HOST


@dataclass(frozen=True, slots=True)
class Service:
    protocol: str
    vip: str
    port: int
    scheduler: str

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.vip, self.port)


@dataclass(frozen=True, slots=True)
class LoadBalancer(Host):
    pass


@dataclass(frozen=True, slots=True)
class Gateway(Host):
    real_server: Endpoint
    interface: str = "wg0"
    config: str = ""  # resolved by the loader: /etc/wireguard/<interface>.conf by default


@dataclass(frozen=True, slots=True)
class Tunnel:
    network: str
    gateway_address: str
    keepalive: int = 15


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    public_key: str
    address: str


@dataclass(frozen=True, slots=True)
class Inventory:
    path: str
    service: Service
    ssh: SshSettings
    load_balancers: tuple[LoadBalancer, ...]
    gateways: tuple[Gateway, ...]
    tunnel: Tunnel
    clients: tuple[Client, ...] = ()

    @property
    def hosts(self) -> tuple[Host, ...]:
        return (*self.load_balancers, *self.gateways)

    def gateway_for(self, real_server: Endpoint) -> Gateway | None:
        for gw in self.gateways:
            if gw.real_server == real_server:
                return gw
        return None

    def client_by_key(self, public_key: str) -> Client | None:
        for c in self.clients:
            if c.public_key == public_key:
                return c
        return None
