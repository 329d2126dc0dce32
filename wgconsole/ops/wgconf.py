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

from wgconsole.core.inventory import Gateway
from wgconsole.ops.errors import OpError
from wgconsole.poll.transport.base import privileged, quote_argv

BACKUP_SUFFIX = ".wgconsole-bak-"
TMP_SUFFIX = ".wgconsole-tmp"

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

# Prints sections the parser below reads. Only public data and presence bits leave the host:
# `preshared-keys` is reduced to 0/1 on the gateway itself.
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
if [ -w "$(dirname -- "$conf")" ]; then printf 'dir\twritable\n'; else printf 'dir\tread-only\n'; fi
"""
)

# Args: CONF BACKUP NAME KEY ALLOWED KEEPALIVE. Appends one [Peer] block; keeps a backup.
ADD_SCRIPT = (
    "set -eu\nconf=$1 bak=$2 name=$3 key=$4 allowed=$5 ka=$6\ntmp=$conf.wgconsole-tmp\n"
    + _COUNT_FN
    + r"""
[ -f "$conf" ] || { echo "$conf: no such file" >&2; exit 3; }
n=$(count "$conf" "$key")
[ "$n" = 0 ] || { echo "$conf already has a [Peer] with this PublicKey ($n)" >&2; exit 4; }
umask 077
cp -p "$conf" "$bak"
{
    # the old file without trailing blank lines, then one blank line and the new block
    awk '/^[ \t\r]*$/ { blank++; next } { for (; blank > 0; blank--) print ""; print }' "$conf"
    printf '\n[Peer]\n# %s\nPublicKey = %s\nAllowedIPs = %s\n' "$name" "$key" "$allowed"
    if [ "$ka" != 0 ]; then printf 'PersistentKeepalive = %s\n' "$ka"; fi
} > "$tmp"
chmod 600 "$tmp"
if [ "$(count "$tmp" "$key")" != 1 ]; then
    rm -f "$tmp"; echo "new $conf would not hold the peer once" >&2; exit 5
fi
mv -f "$tmp" "$conf"
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
    "set -eu\nconf=$1 bak=$2 key=$3\ntmp=$conf.wgconsole-tmp\n"
    + _COUNT_FN
    + 'drop_block() {\n    awk -v k="$2" \''
    + _DROP_BLOCK_AWK
    + '\' "$1"\n}\n'
    + r"""
[ -f "$conf" ] || { echo "$conf: no such file" >&2; exit 3; }
if [ "$(count "$conf" "$key")" = 0 ]; then echo absent; exit 0; fi
umask 077
cp -p "$conf" "$bak"
drop_block "$conf" "$key" > "$tmp"
chmod 600 "$tmp"
if [ "$(count "$tmp" "$key")" != 0 ]; then
    rm -f "$tmp"; echo "new $conf would still hold the peer" >&2; exit 5
fi
mv -f "$tmp" "$conf"
echo removed
"""
)

# Args: CONF BACKUP. Puts the backup back (rename: atomic); "untouched" if none was made.
RESTORE_SCRIPT = r"""set -eu
conf=$1 bak=$2
rm -f "$conf.wgconsole-tmp"
if [ -e "$bak" ]; then mv -f "$bak" "$conf"; echo restored; else echo untouched; fi
"""

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


def _sh(script: str, args: Sequence[str], sudo: bool) -> str:
    return privileged(["sh", "-c", script, "sh", *args], sudo)


def read_command(gw: Gateway, key: str) -> str:
    return _sh(READ_SCRIPT, [gw.interface, gw.config, key], gw.ssh.sudo)


def live_set_command(gw: Gateway, key: str, allowed_ips: Sequence[str], keepalive: int) -> str:
    # `wg set ... allowed-ips` REPLACES the peer's list: always the complete list.
    argv = ["wg", "set", gw.interface, "peer", key, "allowed-ips", ",".join(allowed_ips)]
    return privileged([*argv, "persistent-keepalive", str(keepalive)], gw.ssh.sudo)


def live_remove_command(gw: Gateway, key: str) -> str:
    return _sh(LIVE_REMOVE_SCRIPT, [gw.interface, key], gw.ssh.sudo)


def live_restore_command(gw: Gateway, key: str, state: LivePeer) -> str:
    args = [gw.interface, key, ",".join(state.allowed_ips), str(state.keepalive), gw.config]
    return _sh(LIVE_RESTORE_SCRIPT, [*args, "1" if state.has_psk else "0"], gw.ssh.sudo)


def add_block_command(
    gw: Gateway, backup: str, name: str, key: str, allowed: str, keepalive: int
) -> str:
    return _sh(ADD_SCRIPT, [gw.config, backup, name, key, allowed, str(keepalive)], gw.ssh.sudo)


def remove_block_command(gw: Gateway, backup: str, key: str) -> str:
    return _sh(REMOVE_SCRIPT, [gw.config, backup, key], gw.ssh.sudo)


def restore_command(gw: Gateway, backup: str) -> str:
    return _sh(RESTORE_SCRIPT, [gw.config, backup], gw.ssh.sudo)


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
    sections = _sections(text)
    try:
        public_key = sections["public-key"][0].strip()
        allowed = _columns(sections["allowed-ips"])
        keepalive = _columns(sections["keepalive"])
        psk = _columns(sections["psk"])
        file_info = dict(_columns(sections["file"]))
    except (KeyError, IndexError):
        raise OpError("unexpected output from the gateway's read (sections missing)") from None
    keepalives = dict(keepalive)
    psks = dict(psk)
    peers = {
        key: LivePeer(
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
        key_count=int(count_text) if count_text.isdigit() else None,
        dir_writable=file_info.get("dir") == "writable",
    )


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
    return tuple(sorted(value.split()))


def _keepalive(value: str) -> int:
    return int(value) if value.isdigit() else 0
