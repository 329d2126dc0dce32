"""Add or remove a client peer on every gateway at once: live, in each config file, verified.

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
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgconsole.config.inventory_edit import (
    InventoryEditError,
    add_client,
    client_line,
    remove_client,
)
from wgconsole.config.inventory_file import InventoryError, load_inventory
from wgconsole.core.fleet import Fleet, short_key
from wgconsole.core.inventory import Client, Gateway, Inventory
from wgconsole.ops import validate
from wgconsole.ops.clientconf import (
    ClientConfig,
    build_client_config,
    check_new_file,
    endpoint_text,
    host_prefix,
)
from wgconsole.ops.context import OpContext
from wgconsole.ops.errors import OpError, ValidationError
from wgconsole.ops.keys import KeyPair
from wgconsole.ops.lock import service_lock
from wgconsole.ops.steps import Check, Step, Transaction, Undo
from wgconsole.ops.wgconf import (
    GatewayState,
    LivePeer,
    add_block_command,
    backup_path,
    live_remove_command,
    live_restore_command,
    live_set_command,
    parse_read,
    read_command,
    remove_block_command,
    restore_command,
)

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
                f"  {gw.name}: wg set {gw.interface} peer {_short(key)} allowed-ips "
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
            f"  client config: Endpoint {self.endpoint}, PublicKey {_short(self.server_public_key)}"
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

    @property
    def label(self) -> str:
        return self.name or _short(self.public_key)

    def describe(self) -> list[str]:
        what = f"{self.name} ({_short(self.public_key)})" if self.name else self.public_key
        lines = [f"Remove peer {what}" + (f", address {self.address}" if self.address else "")]
        for gw in self.gateways:
            if gw.name in self.present_on:
                lines.append(
                    f"  {gw.name}: wg set {gw.interface} peer {_short(self.public_key)} remove"
                )
            else:
                lines.append(f"  {gw.name}: not a live peer there (nothing to remove live)")
            lines.append(
                f"  {gw.name}: remove its [Peer] block from {gw.config}, if any "
                f"(backup {gw.config}.wgconsole-bak-<time>)"
            )
        if self.in_inventory:
            lines.append(f"  {self.inventory_path}: remove the client's line from `clients:`")
        lines += [f"  warning: {w}" for w in self.warnings]
        return lines


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
    server_key = _server_public_key(inventory, fleet)
    peers = fleet_peer_sets(inventory, fleet)
    if public_key is not None:
        validate.public_key(public_key)
        on = [gw for gw, ps in peers.items() if public_key in ps]
        if on and len(on) < len(inventory.gateways):
            return _plan_finish(inventory, peers, name, public_key, address, keepalive, server_key)
    _check_new_name(inventory, name)
    if public_key is not None:
        _check_new_key(inventory, peers, public_key, server_key)
    hosts, wide = _addresses_in_use(inventory, peers)
    chosen = _choose_address(inventory, address, hosts, wide)
    svc = inventory.service
    return PeerAddPlan(
        name=name,
        public_key=public_key,
        address=chosen,
        keepalive=_keepalive(inventory.tunnel.keepalive if keepalive is None else keepalive),
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
        _keepalive(keepalive)


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
        raise ValidationError(f"{_short(key)} differs between gateways ({shown}): {back}")
    (existing,) = copies
    if existing.has_psk:
        raise ValidationError(
            f"{_short(key)} has a preshared key on {', '.join(on)}: finish it by hand, or {back}"
        )
    nets = [ipaddress.ip_network(a, strict=False) for a in existing.allowed_ips]
    if len(nets) != 1 or nets[0].num_addresses != 1:
        raise ValidationError(
            f"{_short(key)} has allowed IPs {', '.join(existing.allowed_ips) or '(none)'} on "
            f"{', '.join(on)}, not one address: finish it by hand, or {back}"
        )
    have = str(nets[0].network_address)
    if address is not None and str(ipaddress.ip_address(address)) != have:
        raise ValidationError(f"{_short(key)} already has address {have} on {', '.join(on)}")
    if keepalive is not None and keepalive != existing.keepalive:
        raise ValidationError(
            f"{_short(key)} already has keepalive {existing.keepalive} on {', '.join(on)}"
        )
    client = inventory.client_by_key(key)
    if client is not None and client.name != name:
        raise ValidationError(f"public key: already the inventory's client {client.name!r}")
    if client is None:
        _check_new_name(inventory, name)
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
    _server_public_key(inventory, fleet)  # every gateway must answer
    peers = fleet_peer_sets(inventory, fleet)
    present = tuple(gw.name for gw in inventory.gateways if key in peers.get(gw.name, {}))
    if not present and client is None:
        raise ValidationError(f"{_short(key)} is not a peer on any gateway nor in the inventory")
    warnings = [w for w in _drift_warnings(peers, inventory) if key not in w]
    if present and len(present) < len(inventory.gateways):
        warnings.append(f"the peer is only on {', '.join(present)}: removed there")
    return PeerRemovePlan(
        public_key=key,
        name=None if client is None else client.name,
        address=None if client is None else client.address,
        present_on=present,
        gateways=inventory.gateways,
        in_inventory=client is not None,
        inventory_path=inventory.path,
        warnings=tuple(warnings),
    )


def fleet_peer_sets(inventory: Inventory, fleet: Fleet) -> PeerSets:
    """Every gateway's peers (allowed IPs and keepalive) as the snapshot saw them."""
    sets: PeerSets = {gw.name: {} for gw in inventory.gateways}
    for client in fleet.clients:
        for peer in client.per_gateway:
            sets.setdefault(peer.gateway, {})[client.public_key] = LivePeer(
                tuple(sorted(peer.allowed_ips)), peer.keepalive
            )
    return sets


def _short(key: str) -> str:
    return short_key(key) if len(key) == 44 else key


def _keepalive(value: int) -> int:
    if not 0 <= value <= MAX_KEEPALIVE:
        raise ValidationError(f"keepalive {value}: must be between 0 (off) and {MAX_KEEPALIVE}")
    return value


def _check_new_name(inventory: Inventory, name: str) -> None:
    validate.name(name)
    if any(c.name == name for c in inventory.clients):
        raise ValidationError(f"name {name!r}: already an inventory client")


def _server_public_key(inventory: Inventory, fleet: Fleet) -> str:
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
        shown = ", ".join(f"{n} {_short(k)}" for n, k in keys.items())
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


def _resolve_peer(inventory: Inventory, name_or_key: str) -> tuple[str, Client | None]:
    for client in inventory.clients:
        if client.name == name_or_key:
            return client.public_key, client
    try:
        key = validate.public_key(name_or_key)
    except ValidationError:
        raise ValidationError(
            f"{name_or_key!r}: no client of that name in the inventory, nor a public key"
        ) from None
    return key, inventory.client_by_key(key)


# --- results --------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerAddResult:
    name: str
    public_key: str
    address: str
    keepalive: int
    gateways: tuple[str, ...]
    backups: Mapping[str, str]  # gateway -> its config backup (on the gateway)
    config: ClientConfig  # holds a generated private key: print `display_config()` only
    output: Path | None  # where the full config (with the private key) was written
    inventory: Inventory | None  # reloaded after the edit; None if the edit failed
    warnings: tuple[str, ...] = ()

    def display_config(self) -> str:
        """The client config as it may be printed: any private key replaced by a pointer."""
        return self.config.display_text(self.output)

    def summary(self) -> list[str]:
        lines = [
            f"added {self.name} ({self.public_key}) as {host_prefix(self.address)} on "
            + ", ".join(self.gateways)
        ]
        lines += [f"  {gw}: config backup {path}" for gw, path in self.backups.items()]
        if self.output is not None:
            lines.append(f"  client config written to {self.output} (mode 0600)")
        if self.inventory is not None:
            lines.append(f"  recorded in {self.inventory.path}")
        return lines + [f"  warning: {w}" for w in self.warnings]


@dataclass(frozen=True)
class PeerRemoveResult:
    name: str | None
    public_key: str
    gateways: tuple[str, ...]  # gateways the peer (live or in the file) was removed from
    backups: Mapping[str, str]
    inventory: Inventory | None
    warnings: tuple[str, ...] = ()

    def summary(self) -> list[str]:
        label = f"{self.name} ({self.public_key})" if self.name else self.public_key
        where = ", ".join(self.gateways) or "no gateway"
        lines = [f"removed {label} from {where}"]
        lines += [f"  {gw}: config backup {path}" for gw, path in self.backups.items()]
        if self.inventory is not None:
            lines.append(f"  {self.inventory.path} updated")
        return lines + [f"  warning: {w}" for w in self.warnings]


# --- execution: shared machinery ------------------------------------------------------


@dataclass
class _Run:
    """One gateway's part of the change: its state before, and the steps made for it (their
    attempts, in the transaction, say what happened, for the operator's report)."""

    gw: Gateway
    before: GatewayState
    backup: str
    need_live: bool = True  # False when finishing an add on a gateway that has the peer
    need_file: bool = True
    live: Step | None = None  # the live `wg set`, once made
    file: Step | None = None  # the config file's edit, once made
    check: Check | None = None  # after a rollback: is the gateway back as it was?

    def live_done(self, tx: Transaction) -> bool:
        attempt = tx.attempt(self.live)
        return attempt is not None and attempt.done

    def file_result(self, tx: Transaction) -> str | None:
        """What the edit script said ("written", "removed", "absent"); None: not run."""
        attempt = tx.attempt(self.file)
        return None if attempt is None or not attempt.done else str(attempt.value)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def read_gateways(ctx: OpContext, gateways: Sequence[Gateway], key: str) -> dict[str, GatewayState]:
    """Each gateway's live peers and the key's count in its config file (public data only)."""
    return {
        gw.name: parse_read(ctx.run(gw.name, read_command(gw, key), mutating=False).stdout)
        for gw in gateways
    }


def _peer_diff(gw: str, got: Mapping[str, LivePeer], want: Mapping[str, LivePeer]) -> list[str]:
    out = []
    for key in sorted(set(got) | set(want)):
        if got.get(key) == want.get(key):
            continue
        have, need = got.get(key), want.get(key)
        out.append(
            f"{gw}: peer {_short(key)} is "
            + ("absent" if have is None else have.describe())
            + ", expected "
            + ("absent" if need is None else need.describe())
        )
    return out[:5] + ([f"{gw}: and {len(out) - 5} more differences"] if len(out) > 5 else [])


def _verification(
    ctx: OpContext,
    gateways: Sequence[Gateway],
    key: str,
    expected: Mapping[str, Mapping[str, LivePeer]],
    want_count: int,
    same_before: bool,
) -> Iterator[Step]:
    """The steps that check the change as a whole, once every gateway's steps are done."""
    after: dict[str, GatewayState] = {}

    def every_gateway() -> None:
        after.update(read_gateways(ctx, gateways, key))
        problems: list[str] = []
        for gw in gateways:
            problems += _peer_diff(gw.name, after[gw.name].peers, expected[gw.name])
            count = after[gw.name].key_count
            if count != want_count:
                problems.append(
                    f"{gw.name}: {gw.config} has {count} [Peer] blocks for the key, "
                    f"expected {want_count}"
                )
        if problems:
            raise OpError("verification failed: " + "; ".join(problems))

    def identical() -> None:
        distinct = {frozenset(after[gw.name].peers.items()) for gw in gateways}
        if len(distinct) > 1:
            raise OpError("verification failed: the gateways' peer sets differ")

    yield Step("verify every gateway: live peers and config file", verify=every_gateway)
    if not same_before:
        ctx.warn("the gateways' peer sets differed before this change; that drift remains")
        return
    yield Step("verify all gateways carry identical peers", verify=identical)


def _without(state: GatewayState, key: str) -> GatewayState:
    peers = {k: p for k, p in state.peers.items() if k != key}
    return GatewayState(state.public_key, peers, state.key_count, state.dir_writable)


def _same_peers(states: Mapping[str, GatewayState]) -> bool:
    return len({frozenset(s.peers.items()) for s in states.values()}) <= 1


def _file_ready(run: _Run, need_write: bool) -> str | None:
    if run.before.key_count is None:
        return f"{run.gw.name}: {run.gw.config} is not a readable file"
    if need_write and not run.before.dir_writable:
        return f"{run.gw.name}: the directory of {run.gw.config} is not writable"
    return None


def _back_as_it_was(ctx: OpContext, run: _Run, key: str) -> Check:
    """The rollback's check of one gateway: its live peers and the key's count in its file."""

    def check() -> None:
        now = read_gateways(ctx, [run.gw], key)[run.gw.name]
        diff = _peer_diff(run.gw.name, now.peers, run.before.peers)
        if now.key_count != run.before.key_count:
            diff.append(f"{run.gw.config} key count {now.key_count}")
        if diff:
            raise OpError("; ".join(diff))

    return Check(f"verify {run.gw.name} is back as it was", check)


def _on_gateway(
    ctx: OpContext, run: _Run, title: str, command: str, undo: Undo, *, says: str = ""
) -> Step:
    """A command on the gateway, undone by `undo`; the step gives what the command said
    (`says` when it said nothing)."""

    def do() -> str:
        return ctx.run(run.gw.name, command).stdout.strip() or says

    return Step(title, do=do, undo=undo, host=run.gw.name)


def _undo(ctx: OpContext, run: _Run, title: str, command: str, done: str) -> Undo:
    def undo() -> str:
        return ctx.run(run.gw.name, command).stdout.strip()

    return Undo(title, undo, done, run.check)


def _restore_file(ctx: OpContext, run: _Run) -> Undo:
    command = restore_command(run.gw, run.backup)
    return _undo(ctx, run, f"restore {run.gw.config}", command, "config restored")


def _rolled_back(
    ctx: OpContext,
    tx: Transaction,
    action: str,
    target: str,
    label: str,
    exc: BaseException,
    runs: Sequence[_Run],
    key: str,
) -> OpError:
    """The operator's account of a failed change and its rollback, also put in the audit log."""
    text, outcome = _report(action, label, _reason(exc), runs, tx)
    before = _states_json({r.gw.name: r.before for r in runs}, key)
    ctx.audit.record(action, target, before=before, after=None, outcome=outcome, detail=text)
    return OpError(text)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return str(exc) or type(exc).__name__


def _report(
    action: str, label: str, failure: str, runs: Sequence[_Run], tx: Transaction
) -> tuple[str, str]:
    """The operator's account of a failed operation, and the audit outcome."""
    lines = [f"{action} {label} failed: {failure}"]
    for run in runs:
        live, file = tx.attempt(run.live), tx.attempt(run.file)
        begun = [a for a in (live, file) if a is not None]
        if not begun:
            lines.append(f"  {run.gw.name}: not changed")
            continue
        applied = []
        if live is not None:
            applied.append("live peer changed" if live.done else "live change attempted")
        if file is not None:
            result = run.file_result(tx)
            applied.append(f"config {result or 'edit attempted'} ({run.gw.config})")
        line = f"  {run.gw.name}: {', '.join(applied)}"
        failed = [a.failed_at for a in begun if a.failed_at]
        if failed:
            line += f"; FAILED at {failed[0]}"
        # Undone newest first: as the rollback ran.
        undone = [a.undone for a in reversed(begun) if a.undone]
        not_undone = [a.not_undone for a in reversed(begun) if a.not_undone]
        why_not = tx.checked.get(run.check) if run.check is not None else None
        if why_not is not None:
            not_undone.append(f"not as before: {why_not}")
        if undone:
            line += "; rolled back: " + ", ".join(undone)
        if not_undone:
            line += "; COULD NOT roll back: " + "; ".join(not_undone)
        elif run.check in tx.checked:
            line += "; verified as before"
        lines.append(line)
    clean = tx.rolled_back
    lines.append(
        "Every gateway is back as it was."
        if clean
        else "Some gateways are NOT as they were: fix them by hand (see above), "
        "then check with `wgconsole status`."
    )
    return "\n".join(lines), "rolled back" if clean else "failed"


def _states_json(states: Mapping[str, GatewayState], key: str) -> dict[str, Any]:
    return {
        name: {
            "live": None if key not in s.peers else _peer_json(s.peers[key]),
            "config_blocks": s.key_count,
        }
        for name, s in states.items()
    }


def _peer_json(peer: LivePeer) -> dict[str, Any]:
    return {
        "allowed_ips": list(peer.allowed_ips),
        "keepalive": peer.keepalive,
        "preshared_key": peer.has_psk,
    }


def _record_inventory(
    ctx: OpContext, path: str, edit: Callable[[str], Inventory]
) -> tuple[Inventory | None, list[str]]:
    """The gateways are done: a failure here is reported, never rolled back over."""
    try:
        with ctx.step(f"record the change in {path}"):
            return edit(path), []
    except (InventoryEditError, OpError, OSError) as exc:
        message = f"{path} not updated: {exc}; edit its clients: list by hand"
        ctx.warn(message)
        return None, [message]


# --- execution: add -------------------------------------------------------------------


def execute_peer_add(
    ctx: OpContext,
    plan: PeerAddPlan,
    *,
    keepalive: int | None = None,
    output: str | Path | None = None,
) -> PeerAddResult:
    """Add the planned peer on every gateway, or on none (rolled back); see the module doc.

    `keepalive` overrides the plan's (None: the plan's, by default the inventory's). `output`
    is the client config file to create (mode 0600, never overwritten); it is required when
    the plan generates the key pair, because the private key is written nowhere else.
    """
    ka = plan.keepalive if keepalive is None else _keepalive(keepalive)
    out = None if output is None else Path(output)
    if plan.generate_key and out is None:
        raise ValidationError("a generated private key needs --output FILE (written nowhere else)")
    if out is not None:
        check_new_file(out)
    pair = KeyPair.generate() if plan.public_key is None else None
    key = plan.public_key if pair is None else pair.public_key
    assert key is not None
    config = build_client_config(
        ctx.inventory,
        name=plan.name,
        address=plan.address,
        server_public_key=plan.server_public_key,
        keepalive=ka,
        private_key=None if pair is None else pair.private_key,
    )
    with service_lock(ctx, "peer add"):
        runs = _prepare_add(ctx, plan, key)
        if out is not None:
            config.write_new(out)

        def discard() -> None:
            if out is not None:
                out.unlink(missing_ok=True)  # the key in it would be useless

        tx = Transaction(ctx)
        label = f"{plan.name} ({_short(key)})"
        tx.run(
            _add_steps(ctx, plan, runs, key, ka),
            discard=discard,
            account=lambda exc: _rolled_back(ctx, tx, "peer add", plan.name, label, exc, runs, key),
        )
        after = {r.gw.name: LivePeer((plan.peer_allowed_ip,), ka) for r in runs}
        ctx.audit.record(
            "peer add",
            plan.name,
            before=_states_json({r.gw.name: r.before for r in runs}, key),
            after={n: {"live": _peer_json(p), "config_blocks": 1} for n, p in after.items()},
            outcome="ok",
            detail=f"{key} {plan.peer_allowed_ip} keepalive {ka} on {len(runs)} gateways",
        )
        client = Client(plan.name, key, plan.address)
        inventory: Inventory | None = None
        warnings: list[str] = []
        if not plan.in_inventory:
            inventory, warnings = _record_inventory(
                ctx, plan.inventory_path, lambda p: add_client(p, client)
            )
    return PeerAddResult(
        name=plan.name,
        public_key=key,
        address=plan.address,
        keepalive=ka,
        gateways=tuple(r.gw.name for r in runs),
        backups={r.gw.name: r.backup for r in runs if r.file_result(tx) == "written"},
        config=config,
        output=out,
        inventory=inventory,
        warnings=(*plan.warnings, *warnings),
    )


def _prepare_add(ctx: OpContext, plan: PeerAddPlan, key: str) -> list[_Run]:
    """Re-read every gateway under the lock: the plan's snapshot may be old."""
    with ctx.step("read every gateway's peers and config file"):
        states = read_gateways(ctx, plan.gateways, key)
    stamp = _stamp()
    runs = [_Run(gw, states[gw.name], backup_path(gw, stamp)) for gw in plan.gateways]
    if plan.finishing:
        problems = [p for r in runs if (p := _finish_problem(r, plan, key))]
    else:
        problems = [p for r in runs if (p := _add_problem(r, plan, key))]
    if not plan.in_inventory:
        problems += _inventory_problems(plan, key)
    if problems:
        raise OpError("nothing was changed: " + "; ".join(problems))
    return runs


def _finish_problem(run: _Run, plan: PeerAddPlan, key: str) -> str | None:
    """Finishing: only what this gateway lacks is done; what it has must match the plan."""
    name, state = run.gw.name, run.before
    if state.public_key != plan.server_public_key:
        return f"{name}: its public key is now {_short(state.public_key)}, not the planned one"
    live = state.peers.get(key)
    want = LivePeer((plan.peer_allowed_ip,), plan.keepalive)
    if live is not None and live != want:
        return f"{name}: {_short(key)} is there as {live.describe()}, not {want.describe()}"
    run.need_live = live is None
    if state.key_count is None:
        return f"{name}: {run.gw.config} is not a readable file"
    if state.key_count > 1:
        return f"{name}: {run.gw.config} has {state.key_count} [Peer] blocks for the key"
    run.need_file = state.key_count == 0
    if not run.need_live and not run.need_file:
        return None
    if live is None:
        target = ipaddress.ip_address(plan.address)
        for other, peer in state.peers.items():
            if any(target in ipaddress.ip_network(a, strict=False) for a in peer.allowed_ips):
                return f"{name}: {plan.address} is routed to peer {_short(other)}"
    return _file_ready(run, need_write=run.need_file)


def _add_problem(run: _Run, plan: PeerAddPlan, key: str) -> str | None:
    name, state = run.gw.name, run.before
    if state.public_key != plan.server_public_key:
        return f"{name}: its public key is now {_short(state.public_key)}, not the planned one"
    if key in state.peers:
        return f"{name}: {_short(key)} is already a peer (changed since the preview)"
    target = ipaddress.ip_address(plan.address)
    for other, peer in state.peers.items():
        if any(target in ipaddress.ip_network(a, strict=False) for a in peer.allowed_ips):
            return f"{name}: {plan.address} is now routed to peer {_short(other)}"
    if state.key_count:
        return f"{name}: {run.gw.config} already has a [Peer] for the key (file and live differ)"
    return _file_ready(run, need_write=True)


def _inventory_problems(plan: PeerAddPlan, key: str) -> list[str]:
    """The inventory file as it is now (it may have been edited since the plan)."""
    try:
        inventory = load_inventory(plan.inventory_path)
    except InventoryError as exc:
        return [f"the inventory cannot be read: {exc}"]
    taken = [
        f"{plan.inventory_path}: {what} already used by client {c.name!r}"
        for c in inventory.clients
        for what, mine, theirs in (
            ("name", plan.name, c.name),
            ("public key", key, c.public_key),
            ("address", plan.address, c.address),
        )
        if mine == theirs
    ]
    return taken


def _add_steps(
    ctx: OpContext, plan: PeerAddPlan, runs: Sequence[_Run], key: str, ka: int
) -> Iterator[Step]:
    """Gateway after gateway: the peer live, then in the config file; then the verification."""
    allowed = plan.peer_allowed_ip
    for run in runs:
        gw = run.gw
        run.check = _back_as_it_was(ctx, run, key)
        if run.need_live:
            run.live = _on_gateway(
                ctx,
                run,
                f"wg set {gw.interface} peer {_short(key)} allowed-ips {allowed}",
                live_set_command(gw, key, [allowed], ka),
                _undo(
                    ctx,
                    run,
                    "remove the live peer",
                    live_remove_command(gw, key),
                    "live peer removed",
                ),
            )
            yield run.live
        if run.need_file:
            run.file = _on_gateway(
                ctx,
                run,
                f"add [Peer] to {gw.config} (backup {run.backup})",
                add_block_command(gw, run.backup, plan.name, key, allowed, ka),
                _restore_file(ctx, run),
                says="written",
            )
            yield run.file
        if not (run.need_live or run.need_file):
            ctx.info(f"{gw.name}: already has the peer, live and in {gw.config}")
    new = LivePeer((allowed,), ka)
    expected = {r.gw.name: {**r.before.peers, key: new} for r in runs}
    # When finishing, the peer itself is what differed: the rest must have been the same.
    same = _same_peers({r.gw.name: _without(r.before, key) for r in runs})
    yield from _verification(
        ctx, [r.gw for r in runs], key, expected, want_count=1, same_before=same
    )


# --- execution: remove ----------------------------------------------------------------


def execute_peer_remove(ctx: OpContext, plan: PeerRemovePlan) -> PeerRemoveResult:
    """Remove the peer from every gateway (live and file) and the inventory, or roll back."""
    key = plan.public_key
    with service_lock(ctx, "peer remove"):
        runs = _prepare_remove(ctx, plan)
        tx = Transaction(ctx)
        tx.run(
            _remove_steps(ctx, runs, key),
            account=lambda exc: _rolled_back(
                ctx, tx, "peer remove", plan.label, plan.label, exc, runs, key
            ),
        )
        changed = [r for r in runs if r.live_done(tx) or r.file_result(tx) == "removed"]
        ctx.audit.record(
            "peer remove",
            plan.label,
            before=_states_json({r.gw.name: r.before for r in runs}, key),
            after={r.gw.name: {"live": None, "config_blocks": 0} for r in runs},
            outcome="ok",
            detail=f"{key} removed from {', '.join(r.gw.name for r in changed) or 'no gateway'}",
        )
        inventory: Inventory | None = None
        warnings: list[str] = []
        if plan.in_inventory:
            inventory, warnings = _record_inventory(
                ctx, plan.inventory_path, lambda p: remove_client(p, key)
            )
    return PeerRemoveResult(
        name=plan.name,
        public_key=key,
        gateways=tuple(r.gw.name for r in changed),
        backups={r.gw.name: r.backup for r in runs if r.file_result(tx) == "removed"},
        inventory=inventory,
        warnings=(*plan.warnings, *warnings),
    )


def _prepare_remove(ctx: OpContext, plan: PeerRemovePlan) -> list[_Run]:
    with ctx.step("read every gateway's peers and config file"):
        states = read_gateways(ctx, plan.gateways, plan.public_key)
    stamp = _stamp()
    runs = [_Run(gw, states[gw.name], backup_path(gw, stamp)) for gw in plan.gateways]
    problems = []
    for run in runs:
        live_now = plan.public_key in run.before.peers
        if live_now != (run.gw.name in plan.present_on):
            change = "added" if live_now else "removed"
            problems.append(f"{run.gw.name}: the peer was {change} there since the preview")
        problem = _file_ready(run, need_write=bool(run.before.key_count))
        if problem:
            problems.append(problem)
    if problems:
        raise OpError("nothing was changed: " + "; ".join(problems))
    return runs


def _remove_steps(ctx: OpContext, runs: Sequence[_Run], key: str) -> Iterator[Step]:
    """Gateway after gateway: the live peer, then the config file; then the verification.

    Undone newest first, the file is restored before the live peer is re-added: a preshared
    key is re-applied from the restored file.
    """
    for run in runs:
        gw = run.gw
        run.check = _back_as_it_was(ctx, run, key)
        old = run.before.peers.get(key)
        if old is not None:
            run.live = _on_gateway(
                ctx,
                run,
                f"wg set {gw.interface} peer {_short(key)} remove",
                live_remove_command(gw, key),
                _undo(
                    ctx,
                    run,
                    "re-add the live peer",
                    live_restore_command(gw, key, old),
                    "live peer re-added",
                ),
            )
            yield run.live
        if run.before.key_count:
            run.file = _on_gateway(
                ctx,
                run,
                f"remove the [Peer] from {gw.config} (backup {run.backup})",
                remove_block_command(gw, run.backup, key),
                _restore_file(ctx, run),
            )
            yield run.file
    expected = {r.gw.name: {k: p for k, p in r.before.peers.items() if k != key} for r in runs}
    same = _same_peers({r.gw.name: r.before for r in runs})
    yield from _verification(
        ctx, [r.gw for r in runs], key, expected, want_count=0, same_before=same
    )
