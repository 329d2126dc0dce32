"""A client peer removed from every gateway, live and in each config file, and from the
inventory; or rolled back. See `plan` for the whole story."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from wgconsole.config.inventory_edit import (
    remove_client,
)
from wgconsole.core.inventory import Inventory
from wgconsole.ops.hostcmd.wgconf import (
    backup_path,
    live_remove_command,
    live_restore_command,
    remove_block_command,
)
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.machinery.run import audited_run
from wgconsole.ops.machinery.steps import Step
from wgconsole.ops.procedures.peers import common
from wgconsole.ops.procedures.peers.common import GatewayRun, PeerRemoveResult
from wgconsole.ops.procedures.peers.plan import PeerRemovePlan, abbrev

# --- execution: remove ----------------------------------------------------------------


def execute_peer_remove(ctx: OpContext, plan: PeerRemovePlan) -> PeerRemoveResult:
    """Remove the peer from every gateway (live and file) and the inventory, or roll back."""
    key = plan.public_key
    with audited_run(ctx, "peer remove", plan.label, lock="peer remove") as run:
        runs = _prepare_remove(ctx, plan)
        run.before = common.states_json({r.gw.name: r.before for r in runs}, key)
        tx = run.tx
        tx.run(
            _remove_steps(ctx, runs, key),
            account=lambda exc: common.failure_account(
                run.tx, "peer remove", plan.label, exc, runs
            ),
        )
        changed = [r for r in runs if r.live_done(tx) or r.file_result(tx) == "removed"]
        run.succeeded(
            {r.gw.name: {"live": None, "config_blocks": 0} for r in runs},
            detail=f"{key} removed from {', '.join(r.gw.name for r in changed) or 'no gateway'}",
        )
        inventory: Inventory | None = None
        warnings: list[str] = []
        if plan.in_inventory:
            inventory, warnings = common.record_inventory(
                ctx, plan.inventory_path, lambda p: remove_client(p, key, plan.section)
            )
    return PeerRemoveResult(
        name=plan.name,
        public_key=key,
        gateways=tuple(r.gw.name for r in changed),
        backups={r.gw.name: r.backup for r in runs if r.file_result(tx) == "removed"},
        inventory=inventory,
        warnings=(*plan.warnings, *warnings),
    )


def _prepare_remove(ctx: OpContext, plan: PeerRemovePlan) -> list[GatewayRun]:
    with ctx.step("read every gateway's peers and config file"):
        states = common.read_gateways(ctx, plan.gateways, plan.public_key)
    stamp = common.backup_stamp()
    runs = [GatewayRun(gw, states[gw.name], backup_path(gw, stamp)) for gw in plan.gateways]
    problems = []
    for run in runs:
        live_now = plan.public_key in run.before.peers
        if live_now != (run.gw.name in plan.present_on):
            change = "added" if live_now else "removed"
            problems.append(f"{run.gw.name}: the peer was {change} there since the preview")
        problem = common.file_ready(run, need_write=bool(run.before.key_count))
        if problem:
            problems.append(problem)
    if problems:
        raise OpError("nothing was changed: " + "; ".join(problems))
    return runs


def _remove_steps(ctx: OpContext, runs: Sequence[GatewayRun], key: str) -> Iterator[Step]:
    """Gateway after gateway: the live peer, then the config file; then the common.verification.

    Undone newest first, the file is restored before the live peer is re-added: a preshared
    key is re-applied from the restored file.
    """
    for run in runs:
        gw = run.gw
        run.check = common.back_as_it_was(ctx, run, key)
        old = run.before.peers.get(key)
        if old is not None:
            run.live = common.on_gateway(
                ctx,
                run,
                f"wg set {gw.interface} peer {abbrev(key)} remove",
                live_remove_command(gw, key),
                common.undo_step(
                    ctx,
                    run,
                    "re-add the live peer",
                    live_restore_command(gw, key, old),
                    "live peer re-added",
                ),
            )
            yield run.live
        if run.before.key_count:
            run.file = common.on_gateway(
                ctx,
                run,
                f"remove the [Peer] from {gw.config} (backup {run.backup})",
                remove_block_command(gw, run.backup, key),
                common.restore_file(ctx, run),
            )
            yield run.file
    expected = {r.gw.name: {k: p for k, p in r.before.peers.items() if k != key} for r in runs}
    same = common.same_peers({r.gw.name: r.before for r in runs})
    yield from common.verification(
        ctx, [r.gw for r in runs], key, expected, want_count=0, same_before=same
    )
