"""`wgconsole probe setup`: this machine's prober key, as a peer without AllowedIPs on every
gateway (live and in each config file) and under `probes:` in the inventory.

The peer add's machinery (one gateway after the other, every gateway or none, verified,
audited, rolled back on failure), with a peer that routes nothing and keeps nothing alive: its
key can complete a handshake and nothing else. Idempotent: what is already there is checked,
not redone; what an interrupted setup left on some gateways only is finished. The private key
is made here, on the machine that probes, and written to its key file alone (0600, never
replaced); a key file that exists is used as it is.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wgconsole.config.inventory_edit import add_client
from wgconsole.config.inventory_file import InventoryError, load_inventory
from wgconsole.config.probe_key import ProbeKeyError, read_probe_key, write_probe_key
from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Gateway, Inventory, Probe
from wgconsole.core.keys import KeyPair
from wgconsole.ops.hostcmd.wgconf import LivePeer
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.machinery.run import audited_run
from wgconsole.ops.procedures.peers.add import add_steps
from wgconsole.ops.procedures.peers.common import (
    GatewayRun,
    failure_account,
    file_ready,
    peer_json,
    prepare_runs,
    record_inventory,
    states_json,
)
from wgconsole.ops.procedures.peers.plan import abbrev, check_new_name, server_public_key

# A prober's peer: no AllowedIPs (its key can route nothing), no keepalive (the gateway never
# talks to it first).
PROBE_PEER = LivePeer((), 0)


@dataclass(frozen=True)
class ProbeSetupPlan:
    name: str
    key_file: Path
    public_key: str | None  # None: no key file yet; a key is made at execution
    server_public_key: str
    gateways: tuple[Gateway, ...]
    inventory_path: str
    in_inventory: bool

    def describe(self) -> list[str]:
        key = "<new>" if self.public_key is None else abbrev(self.public_key)
        lines = [f"Set up prober {self.name} (key {key}): a peer without AllowedIPs"]
        if self.public_key is None:
            lines.append(
                f"  a key pair is made here; the private key is written to {self.key_file} "
                "(mode 0600) and nowhere else"
            )
        else:
            lines.append(f"  the key in {self.key_file} (its private half stays there)")
        for gw in self.gateways:
            lines.append(
                f"  {gw.name}: wg set {gw.interface} peer {key} (no allowed-ips, no keepalive), "
                f"and its [Peer] block (# {self.name}) in {gw.config}, where either is missing"
            )
        if self.in_inventory:
            lines.append(f"  {self.inventory_path}: already lists the prober (unchanged)")
        else:
            lines.append(f"  {self.inventory_path}: probes += {{name: {self.name}, ...}}")
        return lines


@dataclass(frozen=True)
class ProbeSetupResult:
    name: str
    public_key: str
    key_file: Path
    key_made: bool
    changed: tuple[str, ...]  # gateways where the peer was added (live or in the file)
    inventory: Inventory | None
    warnings: tuple[str, ...] = ()

    def summary(self) -> list[str]:
        done = ", ".join(self.changed) or "no gateway (all had it)"
        lines = [f"prober {self.name} ({self.public_key}): added on {done}"]
        if self.key_made:
            lines.append(f"  private key written to {self.key_file} (mode 0600)")
        lines.append(f"  `wgconsole probe` now completes handshakes with {self.key_file}")
        return lines + [f"  warning: {w}" for w in self.warnings]


def default_probe_name() -> str:
    """`probe-HOST`, HOST this machine's short name: one prober per machine."""
    host = socket.gethostname().split(".")[0]
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in host)[:40]
    return f"probe-{cleaned or 'host'}"


def plan_probe_setup(
    inventory: Inventory, fleet: Fleet, name: str | None, key_file: Path
) -> ProbeSetupPlan:
    """Validate against the snapshot and the key file; changes nothing."""
    name = name or default_probe_name()
    check_new_name(inventory, name)  # a client's name is not a prober's
    server = server_public_key(inventory, fleet)
    public: str | None = None
    if key_file.exists() or key_file.is_symlink():
        try:
            public = read_probe_key(key_file).public_key()
        except ProbeKeyError as exc:
            raise ValidationError(str(exc)) from None
    listed = _listed_probe(inventory, name, public)
    if public is not None:
        if public == server:
            raise ValidationError(f"{key_file} holds the gateways' own key: not a prober's")
        client = inventory.client_by_key(public)
        if client is not None:
            raise ValidationError(f"{key_file} holds client {client.name!r}'s key")
    return ProbeSetupPlan(
        name=name,
        key_file=key_file,
        public_key=public,
        server_public_key=server,
        gateways=inventory.gateways,
        inventory_path=inventory.path,
        in_inventory=listed,
    )


def _listed_probe(inventory: Inventory, name: str, public: str | None) -> bool:
    """Whether the inventory already lists this prober; an error if it lists the name with
    another key (another machine's prober, or a key file lost: say which to do)."""
    for probe in inventory.probes:
        if probe.name == name and probe.public_key != public:
            raise ValidationError(
                f"the inventory's prober {name!r} has another key: another machine's (give "
                "this one its own --name), or its key file is gone (remove the old peer with "
                f"`wgconsole peer remove {probe.public_key}` and its `probes:` item first)"
            )
        if public is not None and probe.public_key == public and probe.name != name:
            raise ValidationError(
                f"the key in the key file is already the inventory's prober {probe.name!r}"
            )
        if probe.name == name:
            return True
    return False


def execute_probe_setup(ctx: OpContext, plan: ProbeSetupPlan) -> ProbeSetupResult:
    pair = KeyPair.generate() if plan.public_key is None else None
    key = plan.public_key if pair is None else pair.public_key
    assert key is not None
    with audited_run(ctx, "probe setup", plan.name, lock="peer add") as run:
        runs = _prepare(ctx, plan, key)
        run.before = states_json({r.gw.name: r.before for r in runs}, key)
        if pair is not None:
            try:
                write_probe_key(plan.key_file, pair.private_key)
            except FileExistsError:
                raise OpError(f"{plan.key_file} appeared meanwhile: not replaced") from None

        def discard() -> None:
            if pair is not None:
                plan.key_file.unlink(missing_ok=True)  # its key is on no gateway

        tx = run.tx
        tx.run(
            add_steps(ctx, runs, key, name=plan.name, allowed=(), keepalive=0),
            discard=discard,
            account=lambda exc: failure_account(
                run.tx, "probe setup", f"{plan.name} ({abbrev(key)})", exc, runs
            ),
        )
        changed = tuple(r.gw.name for r in runs if r.need_live or r.need_file)
        run.succeeded(
            {r.gw.name: {"live": peer_json(PROBE_PEER), "config_blocks": 1} for r in runs},
            detail=f"{key} without allowed IPs on {len(runs)} gateways",
        )
        inventory: Inventory | None = None
        warnings: list[str] = []
        if not plan.in_inventory:
            inventory, warnings = record_inventory(
                ctx, plan.inventory_path, lambda p: add_client(p, Probe(plan.name, key))
            )
    return ProbeSetupResult(
        name=plan.name,
        public_key=key,
        key_file=plan.key_file,
        key_made=pair is not None,
        changed=changed,
        inventory=inventory,
        warnings=tuple(warnings),
    )


def _prepare(ctx: OpContext, plan: ProbeSetupPlan, key: str) -> list[GatewayRun]:
    """Every gateway re-read under the lock: only what one lacks is done there."""
    return prepare_runs(
        ctx,
        plan.gateways,
        key,
        lambda run: _problem(run, plan, key),
        lambda: _inventory_problems(plan, key),
    )


def _problem(run: GatewayRun, plan: ProbeSetupPlan, key: str) -> str | None:
    name, state = run.gw.name, run.before
    if state.public_key != plan.server_public_key:
        return f"{name}: its public key is now {abbrev(state.public_key)}, not the planned one"
    live = state.peers.get(key)
    if live is not None and live != PROBE_PEER:
        return (
            f"{name}: {abbrev(key)} is a peer there with {live.describe()}: not a prober's "
            "(no AllowedIPs, no keepalive); remove it first"
        )
    if state.key_count is None:
        return f"{name}: {run.gw.config} is not a readable file"
    if state.key_count > 1:
        return f"{name}: {run.gw.config} has {state.key_count} [Peer] blocks for the key"
    run.need_live = live is None
    run.need_file = state.key_count == 0
    return file_ready(run, need_write=run.need_file) if run.need_file else None


def _inventory_problems(plan: ProbeSetupPlan, key: str) -> Sequence[str]:
    """The inventory as it is now: it may have been edited since the plan."""
    try:
        inventory = load_inventory(plan.inventory_path)
    except InventoryError as exc:
        return [f"the inventory cannot be read: {exc}"]
    try:
        _listed_probe(inventory, plan.name, key)
    except ValidationError as exc:
        return [str(exc)]
    if inventory.client_by_key(key) is not None:
        return [f"{plan.inventory_path}: the key is already a client's"]
    return []
