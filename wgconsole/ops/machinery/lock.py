"""A lock on every load balancer, so that two operators never change one service at once; and
the sync lock, one per LB whatever the service, so that one IPVS sync mechanism at a time runs
there (the kernel runs one backup sync daemon per LB: one rebalance's teardown would stop
another's receiver).

The lock is a directory on the LB (mkdir is atomic) holding its owner; it lives in /run, so a
reboot of the LB (which also forgets its IPVS table) forgets it too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from wgconsole.core.inventory import Host
from wgconsole.core.lb_state import STATE_DIR
from wgconsole.core.op_checks import describe_lock
from wgconsole.core.records import LockRecord
from wgconsole.ops.machinery.audit import operator
from wgconsole.ops.machinery.context import OpContext, failure, on_each
from wgconsole.ops.machinery.errors import LockedError, OpError
from wgconsole.poll.parsers.op_records import MAX_RECORD, parse_lock_owner
from wgconsole.poll.transport.base import privileged, quote_argv, sudo_refusal

LOCK_ROOT = STATE_DIR
# Per LB, not per service: the IPVS sync daemons are the LB's (see ops.hostcmd.entrysync).
SYNC_LOCK = f"{LOCK_ROOT}/lock-ipvs-sync"


def lock_path(ctx: OpContext) -> str:
    svc = ctx.inventory.service
    return f"{LOCK_ROOT}/lock-{svc.protocol}-{svc.vip}-{svc.port}"


def service_lock(
    ctx: OpContext, action: str, *, break_lock: bool = False
) -> AbstractContextManager[None]:
    return _lock(ctx, lock_path(ctx), action, break_lock=break_lock)


def sync_lock(
    ctx: OpContext, action: str, *, break_lock: bool = False
) -> AbstractContextManager[None]:
    """The LBs' sync lock (SYNC_LOCK), taken on every LB, released on every way out."""
    return _lock(ctx, SYNC_LOCK, action, break_lock=break_lock)


@contextmanager
def _lock(ctx: OpContext, path: str, action: str, *, break_lock: bool) -> Iterator[None]:
    token = uuid.uuid4().hex
    record: dict[str, object] = {
        "operator": operator(),
        "action": action,
        "since": round(time.time()),
        "token": token,
    }
    if ctx.site is not None:
        record["site"] = ctx.site  # among several sites: which one the holder acts on
    owner = json.dumps(record)
    taken: list[str] = []
    try:
        for lb in sorted(ctx.inventory.load_balancers, key=lambda h: h.name):
            if break_lock:
                ctx.run(lb.name, privileged(["rm", "-rf", path], sudo=lb.ssh.sudo), check=False)
            script = (
                f"mkdir -p {LOCK_ROOT} && mkdir {quote_argv([path])} 2>/dev/null "
                f"&& printf '%s' {quote_argv([owner])} > {quote_argv([path + '/owner'])} "
                # The owner's file is input too: at most one byte more than one may hold.
                f"|| {{ head -c {MAX_RECORD + 1} {quote_argv([path + '/owner'])} 2>/dev/null; "
                "exit 75; }"
            )
            command = privileged(["sh", "-c", script], sudo=lb.ssh.sudo)
            result = ctx.run(lb.name, command, check=False)
            if result.status != 0 and sudo_refusal(result.stdout + result.stderr):
                raise OpError(failure(lb.name, command, result))
            if result.status != 0:
                holder = parse_lock_owner(result.stdout, f"{path}/owner")
                raise LockedError(f"{lb.name}: {_held(holder)}")
            taken.append(lb.name)
        yield
    finally:
        release = (
            f"grep -q {quote_argv([token])} {quote_argv([path + '/owner'])} "
            f"&& rm -rf {quote_argv([path])}"
        )

        def released(lb: Host) -> bool:
            try:
                ctx.run(lb.name, privileged(["sh", "-c", release], sudo=lb.ssh.sudo), check=False)
            except OpError:
                return False
            return True

        # Released on every LB at once: no order is needed to give a lock up.
        held = [lb for lb in ctx.inventory.load_balancers if lb.name in taken]
        for name, done in on_each(sorted(held, key=lambda h: h.name), released).items():
            if not done:  # an unreachable LB keeps its lock: say so
                ctx.warn(f"{name}: could not release the lock {path}; `--break-lock` clears it")


def _held(holder: LockRecord) -> str:
    if holder.problem is not None:
        return (
            f"locked by {describe_lock(holder, time.time())}; if no operation is running, "
            "use --break-lock"
        )
    age = "" if holder.since is None else f" since {max(0.0, time.time() - holder.since):.0f} s ago"
    site = "" if holder.site is None else f" on site {holder.site!r}"
    return (
        f"locked by {holder.operator} for {holder.action!r}{site}{age}; wait for it to finish, or "
        "use --break-lock if that operator is gone"
    )
