"""The remote shell scripts of a poll: one `sh -c` per host, its sections read by the collector.

Each host gets one script per poll whose sections (`poll.parsers.sections`) carry every output
the fleet needs: the LB's IPVS tables, connections, sysctls, drain records and keepalived's own
report; the gateway's clock, link and `wg show IF dump` with its secrets hidden on the gateway
itself. The collector (`poll.collector`) sends them and parses what comes back.
"""

from __future__ import annotations

from wgconsole.core.ifname import check_interface_name
from wgconsole.poll.parsers.director import (
    SYSCTL_DIR,
)
from wgconsole.poll.parsers.op_records import STATE_COMMAND
from wgconsole.poll.parsers.sections import (
    section_command,
    section_command_through,
)
from wgconsole.poll.transport.base import (
    privileged,
    quote_argv,
)

# A WireGuard key (32 bytes) in an awk regex: 43 base64 characters and `=`, written out as
# Debian 12's mawk has no {n} repetition.
_AWK_KEY = "[A-Za-z0-9+\\/]" * 43 + "="
# The secrets of `wg show IF dump` are replaced on the gateway itself, so none crosses the
# wire (the parser drops them too), found by the shape of their line, never its position: the
# interface line (4 fields) starts with the private key, a peer line (8 fields) has its
# preshared key second; both are hidden whatever they hold, except `(none)`. Any other line
# is not the dump's and has every key-shaped run hidden (`wg show all dump` would have put
# the private key on a 5-field line; the interface is checked to never be `all`).
_HIDE_SECRETS = (
    "awk -F'\\t' -v OFS='\\t' '"
    'NF == 4 && $1 != "(none)" { $1 = "(hidden)" } '
    'NF == 8 && $2 != "(none)" { $2 = "(hidden)" } '
    f'NF != 4 && NF != 8 {{ gsub(/{_AWK_KEY}/, "(hidden)") }} '
    "{ print }'"
)


# keepalived's own report of its VRRP instances, and its config, for the LB's director facts.
# Only a keepalived that is the real one is trusted: its executable (/proc/PID/exe) is the
# keepalived binary this host's PATH finds (resolved, owned by root) and its real and effective
# uid are root's. Anyone may start a program named keepalived (`pidof` lists it, newest first)
# with `-f /etc/shadow` and its own root: such an impostor is never signalled, nor are its
# config or dump read; where none but impostors run, or more than one real one does (which to
# read is then unknown: never picked at random), the section says so (`refused TEXT`). Of the
# real ones, the one whose network namespace is this shell's (a host may run one per
# namespace) and that is a parent (its children are keepalived too) is asked for its SIGUSR1
# dump: USR1 is DATA in every build (keepalived(8): only STOP, RELOAD, DATA and STATS have
# fixed signals; the JSON one would cost an exec of keepalived per poll to look up).
# Signalling is the only way keepalived reports its state without SNMP or D-Bus set up; USR1
# makes it write /tmp/keepalived.data (in its own mount namespace: reached through
# /proc/PID/root, a root's process's root) and log a line to syslog (one per poll: the README
# gives the cost), and changes nothing in it, the kernel or VRRP (nor is any file removed:
# --read-only). The dump read is this poll's: its mtime changed since the signal; it is read a
# moment later (keepalived writes it in one go), and only if it is a regular file (no symlink,
# no FIFO) owned by root, at most 4 MiB of it. The config file (its -f, else the default),
# likewise only a regular file owned by root and at most 1 MiB, goes along as base64, one
# line, so that no text in it can look like this section's own lines. Few processes: each
# costs a lot in the emulated lab, so the search uses shell builtins where it can; the
# keepalived PIDs come as arguments. `keepalived_script` takes the /proc and root's uid as
# parameters for the tests' fake /proc only: the poll's script is KEEPALIVED_SCRIPT.
_KEEPALIVED_TEMPLATE = r"""
proc=@PROC@
root_uid=@ROOT_UID@
bin=$(PATH=$PATH:/usr/sbin:/sbin:/usr/local/sbin; command -v keepalived 2>/dev/null) &&
    bin=$(readlink -f "$bin" 2>/dev/null) || bin=
if [ -n "$bin" ] && { [ ! -f "$bin" ] || [ "$(stat -c %u "$bin" 2>/dev/null)" != "$root_uid" ]; }
then
    bin=
fi
pid=
impostors=
for p in "$@"; do
    case $p in ''|*[!0-9]*) continue ;; esac
    [ "$proc/$p/ns/net" -ef /proc/self/ns/net ] || continue
    pp=
    uids=
    while read -r key real effective rest; do
        case $key in
            PPid:) pp=$real ;;
            Uid:) uids="$real $effective" ;;
        esac
    done < "$proc/$p/status"
    comm=
    [ -n "$pp" ] && read -r comm < "$proc/$pp/comm" 2>/dev/null
    [ "$comm" = keepalived ] && continue
    exe=$(readlink "$proc/$p/exe" 2>/dev/null)
    if [ -n "$bin" ] && [ "$exe" = "$bin" ] && [ "$uids" = "$root_uid $root_uid" ]; then
        pid="$pid${pid:+ }$p"
    else
        [ -n "$uids" ] || uids="? ?"
        impostors="$impostors${impostors:+, }$p (uid ${uids% *}, euid ${uids#* })"
    fi
done
case $pid in
    '')
        [ -n "$impostors" ] || { echo none; exit 0; }
        printf 'refused no process named keepalived here is %s run by root; ' \
            "${bin:-the keepalived binary (not found)}"
        echo "not trusted, not signalled nor read: $impostors"
        exit 0 ;;
    *' '*)
        printf 'refused more than one real keepalived runs here (pids %s): ' "$pid"
        echo "which one to read is unknown"
        exit 0 ;;
esac
echo "pid $pid"
conf=/etc/keepalived/keepalived.conf
set -f
set -- $(tr '\0' ' ' < "$proc/$pid/cmdline")
while [ $# -gt 0 ]; do
    case "$1" in
        -f|--use-file) [ $# -gt 1 ] && conf=$2 && shift ;;
        --use-file=*) conf=${1#*=} ;;
        -f?*) conf=${1#-f} ;;
    esac
    shift
done
echo "source data"
printf 'conf %s\n' "$conf"
c=$proc/$pid/root$conf
st=
[ -f "$c" ] && [ ! -L "$c" ] && st=$(stat -c '%u %s' "$c" 2>/dev/null)
if [ -z "$st" ]; then
    echo "confproblem not a regular file (a symlink, FIFO or missing): not read"
elif [ "${st% *}" != "$root_uid" ]; then
    echo "confproblem not owned by root (uid ${st% *}): not read"
elif [ "${st#* }" -gt 1048576 ]; then
    echo "confproblem larger than 1 MiB (${st#* } bytes): not read"
elif text=$(head -c 1048576 "$c" | base64 -w0 2>&1); then
    echo "conftext $text"
else
    echo "confproblem ${text%%
*}"
fi
f=$proc/$pid/root/tmp/keepalived.data
bad_dump() {
    printf '%s %s\n' "problem keepalived's dump (/tmp/keepalived.data) is not a regular" \
        "file owned by root: not read"
    exit 0
}
dump_ok() {
    [ -f "$f" ] && [ ! -L "$f" ] && [ "$(stat -c %u "$f" 2>/dev/null)" = "$root_uid" ]
}
if [ -e "$f" ] || [ -L "$f" ]; then
    dump_ok || bad_dump
fi
old=$(stat -c '%.9Y %s' "$f" 2>/dev/null)
kill -USR1 "$pid" 2>/dev/null || { echo "problem cannot signal keepalived ($pid)"; exit 0; }
i=0
while :; do
    i=$((i + 1))
    [ "$i" -le 50 ] || { echo "problem keepalived wrote no dump within 5 s"; exit 0; }
    sleep 0.1
    now=$(stat -c '%.9Y %s' "$f" 2>/dev/null)
    [ -n "$now" ] && [ "$now" != "$old" ] && break
done
sleep 0.1
dump_ok || bad_dump
echo dump
head -c 4194304 "$f"
"""


def keepalived_script(*, proc: str = "/proc", root_uid: int = 0) -> str:
    """The keepalived read with another /proc and root uid: for tests on a fake /proc only."""
    return _KEEPALIVED_TEMPLATE.replace("@PROC@", quote_argv([proc])).replace(
        "@ROOT_UID@", str(root_uid)
    )


KEEPALIVED_SCRIPT = keepalived_script()


# The net.ipv4.vs sysctls, PATH:VALUE. Not the shell's `read`: it reads a byte at a time,
# and a sysctl file read at an offset past 0 is at its end (dash got "1" of "10").
SYSCTLS_COMMAND = f"grep -s . {SYSCTL_DIR}* 2>&1"


def lb_script(*, sudo: bool, conns: bool = True, keepalived: bool = True) -> str:
    """The LB's poll; without `conns` it skips the connection table (most of its cost), and
    without `keepalived` keepalived's report (it signals keepalived and waits for its dump:
    most of a pair director's reading when the table is not read, ~1.5 s on the lab)."""
    small = "\n".join(
        [
            section_command("clock", "date +%s.%N"),
            section_command(
                "ipvsadm", privileged(["ipvsadm", "-Ln", "--nosort"], sudo=sudo) + " 2>&1"
            ),
            section_command(
                "stats",
                privileged(["ipvsadm", "-Ln", "--stats", "--exact", "--nosort"], sudo=sudo)
                + " 2>&1",
            ),
            section_command("expire", "cat /proc/sys/net/ipv4/vs/expire_nodest_conn 2>&1"),
            section_command("ops", STATE_COMMAND),
            # The director pair (poll.parsers.director).
            section_command("addr", "ip -o addr show 2>&1"),
            section_command(
                "daemon", privileged(["ipvsadm", "-Ln", "--daemon"], sudo=sudo) + " 2>&1"
            ),
            section_command(
                "timeout", privileged(["ipvsadm", "-Ln", "--timeout"], sudo=sudo) + " 2>&1"
            ),
            section_command("sysctls", SYSCTLS_COMMAND),
        ]
    )
    # Asked (through sudo, where the host says so) only where a keepalived runs: an LB
    # without one needs no sudo right for it.
    report = section_command(
        "keepalived",
        "if pids=$(pidof keepalived); then "
        + privileged(["sh", "-c", KEEPALIVED_SCRIPT, "sh"], sudo=sudo)
        + " $pids 2>&1; else echo none; fi",
    )
    if not keepalived:
        report = ""
    if not conns:
        return quote_argv(["sh", "-c", f"{small}\n{report}"])
    conn = section_command("conn", privileged(["cat", "/proc/net/ip_vs_conn"], sudo=sudo) + " 2>&1")
    # The connection table (seconds for 50,000 entries: the kernel walks it again for every
    # 4 KB read) streams out in the background while the small sections run, instead of
    # after them; their output is held in a variable until it ends, so the two never mix.
    # keepalived's dump (it waits for keepalived to write it) goes in the background too,
    # before the table: a pair's poll then costs the longer of the two, not their sum.
    script = f"{{ {report}\n{conn}\n}} &\nsmall=$({small}\n)\nwait\nprintf '%s\\n' \"$small\""
    return quote_argv(["sh", "-c", script])


def gateway_script(interface: str, *, sudo: bool) -> str:
    """The gateway's poll; ValueError if `interface` is not an interface name (`all`)."""
    dump = privileged(["wg", "show", check_interface_name(interface), "dump"], sudo=sudo)
    parts = [
        f"hide_secrets() {{ {_HIDE_SECRETS}; }}",
        section_command("clock", "date +%s.%N"),
        section_command(
            "link", quote_argv(["ip", "-o", "link", "show", "dev", interface]) + " 2>&1"
        ),
        # Streamed through the filter (the status line passes unchanged): with 10,000 peers,
        # holding the dump in a shell variable first cost the emulated lab gateway ~40% more
        # than `wg show` itself. Its stderr (sudo's warnings, wg's errors) comes after it, in
        # section "dump-err".
        section_command_through("dump", dump, "hide_secrets"),
    ]
    return quote_argv(["sh", "-c", "\n".join(parts)])
