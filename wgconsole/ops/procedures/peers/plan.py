"""Peer add and remove, planned: from a fleet snapshot, pure; nothing is changed.


The gateways carry ONE identical wg0, so a peer exists on all of them or on none: a client
hashed (or failed over) onto a gateway that lacks it cannot connect. An operation is a plan
(pure, from a fleet snapshot: `plan_peer_add`, `plan_peer_remove`) and an execution under the
service lock (`execute_peer_add`, `execute_peer_remove`) that re-reads every gateway, changes
them one after the other (live `wg set`, then an atomic edit of the config file with a backup,
done on the gateway itself because that file holds its private key), verifies that every
gateway carries the same peers, and on any failure rolls every touched gateway back.

An add or remove cut short where the rollback could not reach a gateway (the connection was
lost) leaves a peer on some gateways only: `status` shows it as `config-drift`, naming the
gateways that lack it, and the plans here say how to get out. `peer add NAME --public-key K`
for a key that is on some gateways only *finishes* it (adds it, live and in the config file,
only where it is missing, with the allowed IP and keepalive it already has), and
`peer remove K` rolls it back (removes it wherever it is).

Nothing here ever holds a gateway's private key; a generated client private key is kept in a
`PrivateKey` (hidden repr) and written only to the operator's `--output` file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wgconsole.config.inventory_edit import Section, client_line
from wgconsole.core.fleet import ClientView, Fleet, ProbeView, short_key
from wgconsole.core.inventory import Client, Gateway, Inventory, Probe
from wgconsole.ops.hostcmd.clientconf import (
    endpoint_text,
    host_prefix,
)
from wgconsole.ops.hostcmd.wgconf import (
    LivePeer,
)
from wgconsole.ops.machinery import validate
from wgconsole.ops.machinery.errors import ValidationError

MAX_KEEPALIVE = 65535
PeerSets = dict[str, dict[str, LivePeer]]  # gateway name -> public key -> peer


# --- plans ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerAddPlan:
    name: str
    public_key: str | None  # None: a key pair is generated locally at execution
    address: str  # the client's tunnel address (no prefix)
    keepalive: int
    server_public_key: str  # the gateways' one public key, for the client's [Peer]
    endpoint: str  # VIP:port
    client_allowed_ips: str  # the tunnel network, the client's AllowedIPs
    gateways: tuple[Gateway, ...]
    inventory_path: str
    warnings: tuple[str, ...] = ()
    # Finishing an add cut short: the gateways that already carry the peer (live), and
    # whether the inventory already lists the client (then it is not edited).
    finishing: tuple[str, ...] = ()
    in_inventory: bool = False

    @property
    def generate_key(self) -> bool:
        return self.public_key is None

    @property
    def peer_allowed_ip(self) -> str:
        return host_prefix(self.address)

    def describe(self) -> list[str]:
        key = "<generated>" if self.public_key is None else self.public_key
        lines = [
            f"Add peer {self.name}, address {self.peer_allowed_ip}, keepalive {self.keepalive}"
        ]
        if self.finishing:
            lines.append(
                f"  FINISHING an interrupted change: the peer is already on "
                f"{', '.join(self.finishing)}; it is added only where it is missing (live "
                f"and in the config file). `wgconsole peer remove {key}` would roll it back."
            )
        if self.generate_key:
            lines.append(
                "  a key pair is generated locally; the private key is written only to the "
                "--output file (mode 0600), nowhere else"
            )
        else:
            lines.append(f"  public key {key} (the client keeps its own private key)")
        for gw in self.gateways:
            lines.append(
                f"  {gw.name}: wg set {gw.interface} peer {abbrev(key)} allowed-ips "
                f"{self.peer_allowed_ip} persistent-keepalive {self.keepalive}"
            )
            lines.append(
                f"  {gw.name}: append a [Peer] block (# {self.name}) to {gw.config} "
                f"(backup {gw.config}.wgconsole-bak-<time>)"
            )
        entry = client_line(Client(self.name, key, self.address))
        if self.in_inventory:
            lines.append(f"  {self.inventory_path}: already lists {self.name} (unchanged)")
        else:
            lines.append(f"  {self.inventory_path}: clients += {entry}")
        lines.append(
            f"  client config: Endpoint {self.endpoint}, PublicKey {abbrev(self.server_public_key)}"
            f", AllowedIPs {self.client_allowed_ips}"
        )
        lines += [f"  warning: {w}" for w in self.warnings]
        return lines


@dataclass(frozen=True)
class PeerRemovePlan:
    public_key: str
    name: str | None
    address: str | None
    present_on: tuple[str, ...]  # gateways carrying the peer live at plan time
    gateways: tuple[Gateway, ...]
    in_inventory: bool
    inventory_path: str
    warnings: tuple[str, ...] = ()
    section: Section = "clients"  # the inventory's list that names it (a prober: probes)

    @property
    def label(self) -> str:
        return self.name or abbrev(self.public_key)

    def describe(self) -> list[str]:
        what = f"{self.name} ({abbrev(self.public_key)})" if self.name else self.public_key
        lines = [f"Remove peer {what}" + (f", address {self.address}" if self.address else "")]
        for gw in self.gateways:
            if gw.name in self.present_on:
                lines.append(
                    f"  {gw.name}: wg set {gw.interface} peer {abbrev(self.public_key)} remove"
                )
            else:
                lines.append(f"  {gw.name}: not a live peer there (nothing to remove live)")
            lines.append(
                f"  {gw.name}: remove its [Peer] block from {gw.config}, if any "
                f"(backup {gw.config}.wgconsole-bak-<time>)"
            )
        if self.in_inventory:
            lines.append(f"  {self.inventory_path}: remove its item from `{self.section}:`")
        return lines + [f"  warning: {w}" for w in self.warnings]


def plan_peer_add(
    inventory: Inventory,
    fleet: Fleet,
    name: str,
    public_key: str | None = None,
    address: str | None = None,
    *,
    keepalive: int | None = None,
) -> PeerAddPlan:
    """Validate everything against the snapshot; changes nothing."""
    validate.name(name)
    server_key = server_public_key(inventory, fleet)
    peers = fleet_peer_sets(inventory, fleet)
    if public_key is not None:
        validate.public_key(public_key)
        on = [gw for gw, ps in peers.items() if public_key in ps]
        if on and len(on) < len(inventory.gateways):
            return _plan_finish(inventory, peers, name, public_key, address, keepalive, server_key)
    check_new_name(inventory, name)
    if public_key is not None:
        _check_new_key(inventory, peers, public_key, server_key)
    hosts, wide = _addresses_in_use(inventory, peers)
    chosen = _choose_address(inventory, address, hosts, wide)
    svc = inventory.service
    return PeerAddPlan(
        name=name,
        public_key=public_key,
        address=chosen,
        keepalive=checked_keepalive(inventory.tunnel.keepalive if keepalive is None else keepalive),
        server_public_key=server_key,
        endpoint=endpoint_text(svc.vip, svc.port),
        client_allowed_ips=inventory.tunnel.network,
        gateways=inventory.gateways,
        inventory_path=inventory.path,
        warnings=tuple(_drift_warnings(peers, inventory)),
    )


def precheck_peer_add(
    name: str, public_key: str | None, address: str | None, keepalive: int | None
) -> None:
    """What can be checked in a `peer add` without the fleet: before anything is sent."""
    validate.name(name)
    if public_key is not None:
        validate.public_key(public_key)
    if address is not None:
        validate.ip_address(address)
    if keepalive is not None:
        checked_keepalive(keepalive)


def _plan_finish(
    inventory: Inventory,
    peers: PeerSets,
    name: str,
    key: str,
    address: str | None,
    keepalive: int | None,
    server_key: str,
) -> PeerAddPlan:
    """The add of a peer that some gateways already carry: finish it on the others."""
    on = tuple(gw.name for gw in inventory.gateways if key in peers.get(gw.name, {}))
    copies = {peers[gw][key] for gw in on}
    back = f"`wgconsole peer remove {key}` rolls it back"
    if len(copies) > 1:
        shown = "; ".join(f"{gw}: {peers[gw][key].describe()}" for gw in on)
        raise ValidationError(f"{abbrev(key)} differs between gateways ({shown}): {back}")
    (existing,) = copies
    if existing.has_psk:
        raise ValidationError(
            f"{abbrev(key)} has a preshared key on {', '.join(on)}: finish it by hand, or {back}"
        )
    nets = [ipaddress.ip_network(a, strict=False) for a in existing.allowed_ips]
    if len(nets) != 1 or nets[0].num_addresses != 1:
        raise ValidationError(
            f"{abbrev(key)} has allowed IPs {', '.join(existing.allowed_ips) or '(none)'} on "
            f"{', '.join(on)}, not one address: finish it by hand, or {back}"
        )
    have = str(nets[0].network_address)
    if address is not None and str(ipaddress.ip_address(address)) != have:
        raise ValidationError(f"{abbrev(key)} already has address {have} on {', '.join(on)}")
    if keepalive is not None and keepalive != existing.keepalive:
        raise ValidationError(
            f"{abbrev(key)} already has keepalive {existing.keepalive} on {', '.join(on)}"
        )
    client = inventory.client_by_key(key)
    if client is not None and client.name != name:
        raise ValidationError(f"public key: already the inventory's client {client.name!r}")
    if client is None:
        check_new_name(inventory, name)
    if key == server_key:
        raise ValidationError("public key: that is the gateways' own public key")
    svc = inventory.service
    return PeerAddPlan(
        name=name,
        public_key=key,
        address=have,
        keepalive=existing.keepalive,
        server_public_key=server_key,
        endpoint=endpoint_text(svc.vip, svc.port),
        client_allowed_ips=inventory.tunnel.network,
        gateways=inventory.gateways,
        inventory_path=inventory.path,
        warnings=tuple(w for w in _drift_warnings(peers, inventory) if key not in w),
        finishing=on,
        in_inventory=client is not None,
    )


def plan_peer_remove(inventory: Inventory, fleet: Fleet, name_or_key: str) -> PeerRemovePlan:
    key, client = _resolve_peer(inventory, name_or_key)
    server_public_key(inventory, fleet)  # every gateway must answer
    peers = fleet_peer_sets(inventory, fleet)
    present = tuple(gw.name for gw in inventory.gateways if key in peers.get(gw.name, {}))
    if not present and client is None:
        raise ValidationError(f"{abbrev(key)} is not a peer on any gateway nor in the inventory")
    warnings = [w for w in _drift_warnings(peers, inventory) if key not in w]
    if present and len(present) < len(inventory.gateways):
        warnings.append(f"the peer is only on {', '.join(present)}: removed there")
    return PeerRemovePlan(
        public_key=key,
        name=None if client is None else client.name,
        address=client.address if isinstance(client, Client) else None,
        present_on=present,
        gateways=inventory.gateways,
        in_inventory=client is not None,
        inventory_path=inventory.path,
        warnings=tuple(warnings),
        section="probes" if isinstance(client, Probe) else "clients",
    )


def fleet_peer_sets(inventory: Inventory, fleet: Fleet) -> PeerSets:
    """Every gateway's peers (allowed IPs and keepalive) as the snapshot saw them, the
    probers' included."""
    sets: PeerSets = {gw.name: {} for gw in inventory.gateways}
    carried: tuple[ClientView | ProbeView, ...] = (*fleet.clients, *fleet.probes)
    for client in carried:
        for peer in client.per_gateway:
            sets.setdefault(peer.gateway, {})[client.public_key] = LivePeer(
                tuple(sorted(peer.allowed_ips)), peer.keepalive
            )
    return sets


def abbrev(key: str) -> str:
    return short_key(key) if len(key) == 44 else key


def checked_keepalive(value: int) -> int:
    if not 0 <= value <= MAX_KEEPALIVE:
        raise ValidationError(f"keepalive {value}: must be between 0 (off) and {MAX_KEEPALIVE}")
    return value


def check_new_name(inventory: Inventory, name: str) -> None:
    validate.name(name)
    if any(c.name == name for c in inventory.clients):
        raise ValidationError(f"name {name!r}: already an inventory client")


def server_public_key(inventory: Inventory, fleet: Fleet) -> str:
    keys: dict[str, str] = {}
    for gw in inventory.gateways:
        view = fleet.gateway(gw.name)
        if view is None or not view.reachable or view.public_key is None:
            reason = (view.error if view else None) or "no interface read"
            raise ValidationError(
                f"{gw.name} did not answer ({reason}): peers change on every gateway at once, "
                "or not at all"
            )
        keys[gw.name] = view.public_key
    if len(set(keys.values())) > 1:
        shown = ", ".join(f"{n} {abbrev(k)}" for n, k in keys.items())
        raise ValidationError(f"the gateways' public keys differ ({shown}): fix that drift first")
    return next(iter(keys.values()))


def _check_new_key(inventory: Inventory, peers: PeerSets, key: str, server_key: str) -> None:
    if key == server_key:
        raise ValidationError("public key: that is the gateways' own public key")
    client = inventory.client_by_key(key)
    if client is not None:
        raise ValidationError(f"public key: already the inventory's client {client.name!r}")
    on = [gw for gw, ps in peers.items() if key in ps]
    if on:
        raise ValidationError(f"public key: already a peer on {', '.join(on)}")


def _addresses_in_use(
    inventory: Inventory, peers: PeerSets
) -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """Host addresses taken (peers' /32s, inventory clients), and wider allowed networks."""
    hosts = {str(ipaddress.ip_address(c.address)) for c in inventory.clients}
    wide: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for gw_peers in peers.values():
        for peer in gw_peers.values():
            for allowed in peer.allowed_ips:
                net = ipaddress.ip_network(allowed, strict=False)
                if net.num_addresses == 1:
                    hosts.add(str(net.network_address))
                else:
                    wide.append(net)
    return hosts, wide


def _choose_address(
    inventory: Inventory,
    address: str | None,
    hosts: set[str],
    wide: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    if address is not None:
        chosen = validate.tunnel_address(inventory, address, hosts)
        _check_not_routed(chosen, wide)
        return chosen
    if not wide:
        return validate.next_free_address(inventory, hosts)
    taken = set(hosts)
    while True:  # a peer routing a whole range: skip its addresses one by one
        candidate = validate.next_free_address(inventory, taken)
        if not any(ipaddress.ip_address(candidate) in net for net in wide):
            return candidate
        taken.add(candidate)


def _check_not_routed(
    address: str, wide: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> None:
    addr = ipaddress.ip_address(address)
    for net in wide:
        if addr in net:
            raise ValidationError(f"address {addr}: inside {net}, a peer's AllowedIPs")


def _drift_warnings(peers: PeerSets, inventory: Inventory) -> Iterable[str]:
    sets = list(peers.items())
    if len({frozenset(p.items()) for _, p in sets}) <= 1:
        return
    yield (
        "the gateways' peer sets already differ (config drift); only this peer is changed, "
        "the drift stays"
    )
    # A peer on some gateways only is what an interrupted add or remove leaves: say how out.
    keys = {k for _, ps in sets for k in ps}
    for key in sorted(keys):
        on = [gw for gw, ps in sets if key in ps]
        if len(on) == len(sets):
            continue
        client = inventory.client_by_key(key)
        name = client.name if client else "NAME"
        yield (
            f"peer {key} is on {', '.join(on)} only (an interrupted peer add or remove?): "
            f"`wgconsole peer add {name} --public-key {key}` finishes the add, "
            f"`wgconsole peer remove {key}` removes it everywhere"
        )


def _resolve_peer(inventory: Inventory, name_or_key: str) -> tuple[str, Client | Probe | None]:
    """The key, and the inventory's client or prober it is (None: neither)."""
    entries: tuple[Client | Probe, ...] = (*inventory.clients, *inventory.probes)
    for entry in entries:
        if entry.name == name_or_key or entry.public_key == name_or_key:
            return entry.public_key, entry
    try:
        key = validate.public_key(name_or_key)
    except ValidationError:
        raise ValidationError(
            f"{name_or_key!r}: no client of that name in the inventory (nor a prober), nor a "
            "public key"
        ) from None
    return key, None
