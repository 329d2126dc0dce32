"""A client peer added on every gateway, live and in each config file, verified; or on none
(rolled back). See `plan` for the whole story."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from pathlib import Path

from wgconsole.config.inventory_edit import (
    add_client,
)
from wgconsole.config.inventory_file import InventoryError, load_inventory
from wgconsole.core.inventory import Client, Inventory
from wgconsole.core.keys import KeyPair
from wgconsole.ops.hostcmd.clientconf import (
    build_client_config,
    check_new_file,
)
from wgconsole.ops.hostcmd.wgconf import (
    LivePeer,
    add_block_command,
    live_remove_command,
    live_set_command,
)
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import ValidationError
from wgconsole.ops.machinery.run import audited_run
from wgconsole.ops.machinery.steps import Step
from wgconsole.ops.procedures.peers.common import (
    GatewayRun,
    PeerAddResult,
    back_as_it_was,
    failure_account,
    file_ready,
    on_gateway,
    peer_json,
    prepare_runs,
    record_inventory,
    restore_file,
    same_peers,
    states_json,
    undo_step,
    verification,
    without_key,
)
from wgconsole.ops.procedures.peers.plan import PeerAddPlan, abbrev, checked_keepalive

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
    ka = plan.keepalive if keepalive is None else checked_keepalive(keepalive)
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
    with audited_run(ctx, "peer add", plan.name, lock="peer add") as run:
        runs = _prepare_add(ctx, plan, key)
        run.before = states_json({r.gw.name: r.before for r in runs}, key)
        if out is not None:
            config.write_new(out)

        def discard() -> None:
            if out is not None:
                out.unlink(missing_ok=True)  # the key in it would be useless

        label = f"{plan.name} ({abbrev(key)})"
        tx = run.tx
        tx.run(
            add_steps(
                ctx, runs, key, name=plan.name, allowed=(plan.peer_allowed_ip,), keepalive=ka
            ),
            discard=discard,
            account=lambda exc: failure_account(run.tx, "peer add", label, exc, runs),
        )
        after = {r.gw.name: LivePeer((plan.peer_allowed_ip,), ka) for r in runs}
        run.succeeded(
            {n: {"live": peer_json(p), "config_blocks": 1} for n, p in after.items()},
            detail=f"{key} {plan.peer_allowed_ip} keepalive {ka} on {len(runs)} gateways",
        )
        client = Client(plan.name, key, plan.address)
        inventory: Inventory | None = None
        warnings: list[str] = []
        if not plan.in_inventory:
            inventory, warnings = record_inventory(
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


def _prepare_add(ctx: OpContext, plan: PeerAddPlan, key: str) -> list[GatewayRun]:
    """Re-read every gateway under the lock: the plan's snapshot may be old."""
    judge = _finish_problem if plan.finishing else _add_problem
    return prepare_runs(
        ctx,
        plan.gateways,
        key,
        lambda run: judge(run, plan, key),
        lambda: [] if plan.in_inventory else _inventory_problems(plan, key),
    )


def _finish_problem(run: GatewayRun, plan: PeerAddPlan, key: str) -> str | None:
    """Finishing: only what this gateway lacks is done; what it has must match the plan."""
    name, state = run.gw.name, run.before
    if state.public_key != plan.server_public_key:
        return f"{name}: its public key is now {abbrev(state.public_key)}, not the planned one"
    live = state.peers.get(key)
    want = LivePeer((plan.peer_allowed_ip,), plan.keepalive)
    if live is not None and live != want:
        return f"{name}: {abbrev(key)} is there as {live.describe()}, not {want.describe()}"
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
                return f"{name}: {plan.address} is routed to peer {abbrev(other)}"
    return file_ready(run, need_write=run.need_file)


def _add_problem(run: GatewayRun, plan: PeerAddPlan, key: str) -> str | None:
    name, state = run.gw.name, run.before
    if state.public_key != plan.server_public_key:
        return f"{name}: its public key is now {abbrev(state.public_key)}, not the planned one"
    if key in state.peers:
        return f"{name}: {abbrev(key)} is already a peer (changed since the preview)"
    target = ipaddress.ip_address(plan.address)
    for other, peer in state.peers.items():
        if any(target in ipaddress.ip_network(a, strict=False) for a in peer.allowed_ips):
            return f"{name}: {plan.address} is now routed to peer {abbrev(other)}"
    if state.key_count:
        return f"{name}: {run.gw.config} already has a [Peer] for the key (file and live differ)"
    return file_ready(run, need_write=True)


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


def add_steps(
    ctx: OpContext,
    runs: Sequence[GatewayRun],
    key: str,
    *,
    name: str,
    allowed: tuple[str, ...],
    keepalive: int,
) -> Iterator[Step]:
    """Gateway after gateway: the peer live, then in the config file; then the verification.
    `allowed` empty: a peer that routes nothing (a prober's)."""
    shown = ",".join(allowed) or "(none)"
    for run in runs:
        gw = run.gw
        run.check = back_as_it_was(ctx, run, key)
        if run.need_live:
            run.live = on_gateway(
                ctx,
                run,
                f"wg set {gw.interface} peer {abbrev(key)} allowed-ips {shown}",
                live_set_command(gw, key, allowed, keepalive),
                undo_step(
                    ctx,
                    run,
                    "remove the live peer",
                    live_remove_command(gw, key),
                    "live peer removed",
                ),
            )
            yield run.live
        if run.need_file:
            run.file = on_gateway(
                ctx,
                run,
                f"add [Peer] to {gw.config} (backup {run.backup})",
                add_block_command(gw, run.backup, name, key, ",".join(allowed), keepalive),
                restore_file(ctx, run),
                says="written",
            )
            yield run.file
        if not (run.need_live or run.need_file):
            ctx.info(f"{gw.name}: already has the peer, live and in {gw.config}")
    new = LivePeer(allowed, keepalive)
    expected = {r.gw.name: {**r.before.peers, key: new} for r in runs}
    # When finishing, the peer itself is what differed: the rest must have been the same.
    same = same_peers({r.gw.name: without_key(r.before, key) for r in runs})
    yield from verification(
        ctx, [r.gw for r in runs], key, expected, want_count=1, same_before=same
    )
