"""Load and validate the inventory file into the records of `inventory_types`.

A bad inventory must be reported as `file:line: key: reason`, never as a traceback:
operators edit this file by hand, and the console acts on it (drains, weight changes),
so anything doubtful is rejected rather than guessed. The YAML is composed into a node
tree (not constructed into plain dicts) because only the nodes keep their line numbers; the
safe, depth-limited composing is `config.safe_yaml`'s, the schema is this module's.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import NoReturn

import yaml

from wgconsole.config.paths import config_dir, lab_inventory_path
from wgconsole.config.safe_yaml import (
    MAP_TAG,
    MERGE_TAG,
    NULL_TAG,
    SEQ_TAG,
    YamlLoadError,
    compose,
    node_line,
)
from wgconsole.core.ifname import interface_name_problem
from wgconsole.core.input_rules import name_problem
from wgconsole.core.inventory import (
    LOCAL_HOST,
    Client,
    Gateway,
    Inventory,
    LoadBalancer,
    Probe,
    Service,
    SshSettings,
    Tunnel,
)
from wgconsole.core.records import Endpoint
from wgconsole.core.wgkey import is_wireguard_key

__all__ = ["InventoryError", "find_inventory", "load_inventory"]

PROTOCOLS = ("udp", "tcp", "sctp")
DEFAULT_INTERFACE = "wg0"

_TOP_KEYS = (
    "site",
    "service",
    "ssh",
    "load_balancers",
    "gateways",
    "tunnel",
    "clients",
    "probes",
)
_SERVICE_KEYS = ("protocol", "vip", "port", "scheduler")
_SSH_KEYS = ("user", "port", "identity_file", "known_hosts", "sudo")
_HOST_KEYS = ("name", "host", "ssh")
_GATEWAY_KEYS = (*_HOST_KEYS, "real_server", "interface", "config")
_TUNNEL_KEYS = ("network", "gateway_address", "keepalive")
_CLIENT_KEYS = ("name", "public_key", "address")
_PROBE_KEYS = ("name", "public_key")


_HOSTNAME_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_SCHEDULER_RE = re.compile(r"[a-z][a-z0-9_-]*")
_REAL_SERVER_V6_RE = re.compile(r"\[(?P<addr>[^\]]+)\]:(?P<port>[0-9]+)")
_REAL_SERVER_V4_RE = re.compile(r"(?P<addr>[^:\[\]]+):(?P<port>[0-9]+)")
# Anything shaped like a WireGuard key (or a PEM block) is kept out of messages: a private
# key pasted into the wrong field must not end up on a terminal or in a log.
_KEYLIKE_RE = re.compile(r"[A-Za-z0-9+/]{42,43}={0,2}|-----BEGIN[^-]*-----")
_MAX_SHOWN = 60


class InventoryError(Exception):
    """A problem with the inventory, located as precisely as the file allows.

    `file` is the path as given (None when no inventory was found at all), `line` is
    1-based (None when there is no position, e.g. unreadable file), `key` is a dotted
    path such as `gateways[1].real_server` (None when the problem is not one key's).
    """

    def __init__(self, file: str | None, line: int | None, key: str | None, reason: str) -> None:
        self.file = file
        self.line = line
        # A key name is text from the file too: a key pasted as a key name is still a key.
        self.key = None if key is None else _scrub(key)
        self.reason = _scrub(reason)
        super().__init__(self.file, self.line, self.key, self.reason)

    def __str__(self) -> str:
        prefix = ""
        if self.file is not None:
            prefix = self.file if self.line is None else f"{self.file}:{self.line}"
            prefix += ": "
        if self.key:
            prefix += f"{self.key}: "
        return prefix + self.reason


def _scrub(text: str) -> str:
    return _KEYLIKE_RE.sub("<redacted>", text)


def _show(value: object) -> str:
    """A value quoted for an error message: short, and never key material."""
    text = repr(value)
    if isinstance(value, str) and _KEYLIKE_RE.search(value):
        return "<redacted>"
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return text


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _got(value: object) -> str:
    """What was found instead of the expected type, e.g. `a string 'abc'`."""
    if value is None:
        return "null"
    return f"{_type_name(value)} {_show(value)}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Mapping:
    """A YAML mapping node as a str-keyed dict of nodes, with its own location."""

    def __init__(self, parser: _Parser, node: yaml.Node, path: str) -> None:
        if not isinstance(node, yaml.MappingNode) or node.tag != MAP_TAG:
            parser.fail(node, path, f"expected a mapping, got {parser.describe(node)}")
        self.parser = parser
        self.node = node
        self.path = path
        self.values: dict[str, yaml.Node] = {}
        self.key_nodes: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                parser.fail(
                    key_node, path, f"keys must be strings, got {parser.describe(key_node)}"
                )
            if key_node.tag == MERGE_TAG:
                # Merge keys would make "which value wins" invisible to the operator.
                parser.fail(key_node, path, "YAML merge keys (<<) are not supported")
            key = parser.scalar(key_node, path)
            if not isinstance(key, str):
                parser.fail(key_node, path, f"keys must be strings, got {_show(key)}")
            if key in self.values:
                parser.fail(
                    key_node,
                    _join(path, key),
                    f"duplicate key (first given on line {node_line(self.key_nodes[key])})",
                )
            self.values[key] = value_node
            self.key_nodes[key] = key_node

    @property
    def line(self) -> int:
        return node_line(self.node)

    def reject_unknown(self, allowed: Collection[str]) -> None:
        for key, key_node in self.key_nodes.items():
            if key in allowed:
                continue
            reason = f"unknown key {_show(key)}"
            close = difflib.get_close_matches(key, list(allowed), n=1)
            if close:
                reason += f" (did you mean {close[0]!r}?)"
            else:
                reason += f"; expected one of: {', '.join(allowed)}"
            self.parser.fail(key_node, _join(self.path, key), reason)

    def get(self, key: str) -> yaml.Node | None:
        """The node for `key`, treating an explicit null like an absent key."""
        node = self.values.get(key)
        if node is None or self.parser.is_null(node):
            return None
        return node

    def require(self, key: str) -> yaml.Node:
        node = self.values.get(key)
        if node is None:
            raise self.parser.error(self.line, _join(self.path, key), "required key is missing")
        return node


class _Parser:
    def __init__(self, file: str, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.loader = loader

    def error(self, line: int | None, key: str | None, reason: str) -> InventoryError:
        return InventoryError(self.file, line, key, reason)

    def fail(self, node: yaml.Node, key: str | None, reason: str) -> NoReturn:
        raise self.error(node_line(node), key, reason)

    def is_null(self, node: yaml.Node) -> bool:
        return isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG

    def describe(self, node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return _type_name(self.scalar(node, None))

    def scalar(self, node: yaml.Node, key: str | None) -> object:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, key, f"expected a single value, got {self.describe(node)}")
        try:
            return self.loader.construct_object(node)
        except yaml.YAMLError as exc:
            # e.g. an unknown !tag; the constructor's own text carries a source snippet.
            problem = getattr(exc, "problem", None) or "value cannot be read"
            raise self.error(node_line(node), key, str(problem)) from None
        except Exception:
            # The safe constructors fail with plain ValueError & co. on values that match a
            # type's pattern but not its range (`2001-13-45`, `!!int abc`). Their text may
            # quote the value, so it is not passed on.
            tag = str(node.tag).rsplit(":", 1)[-1]
            raise self.error(node_line(node), key, f"value cannot be read as {tag}") from None

    # -- typed scalars ---------------------------------------------------------------

    def string(self, node: yaml.Node, key: str) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str):
            self.fail(node, key, f"expected a string, got {_got(value)}")
        if not value.strip():
            self.fail(node, key, "must not be empty")
        return value

    def word(self, node: yaml.Node, key: str) -> str:
        """A string without whitespace: names, users, hosts."""
        value = self.string(node, key)
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            self.fail(node, key, f"{_show(value)} must not contain spaces or control characters")
        return value

    def name(self, node: yaml.Node, key: str) -> str:
        """A host's or a client's name, by the one rule for names (core.input_rules): a gateway's
        name is part of its drain record's file name on every LB, which must be recognised."""
        value = self.string(node, key)
        problem = name_problem(value)
        if problem is not None:
            self.fail(node, key, f"{_show(value)}: {problem}")
        return value

    def integer(self, node: yaml.Node, key: str, low: int, high: int) -> int:
        value = self.scalar(node, key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(node, key, f"expected an integer, got {_got(value)}")
        if not low <= value <= high:
            self.fail(node, key, f"{value} is out of range {low}..{high}")
        return value

    def port(self, node: yaml.Node, key: str) -> int:
        return self.integer(node, key, 1, 65535)

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            self.fail(node, key, f"expected true or false, got {_got(value)}")
        return value

    def address(self, node: yaml.Node, key: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        text = self.string(node, key)
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            raise self.error(node_line(node), key, f"{_show(text)} is not an IP address") from None

    def hostname(self, node: yaml.Node, key: str) -> str:
        text = self.word(node, key)
        if text == LOCAL_HOST:
            return text
        looks_numeric = all(ch.isdigit() or ch == "." for ch in text)
        if ":" in text or looks_numeric:
            # Dotted digits are meant as an address: a typo must not pass as a DNS name.
            try:
                ipaddress.ip_address(text)
            except ValueError:
                raise self.error(
                    node_line(node), key, f"{_show(text)} is not an IP address"
                ) from None
            return text
        labels = text[:-1].split(".") if text.endswith(".") else text.split(".")
        if len(text) > 253 or not all(_HOSTNAME_LABEL_RE.fullmatch(lb) for lb in labels):
            self.fail(node, key, f"{_show(text)} is not an IP address or host name")
        return text

    def endpoint(self, node: yaml.Node, key: str) -> Endpoint:
        text = self.string(node, key)
        match = _REAL_SERVER_V6_RE.fullmatch(text) or _REAL_SERVER_V4_RE.fullmatch(text)
        if match is None:
            hint = " (IPv6 as [addr]:port)" if text.count(":") > 1 else ""
            self.fail(node, key, f"{_show(text)} is not ADDR:PORT{hint}")
        try:
            addr = ipaddress.ip_address(match["addr"])
        except ValueError:
            raise self.error(
                node_line(node),
                key,
                f"{_show(match['addr'])} in {_show(text)} is not an IP address",
            ) from None
        if addr.version == 6 and not text.startswith("["):
            self.fail(node, key, f"{_show(text)}: write IPv6 as [addr]:port")
        digits = match["port"]
        if len(digits) > 5:
            # Not given to int(): thousands of digits raise ValueError there.
            self.fail(node, key, f"its port has {len(digits)} digits: out of range 1..65535")
        port = int(digits)
        if not 1 <= port <= 65535:
            self.fail(node, key, f"port {port} in {_show(text)} is out of range 1..65535")
        return Endpoint(addr.compressed, port)

    def sequence(self, node: yaml.Node | None, key: str, what: str) -> list[yaml.Node]:
        if node is None or self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode) or node.tag != SEQ_TAG:
            self.fail(node, key, f"expected a list of {what}, got {self.describe(node)}")
        items: list[yaml.Node] = node.value
        return items

    # -- sections --------------------------------------------------------------------

    def service(self, node: yaml.Node, path: str) -> Service:
        m = _Mapping(self, node, path)
        m.reject_unknown(_SERVICE_KEYS)
        protocol = "udp"
        proto_node = m.get("protocol")
        if proto_node is not None:
            protocol = self.string(proto_node, _join(path, "protocol"))
            if protocol not in PROTOCOLS:
                self.fail(
                    proto_node,
                    _join(path, "protocol"),
                    f"{_show(protocol)} is not one of {', '.join(PROTOCOLS)}",
                )
        vip = self.address(m.require("vip"), _join(path, "vip"))
        port = self.port(m.require("port"), _join(path, "port"))
        scheduler = "sh"
        sched_node = m.get("scheduler")
        if sched_node is not None:
            scheduler = self.string(sched_node, _join(path, "scheduler"))
            if not _SCHEDULER_RE.fullmatch(scheduler):
                self.fail(
                    sched_node,
                    _join(path, "scheduler"),
                    f"{_show(scheduler)} is not an IPVS scheduler name",
                )
        return Service(protocol=protocol, vip=vip.compressed, port=port, scheduler=scheduler)

    def ssh_values(self, m: _Mapping, base: SshSettings) -> SshSettings:
        """`base` with the ssh keys present in `m` applied (m may hold other keys too)."""
        user, port = base.user, base.port
        identity_file, known_hosts, sudo = base.identity_file, base.known_hosts, base.sudo
        given = set(base.given)
        for key, node in m.values.items():
            path = _join(m.path, key)
            if key == "user":
                user = self.word(node, path)
                given.add("user")
            elif key == "port":
                port = self.port(node, path)
                given.add("port")
            elif key == "identity_file":
                # null is allowed so that one host can opt out of a default identity.
                identity_file = (
                    None if self.is_null(node) else os.path.expanduser(self.string(node, path))
                )
            elif key == "known_hosts":
                known_hosts = os.path.expanduser(self.string(node, path))
            elif key == "sudo":
                sudo = self.boolean(node, path)
        return SshSettings(
            user=user,
            port=port,
            identity_file=identity_file,
            known_hosts=known_hosts,
            sudo=sudo,
            given=frozenset(given),
        )

    def ssh_defaults(self, node: yaml.Node | None) -> SshSettings:
        base = SshSettings(known_hosts=os.path.expanduser(SshSettings().known_hosts))
        if node is None:
            return base
        m = _Mapping(self, node, "ssh")
        m.reject_unknown(_SSH_KEYS)
        return self.ssh_values(m, base)

    def host_ssh(self, m: _Mapping, defaults: SshSettings) -> SshSettings:
        settings = self.ssh_values(m, defaults)
        nested_node = m.get("ssh")
        if nested_node is None:
            return settings
        nested = _Mapping(self, nested_node, _join(m.path, "ssh"))
        nested.reject_unknown(_SSH_KEYS)
        for key, key_node in nested.key_nodes.items():
            if key in m.values:
                # Two places for one setting: refuse rather than pick one silently.
                self.fail(
                    key_node,
                    _join(nested.path, key),
                    f"also given as {_join(m.path, key)} on line {node_line(m.key_nodes[key])}",
                )
        return self.ssh_values(nested, settings)

    def host_common(self, m: _Mapping, defaults: SshSettings) -> tuple[str, str, SshSettings]:
        name = self.name(m.require("name"), _join(m.path, "name"))
        host = self.hostname(m.require("host"), _join(m.path, "host"))
        return name, host, self.host_ssh(m, defaults)

    def load_balancer(self, node: yaml.Node, path: str, defaults: SshSettings) -> LoadBalancer:
        m = _Mapping(self, node, path)
        m.reject_unknown((*_HOST_KEYS, *_SSH_KEYS))
        name, host, ssh = self.host_common(m, defaults)
        return LoadBalancer(name=name, host=host, ssh=ssh)

    def gateway(self, node: yaml.Node, path: str, defaults: SshSettings) -> Gateway:
        m = _Mapping(self, node, path)
        m.reject_unknown((*_GATEWAY_KEYS, *_SSH_KEYS))
        name, host, ssh = self.host_common(m, defaults)
        real_server = self.endpoint(m.require("real_server"), _join(path, "real_server"))
        interface = DEFAULT_INTERFACE
        if_node = m.get("interface")
        if if_node is not None:
            interface = self.string(if_node, _join(path, "interface"))
            problem = interface_name_problem(interface)
            if problem is not None:
                self.fail(
                    if_node,
                    _join(path, "interface"),
                    f"{_show(interface)} is not an interface name: {problem}",
                )
        config = f"/etc/wireguard/{interface}.conf"
        config_node = m.get("config")
        if config_node is not None:
            # A path on the gateway, so no ~ expansion: ours would name the wrong home.
            config = self.string(config_node, _join(path, "config"))
            if not config.startswith("/"):
                self.fail(
                    config_node, _join(path, "config"), f"{_show(config)} is not an absolute path"
                )
        return Gateway(
            name=name,
            host=host,
            ssh=ssh,
            real_server=real_server,
            interface=interface,
            config=config,
        )

    def tunnel(self, node: yaml.Node, path: str) -> Tunnel:
        m = _Mapping(self, node, path)
        m.reject_unknown(_TUNNEL_KEYS)
        net_node = m.require("network")
        text = self.string(net_node, _join(path, "network"))
        try:
            network = ipaddress.ip_network(text)
        except ValueError as exc:
            raise self.error(
                node_line(net_node),
                _join(path, "network"),
                f"{_show(text)} is not a network: {exc}",
            ) from None
        gw_node = m.require("gateway_address")
        gateway_address = self.address(gw_node, _join(path, "gateway_address"))
        if gateway_address not in network:
            self.fail(
                gw_node,
                _join(path, "gateway_address"),
                f"{gateway_address} is outside {_join(path, 'network')} {network}",
            )
        keepalive = 15
        ka_node = m.get("keepalive")
        if ka_node is not None:
            keepalive = self.integer(ka_node, _join(path, "keepalive"), 0, 65535)
        return Tunnel(
            network=network.compressed,
            gateway_address=gateway_address.compressed,
            keepalive=keepalive,
        )

    def public_key(self, m: _Mapping, path: str) -> str:
        key_node = m.require("public_key")
        public_key = self.string(key_node, _join(path, "public_key"))
        if not is_wireguard_key(public_key):
            # The value itself is not echoed: it may be a mangled private key.
            self.fail(
                key_node,
                _join(path, "public_key"),
                "not a WireGuard public key (44 characters of base64 encoding 32 bytes)",
            )
        return public_key

    def probe(self, node: yaml.Node, path: str) -> tuple[Probe, _Mapping]:
        m = _Mapping(self, node, path)
        m.reject_unknown(_PROBE_KEYS)
        name = self.name(m.require("name"), _join(path, "name"))
        return Probe(name=name, public_key=self.public_key(m, path)), m

    def client(self, node: yaml.Node, path: str, tunnel: Tunnel) -> tuple[Client, _Mapping]:
        m = _Mapping(self, node, path)
        m.reject_unknown(_CLIENT_KEYS)
        name = self.name(m.require("name"), _join(path, "name"))
        public_key = self.public_key(m, path)
        addr_node = m.require("address")
        address = self.address(addr_node, _join(path, "address"))
        network = ipaddress.ip_network(tunnel.network)
        if address not in network:
            self.fail(
                addr_node, _join(path, "address"), f"{address} is outside tunnel.network {network}"
            )
        if address == ipaddress.ip_address(tunnel.gateway_address):
            self.fail(addr_node, _join(path, "address"), f"{address} is tunnel.gateway_address")
        return Client(name=name, public_key=public_key, address=address.compressed), m


def _compose(file: str, text: str) -> tuple[yaml.Node | None, yaml.SafeLoader]:
    try:
        return compose(text)
    except YamlLoadError as exc:
        raise InventoryError(file, exc.line, None, exc.reason) from None


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read, validate and convert one inventory file; raises InventoryError only."""
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        raise InventoryError(file, None, None, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise InventoryError(file, None, None, f"cannot read: {exc.strerror or exc}") from None

    root, loader = _compose(file, text)
    try:
        return _build(_Parser(file, loader), root, file)
    finally:
        loader.dispose()


def _build(p: _Parser, root: yaml.Node | None, file: str) -> Inventory:
    if root is None:
        raise p.error(None, None, "the file is empty")
    top = _Mapping(p, root, "")
    top.reject_unknown(_TOP_KEYS)

    service = p.service(top.require("service"), "service")
    ssh_defaults = p.ssh_defaults(top.get("ssh"))

    lb_nodes = p.sequence(top.require("load_balancers"), "load_balancers", "hosts")
    gw_nodes = p.sequence(top.require("gateways"), "gateways", "hosts")
    if not lb_nodes:
        p.fail(top.values["load_balancers"], "load_balancers", "at least one is required")
    if not gw_nodes:
        p.fail(top.values["gateways"], "gateways", "at least one is required")
    load_balancers = [
        p.load_balancer(node, f"load_balancers[{i}]", ssh_defaults)
        for i, node in enumerate(lb_nodes)
    ]
    gateways = [p.gateway(node, f"gateways[{i}]", ssh_defaults) for i, node in enumerate(gw_nodes)]

    seen_names: dict[str, str] = {}
    for path, node, name in _host_names(p, lb_nodes, gw_nodes, load_balancers, gateways):
        if name in seen_names:
            p.fail(node, path, f"duplicate host name {_show(name)} (also {seen_names[name]})")
        seen_names[name] = path.removesuffix(".name")

    seen_servers: dict[Endpoint, str] = {}
    for i, gw in enumerate(gateways):
        path = f"gateways[{i}].real_server"
        problem = _not_in_service(gw.real_server, service)
        if problem:
            p.fail(_Mapping(p, gw_nodes[i], f"gateways[{i}]").values["real_server"], path, problem)
        if gw.real_server in seen_servers:
            p.fail(
                _Mapping(p, gw_nodes[i], f"gateways[{i}]").values["real_server"],
                path,
                f"duplicate real_server {gw.real_server} (also {seen_servers[gw.real_server]})",
            )
        seen_servers[gw.real_server] = f"gateways[{i}]"

    tunnel = p.tunnel(top.require("tunnel"), "tunnel")
    clients = _clients(p, top.get("clients"), tunnel)
    probes = _probes(p, top.get("probes"), clients)
    site_node = top.get("site")
    # A label value on every exported series: the one rule for names keeps it plain.
    site = None if site_node is None else p.name(site_node, "site")

    return Inventory(
        path=file,
        service=service,
        ssh=ssh_defaults,
        load_balancers=tuple(load_balancers),
        gateways=tuple(gateways),
        tunnel=tunnel,
        clients=tuple(clients),
        site=site,
        probes=tuple(probes),
    )


def _not_in_service(real_server: Endpoint, service: Service) -> str | None:
    """Why `real_server` cannot be a real server of `service` (masquerade, one family)."""
    label = f"{service.protocol} {service.endpoint}"
    address = ipaddress.ip_address(real_server.address)
    vip = ipaddress.ip_address(service.vip)
    if address.version != vip.version:
        return (
            f"{real_server} cannot be a real server of {label}: masquerading does not "
            f"translate between IPv{vip.version} and IPv{address.version}"
        )
    if address == vip:
        return f"{real_server} is the service's own VIP, not a gateway"
    if address.is_unspecified or address.is_multicast:
        return f"{real_server} is not a unicast address: it cannot be a real server of {label}"
    return None


def _host_names(
    p: _Parser,
    lb_nodes: list[yaml.Node],
    gw_nodes: list[yaml.Node],
    load_balancers: list[LoadBalancer],
    gateways: list[Gateway],
) -> Iterator[tuple[str, yaml.Node, str]]:
    for section, nodes, hosts in (
        ("load_balancers", lb_nodes, load_balancers),
        ("gateways", gw_nodes, gateways),
    ):
        for i, (node, host) in enumerate(zip(nodes, hosts, strict=True)):
            path = f"{section}[{i}]"
            yield f"{path}.name", _Mapping(p, node, path).values["name"], host.name


def _claim_unique(
    p: _Parser,
    seen: dict[tuple[str, str], str],
    m: _Mapping,
    path: str,
    fields: tuple[tuple[str, str], ...],
) -> None:
    """Each (field, value) of the item at `path` is recorded in `seen` as its own, or the file
    is refused naming the item that had it first (a public key is never quoted)."""
    for field, value in fields:
        other = seen.get((field, value))
        if other is not None:
            shown = "" if field == "public_key" else f" {_show(value)}"
            p.fail(m.values[field], f"{path}.{field}", f"duplicate {field}{shown} (also {other})")
        seen[(field, value)] = path


def _clients(p: _Parser, node: yaml.Node | None, tunnel: Tunnel) -> list[Client]:
    clients: list[Client] = []
    seen: dict[tuple[str, str], str] = {}
    for i, item in enumerate(p.sequence(node, "clients", "clients")):
        path = f"clients[{i}]"
        client, m = p.client(item, path, tunnel)
        fields = (
            ("name", client.name),
            ("public_key", client.public_key),
            ("address", client.address),
        )
        _claim_unique(p, seen, m, path, fields)
        clients.append(client)
    return clients


def _probes(p: _Parser, node: yaml.Node | None, clients: list[Client]) -> list[Probe]:
    probes: list[Probe] = []
    seen: dict[tuple[str, str], str] = {("public_key", c.public_key): "a client" for c in clients}
    for i, item in enumerate(p.sequence(node, "probes", "probes")):
        path = f"probes[{i}]"
        probe, m = p.probe(item, path)
        _claim_unique(p, seen, m, path, (("name", probe.name), ("public_key", probe.public_key)))
        probes.append(probe)
    return probes


def find_inventory(explicit: str | None) -> str:
    """The inventory to use: -i FILE, ./inventory.yaml, the XDG config one, or the lab's.

    Never the repository's sample_inventory.yaml: its addresses describe the seed
    topology, not the operator's machines, and acting on them would be wrong.
    """
    if explicit is not None:
        if not os.path.exists(explicit):
            raise InventoryError(
                explicit, None, None, "inventory file given with -i does not exist"
            )
        if not os.path.isfile(explicit):
            raise InventoryError(explicit, None, None, "inventory given with -i is not a file")
        return explicit

    candidates = (
        Path.cwd() / "inventory.yaml",
        config_dir() / "inventory.yaml",
        lab_inventory_path(),
    )
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise InventoryError(
        None,
        None,
        None,
        "no inventory found. Give one with `wgconsole -i FILE`, or put it at ./inventory.yaml "
        "or ~/.config/wgconsole/inventory.yaml (see sample_inventory.yaml for the format), "
        "or start a lab with `wgconsole lab up`. Looked for: "
        + ", ".join(str(c) for c in candidates),
    )
