"""The fence on every load balancer: what an evicted gateway sends from its WireGuard port is
dropped there, from its first packet after it comes back.

Why (docs/domain/wireguard.md W12): a gateway that comes back after its clients moved still
knows their endpoints; with PersistentKeepalive on, it talks to them at once, before any SSH
command can reach it. The LB no longer has their entries to it, so it forwards those packets
without reverse NAT; each client sees the gateway's own address and roams to it, leaving the
VIP for good. The drain prevents that by taking the gateway's interface down first; a gateway
that cannot be reached (dead, or cut off) cannot be told to, so the LB drops its packets
instead.

One nftables table of wgconsole's own (`inet wgconsole`) with a set of fenced (address, port)
pairs and one rule in the forward hook, before IPVS's own forward hook: anything from a fenced
pair is dropped except handshake responses and cookie replies (WireGuard message types 2
and 3, the first byte of the UDP payload). A gateway only sends those in answer to an
initiation it received directly, and no client's initiation reaches it through the LB any
more (its real server is gone or at weight 0): what gets through are the answers to a
prober's handshakes, so the guard and `probe` still see it come back. The fence is installed
with the eviction, before the LB's table changes, and removed by `undrain`.

Every command is idempotent: the table, the chain and the set are declared with `add` and the
chain's one rule is rewritten in the same transaction, so fencing twice leaves one rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from wgconsole.core.inventory import Host
from wgconsole.core.records import Endpoint
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError
from wgconsole.poll.transport.base import privileged

TABLE = "wgconsole"
SETS = {4: "fenced4", 6: "fenced6"}
# Before IPVS's hooks on forward (NF_IP_PRI_NAT_SRC - 2) and after conntrack's.
PRIORITY = -10
# The WireGuard message types let through: handshake response, cookie reply.
ANSWERS = "2-3"
PACKAGE = "nftables"


def _family(endpoint: Endpoint) -> int:
    return 6 if ":" in endpoint.address else 4


def _element(endpoint: Endpoint) -> str:
    return f"{{ {endpoint.address} . {endpoint.port} }}"


def _script(lines: Iterable[str]) -> str:
    return "\n".join(lines) + "\n"


def _declarations() -> list[str]:
    chain = (
        f"add chain inet {TABLE} fence {{ type filter hook forward priority {PRIORITY}; "
        "policy accept; }"
    )
    return [
        f"add table inet {TABLE}",
        f"add set inet {TABLE} {SETS[4]} {{ type ipv4_addr . inet_service; }}",
        f"add set inet {TABLE} {SETS[6]} {{ type ipv6_addr . inet_service; }}",
        chain,
        f"flush chain inet {TABLE} fence",
        f"add rule inet {TABLE} fence ip saddr . udp sport @{SETS[4]} "
        f"@th,64,8 != {ANSWERS} counter drop",
        f"add rule inet {TABLE} fence ip6 saddr . udp sport @{SETS[6]} "
        f"@th,64,8 != {ANSWERS} counter drop",
    ]


def _nft(lb: Host, script: str) -> str:
    """`nft -f -` fed `script` on `lb`: one atomic transaction."""
    return privileged(["sh", "-c", 'printf "%s" "$1" | nft -f -', "sh", script], sudo=lb.ssh.sudo)


def fence_command(lb: Host, endpoint: Endpoint) -> str:
    set_name = SETS[_family(endpoint)]
    lines = [*_declarations(), f"add element inet {TABLE} {set_name} {_element(endpoint)}"]
    return _nft(lb, _script(lines))


def unfence_command(lb: Host, endpoint: Endpoint) -> str:
    set_name = SETS[_family(endpoint)]
    return _nft(lb, _script([f"delete element inet {TABLE} {set_name} {_element(endpoint)}"]))


def list_command(lb: Host) -> str:
    """The fenced pairs as nft's JSON; nothing (exit 0) when the table is not there."""
    inner = f"nft list table inet {TABLE} >/dev/null 2>&1 || exit 0; nft -j list table inet {TABLE}"
    return privileged(["sh", "-c", inner], sudo=lb.ssh.sudo)


def parse_fenced(text: str) -> set[Endpoint]:
    """The (address, port) pairs in the fence sets of `nft -j list table` output."""
    if not text.strip():
        return set()
    try:
        data = json.loads(text)
        items = data["nftables"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("nft's listing of the fence is not the JSON it should be") from None
    fenced: set[Endpoint] = set()
    for item in items if isinstance(items, list) else ():
        body = item.get("set") if isinstance(item, dict) else None
        if not isinstance(body, dict) or body.get("name") not in SETS.values():
            continue
        for elem in body.get("elem", ()):
            pair = elem.get("concat") if isinstance(elem, dict) else None
            if (
                isinstance(pair, list)
                and len(pair) == 2
                and isinstance(pair[0], str)
                and isinstance(pair[1], int)
            ):
                fenced.add(Endpoint(pair[0], pair[1]))
    return fenced


def missing_nft(stderr: str) -> bool:
    return "nft: not found" in stderr or "nft: command not found" in stderr


def fenced_on(ctx: OpContext, lb: Host, *, missing_ok: bool = False) -> set[Endpoint]:
    """`lb`'s fenced pairs; `missing_ok`: an LB without nft has none (nothing could have
    fenced anything there)."""
    result = ctx.run(lb.name, list_command(lb), mutating=False, check=False)
    if result.status != 0:
        if missing_ok and missing_nft(result.stderr):
            return set()
        raise _failure(lb, result.stderr, "could not list the fence")
    try:
        return parse_fenced(result.stdout)
    except ValueError as exc:
        raise OpError(f"{lb.name}: {exc}") from None


def fence(ctx: OpContext, lb: Host, endpoint: Endpoint) -> None:
    result = ctx.run(lb.name, fence_command(lb, endpoint), check=False)
    if result.status != 0:
        raise _failure(lb, result.stderr, "the fence was not installed")


def _failure(lb: Host, stderr: str, what: str) -> OpError:
    """Why an nft command failed on `lb`: nft missing (and its package), or its own error."""
    if missing_nft(stderr):
        return OpError(f"{lb.name}: nft is not installed (Debian package {PACKAGE})")
    return OpError(f"{lb.name}: {what}: {stderr.strip()[:200]}")
