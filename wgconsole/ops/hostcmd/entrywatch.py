"""Watch an LB's connection table for clients' new entries, on the LB itself, tightly.

A client whose entry moves to another gateway is cut off until that gateway shakes hands with
it, and the gateway may only initiate once the entry points to it (docs/domain/wireguard.md:
before, its
packets would pass the LB without reverse NAT and the client would roam to its own address).
So the moment the new entry exists is what the operation waits for, and every round trip
between that moment and the new gateway's initiation is time the client's traffic is lost.

Polling the whole LB from the bastion (a full reading of the table, parsed) finds a new entry a
poll interval plus a reading late. `watch_command` instead runs one short loop on the LB:
it reads /proc/net/ip_vs_conn every `TICK` seconds and prints, in the kernel's own format (so
`poll.parsers.ipvs_proc` parses it), the entries of the awaited clients that point anywhere
but `away_from`, as soon as there is one, plus those that appear within `linger` after it
(clients that send data all re-appear within their sending interval after a flush: one batch
saves each of them a round trip). It stops after `seconds` in any case, printing the header
only. `then_watch` runs it right after another command (the drain's delete of a real server,
whose entries the kernel flushes at once when expire_nodest_conn=1), in the same round trip.

The loop is POSIX sh and awk; its time comes from /proc/uptime (no `date` per tick), so it
runs the same under sudo's `sh` on any LB. It reads the table whole on each tick: on an LB
with tens of thousands of entries a tick costs what one reading costs, and the loop stays
bounded by `seconds`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from wgconsole.core.inventory import Host
from wgconsole.core.records import Endpoint, IpvsConn
from wgconsole.poll.parsers.ipvs_proc import SOURCE_CONN, parse_ip_vs_conn
from wgconsole.poll.transport.base import privileged

TICK = 0.02  # s between two readings of the table on the LB
LINGER = 0.1  # s the loop goes on gathering after its first find

# $1 VIP, $2 dest to ignore ("-": none), $3 centiseconds to wait, $4 centiseconds to linger,
# $5 tick in seconds, then the awaited clients; all endpoints in /proc/net/ip_vs_conn's form
# ("0A4D010A C991": address and port as the kernel prints them, upper case).
_SCRIPT = r"""
VIP=$1; OLD=$2; WAIT=$3; LINGER=$4; TICK=$5; shift 5
CLIENTS="$*"
cs() { read -r u _ < /proc/uptime; u="${u%.*}${u#*.}"; while [ "${u#0}" != "$u" ]; do u=${u#0}; done
  echo "${u:-0}"; }
end=$(( $(cs) + WAIT )); stop=
while :; do
  out=$(awk -v vip="$VIP" -v old="$OLD" -v want="$CLIENTS" '
    BEGIN { n = split(want, w, " "); for (i = 1; i < n; i += 2) p[w[i] " " w[i + 1]] = 1 }
    NR == 1 { print; next }
    (toupper($2) " " toupper($3)) in p && (toupper($4) " " toupper($5)) == vip &&
      (toupper($6) " " toupper($7)) != old { print; f = 1 }
    END { exit !f }' SOURCE)
  found=$?
  now=$(cs)
  if [ "$found" -eq 0 ] && [ -z "$stop" ]; then stop=$(( now + LINGER )); fi
  if [ -n "$stop" ] && [ "$now" -ge "$stop" ]; then break; fi
  if [ "$now" -ge "$end" ] && [ -z "$stop" ]; then break; fi
  sleep "$TICK" 2>/dev/null || sleep 1
done
printf '%s\n' "$out"
""".replace("SOURCE", SOURCE_CONN)


def proc_form(endpoint: Endpoint) -> str:
    """`endpoint` as /proc/net/ip_vs_conn prints it: `0A4D010A C991` (IPv6: full groups)."""
    address = ipaddress.ip_address(endpoint.address)
    text = address.packed.hex().upper() if address.version == 4 else address.exploded.upper()
    return f"{text} {endpoint.port:04X}"


def watch_command(
    lb: Host,
    vip: Endpoint,
    clients: Sequence[Endpoint],
    *,
    away_from: Endpoint | None,
    seconds: float,
    linger: float = LINGER,
) -> str:
    """One command: wait on `lb` until an entry of one of `clients` to `vip` points anywhere
    but `away_from`, gather for `linger` more, print them (with the table's header line)."""
    argv = [
        "sh",
        "-c",
        _SCRIPT,
        "sh",
        proc_form(vip),
        proc_form(away_from) if away_from is not None else "-",
        str(max(0, round(seconds * 100))),
        str(max(0, round(linger * 100))),
        f"{TICK:g}",
        *(part for c in clients for part in proc_form(c).split()),
    ]
    return privileged(argv, sudo=lb.ssh.sudo)


def then_watch(first: str, watch: str) -> str:
    """`first`, then (if it worked) `watch`, in one round trip; fails as `first` fails."""
    return f"{first} && {watch}"


def parse_watch(text: str) -> list[IpvsConn]:
    """The entries a watch printed (its first line is the table's header)."""
    if not text.strip():
        return []
    return parse_ip_vs_conn(text)
