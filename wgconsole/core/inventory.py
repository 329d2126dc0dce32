"""The inventory as typed, immutable records (the loader lives in `inventory`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wgconsole.core.records import Endpoint

LOCAL_HOST = "local"
DEFAULT_SSH_USER = "root"
DEFAULT_SSH_PORT = 22

# The settings that ~/.ssh/config may also give (its User and Port).
SshGiven = Literal["user", "port"]


@dataclass(frozen=True, slots=True)
class SshSettings:
    user: str = DEFAULT_SSH_USER
    port: int = DEFAULT_SSH_PORT
    identity_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    sudo: bool = False
    # What the inventory wrote (on the host or in its `ssh:` defaults), even when it equals
    # the built-in default: as with OpenSSH's command line over its config file, those win
    # over ~/.ssh/config, which fills in only what the inventory left out.
    given: frozenset[SshGiven] = frozenset()

    def is_given(self, key: SshGiven) -> bool:
        """Whether `key` was set on purpose. A value other than the built-in default can only
        have been, so settings made in code without `given` keep what they say."""
        if key in self.given:
            return True
        if key == "user":
            return self.user != DEFAULT_SSH_USER
        return self.port != DEFAULT_SSH_PORT


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
class Probe:
    """A prober's identity: a peer on every gateway with no AllowedIPs (it can route nothing),
    whose key completes handshakes for `wgconsole probe`. Not a client."""

    name: str
    public_key: str


@dataclass(frozen=True, slots=True)
class Inventory:
    path: str
    service: Service
    ssh: SshSettings
    load_balancers: tuple[LoadBalancer, ...]
    gateways: tuple[Gateway, ...]
    tunnel: Tunnel
    clients: tuple[Client, ...] = ()
    # The site this inventory describes (a name): a constant label on every exported series,
    # so one Prometheus tells several bastions' fleets apart. None: a single site.
    site: str | None = None
    probes: tuple[Probe, ...] = ()

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
