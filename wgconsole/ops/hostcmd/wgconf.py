"""Commands that read and change a gateway's WireGuard peers, live and in its config file.

The config file holds the gateway's private key, so it is never read back to the bastion:
every edit runs ON the gateway as one POSIX sh/awk script, and only counts and status words
come back. The scripts are constants; every value (interface, paths, key, name, addresses)
reaches them as a quoted positional argument (`sh -c SCRIPT sh ARG...`), never spliced into
the script text. `wg show IF dump` is not used either: its first line is the private key.

A config file is read as wg(8) reads it: keys are case-insensitive, `#` starts a comment,
blocks start at `[Interface]` or `[Peer]` lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wgconsole.core.ifname import interface_name_problem
from wgconsole.core.inventory import Gateway
from wgconsole.core.wgkey import is_wireguard_key
from wgconsole.ops.machinery.errors import OpError
from wgconsole.poll.parsers.errors import redact
from wgconsole.poll.parsers.wg_dump import allowed_ip_problem
from wgconsole.poll.transport.base import privileged, quote_argv

BACKUP_SUFFIX = ".wgconsole-bak-"
TMP_SUFFIX = ".wgconsole-tmp"
# Backups of one config file kept on the gateway: the newest ones, the one the running change
# made always among them. A rollback needs only that one; the few before it let an operator
# undo the last changes by hand. Each holds the gateway's private key, so they are bounded
# (the audit log, on the bastion, keeps what every change was).
BACKUPS_KEPT = 5

# count FILE KEY: how many PublicKey lines in FILE equal KEY.
_COUNT_FN = r"""
count() {
    awk -v k="$2" '
        { line = $0; sub(/#.*/, "", line); gsub(/[ \t\r]/, "", line)
          eq = index(line, "=")
          if (eq > 0 && tolower(substr(line, 1, eq - 1)) == "publickey" &&
              substr(line, eq + 1) == k) n++ }
        END { print n + 0 }' "$1"
}
"""

# How a config file is replaced (with $conf, the configured path, and $bak set):
# - the file edited is the one $conf resolves to (`readlink -f`): a symlinked wg0.conf (one
#   that config management owns) gets the change, and stays a link;
# - the new text goes to a fresh temporary file (mktemp: O_EXCL, 0600, never a link followed)
#   in the resolved file's directory, so the rename is atomic; it gets the file's owner and
#   mode, is fsynced, renamed over the file, and the directory is fsynced;
# - before that, a backup of the old text (0600) is made next to $conf, and afterwards the
#   oldest backups are removed down to BACKUPS_KEPT, never the one just made;
# - temporary files (they hold the private key) are removed on any exit, and those that an
#   edit killed before its end left are removed by the next one.
# `sync FILE` fsyncs FILE (coreutils 8.24+, busybox); an older sync syncs everything.
_REPLACE_FN = r"""
LC_ALL=C; export LC_ALL
tmp= btmp=
trap 'rm -f -- ${tmp:+"$tmp"} ${btmp:+"$btmp"}' EXIT
trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 143' TERM
sync_file() { sync -- "$1" 2>/dev/null || sync; }
resolve() {
    real=$(readlink -f -- "$conf") || { echo "$conf: cannot resolve its path" >&2; exit 3; }
    [ -f "$real" ] || { echo "$conf: $real is not a regular file" >&2; exit 3; }
    dir=$(dirname -- "$real")
    owner=$(stat -c %u:%g -- "$real")
    mode=$(stat -c %a -- "$real")
    umask 077
    rm -f -- "$dir/.${real##*/}@TMP@."*
    tmp=$(mktemp "$dir/.${real##*/}@TMP@.XXXXXX")
}
commit_edit() {
    chown -- "$owner" "$tmp" || { echo "cannot give the new $conf the owner $owner" >&2; exit 7; }
    chmod -- "$mode" "$tmp"
    sync_file "$tmp"
    mv -f -- "$tmp" "$real"
    tmp=
    sync_file "$dir"
}
"""
# The backup half: what an edit adds to _REPLACE_FN (a restore has no backup to make).
_BACKUP_FN = r"""
make_backup() {
    if [ -e "$bak" ] || [ -L "$bak" ]; then echo "$bak already exists" >&2; exit 6; fi
    btmp=$(mktemp "$bak.XXXXXX")
    cat -- "$real" > "$btmp"
    sync_file "$btmp"
    mv -f -- "$btmp" "$bak"
    btmp=
}
prune_backups() {
    excess=$((0 - @KEEP@))
    for f in "$conf@BAK@"*; do
        if [ -f "$f" ]; then excess=$((excess + 1)); fi
    done
    for f in "$conf@BAK@"*; do
        [ "$excess" -gt 0 ] || break
        if [ -f "$f" ] && [ "$f" != "$bak" ]; then
            rm -f -- "$f" || true
            excess=$((excess - 1))
        fi
    done
}
"""
# $1: how many [Peer] blocks of $key the edit must leave; $2, $3: what is wrong when the new
# file, then the written one, holds another number. The old backups pruned after.
_CHECKED_COMMIT_FN = r"""
commit_checked() {
    if [ "$(count "$tmp" "$key")" != "$1" ]; then echo "new $conf $2" >&2; exit 5; fi
    commit_edit
    if [ "$(count "$real" "$key")" != "$1" ]; then echo "$conf $3 after the write" >&2; exit 5; fi
    prune_backups
}
"""
_REPLACE_FN = _REPLACE_FN.replace("@TMP@", TMP_SUFFIX)
_BACKUP_FN = _BACKUP_FN.replace("@BAK@", BACKUP_SUFFIX).replace("@KEEP@", str(BACKUPS_KEPT))

# Prints sections the parser below reads. Only public data and presence bits leave the host:
# `preshared-keys` is reduced to 0/1 on the gateway itself. The directory is writable when
# both the resolved file's (the temporary file) and the configured path's (the backups) are.
READ_SCRIPT = (
    "set -u\niface=$1 conf=$2 key=$3\n"
    + _COUNT_FN
    + r"""
pub=$(wg show "$iface" public-key) || exit 3
allowed=$(wg show "$iface" allowed-ips) || exit 3
ka=$(wg show "$iface" persistent-keepalive) || exit 3
psk=$(wg show "$iface" preshared-keys | awk '{ print $1 "\t" ($2 == "(none)" ? 0 : 1) }') || exit 3
printf '@public-key\n%s\n@allowed-ips\n%s\n@keepalive\n%s\n@psk\n%s\n@file\n' \
    "$pub" "$allowed" "$ka" "$psk"
if [ -f "$conf" ] && [ -r "$conf" ]; then
    printf 'count\t%s\n' "$(count "$conf" "$key")"
else
    printf 'count\tunreadable\n'
fi
real=$(readlink -f -- "$conf" 2>/dev/null) || real=$conf
if [ -w "$(dirname -- "$real")" ] && [ -w "$(dirname -- "$conf")" ]; then
    printf 'dir\twritable\n'
else
    printf 'dir\tread-only\n'
fi
"""
)

# Args: CONF BACKUP NAME KEY ALLOWED KEEPALIVE. Appends one [Peer] block; keeps a backup.
# ALLOWED empty: a peer that routes nothing (a prober's).
ADD_SCRIPT = (
    "set -eu\nconf=$1 bak=$2 name=$3 key=$4 allowed=$5 ka=$6\n"
    + _COUNT_FN
    + _REPLACE_FN
    + _BACKUP_FN
    + _CHECKED_COMMIT_FN
    + r"""
[ -f "$conf" ] || { echo "$conf: no such file" >&2; exit 3; }
n=$(count "$conf" "$key")
[ "$n" = 0 ] || { echo "$conf already has a [Peer] with this PublicKey ($n)" >&2; exit 4; }
resolve
make_backup
{
    # the old file without trailing blank lines, then one blank line and the new block
    awk '/^[ \t\r]*$/ { blank++; next } { for (; blank > 0; blank--) print ""; print }' "$real"
    printf '\n[Peer]\n# %s\nPublicKey = %s\n' "$name" "$key"
    # A probe's peer has none: no AllowedIPs line at all
    if [ -n "$allowed" ]; then printf 'AllowedIPs = %s\n' "$allowed"; fi
    if [ "$ka" != 0 ]; then printf 'PersistentKeepalive = %s\n' "$ka"; fi
} > "$tmp"
commit_checked 1 "would not hold the peer once" "does not hold the peer once"
echo written
"""
)

# The awk program that drops every [Peer] block whose PublicKey is k. Comment lines right
# above a block header go with that block ("# alice" then "[Peer]" is a common layout). A kept
# block's trailing blank lines wait in `gap` until more text follows, so that a dropped last
# block takes its separator with it and add-then-remove gives the file back byte for byte.
# (It is pasted into single quotes: no apostrophe may appear in it.)
_DROP_BLOCK_AWK = r"""
function section(l) { l = tolower(l); gsub(/[ \t\r]/, "", l)
    return (l == "[peer]" || l == "[interface]") ? l : "" }
function matches(l,   eq) { sub(/#.*/, "", l); gsub(/[ \t\r]/, "", l); eq = index(l, "=")
    return eq > 0 && tolower(substr(l, 1, eq - 1)) == "publickey" && substr(l, eq + 1) == k }
function blank(l) { return l ~ /^[ \t\r]*$/ }
function flush(   i, last) {
    if (drop) { n = 0; drop = 0; dropped_last = 1; return }
    last = n; while (last > 0 && blank(buf[last])) last--
    if (last > 0) {
        for (i = 1; i <= g; i++) print gap[i]
        g = 0
        for (i = 1; i <= last; i++) print buf[i]
        dropped_last = 0
    }
    for (i = last + 1; i <= n; i++) gap[++g] = buf[i]
    n = 0
}
{
    s = section($0)
    if (s != "") {
        c = n; while (c > 0 && buf[c] ~ /^[ \t]*#/) c--
        m = 0; for (i = c + 1; i <= n; i++) carry[++m] = buf[i]
        n = c; flush()
        for (i = 1; i <= m; i++) buf[++n] = carry[i]
        inpeer = (s == "[peer]")
    }
    buf[++n] = $0
    if (inpeer && matches($0)) drop = 1
}
END { flush(); if (!dropped_last) for (i = 1; i <= g; i++) print gap[i] }
"""

# Args: CONF BACKUP KEY. Removes the peer's block(s); "absent" (no change) if it has none.
assert "'" not in _DROP_BLOCK_AWK
REMOVE_SCRIPT = (
    "set -eu\nconf=$1 bak=$2 key=$3\n"
    + _COUNT_FN
    + _REPLACE_FN
    + _BACKUP_FN
    + _CHECKED_COMMIT_FN
    + 'drop_block() {\n    awk -v k="$2" \''
    + _DROP_BLOCK_AWK
    + '\' "$1"\n}\n'
    + r"""
[ -f "$conf" ] || { echo "$conf: no such file" >&2; exit 3; }
if [ "$(count "$conf" "$key")" = 0 ]; then echo absent; exit 0; fi
resolve
make_backup
drop_block "$real" "$key" > "$tmp"
commit_checked 0 "would still hold the peer" "still holds the peer"
echo removed
"""
)

# Args: CONF BACKUP. Puts the backup's text back into the file CONF resolves to (a fresh
# temporary file renamed over it: atomic), with that file's owner and mode, and removes the
# backup; "untouched" if none was made. Also removes what an edit killed half-way left.
RESTORE_SCRIPT = (
    "set -eu\nconf=$1 bak=$2\n"
    + _REPLACE_FN
    + r"""
rm -f -- "$conf.wgconsole-tmp"  # an older wgconsole's fixed name
if [ ! -f "$bak" ]; then echo untouched; exit 0; fi
resolve
cat -- "$bak" > "$tmp"
commit_edit
rm -f -- "$bak"
echo restored
"""
)

# Args: IFACE KEY. Removes a live peer; "absent" if it is not there (so it can be retried).
LIVE_REMOVE_SCRIPT = r"""set -u
iface=$1 key=$2
peers=$(wg show "$iface" peers) || exit 3
if printf '%s\n' "$peers" | grep -qxF -- "$key"; then
    wg set "$iface" peer "$key" remove && echo removed
else
    echo absent
fi
"""

# Args: IFACE KEY ALLOWED KEEPALIVE CONF PSK(0/1). Re-adds a removed live peer; its
# preshared key, if it had one, is taken from the (restored) config file on the gateway itself
# and handed to wg on a pipe: it never leaves the host and never touches a file.
LIVE_RESTORE_SCRIPT = r"""set -eu
iface=$1 key=$2 allowed=$3 ka=$4 conf=$5 psk=$6
wg set "$iface" peer "$key" allowed-ips "$allowed" persistent-keepalive "$ka"
[ "$psk" = 1 ] || { echo restored; exit 0; }
awk -v k="$key" '
    function clean(l) { sub(/#.*/, "", l); gsub(/[ \t\r]/, "", l); return l }
    function val(l) { l = clean(l); return substr(l, index(l, "=") + 1) }
    function name(l) { l = clean(l)
        return index(l, "=") ? tolower(substr(l, 1, index(l, "=") - 1)) : tolower(l) }
    name($0) == "[peer]" || name($0) == "[interface]" {
        if (hit && p != "") print p
        hit = 0; p = "" }
    name($0) == "publickey" && val($0) == k { hit = 1 }
    name($0) == "presharedkey" { p = val($0) }
    END { if (hit && p != "") print p }' "$conf" | {
    read -r secret || { echo "no PresharedKey for the peer in $conf" >&2; exit 6; }
    printf '%s\n' "$secret" | wg set "$iface" peer "$key" preshared-key /dev/stdin
}
echo restored
"""


def _sh(script: str, args: Sequence[str], *, sudo: bool) -> str:
    return privileged(["sh", "-c", script, "sh", *args], sudo=sudo)


def _interface(gw: Gateway) -> str:
    """The gateway's interface, or OpError: `all` would make `wg` act on every interface."""
    problem = interface_name_problem(gw.interface)
    if problem is not None:
        raise OpError(f"{gw.name}: interface {_shown(gw.interface)} refused: {problem}")
    return gw.interface


def read_command(gw: Gateway, key: str) -> str:
    return _sh(READ_SCRIPT, [_interface(gw), gw.config, key], sudo=gw.ssh.sudo)


def live_set_command(gw: Gateway, key: str, allowed_ips: Sequence[str], keepalive: int) -> str:
    # `wg set ... allowed-ips` REPLACES the peer's list: always the complete list. None at all
    # (a prober's peer): the argument is left out, and a new peer has none.
    argv = ["wg", "set", _interface(gw), "peer", key]
    if allowed_ips:
        argv += ["allowed-ips", ",".join(allowed_ips)]
    return privileged([*argv, "persistent-keepalive", str(keepalive)], sudo=gw.ssh.sudo)


def live_remove_command(gw: Gateway, key: str) -> str:
    return _sh(LIVE_REMOVE_SCRIPT, [_interface(gw), key], sudo=gw.ssh.sudo)


def live_restore_command(gw: Gateway, key: str, state: LivePeer) -> str:
    args = [_interface(gw), key, ",".join(state.allowed_ips), str(state.keepalive), gw.config]
    return _sh(LIVE_RESTORE_SCRIPT, [*args, "1" if state.has_psk else "0"], sudo=gw.ssh.sudo)


def add_block_command(
    gw: Gateway, backup: str, name: str, key: str, allowed: str, keepalive: int
) -> str:
    return _sh(
        ADD_SCRIPT, [gw.config, backup, name, key, allowed, str(keepalive)], sudo=gw.ssh.sudo
    )


def remove_block_command(gw: Gateway, backup: str, key: str) -> str:
    return _sh(REMOVE_SCRIPT, [gw.config, backup, key], sudo=gw.ssh.sudo)


def restore_command(gw: Gateway, backup: str) -> str:
    return _sh(RESTORE_SCRIPT, [gw.config, backup], sudo=gw.ssh.sudo)


def backup_path(gw: Gateway, stamp: str) -> str:
    return f"{gw.config}{BACKUP_SUFFIX}{stamp}"


def describe_argv(argv: Sequence[str]) -> str:
    """A command as shown to the operator (never holds a secret: ours never do)."""
    return quote_argv(argv)


# --- what a read brings back ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LivePeer:
    """A peer as it matters for "one identical wg0": its routes, keepalive and PSK presence."""

    allowed_ips: tuple[str, ...]  # sorted
    keepalive: int  # 0 = off
    has_psk: bool = False

    def describe(self) -> str:
        ips = ",".join(self.allowed_ips) or "(none)"
        psk = ", preshared key" if self.has_psk else ""
        return f"allowed-ips {ips}, keepalive {self.keepalive or 'off'}{psk}"


@dataclass(frozen=True, slots=True)
class GatewayState:
    public_key: str
    peers: Mapping[str, LivePeer]
    key_count: int | None  # PublicKey lines for the key in the config file; None: unreadable
    dir_writable: bool


def parse_read(text: str) -> GatewayState:
    """What READ_SCRIPT printed; OpError if a section is missing or a value is not of its
    form (a key, an allowed IP, a number): what a gateway says is checked before use."""
    sections = _sections(text)
    try:
        public_key = sections["public-key"][0].strip()
        allowed = _columns(sections["allowed-ips"])
        keepalive = _columns(sections["keepalive"])
        psk = _columns(sections["psk"])
        file_info = dict(_columns(sections["file"]))
    except (KeyError, IndexError):
        raise OpError("unexpected output from the gateway's read (sections missing)") from None
    if public_key != "(none)" and not is_wireguard_key(public_key):
        raise _bad("its public key is not a WireGuard key")
    keepalives = dict(keepalive)
    psks = dict(psk)
    peers = {
        _peer_key(key): LivePeer(
            allowed_ips=_allowed(value),
            keepalive=_keepalive(keepalives.get(key, "off")),
            has_psk=psks.get(key, "0") == "1",
        )
        for key, value in allowed
    }
    count_text = file_info.get("count", "unreadable")
    return GatewayState(
        public_key=public_key,
        peers=peers,
        key_count=int(count_text) if count_text.isdigit() and len(count_text) < 10 else None,
        dir_writable=file_info.get("dir") == "writable",
    )


def _bad(what: str) -> OpError:
    return OpError(redact(f"unexpected output from the gateway's read: {what}"))


def _shown(value: str) -> str:
    """`value` quoted for a message: short, control characters escaped, keys redacted."""
    return redact(repr(value if len(value) <= 40 else value[:37] + "..."))


def _peer_key(key: str) -> str:
    if not is_wireguard_key(key):
        raise _bad(f"peer key {_shown(key)} is not a WireGuard key")
    return key


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@"):
            current = sections.setdefault(line[1:], [])
        elif current is not None and line.strip():
            current.append(line)
    return sections


def _columns(lines: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        first, _, rest = line.partition("\t")
        out.append((first.strip(), rest.strip()))
    return out


def _allowed(value: str) -> tuple[str, ...]:
    if value in ("", "(none)"):
        return ()
    networks = value.split()
    for network in networks:
        problem = allowed_ip_problem(network)
        if problem is not None:
            raise _bad(f"allowed IP {_shown(network)}: {problem}")
    return tuple(sorted(networks))


def _keepalive(value: str) -> int:
    if value == "off":
        return 0
    if value.isascii() and value.isdigit() and len(value) <= 5 and int(value) <= 0xFFFF:
        return int(value)
    raise _bad(f"keepalive {_shown(value)} is not a number of seconds")
