"""Moving single LB entries with the IPVS sync protocol, as steps: the part of rebalance that
the drain shares (`ops.hostcmd.entrysync` builds the messages and the commands; this module
runs them on the LBs).

Per LB, in this order, under the LBs' sync lock (`ops.machinery.lock.sync_lock`: the kernel
runs one backup sync daemon per LB, and one operation's teardown would stop another's
receiver):

1. `receiver_step`: which backup sync daemon receives the entries (the LB's own where one
   runs, a director pair's standby; else the private one on `wgcsync`), and the other daemons
   as they are;
2. `daemon_up`: the private daemon started where it receives (its undo removes it: a run cut
   short never leaves it behind unless the LB stopped answering, and then the next run that
   starts it uses it again and removes it);
3. `repoint_step` (or `send_entries`): the entries sent, each checked in the LB's table by the
   same command;
4. `daemon_down`, then `daemons_unchanged`.

Where the private daemon would start, two things make the mechanism unusable: a `dummy`
interface the LB cannot make (`interface_problem`), and `net.ipv4.vs.backup_only=1`, with
which a running backup daemon stops the forwarding of every IPVS service on the LB
(`backup_only`). Rebalance refuses to run then; the drain moves the clients the old way.
"""

from __future__ import annotations

from collections.abc import Sequence

from wgconsole.core.fleet import DirectorView, Fleet
from wgconsole.core.inventory import Host, Inventory
from wgconsole.ops.hostcmd import entrysync
from wgconsole.ops.hostcmd.entrysync import EntrySyncError
from wgconsole.ops.machinery.context import OpContext, failure
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.machinery.steps import Step, Undo

# The timeout a re-pointed entry starts with (the kernel's UDP default); the client's next
# packet gives it the LB's own.
ENTRY_TIMEOUT = 300
# With a backup sync daemon running, `backup_only=1` makes the kernel pass every IPVS packet
# through unforwarded (ip_vs_in_hook): the private daemon would stop every service on the LB.
BACKUP_ONLY = "backup_only"
# Entries per command: 10 messages of 40 each way (made active, then counted inactive).
PER_SEND = 10 * entrysync.PER_MESSAGE

# What a preview says the mechanism touches besides the moved clients' entries.
SIDE_EFFECTS = (
    f"on each LB, for the operation only: a backup sync daemon on a private dummy interface "
    f"`{entrysync.INTERFACE}` (no address; group {entrysync.GROUP}:{entrysync.PORT}, syncid "
    f"{entrysync.SYNCID}), removed at the end; on an LB that already runs a backup sync daemon "
    "(a director pair's standby) the entries go to that daemon instead, sent from the LB itself "
    "on its interface, group, port and syncid, and it is left as it is; no other service, "
    "entry, dest, kernel order, weight, flag or timeout changes, nor any other sync daemon "
    "(the sh table and the sync daemons are checked unchanged)"
)


def director(fleet: Fleet, name: str) -> DirectorView | None:
    return next((d for d in fleet.load_balancers if d.name == name), None)


def private_receiver_lbs(inventory: Inventory, fleet: Fleet) -> tuple[str, ...]:
    """The LBs where the private backup sync daemon would start: those where no other backup
    daemon runs, or where which daemons run is unknown."""
    out = []
    for lb in inventory.load_balancers:
        view = director(fleet, lb.name)
        daemons = None if view is None else view.sync_daemons
        if daemons is None or not any(
            d.role == "backup" and d.interface != entrysync.INTERFACE for d in daemons
        ):
            out.append(lb.name)
    return tuple(out)


def backup_only(view: DirectorView | None) -> int | None:
    """net.ipv4.vs.backup_only as the poll read it on that LB; None: not read."""
    sysctls = None if view is None else view.sysctls
    return None if sysctls is None else sysctls.number(BACKUP_ONLY)


def interface_problem(ctx: OpContext, name: str) -> str | None:
    """Why LB `name` cannot make the private daemon's `dummy` interface (module not loaded,
    autoload off, modules disabled: containers and hardened hosts), or None when it can.
    Read-only; OpError when the check itself fails."""
    command = entrysync.interface_check_command()
    result = ctx.run(name, command, mutating=False, check=False)
    if result.status == entrysync.NO_DUMMY:
        return " ".join(result.stderr.split())[-300:]
    if result.status != 0:
        raise OpError(failure(name, command, result))
    return None


def daemon_listing(ctx: OpContext, lb: Host) -> str:
    return ctx.run(lb.name, entrysync.daemon_command(lb), mutating=False).stdout


def daemon_running(ctx: OpContext, lb: Host) -> bool:
    return entrysync.ours_running(daemon_listing(ctx, lb))


def others(listing: str) -> list[str]:
    """The sync daemons in a listing that are not the private one (keepalived's, an
    operator's)."""
    return sorted(
        line.strip()
        for line in listing.splitlines()
        if "sync daemon" in line and not entrysync.ours_running(line)
    )


def read_receiver(
    lb: Host, listing: str, private_on: Sequence[str], operation: str
) -> entrysync.Receiver:
    """The LB's own backup daemon in `listing` where one runs (the kernel runs one per LB),
    else the private one; OpError when neither can receive (an unusable daemon, or one gone
    since the plan, which checked the private one only where `private_on`)."""
    try:
        theirs = entrysync.other_backup(listing)
    except EntrySyncError as exc:
        raise OpError(
            f"{lb.name}: {exc}; the kernel runs one backup sync daemon per LB, so {operation} "
            "cannot start its own there: stop that daemon for the operation, or move the "
            "clients by another means"
        ) from None
    if theirs is None and lb.name not in private_on:
        raise OpError(
            f"{lb.name}: its backup sync daemon is gone since the plan (a VRRP transition?): "
            f"{operation} would start its own there, unchecked: plan again"
        )
    return theirs or entrysync.PRIVATE


def receiver_step(
    ctx: OpContext,
    lb: Host,
    private_on: Sequence[str],
    receivers: dict[str, entrysync.Receiver],
    daemons: dict[str, str],
    operation: str,
) -> Step:
    """The LB's receiver into `receivers`; the other daemons recorded in `daemons`, to be
    found as they were at the end (`daemons_unchanged`)."""

    def verify() -> None:
        listing = daemon_listing(ctx, lb)
        receivers[lb.name] = read_receiver(lb, listing, private_on, operation)
        daemons[lb.name] = "\n".join(others(listing))
        ctx.info(f"{lb.name}: the entries go to {receivers[lb.name].describe()}")

    return Step("sync daemons read (which one receives the entries)", verify=verify, host=lb.name)


def daemons_unchanged(ctx: OpContext, lb: Host, daemons: dict[str, str], operation: str) -> Step:
    def verify() -> None:
        now = "\n".join(others(daemon_listing(ctx, lb)))
        if now != daemons.get(lb.name):
            raise OpError(
                f"{lb.name}: its sync daemons changed during the {operation} (keepalived on a "
                f"VRRP transition?): before {daemons.get(lb.name)!r}, now {now!r}"
            )

    return Step("sync daemons as they were", verify=verify, host=lb.name)


def daemon_up(ctx: OpContext, lb: Host) -> Step:
    def verify() -> None:
        if not daemon_running(ctx, lb):
            raise OpError(f"{lb.name}: the private backup sync daemon is not running")

    def undo() -> str:
        ctx.run(lb.name, entrysync.teardown_command(lb))
        return ""

    return Step(
        f"private sync daemon up on {entrysync.INTERFACE} (receives the re-pointed entries)",
        do=lambda: ctx.run(lb.name, entrysync.setup_command(lb)),
        verify=verify,
        undo=Undo("remove the private sync daemon", undo, "sync daemon removed"),
        host=lb.name,
    )


def daemon_down(ctx: OpContext, lb: Host, title: str = "private sync daemon removed") -> Step:
    def verify() -> None:
        if daemon_running(ctx, lb):
            raise OpError(f"{lb.name}: the private backup sync daemon still runs")

    return Step(
        title,
        do=lambda: ctx.run(lb.name, entrysync.teardown_command(lb)),
        verify=verify,
        host=lb.name,
    )


def send_entries(
    ctx: OpContext, lb: Host, entries: Sequence[entrysync.Entry], to: entrysync.Receiver
) -> None:
    """Send `entries` to `to` on `lb`, each command checking its entries in the LB's table
    (OpError when one is not there, or when they cannot be encoded)."""
    for i in range(0, len(entries), PER_SEND):
        chunk = entries[i : i + PER_SEND]
        try:
            # Made active (the kernel replaces an entry only for an active one), then
            # counted inactive again, as UDP entries are.
            batch = entrysync.messages(
                chunk,
                inactive=False,
                timeout=ENTRY_TIMEOUT,
                syncid=to.syncid,
                maxlen=to.maxlen,
            )
            batch += entrysync.messages(
                chunk,
                inactive=True,
                timeout=ENTRY_TIMEOUT,
                syncid=to.syncid,
                maxlen=to.maxlen,
            )
        except EntrySyncError as exc:
            raise OpError(str(exc)) from None
        ctx.run(lb.name, entrysync.send_command(lb, batch, chunk, to))


def repoint_title(count: int, to: entrysync.Receiver) -> str:
    return (
        f"re-point {count} entr{'y' if count == 1 else 'ies'} to the new gateways "
        f"through {to.describe()} (each checked in the LB's table)"
    )


def repoint_step(
    ctx: OpContext, lb: Host, entries: Sequence[entrysync.Entry], to: entrysync.Receiver
) -> Step:
    return Step(
        repoint_title(len(entries), to),
        do=lambda: send_entries(ctx, lb, entries, to),
        host=lb.name,
    )
