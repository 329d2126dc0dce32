"""The fast handshake: a gateway opens a fresh session with clients whose LB entry now points
to it, at once, in one command; and its counterpart, a gateway forgetting clients that leave it.

A client whose packets start reaching another gateway is dropped there until one of the two
initiates a handshake; left to itself the client does so after ~15 s when it sends data, ~2
minutes when it only sends keepalives (docs/domain/wireguard.md). The new gateway can initiate
instead, as
soon as (never before) the client's LB entry points to it: the LB then reverse-NATs its packets
and the client sees them from the VIP. Before that, the client would roam to the gateway's own
address.

`initiate_command` makes the gateway remove each peer and add it back as it was (allowed IPs,
persistent keepalive, preshared key), with its endpoint set to the client's address as the LB
entry shows it and its persistent keepalive raised from 0, which makes WireGuard send at once
(with no session: a handshake initiation). The peer is made afresh because WireGuard sends at
most one initiation per peer per REKEY_TIMEOUT (5 s) and counts attempts that could not even
be sent: a gateway keeps trying to shake hands with every peer whose persistent keepalive is
set and that has no session, endpoint or not, every 5 s, so an old peer's initiation would
wait for the next of those tries. A fresh peer also drops any old session the gateway still
holds, so the handshake is a real one.

All peers go in one `wg set` (wireguard-tools applies `peer K remove peer K ...` in order), so
the first initiation leaves after one process, not one per peer; the peers' settings come from
a reading of the gateway taken before (`WgPeer`: allowed IPs, keepalive, whether it has a
preshared key). A preshared key is read and written on the gateway (`wg show IF
preshared-keys`, into a mode-0700 temporary directory) and never leaves it; the interface's
private key is never read. A peer whose keepalive is off is kicked with 25 s and set back to
off at once.

The one kick of every operation: the drain, the rebalance and the failover (which reads a new
gateway's peers at its first kick) all build it here, with one batch size and one script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wgconsole.core.inventory import Gateway
from wgconsole.core.records import WgPeer
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.readings import read_gateway
from wgconsole.ops.machinery.steps import Step
from wgconsole.poll.transport.base import privileged

BATCH = 200  # peers per command (the command line stays far below the kernel's limit)
KICK_KEEPALIVE = 25  # what a peer with keepalive off is kicked with (wg-quick's usual value)

# $1: interface; then KEY INDEX pairs for the peers with a preshared key, then `--`, then the
# `wg set` arguments, in which `@psk:INDEX` stands for the file holding that peer's key.
_WITH_PSK = r"""
IF=$1; shift
umask 077
t=$(mktemp -d) || exit 1
trap 'rm -rf "$t"' EXIT
wg show "$IF" preshared-keys > "$t/all" || exit 1
while [ "$1" != -- ]; do
  awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$t/all" > "$t/psk$2"
  [ -s "$t/psk$2" ] || { echo "no peer $1 on $IF" >&2; exit 3; }
  shift 2
done
shift
n=$#
while [ "$n" -gt 0 ]; do
  a=$1; shift; n=$((n - 1))
  case "$a" in @psk:*) a="$t/psk${a#@psk:}";; esac
  set -- "$@" "$a"
done
wg set "$IF" "$@"
"""


@dataclass(frozen=True, slots=True)
class Kick:
    """One peer to start afresh on the gateway: as it was read there, and the address the
    LB entry shows for it."""

    peer: WgPeer
    endpoint: str


def initiate_command(gw: Gateway, kicks: Sequence[Kick]) -> list[str]:
    """Commands that make `gw` start a fresh handshake with each peer, in order."""
    return _recreate(gw, [(k.peer, k.endpoint) for k in kicks])


def forget_command(gw: Gateway, peers: Sequence[WgPeer]) -> list[str]:
    """Commands that make `gw` forget each peer's endpoint and session, the peer re-created as
    it was read and sending nothing (no endpoint): a client leaving `gw` is from then on out of
    its reach, so that its packets cannot make the client roam to its own address once the
    LB no longer reverse-NATs them (docs/domain/connections-and-timeouts.md). One `wg set`,
    like the kick."""
    return _recreate(gw, [(p, None) for p in peers])


def _recreate(gw: Gateway, items: Sequence[tuple[WgPeer, str | None]]) -> list[str]:
    """Each peer removed and added back as read; with an endpoint, kicked (see the module)."""
    commands = []
    for first in range(0, len(items), BATCH):
        batch = items[first : first + BATCH]
        args: list[str] = []
        psk: list[str] = []
        off: list[str] = []
        for i, (p, endpoint) in enumerate(batch):
            args += ["peer", p.public_key, "remove", "peer", p.public_key]
            if p.has_preshared_key:
                args += ["preshared-key", f"@psk:{i}"]
                psk += [p.public_key, str(i)]
            args += ["allowed-ips", ",".join(p.allowed_ips)]
            if endpoint is None:
                args += ["persistent-keepalive", str(p.keepalive)]
                continue
            args += ["endpoint", endpoint]
            args += ["persistent-keepalive", str(p.keepalive or KICK_KEEPALIVE)]
            if not p.keepalive:
                off += ["peer", p.public_key, "persistent-keepalive", "0"]
        if psk:
            command = privileged(
                ["sh", "-c", _WITH_PSK, "sh", gw.interface, *psk, "--", *args], sudo=gw.ssh.sudo
            )
        else:
            command = privileged(["wg", "set", gw.interface, *args], sudo=gw.ssh.sudo)
        if off:
            command += " && " + privileged(["wg", "set", gw.interface, *off], sudo=gw.ssh.sudo)
        commands.append(command)
    return commands


def read_peers_step(
    ctx: OpContext, gw: Gateway, keys: set[str], title: str, into: dict[str, list[WgPeer]]
) -> Step:
    """A step that reads `gw`'s peers among `keys` into `into[gw.name]`, ahead of a forget that
    re-creates them. A key `gw` has no peer for has no session there to forget."""

    def verify() -> None:
        obs = read_gateway(ctx, gw)
        peers = obs.interface.peers if obs.interface else ()
        into[gw.name] = [p for p in peers if p.public_key in keys]

    return Step(title, verify=verify, host=gw.name)
