"""What a peer add and a peer remove share once they run: their results, and the
execution machinery (each gateway's part, reading, verification, undos, the operator's account
of a failure)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgconsole.config.inventory_edit import (
    InventoryEditError,
)
from wgconsole.core.inventory import Gateway, Inventory
from wgconsole.ops.hostcmd.clientconf import (
    ClientConfig,
    host_prefix,
)
from wgconsole.ops.hostcmd.wgconf import (
    GatewayState,
    LivePeer,
    backup_path,
    parse_read,
    read_command,
    restore_command,
)
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.machinery.run import RunFailed, RunOutcome, failure_detail
from wgconsole.ops.machinery.steps import Check, Step, Transaction, Undo
from wgconsole.ops.procedures.peers.plan import abbrev

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
class GatewayRun:
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


def backup_stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def prepare_runs(
    ctx: OpContext,
    gateways: Sequence[Gateway],
    key: str,
    problem: Callable[[GatewayRun], str | None],
    more_problems: Callable[[], Sequence[str]] = lambda: (),
) -> list[GatewayRun]:
    """Every gateway re-read under the lock (a plan's snapshot may be old), each judged by
    `problem` (which also says what the gateway needs), then the rest: OpError, with nothing
    changed, if anything is wrong."""
    with ctx.step("read every gateway's peers and config file"):
        states = read_gateways(ctx, gateways, key)
    stamp = backup_stamp()
    runs = [GatewayRun(gw, states[gw.name], backup_path(gw, stamp)) for gw in gateways]
    problems = [p for r in runs if (p := problem(r))]
    problems += more_problems()
    if problems:
        raise OpError("nothing was changed: " + "; ".join(problems))
    return runs


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
            f"{gw}: peer {abbrev(key)} is "
            + ("absent" if have is None else have.describe())
            + ", expected "
            + ("absent" if need is None else need.describe())
        )
    return out[:5] + ([f"{gw}: and {len(out) - 5} more differences"] if len(out) > 5 else [])


def verification(
    ctx: OpContext,
    gateways: Sequence[Gateway],
    key: str,
    expected: Mapping[str, Mapping[str, LivePeer]],
    want_count: int,
    *,
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


def without_key(state: GatewayState, key: str) -> GatewayState:
    peers = {k: p for k, p in state.peers.items() if k != key}
    return GatewayState(state.public_key, peers, state.key_count, state.dir_writable)


def same_peers(states: Mapping[str, GatewayState]) -> bool:
    return len({frozenset(s.peers.items()) for s in states.values()}) <= 1


def file_ready(run: GatewayRun, *, need_write: bool) -> str | None:
    if run.before.key_count is None:
        return f"{run.gw.name}: {run.gw.config} is not a readable file"
    if need_write and not run.before.dir_writable:
        return f"{run.gw.name}: the directory of {run.gw.config} is not writable"
    return None


def back_as_it_was(ctx: OpContext, run: GatewayRun, key: str) -> Check:
    """The rollback's check of one gateway: its live peers and the key's count in its file."""

    def check() -> None:
        now = read_gateways(ctx, [run.gw], key)[run.gw.name]
        diff = _peer_diff(run.gw.name, now.peers, run.before.peers)
        if now.key_count != run.before.key_count:
            diff.append(f"{run.gw.config} key count {now.key_count}")
        if diff:
            raise OpError("; ".join(diff))

    return Check(f"verify {run.gw.name} is back as it was", check)


def on_gateway(
    ctx: OpContext, run: GatewayRun, title: str, command: str, undo: Undo, *, says: str = ""
) -> Step:
    """A command on the gateway, undone by `undo`; the step gives what the command said
    (`says` when it said nothing)."""

    def do() -> str:
        return ctx.run(run.gw.name, command).stdout.strip() or says

    return Step(title, do=do, undo=undo, host=run.gw.name)


def undo_step(ctx: OpContext, run: GatewayRun, title: str, command: str, done: str) -> Undo:
    def undo() -> str:
        return ctx.run(run.gw.name, command).stdout.strip()

    return Undo(title, undo, done, run.check)


def restore_file(ctx: OpContext, run: GatewayRun) -> Undo:
    command = restore_command(run.gw, run.backup)
    return undo_step(ctx, run, f"restore {run.gw.config}", command, "config restored")


def failure_account(
    tx: Transaction, action: str, label: str, exc: BaseException, runs: Sequence[GatewayRun]
) -> RunFailed:
    """The operator's account of a failed change and its rollback (the audited run records it,
    with its outcome)."""
    text, outcome = _report(action, label, failure_detail(exc), runs, tx)
    return RunFailed(text, outcome)


def _report(
    action: str, label: str, failure: str, runs: Sequence[GatewayRun], tx: Transaction
) -> tuple[str, RunOutcome]:
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
    return "\n".join(lines), RunOutcome.ROLLED_BACK if clean else RunOutcome.FAILED


def states_json(states: Mapping[str, GatewayState], key: str) -> dict[str, Any]:
    return {
        name: {
            "live": None if key not in s.peers else peer_json(s.peers[key]),
            "config_blocks": s.key_count,
        }
        for name, s in states.items()
    }


def peer_json(peer: LivePeer) -> dict[str, Any]:
    return {
        "allowed_ips": list(peer.allowed_ips),
        "keepalive": peer.keepalive,
        "preshared_key": peer.has_psk,
    }


def record_inventory(
    ctx: OpContext, path: str, edit: Callable[[str], Inventory]
) -> tuple[Inventory | None, list[str]]:
    """The gateways are done: a failure here is reported, never rolled back over."""
    try:
        with ctx.step(f"record the change in {path}"):
            return edit(path), []
    except (InventoryEditError, OpError, OSError) as exc:
        message = f"{path} not updated: {exc}; edit it by hand"
        ctx.warn(message)
        return None, [message]
