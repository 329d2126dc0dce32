"""A gateway's session with a client: forget it, or open one from the gateway's side.

Both are scripts run on the gateway itself, for many peers at once:

- `forget_command`: each peer is removed and added back as it was (allowed IPs, persistent
  keepalive, preshared key), so the gateway keeps the peer but loses its endpoint and session.
  A gateway that a client is leaving must stop talking to it: once the client's LB entry points
  elsewhere, the LB no longer reverse-NATs this gateway's packets, and the client, receiving an
  authenticated packet from the gateway's own address, roams to it and bypasses the VIP
  (DOMAIN.md). The preshared key is read and written on the gateway (`wg show IF
  preshared-keys`, into mode-0600 files of a temporary directory): it never leaves it, and the
  interface's private key is never read.
- `initiate_command`: the same, then the peer's endpoint set to the client's address as the LB
  entry shows it and its persistent keepalive raised from 0, which makes WireGuard send at once:
  with no session, a handshake initiation. Only once the client's LB entry points to this
  gateway: through it the LB reverse-NATs the packet and the client sees it from the VIP
  (before, the client would roam to the gateway's own address). Starting from a forgotten
  session makes it a real handshake even when an old session is still valid here. A peer whose
  keepalive is off gets it back off right after the send.

Rebalance kicks with the drain's `handshake.initiate_command` (the same re-creation, in one
`wg set` from a reading taken before); `initiate_command` here does it from the gateway's own
state in one script, for a caller that has no such reading (ops.failover).
"""

from __future__ import annotations

from collections.abc import Sequence

from wgconsole.core.inventory import Gateway
from wgconsole.poll.transport.base import privileged

# How many peers one command handles (its command line stays far below the kernel's limit).
BATCH = 200

# $1: interface; $2: "forget" or "initiate"; then KEY (forget) or KEY ENDPOINT (initiate) pairs.
# A keepalive of 25 s (wg-quick's usual) is what a peer with keepalive off is kicked with.
_SCRIPT = r"""
IF=$1; MODE=$2; shift 2
umask 077
t=$(mktemp -d) || exit 1
trap 'rm -rf "$t"' EXIT
wg show "$IF" allowed-ips > "$t/a" && wg show "$IF" persistent-keepalive > "$t/k" &&
  wg show "$IF" preshared-keys > "$t/p" || exit 1
n=0
keys=""
while [ $# -gt 0 ]; do
  K=$1; shift
  keys="$keys $K"
  if [ "$MODE" = initiate ]; then EP=$1; shift; fi
  n=$((n + 1))
  a=$(awk -F'\t' -v k="$K" '$1 == k { print $2 }' "$t/a")
  ka=$(awk -F'\t' -v k="$K" '$1 == k { print $2 }' "$t/k")
  psk=$(awk -F'\t' -v k="$K" '$1 == k { print $2 }' "$t/p")
  [ -n "$ka" ] || { echo "no peer $K on $IF" >&2; exit 3; }
  [ "$a" = "(none)" ] && a=""
  a=$(printf '%s' "$a" | tr ' ' ',')
  [ "$ka" = off ] && ka=0
  wg set "$IF" peer "$K" remove || exit 1
  keep=$ka
  [ "$MODE" = initiate ] && keep=0
  if [ "$psk" != "(none)" ]; then
    printf '%s\n' "$psk" > "$t/psk$n"
    wg set "$IF" peer "$K" preshared-key "$t/psk$n" allowed-ips "$a" persistent-keepalive "$keep" \
      || exit 1
  else
    wg set "$IF" peer "$K" allowed-ips "$a" persistent-keepalive "$keep" || exit 1
  fi
  if [ "$MODE" = initiate ]; then
    kick=$ka
    [ "$kick" = 0 ] && kick=25
    wg set "$IF" peer "$K" endpoint "$EP" persistent-keepalive "$kick" || exit 1
    if [ "$ka" = 0 ]; then wg set "$IF" peer "$K" persistent-keepalive 0 || exit 1; fi
  fi
done
# Checked here rather than by another reading: a client leaves its old gateway within one
# command, and a forgotten peer must have no endpoint left.
if [ "$MODE" = forget ]; then
  wg show "$IF" endpoints > "$t/e" || exit 1
  for K in $keys; do
    e=$(awk -F'\t' -v k="$K" '$1 == k { print $2 }' "$t/e")
    [ "$e" = "(none)" ] || { echo "peer $K still has endpoint '$e' on $IF" >&2; exit 4; }
  done
fi
"""


def _commands(gw: Gateway, mode: str, args: Sequence[str], per: int) -> list[str]:
    step, sudo = BATCH * per, gw.ssh.sudo
    return [
        privileged(["sh", "-c", _SCRIPT, "sh", gw.interface, mode, *args[i : i + step]], sudo)
        for i in range(0, len(args), step)
    ]


def forget_command(gw: Gateway, keys: Sequence[str]) -> list[str]:
    """Commands that make `gw` forget the endpoint and session of each peer in `keys`."""
    return _commands(gw, "forget", list(keys), 1)


def initiate_command(gw: Gateway, peers: Sequence[tuple[str, str]]) -> list[str]:
    """Commands that make `gw` start a fresh handshake with each (key, endpoint)."""
    return _commands(gw, "initiate", [x for pair in peers for x in pair], 2)
