"""Re-point single IPVS connection entries: the one way the kernel offers, its sync protocol.

IPVS has no command to delete or edit one connection entry (ipvsadm has none; netlink has
none). Its connection synchronisation does it: a *backup* sync daemon that receives an entry
for a client whose current entry points to another real server expires that entry and makes the
received one (net/netfilter/ipvs/ip_vs_sync.c, `ip_vs_proc_conn`, Linux 6.1). Nothing else
changes: other entries, dests, their kernel order and weights, scheduler flags, timeouts.

So during a rebalance, each LB runs a backup sync daemon of its own on a private dummy interface
(`wgcsync`: no address, on no network, multicast group 239.255.213.1, port 18848, syncid 213),
and receives, sent from the LB itself, one version-1 sync message per batch of entries. A second
message with the same entries flagged inactive puts them back in the InActConn count (a received
entry is made active, as the kernel requires for a replacement; UDP entries are inactive).
The daemon and the interface are removed when the operation ends, or by the next run if cut
short. The kernel runs one backup daemon per network namespace (and one master daemon next to
it: `sync_state` is a bitmask), so on an LB that already runs a backup daemon (a director
pair's standby, keepalived's `lvs_sync_daemon`) the entries are sent to that daemon instead: to
its group, port and syncid as `ipvsadm -Ln --daemon` shows them, on its interface, from the LB
itself (the kernel loops a multicast packet back to a local member of the group on the interface
it leaves by). It is left as it is. The copy that also leaves by that interface reaches the other
director, where no backup daemon listens on that network when it is the pair's master.

Measured on the lab's 6.1 kernel: the entry of a client pinging through its tunnel was on the new
gateway at the first reading of the table after the message, in the same command, and no other
entry changed (tests/lab/test_rebalance_lab.py). On the director pair (keepalived's
`lvs_sync_daemon lan VI_WG id 51`; tests/lab/test_pair_rebalance_lab.py): the private backup
daemon started next to the VIP holder's master daemon, and the holder's entries moved through it;
on the standby, a message sent from itself out of `lan` to 224.0.0.81:8848, syncid 51, moved its
copy, its daemon untouched. The holder's master daemon then sends the moved entry as the holder
has it: a copy made by the sync protocol starts at `sync_threshold` packets, so it is sent at the
53rd packet (threshold 3, period 50), and it refreshed the standby's agreeing copy. A master's
sync of a UDP entry whose dest differs from the standby's copy is ignored (it carries
IP_VS_CONN_F_INACTIVE, which the kernel takes for the expiry of an entry already replaced):
measured, the standby's copy stayed on its own gateway through 70 packets, so a standby copy
that disagrees with the holder is never corrected by sync, only by its expiry or by this module.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from wgconsole.core.inventory import Host
from wgconsole.core.records import Endpoint
from wgconsole.poll.parsers.director import DEFAULT_SYNC_GROUP, DEFAULT_SYNC_PORT, parse_daemon
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.transport.base import privileged, quote_argv

INTERFACE = "wgcsync"
GROUP = "239.255.213.1"
PORT = 18848
SYNCID = 213
SYNC_VERSION = 1
# include/uapi/linux/ip_vs.h
CONN_F_MASQ = 0x0000
CONN_F_INACTIVE = 0x0100
IPPROTO = {"udp": 17, "tcp": 6, "sctp": 132}
_HEADER = struct.Struct("!BBHBbH")  # reserved, syncid, size, nr_conns, version, spare
_CONN_V4 = struct.Struct("!BBHIHHHHII4s4s4s")  # ip_vs_sync_v4
# One message fits the daemon's default maxlen (1472 bytes): 8 + 40 * 36. A receiver with a
# smaller maxlen (a backup's is at least 1024: 28 entries) gets fewer per message: a backup
# daemon reads at most maxlen bytes of a datagram and drops a longer message ("bogus message
# size"), which would leave the forgotten clients where they were.
PER_MESSAGE = 40
# The kernel's maxlen for a daemon on a 1500-byte interface (the private one's dummy).
DEFAULT_MAXLEN = 1500 - 20 - 8
# What `ipvsadm -Ln --daemon` prints for the daemon this module starts.
OURS = f"backup sync daemon (mcast={INTERFACE},"


class EntrySyncError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Receiver:
    """The backup sync daemon that receives the entries on one LB."""

    interface: str
    group: str
    port: int
    syncid: int
    ours: bool  # the private one on `wgcsync`, started and stopped by the operation
    maxlen: int = DEFAULT_MAXLEN  # the longest message it reads, bytes

    def describe(self) -> str:
        whose = "the private" if self.ours else "the LB's own"
        return (
            f"{whose} backup sync daemon (interface {self.interface}, group "
            f"{self.group}:{self.port}, syncid {self.syncid}, maxlen {self.maxlen})"
        )


PRIVATE = Receiver(INTERFACE, GROUP, PORT, SYNCID, ours=True)
# The kernel's defaults when ipvsadm prints no group or port (include/net/ip_vs.h).
DEFAULT_GROUP = DEFAULT_SYNC_GROUP
DEFAULT_PORT = DEFAULT_SYNC_PORT


def other_backup(listing: str) -> Receiver | None:
    """The backup sync daemon in `ipvsadm -Ln --daemon` output that is not the private one,
    or None. Read by the poll's parser (the kernel's bounds: syncid 0-255, maxlen). Its maxlen
    when ipvsadm prints none: the least a kernel lets a backup have, 1024. EntrySyncError when
    the listing is not understood or the entries cannot be sent to it (an IPv6 group)."""
    try:
        daemons = parse_daemon(listing)
    except ParseError as exc:
        raise EntrySyncError(f"the sync daemon listing not understood: {exc}") from None
    for daemon in daemons:
        if daemon.role != "backup" or daemon.interface == INTERFACE:
            continue
        if ipaddress.ip_address(daemon.group).version != 4 or not daemon.interface:
            raise EntrySyncError(
                f"a backup sync daemon on an IPv6 group ({daemon.group} on "
                f"{daemon.interface!r}): rebalance sends IPv4 only"
            )
        maxlen = 1024 if daemon.maxlen is None else daemon.maxlen
        return Receiver(
            daemon.interface, daemon.group, daemon.port, daemon.syncid, ours=False, maxlen=maxlen
        )
    return None


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry to make: client -> virtual service -> real server."""

    protocol: str
    client: Endpoint
    virtual: Endpoint
    dest: Endpoint


def _v4(endpoint: Endpoint) -> bytes:
    try:
        address = ipaddress.ip_address(endpoint.address)
    except ValueError:
        raise EntrySyncError(f"{endpoint}: not an IP address") from None
    if address.version != 4:
        raise EntrySyncError(f"{endpoint}: IPv6 entries are not supported by rebalance")
    return address.packed


def _conn(entry: Entry, flags: int, timeout: int) -> bytes:
    protocol = IPPROTO.get(entry.protocol.lower())
    if protocol is None:
        raise EntrySyncError(f"protocol {entry.protocol!r} cannot be synced")
    return _CONN_V4.pack(
        0,  # type: IPv4, no options
        protocol,
        _CONN_V4.size,  # version 0 in the top 4 bits, then the size
        flags,
        0,  # state: IP_VS_UDP_S_NORMAL (UDP has one state)
        entry.client.port,
        entry.virtual.port,
        entry.dest.port,
        0,  # fwmark
        timeout,
        _v4(entry.client),
        _v4(entry.virtual),
        _v4(entry.dest),
    )


def messages(
    entries: Sequence[Entry],
    *,
    inactive: bool,
    timeout: int,
    syncid: int = SYNCID,
    maxlen: int = DEFAULT_MAXLEN,
) -> list[bytes]:
    """Version-1 sync messages carrying `entries` (masquerade), for the daemon of `syncid` (0:
    a daemon of syncid 0 takes any) that reads `maxlen` bytes at most: each message is that
    long at most, PER_MESSAGE entries at most."""
    if not 0 <= syncid <= 255:
        raise EntrySyncError(f"syncid {syncid} out of range 0..255")
    per = min(PER_MESSAGE, (maxlen - _HEADER.size) // _CONN_V4.size)
    if per < 1:
        raise EntrySyncError(f"maxlen {maxlen}: no sync message fits")
    flags = CONN_F_MASQ | (CONN_F_INACTIVE if inactive else 0)
    out = []
    for first in range(0, len(entries), per):
        body = b"".join(_conn(e, flags, timeout) for e in entries[first : first + per])
        count = min(per, len(entries) - first)
        out.append(_HEADER.pack(0, syncid, _HEADER.size + len(body), count, SYNC_VERSION, 0) + body)
    return out


_SETUP = f"""
d=$(ipvsadm -Ln --daemon) || exit 1
case "$d" in
  *"{OURS}"*) ;;
  *"backup sync daemon"*)
    echo "a backup sync daemon already runs on this LB ($d); the kernel runs one per LB:" \\
      "rebalance cannot start its own" >&2
    exit 4;;
  *) {{ ip link show dev {INTERFACE} >/dev/null 2>&1 || ip link add {INTERFACE} type dummy; }} &&
     ip link set dev {INTERFACE} multicast on up &&
     ipvsadm --start-daemon backup --mcast-interface {INTERFACE} --syncid {SYNCID} \\
       --mcast-group {GROUP} --mcast-port {PORT} || exit 1;;
esac
ip route replace {GROUP}/32 dev {INTERFACE}
"""

_TEARDOWN = f"""
d=$(ipvsadm -Ln --daemon) || exit 1
case "$d" in *"{OURS}"*) ipvsadm --stop-daemon backup || exit 1;; esac
ip route del {GROUP}/32 dev {INTERFACE} 2>/dev/null
ip link del {INTERFACE} 2>/dev/null
exit 0
"""

# $1: the messages, in hex, comma-separated; $2 $3 $4: the daemon's interface, group and port;
# then the entries they must make, as /proc/net/ip_vs_conn shows them
# (CLIENT:CPORT:VIP:VPORT:DEST:DPORT in hex). Sent out of the daemon's interface
# (IP_MULTICAST_IF, 32 on every Linux, with the interface's index: ip_mreqn) with multicast loop
# on (the default), so the LB's own daemon gets the looped copy. perl-base is essential on
# Debian; python3 where it is not. The daemon applies a message a moment after it arrives: the
# table is read until every entry is there (3 s at most).
_SEND = """
m=$1; dev=$2; group=$3; port=$4; shift 4
idx=$(cat "/sys/class/net/$dev/ifindex") || exit 1
if command -v perl >/dev/null 2>&1; then
  perl -MSocket -e 'socket(my $s, PF_INET, SOCK_DGRAM, 0) or die "socket: $!\\n";
setsockopt($s, IPPROTO_IP, 32, pack("a4a4i", INADDR_ANY, INADDR_ANY, $ARGV[1]))
  or die "IP_MULTICAST_IF: $!\\n";
my $to = sockaddr_in($ARGV[3], inet_aton($ARGV[2]));
for my $h (split /,/, $ARGV[0]) {
  my $m = pack("H*", $h); defined(send($s, $m, 0, $to)) or die "send: $!\\n" }' \\
    "$m" "$idx" "$group" "$port" || exit 1
elif command -v python3 >/dev/null 2>&1; then
  python3 -c 'import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 32, struct.pack("4s4si", bytes(4), bytes(4), int(sys.argv[2])))
for h in sys.argv[1].split(","):
    s.sendto(bytes.fromhex(h), (sys.argv[3], int(sys.argv[4])))' "$m" "$idx" "$group" "$port" \\
    || exit 1
else
  echo "neither perl nor python3 on this LB: the entries cannot be sent" >&2
  exit 5
fi
i=0
while :; do
  missing=$(awk -v want="$*" 'BEGIN { n = split(want, w, " ")
      for (k = 1; k <= n; k++) need[w[k]] = 1 }
    NR > 1 { delete need[$2 ":" $3 ":" $4 ":" $5 ":" $6 ":" $7] }
    END { for (k in need) print k }' /proc/net/ip_vs_conn) || exit 1
  [ -z "$missing" ] && exit 0
  i=$((i + 1))
  [ $i -ge 30 ] && { echo "entries not there after the sync messages:" $missing >&2; exit 6; }
  sleep 0.1
done
"""


# Exit status of the interface check when the LB cannot make the private interface.
NO_DUMMY = 3

# Whether the LB can make the private `dummy` interface, without making it (read-only): it
# exists (left by a run cut short), the driver is in (loaded: /sys/module/dummy; built in:
# modules.builtin, as a built-in driver without parameters has no /sys/module entry), or the
# kernel can load it on demand: it runs the program named in /proc/sys/kernel/modprobe (empty:
# autoload off) for the alias `rtnl-link-dummy`, unless kernel.modules_disabled is 1.
_CAN_MAKE_INTERFACE = f"""
[ -d /sys/class/net/{INTERFACE} ] && exit 0
[ -d /sys/module/dummy ] && exit 0
grep -qs '/dummy[.]ko' "/lib/modules/$(uname -r)/modules.builtin" && exit 0
if [ "$(cat /proc/sys/kernel/modules_disabled 2>/dev/null)" = 1 ]; then
  echo "kernel.modules_disabled=1: the dummy module is not loaded and cannot be" >&2
  exit {NO_DUMMY}
fi
m=$(cat /proc/sys/kernel/modprobe 2>/dev/null)
if [ -z "$m" ]; then
  echo "module autoload is off (kernel.modprobe is empty) and the dummy module is not loaded" >&2
  exit {NO_DUMMY}
fi
if ! "$m" -n -q rtnl-link-dummy 2>/dev/null; then
  echo "the dummy module is not loaded and $m cannot load it (not in /lib/modules/$(uname -r)?)" >&2
  exit {NO_DUMMY}
fi
exit 0
"""


def interface_check_command() -> str:
    """Exit 0 when the LB can make the private interface, NO_DUMMY (the reason on stderr) when
    it cannot; read-only and unprivileged."""
    return quote_argv(["sh", "-c", _CAN_MAKE_INTERFACE])


def setup_command(lb: Host) -> str:
    """Start the LB's private backup sync daemon (idempotent: one left by a run cut short is
    used again)."""
    return privileged(["sh", "-c", _SETUP], sudo=lb.ssh.sudo)


def teardown_command(lb: Host) -> str:
    """Stop it and remove its interface; nothing else (another daemon is left alone)."""
    return privileged(["sh", "-c", _TEARDOWN], sudo=lb.ssh.sudo)


def daemon_command(lb: Host) -> str:
    """`ipvsadm -Ln --daemon`: which sync daemons run (read-only)."""
    return privileged(["ipvsadm", "-Ln", "--daemon"], sudo=lb.ssh.sudo)


def proc_key(entry: Entry) -> str:
    """The entry as /proc/net/ip_vs_conn shows it: hex fields 2-7 joined by ':'."""
    parts = []
    for ep in (entry.client, entry.virtual, entry.dest):
        parts += [_v4(ep).hex().upper(), f"{ep.port:04X}"]
    return ":".join(parts)


def send_command(
    lb: Host, batch: Sequence[bytes], entries: Sequence[Entry], to: Receiver = PRIVATE
) -> str:
    """Send `batch` to the daemon `to`, from the LB itself out of its interface, then wait until
    each of `entries` is in the LB's table (exit 6 if one is not)."""
    argv = ["sh", "-c", _SEND, "sh", ",".join(m.hex() for m in batch)]
    argv += [to.interface, to.group, str(to.port)]
    return privileged([*argv, *map(proc_key, entries)], sudo=lb.ssh.sudo)


def ours_running(daemon_listing: str) -> bool:
    return OURS in daemon_listing
