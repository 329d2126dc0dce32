"""A gateway opens a session with clients from its own side, from its own state.

`initiate_command` is a script run on the gateway itself, for many peers at once: each peer
is removed and added back as it was (allowed IPs, persistent keepalive, preshared key), then
its endpoint set to the client's address as the LB entry shows it and its persistent keepalive
raised from 0, which makes WireGuard send at once: with no session, a handshake initiation.
Only once the client's LB entry points to this gateway: through it the LB reverse-NATs the
packet and the client sees it from the VIP (before, the client would roam to the gateway's own
address). Starting from a forgotten session makes it a real handshake even when an old session
is still valid here. A peer whose keepalive is off gets it back off right after the send. The
preshared key is read and written on the gateway (`wg show IF preshared-keys`, into mode-0600
files of a temporary directory): it never leaves it, and the interface's private key is never
read.

The drain and rebalance kick (and forget) with `ops.handshake`, in one `wg set` from a reading
taken before; this script reads the peers' settings on the gateway, for a caller that has no
such reading (ops.failover).
"""

from __future__ import annotations

from collections.abc import Sequence

from wgconsole.core.inventory import Gateway
from wgconsole.poll.transport.base import privileged

# How many peers one command handles (its command line stays far below the kernel's limit).
BATCH = 200

# $1: interface; then KEY ENDPOINT pairs.
# A keepalive of 25 s (wg-quick's usual) is what a peer with keepalive off is kicked with.
_SCRIPT = r"""
IF=$1; shift
umask 077
t=$(mktemp -d) || exit 1
trap 'rm -rf "$t"' EXIT
wg show "$IF" allowed-ips > "$t/a" && wg show "$IF" persistent-keepalive > "$t/k" &&
  wg show "$IF" preshared-keys > "$t/p" || exit 1
n=0
while [ $# -gt 0 ]; do
  K=$1; EP=$2; shift 2
  n=$((n + 1))
  a=$(awk -F'\t' -v k="$K" '$1 == k { print $2 }' "$t/a")
  ka=$(awk -F'\t' -v k="$K" '$1 == k { print $2 }' "$t/k")
  psk=$(awk -F'\t' -v k="$K" '$1 == k { print $2 }' "$t/p")
  [ -n "$ka" ] || { echo "no peer $K on $IF" >&2; exit 3; }
  [ "$a" = "(none)" ] && a=""
  a=$(printf '%s' "$a" | tr ' ' ',')
  [ "$ka" = off ] && ka=0
  wg set "$IF" peer "$K" remove || exit 1
  if [ "$psk" != "(none)" ]; then
    printf '%s\n' "$psk" > "$t/psk$n"
    wg set "$IF" peer "$K" preshared-key "$t/psk$n" allowed-ips "$a" persistent-keepalive 0 \
      || exit 1
  else
    wg set "$IF" peer "$K" allowed-ips "$a" persistent-keepalive 0 || exit 1
  fi
  kick=$ka
  [ "$kick" = 0 ] && kick=25
  wg set "$IF" peer "$K" endpoint "$EP" persistent-keepalive "$kick" || exit 1
  if [ "$ka" = 0 ]; then wg set "$IF" peer "$K" persistent-keepalive 0 || exit 1; fi
done
"""


def initiate_command(gw: Gateway, peers: Sequence[tuple[str, str]]) -> list[str]:
    """Commands that make `gw` start a fresh handshake with each (key, endpoint)."""
    args = [x for pair in peers for x in pair]
    step = BATCH * 2
    return [
        privileged(["sh", "-c", _SCRIPT, "sh", gw.interface, *args[i : i + step]], gw.ssh.sudo)
        for i in range(0, len(args), step)
    ]
