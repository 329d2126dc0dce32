"""A lock on every load balancer, so that two operators never change one service at once.

The lock is a directory on the LB (mkdir is atomic) holding its owner; it lives in /run, so a
reboot of the LB (which also forgets its IPVS table) forgets it too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from wgconsole.ops.audit import operator
from wgconsole.ops.context import OpContext, failure
from wgconsole.ops.errors import LockedError, OpError
from wgconsole.poll.transport.base import privileged, quote_argv, sudo_refusal

LOCK_ROOT = "/run/wgconsole"


def lock_path(ctx: OpContext) -> str:
    svc = ctx.inventory.service
    return f"{LOCK_ROOT}/lock-{svc.protocol}-{svc.vip}-{svc.port}"


@contextmanager
def service_lock(ctx: OpContext, action: str, *, break_lock: bool = False) -> Iterator[None]:
    token = uuid.uuid4().hex
    owner = json.dumps(
        {"operator": operator(), "action": action, "since": round(time.time()), "token": token}
    )
    path = lock_path(ctx)
    taken: list[str] = []
    try:
        for lb in sorted(ctx.inventory.load_balancers, key=lambda h: h.name):
            if break_lock:
                ctx.run(lb.name, privileged(["rm", "-rf", path], lb.ssh.sudo), check=False)
            script = (
                f"mkdir -p {LOCK_ROOT} && mkdir {quote_argv([path])} 2>/dev/null "
                f"&& printf '%s' {quote_argv([owner])} > {quote_argv([path + '/owner'])} "
                f"|| {{ cat {quote_argv([path + '/owner'])} 2>/dev/null; exit 75; }}"
            )
            command = privileged(["sh", "-c", script], lb.ssh.sudo)
            result = ctx.run(lb.name, command, check=False)
            if result.status != 0 and sudo_refusal(result.stdout + result.stderr):
                raise OpError(failure(lb.name, command, result))
            if result.status != 0:
                raise LockedError(f"{lb.name}: {_describe(result.stdout)}")
            taken.append(lb.name)
        yield
    finally:
        for name in taken:
            release = (
                f"grep -q {quote_argv([token])} {quote_argv([path + '/owner'])} "
                f"&& rm -rf {quote_argv([path])}"
            )
            lb = next(h for h in ctx.inventory.load_balancers if h.name == name)
            try:
                ctx.run(name, privileged(["sh", "-c", release], lb.ssh.sudo), check=False)
            except OpError:  # an unreachable LB keeps its lock: say so
                ctx.warn(f"{name}: could not release the lock {path}; `--break-lock` clears it")


def _describe(owner_text: str) -> str:
    try:
        owner = json.loads(owner_text)
    except json.JSONDecodeError:
        return "the service is locked by another operator (owner unreadable)"
    age = time.time() - float(owner.get("since", 0))
    return (
        f"locked by {owner.get('operator')} for {owner.get('action')!r} since {age:.0f} s ago; "
        "wait for it to finish, or use --break-lock if that operator is gone"
    )
