"""What an LB says of its part in a director pair: its addresses (`ip -o addr`), the IPVS sync
daemon (`ipvsadm -Ln --daemon`), timeouts (`ipvsadm -L --timeout`), the net.ipv4.vs sysctls,
and keepalived: its own dump of its VRRP instances (JSON or SIGUSR1 text) and the
`virtual_server` blocks of its config file.

Formats as ipvsadm 1.31, iproute2 6.1 and keepalived 2.2.7 print them. Only what the model
needs is taken; anything else of an expected line is checked enough to refuse garbage. Every
function raises ParseError on text it does not recognise.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from wgconsole.core.records import (
    Endpoint,
    IpvsTimeouts,
    KeepalivedRealServer,
    KeepalivedReport,
    KeepalivedSource,
    KeepalivedVirtualServer,
    ServiceFlag,
    SyncDaemon,
    SyncRole,
    VrrpInstance,
    VrrpState,
    VsSysctls,
)
from wgconsole.poll.parsers.errors import ParseError, excerpt

SOURCE_ADDR = "ip -o addr"
SOURCE_DAEMON = "ipvsadm -Ln --daemon"
SOURCE_TIMEOUT = "ipvsadm -L --timeout"
SOURCE_SYSCTLS = "net.ipv4.vs sysctls"
SOURCE_KEEPALIVED = "keepalived"
SOURCE_KEEPALIVED_CONF = "keepalived config"

SYSCTL_DIR = "/proc/sys/net/ipv4/vs/"

# vrrp.h: VRRP_STATE_INIT 0, _BACK 1, _MAST 2, _FAULT 3; 97 deleted and 98 stop.
_JSON_STATES: dict[int, VrrpState] = {0: "INIT", 1: "BACKUP", 2: "MASTER", 3: "FAULT", 97: "STOP"}
_JSON_STATES[98] = "STOP"
_TEXT_STATES: dict[str, VrrpState] = {
    "INIT": "INIT",
    "BACKUP": "BACKUP",
    "MASTER": "MASTER",
    "FAULT": "FAULT",
    "STOP": "STOP",
    "DELETED": "STOP",
}
# ipvsadm 1.31 adds the kernel's sync parameters (maxlen, group, port, ttl) where it has them.
_DAEMON = re.compile(
    r"(master|backup) sync daemon \(mcast=([^,\s]*), syncid=([0-9]{1,10})"
    r"((?:, [a-z]{1,16}=[^,\s()]{0,64})*)\)"
)
_DAEMON_FIELD = re.compile(r", ([a-z]{1,16})=([^,\s()]{0,64})")
# The kernel's bounds (net/netfilter/ipvs/ip_vs_sync.c, start_sync_thread, Linux 6.1): maxlen is
# clamped to 1024 (a backup) or 1 (a master) up to 65535 less the IP and UDP headers.
DEFAULT_SYNC_GROUP = "224.0.0.81"
DEFAULT_SYNC_PORT = 8848
_MIN_MAXLEN: dict[SyncRole, int] = {"master": 1, "backup": 1024}
_UDP_IP_HEADERS = {4: 20 + 8, 6: 40 + 8}
_TIMEOUT = re.compile(r"Timeout \(tcp tcpfin udp\): ([0-9]{1,10}) ([0-9]{1,10}) ([0-9]{1,10})")
_SYSCTL_NAME = re.compile(r"[a-z0-9_]{1,64}")
_NUMBER = re.compile(r"-?[0-9]{1,20}")


def parse_addresses(text: str) -> tuple[str, ...]:
    """Every address of `ip -o addr show` (either family), without prefix length, in order."""
    addresses: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        # `2: eth0    inet 10.0.0.1/24 brd ... scope global eth0\       valid_lft ...`
        if len(tokens) < 4 or not tokens[0].endswith(":") or tokens[2] not in ("inet", "inet6"):
            raise ParseError(SOURCE_ADDR, number, f"not an address line: {excerpt(line)}")
        address, _, prefix = tokens[3].partition("/")
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise ParseError(SOURCE_ADDR, number, f"bad address {tokens[3][:60]!r}") from None
        if prefix and not prefix.isdigit():
            raise ParseError(SOURCE_ADDR, number, f"bad prefix length in {tokens[3][:60]!r}")
        addresses.append(parsed.compressed)
    return tuple(addresses)


def parse_daemon(text: str) -> tuple[SyncDaemon, ...]:
    """The sync daemons running (none: no line at all), with the parameters the kernel reports,
    each held to the bounds the kernel keeps it in. The one parser of this listing: the poll's
    and rebalance's."""
    daemons: list[SyncDaemon] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _DAEMON.fullmatch(line.strip())
        if match is None:
            raise ParseError(SOURCE_DAEMON, number, f"not a sync daemon line: {excerpt(line)}")
        role: SyncRole = "master" if match.group(1) == "master" else "backup"
        syncid = int(match.group(3))
        if syncid > 255:
            raise ParseError(SOURCE_DAEMON, number, f"syncid {syncid} out of range 0..255")
        fields: dict[str, str] = {}
        for name, value in _DAEMON_FIELD.findall(match.group(4)):
            if name in fields:
                raise ParseError(SOURCE_DAEMON, number, f"{name} listed twice")
            fields[name] = value
        daemons.append(_daemon(number, role, match.group(2), syncid, fields))
    return tuple(daemons)


def _daemon_number(number: int, fields: dict[str, str], name: str, low: int, high: int) -> int:
    value = fields[name]
    if not value.isdigit() or not low <= int(value) <= high:
        raise ParseError(SOURCE_DAEMON, number, f"{name} {value[:20]} out of range {low}..{high}")
    return int(value)


def _daemon(
    number: int, role: SyncRole, interface: str, syncid: int, fields: dict[str, str]
) -> SyncDaemon:
    try:
        group = ipaddress.ip_address(fields.get("group", DEFAULT_SYNC_GROUP))
    except ValueError:
        raise ParseError(SOURCE_DAEMON, number, "group: not an IP address") from None
    if not group.is_multicast:
        raise ParseError(SOURCE_DAEMON, number, f"group {group}: not a multicast address")
    port = DEFAULT_SYNC_PORT
    if "port" in fields:
        port = _daemon_number(number, fields, "port", 1, 65535)
    if "ttl" in fields:
        _daemon_number(number, fields, "ttl", 1, 255)
    maxlen = None
    if "maxlen" in fields:
        high = 65535 - _UDP_IP_HEADERS[group.version]
        maxlen = _daemon_number(number, fields, "maxlen", _MIN_MAXLEN[role], high)
    return SyncDaemon(role, interface, syncid, group.compressed, port, maxlen)


def parse_timeout(text: str) -> IpvsTimeouts:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    match = _TIMEOUT.fullmatch(lines[0]) if len(lines) == 1 else None
    if match is None:
        raise ParseError(SOURCE_TIMEOUT, None, f"expected the timeout line, got {excerpt(text)}")
    return IpvsTimeouts(int(match.group(1)), int(match.group(2)), int(match.group(3)))


def parse_sysctls(text: str) -> VsSysctls:
    """`grep -s . /proc/sys/net/ipv4/vs/*`: one `PATH:VALUE` line per sysctl."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        path, sep, value = line.partition(":")
        name = path.removeprefix(SYSCTL_DIR)
        if not sep or name == path or not _SYSCTL_NAME.fullmatch(name):
            raise ParseError(SOURCE_SYSCTLS, number, f"not a vs sysctl line: {excerpt(line)}")
        # Numbers, mostly; a few are lists (est_cpulist on later kernels): kept as text.
        words = value.split()
        if not words:
            raise ParseError(SOURCE_SYSCTLS, number, f"{name}: no value")
        if name in values:
            raise ParseError(SOURCE_SYSCTLS, number, f"{name} listed twice")
        values[name] = " ".join(words)
    return VsSysctls(tuple(sorted(values.items())))


# --- keepalived ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeepalivedHeader:
    """The lines the poll script writes around keepalived's dump (see collector)."""

    running: bool
    source: KeepalivedSource | None
    config_path: str | None
    config_text: str | None  # None: not read (see config_problem)
    config_problem: str | None
    dump: str
    problem: str | None  # the dump could not be read


def parse_keepalived_section(text: str) -> KeepalivedHeader:
    """The "keepalived" section: `none` (no keepalived in this network namespace), `refused
    TEXT` (no process named keepalived is trusted: see remote_scripts), or `pid N`,
    `source json|data`, `conf PATH`, `conftext BASE64` or `confproblem TEXT`, then
    `problem TEXT` or `dump` followed by the dump's text to the end."""
    lines = text.splitlines()
    source: KeepalivedSource | None = None
    config: str | None = None
    config_text: str | None = None
    config_problem: str | None = None
    running = False
    for index, line in enumerate(lines):
        word, _, rest = line.partition(" ")
        if word == "none" and not rest and index == 0:
            return _unread(running=False, problem=None)
        if word == "refused" and rest and index == 0 and len(lines) == 1:
            # Only processes named keepalived that are not the real one run by root, or more
            # than one real one: none is trusted, signalled or read, and whether keepalived
            # runs here is unknown (never "none").
            return _unread(running=True, problem=rest)
        if word == "pid" and rest.isascii() and rest.isdigit():
            running = True
        elif word == "source" and rest in ("json", "data"):
            source = "json" if rest == "json" else "data"
        elif word == "conf" and rest:
            config = rest
        elif word == "conftext":
            config_text = _base64_text(rest, index + 1)
        elif word == "confproblem":
            config_problem = rest or "cannot read it"
        elif word == "problem" and running:
            problem = rest or "unknown"
            return KeepalivedHeader(
                running=True,
                source=source,
                config_path=config,
                config_text=config_text,
                config_problem=config_problem,
                dump="",
                problem=problem,
            )
        elif word == "dump" and not rest and running and source is not None:
            dump = "\n".join(lines[index + 1 :])
            return KeepalivedHeader(
                running=True,
                source=source,
                config_path=config,
                config_text=config_text,
                config_problem=config_problem,
                dump=dump,
                problem=None,
            )
        else:
            raise ParseError(SOURCE_KEEPALIVED, index + 1, f"unexpected line {excerpt(line)}")
    raise ParseError(SOURCE_KEEPALIVED, None, f"no dump and no problem: {excerpt(text)}")


def _unread(*, running: bool, problem: str | None) -> KeepalivedHeader:
    """A section that read nothing: no keepalived (`running` False), or one not trusted."""
    return KeepalivedHeader(
        running=running,
        source=None,
        config_path=None,
        config_text=None,
        config_problem=None,
        dump="",
        problem=problem,
    )


def _base64_text(text: str, line: int) -> str:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ParseError(SOURCE_KEEPALIVED, line, "the config's text is not base64") from None
    return raw.decode("utf-8", "replace")


def parse_keepalived_json(text: str) -> tuple[VrrpInstance, ...]:
    """keepalived's JSON dump (`/tmp/keepalived.json`): a list of {"data": ..., "stats": ...}."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ParseError(SOURCE_KEEPALIVED, None, f"not JSON ({exc}): {excerpt(text)}") from None
    if not isinstance(doc, list):
        raise ParseError(SOURCE_KEEPALIVED, None, "the JSON dump is not a list")
    return tuple(_json_instance(item, i) for i, item in enumerate(doc))


def _json_instance(item: Any, index: int) -> VrrpInstance:
    data = item.get("data") if isinstance(item, dict) else None
    if not isinstance(data, dict):
        raise ParseError(SOURCE_KEEPALIVED, None, f"instance {index}: no data object")

    def get(key: str, kind: type) -> Any:
        value = data.get(key)
        # bool is an int in Python: never taken for a number here.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ParseError(SOURCE_KEEPALIVED, None, f"instance {index}: bad or no {key!r}")
        return value

    number = get("state", int)
    state = _JSON_STATES.get(number)
    if state is None:
        raise ParseError(SOURCE_KEEPALIVED, None, f"instance {index}: unknown state {number}")
    vips = get("vips", list)
    return VrrpInstance(
        name=get("iname", str),
        state=state,
        priority=get("effective_priority", int),
        base_priority=get("base_priority", int),
        vrid=get("vrid", int),
        interface=get("ifp_ifname", str),
        vips=tuple(_vip(v, index) for v in vips),
    )


def _vip(text: Any, index: int) -> str:
    """`172.16.0.1 dev lo scope global set` (or with a /prefix) -> the address."""
    words = text.split() if isinstance(text, str) else []
    if not words:
        raise ParseError(SOURCE_KEEPALIVED, None, f"instance {index}: bad virtual address")
    address = words[0].partition("/")[0]
    try:
        return ipaddress.ip_address(address).compressed
    except ValueError:
        raise ParseError(
            SOURCE_KEEPALIVED, None, f"instance {index}: bad virtual address {words[0][:60]!r}"
        ) from None


_TOPOLOGY = "------< VRRP Topology >------"


def parse_keepalived_data(text: str) -> tuple[VrrpInstance, ...]:
    """The VRRP instances of keepalived's SIGUSR1 dump (`/tmp/keepalived.data`)."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == _TOPOLOGY)
    except StopIteration:
        raise ParseError(SOURCE_KEEPALIVED, None, f"no VRRP topology: {excerpt(text)}") from None
    instances: list[VrrpInstance] = []
    fields: dict[str, str] = {}
    vips: list[str] = []
    in_vips = False
    vip_indent = 0
    for number in range(start + 1, len(lines)):
        line = lines[number]
        stripped = line.strip()
        if stripped.startswith("------<"):
            break
        indent = len(line) - len(line.lstrip())
        if in_vips and indent > vip_indent and stripped:
            vips.append(_vip(stripped, len(instances)))
            continue
        in_vips = False
        key, sep, value = stripped.partition(" = ")
        if key == "VRRP Instance" and sep:
            if fields:
                instances.append(_data_instance(fields, vips, number))
            fields, vips = {"name": value}, []
        elif fields and stripped.startswith("Virtual IP (") and stripped.endswith("):"):
            in_vips, vip_indent = True, indent
        elif fields and sep and key not in fields:
            fields[key] = value
    if fields:
        instances.append(_data_instance(fields, vips, len(lines)))
    return tuple(instances)


def _data_instance(fields: dict[str, str], vips: list[str], number: int) -> VrrpInstance:
    def need(key: str) -> str:
        value = fields.get(key)
        if value is None:
            raise ParseError(SOURCE_KEEPALIVED, number, f"{fields['name'][:40]!r}: no {key!r}")
        return value

    def integer(key: str) -> int:
        value = need(key).split()[0] if need(key).split() else ""
        if not _NUMBER.fullmatch(value):
            raise ParseError(SOURCE_KEEPALIVED, number, f"{key}: not a number: {value[:40]!r}")
        return int(value)

    state = _TEXT_STATES.get(need("State"))
    if state is None:
        raise ParseError(SOURCE_KEEPALIVED, number, f"unknown state {need('State')[:40]!r}")
    return VrrpInstance(
        name=fields["name"],
        state=state,
        priority=integer("Effective priority"),
        base_priority=integer("Priority"),
        vrid=integer("Virtual Router ID"),
        interface=need("Interface"),
        vips=tuple(vips),
    )


def parse_keepalived(header: KeepalivedHeader) -> tuple[VrrpInstance, ...]:
    if header.source == "json":
        return parse_keepalived_json(header.dump)
    return parse_keepalived_data(header.dump)


# --- keepalived's config: the virtual_server blocks ------------------------------------------


@dataclass(slots=True)
class _Statement:
    words: list[str]
    line: int
    block: list[_Statement] | None = None
    children: list[_Statement] = field(default_factory=list)


_MAX_DEPTH = 32


def _tokens(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, words) with comments dropped and braces made words of their own."""
    for number, line in enumerate(text.splitlines(), 1):
        # keepalived reads `!` and `#` as the start of a comment wherever they are.
        line = re.split(r"[!#]", line, maxsplit=1)[0]
        words = line.replace("{", " { ").replace("}", " } ").split()
        if words:
            yield number, words


def _statements(text: str) -> list[_Statement]:
    """The config as nested statements (`word ... { statements }`)."""
    top: list[_Statement] = []
    stack: list[list[_Statement]] = [top]
    for number, words in _tokens(text):
        current: list[str] = []
        for word in words:
            if word == "{":
                statement = _Statement(current, number, [])
                stack[-1].append(statement)
                assert statement.block is not None
                stack.append(statement.block)
                if len(stack) > _MAX_DEPTH:
                    raise ParseError(SOURCE_KEEPALIVED_CONF, number, "blocks nested too deep")
                current = []
            elif word == "}":
                if current:
                    stack[-1].append(_Statement(current, number))
                    current = []
                if len(stack) == 1:
                    raise ParseError(SOURCE_KEEPALIVED_CONF, number, "'}' without '{'")
                stack.pop()
            else:
                current.append(word)
        if current:
            stack[-1].append(_Statement(current, number))
    if len(stack) > 1:
        raise ParseError(SOURCE_KEEPALIVED_CONF, None, "a block is not closed ('{' without '}')")
    return top


_FLAG_WORDS = {
    "sh-fallback": int(ServiceFlag.SH_FALLBACK),
    "flag-1": int(ServiceFlag.SH_FALLBACK),
    "mh-fallback": int(ServiceFlag.SH_FALLBACK),
    "sh-port": int(ServiceFlag.SH_PORT),
    "flag-2": int(ServiceFlag.SH_PORT),
    "mh-port": int(ServiceFlag.SH_PORT),
}


def parse_keepalived_conf(text: str) -> tuple[tuple[KeepalivedVirtualServer, ...], bool]:
    """The `virtual_server ADDRESS PORT` blocks of a keepalived config, and whether it has
    `include` lines (not followed: what they hold is not known). Groups and fwmark virtual
    servers are not IPVS services of an address: skipped."""
    servers: list[KeepalivedVirtualServer] = []
    includes = False
    for statement in _statements(text):
        head = statement.words
        if head[0] == "include":
            includes = True
        if head[0] != "virtual_server" or statement.block is None:
            continue
        if len(head) != 3 or head[1] in ("group", "fwmark"):
            continue
        vip = _conf_endpoint(head[1], head[2], statement.line)
        servers.append(_virtual_server(vip, statement.block))
    return tuple(servers), includes


def _conf_endpoint(address: str, port: str, line: int) -> Endpoint:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise ParseError(SOURCE_KEEPALIVED_CONF, line, f"bad address {address[:60]!r}") from None
    if not port.isascii() or not port.isdigit() or int(port) > 0xFFFF:
        raise ParseError(SOURCE_KEEPALIVED_CONF, line, f"bad port {port[:20]!r}")
    return Endpoint(parsed.compressed, int(port))


def _virtual_server(vip: Endpoint, block: list[_Statement]) -> KeepalivedVirtualServer:
    protocol = "tcp"
    scheduler: str | None = None
    flags = 0
    reals: list[KeepalivedRealServer] = []
    for statement in block:
        key, args = statement.words[0], statement.words[1:]
        if key == "protocol" and args:
            protocol = args[0].lower()
        elif key in ("lb_algo", "lvs_sched") and args:
            scheduler = args[0]
        elif key in _FLAG_WORDS:
            flags |= _FLAG_WORDS[key]
        elif key == "real_server" and len(args) >= 2:
            endpoint = _conf_endpoint(args[0], args[1], statement.line)
            reals.append(_real_server(endpoint, statement.block or []))
    return KeepalivedVirtualServer(protocol, vip, scheduler, flags, tuple(reals))


def _real_server(endpoint: Endpoint, block: list[_Statement]) -> KeepalivedRealServer:
    weight = 1
    inhibit = False
    for statement in block:
        key, args = statement.words[0], statement.words[1:]
        if key == "weight" and args:
            if not _NUMBER.fullmatch(args[0]):
                raise ParseError(SOURCE_KEEPALIVED_CONF, statement.line, "weight: not a number")
            weight = int(args[0])
        elif key == "inhibit_on_failure":
            inhibit = not args or args[0].lower() not in ("false", "off", "no", "0")
    return KeepalivedRealServer(endpoint, weight, inhibit)


def keepalived_report(header: KeepalivedHeader) -> KeepalivedReport:
    """The report of a running keepalived whose dump was read (`header.dump`); the config's
    problems are the report's, never the poll's."""
    assert header.source is not None
    instances = parse_keepalived(header)
    servers: tuple[KeepalivedVirtualServer, ...] | None = None
    includes = False
    problem = None if header.config_problem is None else f"config: {header.config_problem}"
    if header.config_text is not None:
        try:
            servers, includes = parse_keepalived_conf(header.config_text)
        except ParseError as exc:
            problem = str(exc)
    return KeepalivedReport(
        source=header.source,
        instances=instances,
        config_path=header.config_path,
        virtual_servers=servers,
        config_includes=includes,
        problem=problem,
    )
