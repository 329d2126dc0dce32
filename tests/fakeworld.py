"""A fake fleet for operation tests: one LB and two gateways whose commands run for real.

Every command an operation sends is run by `sh`, with `ipvsadm`, `sysctl`, `ip`, `wg`,
`wg-quick` and `nft` replaced by one fake (a Python script keeping the "kernel" state in a JSON
file), and the paths an operation writes on a host (/run/wgconsole, /proc files) moved into a temp
directory. So the real command lines, quoting and shell scripts of the operations run, and a
test can cut the "connection" after any number of commands.

Keys are the lab fixtures' public keys; FAKE_PRIVATE stands for the gateways' private key and
is printed by the fake `wg show IF dump`: it must never come back to the bastion.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.inventory import Host, Inventory
from wgconsole.poll import collector as collect
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.transport.base import (
    CommandResult,
    ReadOnlyViolation,
    Transport,
    TransportError,
)

NORMAL = Path(__file__).parent / "fixtures" / "lab" / "normal"
LB, GW1, GW2 = "wg-lb", "wg-gateway-01", "wg-gateway-02"
VIP = "10.77.255.1:51280"
GW_PUBLIC = "xfNrPxj44I9v3jcLUvGBgUtkgKWnsof8MdNJalsYJg0="
FAKE_PRIVATE = "FAKEgatewayPRIVATEkeyNEVERleavesTHEgateway0="
CLIENTS = {
    "2PDPKED1+KY8MSAdi/slE3jlZ+sMQ+doYffvk+RrMik=": "10.255.0.2/32",
    "tXhMWx9PuLvP3iYgcDAow4fBWyjdA1JNkH9f45dMIT4=": "10.255.0.3/32",
}
# The second director of a pair (`make_world(pair=True)`).
LB2 = "wg-lb-2"
HOSTS = {LB: "lb", LB2: "lb2", GW1: "gw1", GW2: "gw2"}

FAKE_KERNEL = r"""
import json, os, sys
path = os.environ["FAKE_STATE"]
host = os.environ["FAKE_HOST"]
st = json.load(open(path))
prog = os.path.basename(sys.argv[0])
a = sys.argv[1:]
VIP = "10.77.255.1:51280"
# Each LB's "kernel" state: the second director of a pair (world.pair) has its own.
LBK = host if host in ("lb", "lb2") else "lb"

def hexep(ep):
    address, _, port = ep.rpartition(":")
    return "".join(f"{int(x):02X}" for x in address.split(".")) + f" {int(port):04X}"

def publish_conns():
    # The LB's connection table as /proc/net/ip_vs_conn shows it, rewritten whole.
    proc = os.environ.get("FAKE_PROC")
    if not proc or "conns" not in st[LBK]:
        return
    lines = ["Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData"]
    for client, dest in st[LBK]["conns"].items():
        lines.append(f"UDP {hexep(client)} {hexep(VIP)} {hexep(dest)} UDP             299")
    tmp = proc + "." + str(os.getpid())
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, proc)

def save():
    tmp = path + "." + str(os.getpid())
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.replace(tmp, path)
    publish_conns()

def daemon_field(line, name, default):
    for part in line.split("(", 1)[-1].rstrip(")").split(","):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return default

def fail(message, rc=1):
    print(message, file=sys.stderr)
    sys.exit(rc)

def opts(tokens):
    out, flags, i = {}, set(), 0
    while i < len(tokens):
        t = tokens[i]
        if t in ("-u", "-r", "-w", "-s", "-b", "-p"):
            out[t] = tokens[i + 1]; i += 2
        else:
            flags.add(t); i += 1
    return out, flags

if prog == "perl":
    # entrysync's send (-MSocket -e SCRIPT MESSAGES IFINDEX GROUP PORT): the messages reach
    # the LB's backup daemon listening on that group and port, which re-points the entries.
    import ipaddress, struct
    lb = st[LBK]
    messages, _, group, port = a[-4:]
    daemon = [d for d in lb.get("daemons", []) if d.startswith("backup")
              and daemon_field(d, "group", "224.0.0.81") == group
              and daemon_field(d, "port", "8848") == port]
    for h in messages.split(","):
        m = bytes.fromhex(h)
        syncid, count = m[1], m[4]
        if not daemon or int(daemon_field(daemon[0], "syncid", "0")) not in (0, syncid):
            continue
        for n in range(count):
            f = struct.unpack("!BBHIHHHHII4s4s4s", m[8 + 36 * n: 8 + 36 * (n + 1)])
            client = f"{ipaddress.ip_address(f[10])}:{f[5]}"
            lb.setdefault("conns", {})[client] = f"{ipaddress.ip_address(f[12])}:{f[7]}"
    lb.setdefault("received", []).extend(messages.split(",") if daemon else [])
    save(); sys.exit(0)

if prog == "ip" and host in ("lb", "lb2") and "links" in st[LBK]:
    # The LB's links (the private sync daemon's dummy interface) and multicast routes.
    lb = st[LBK]
    links = lb["links"]
    if a[:3] == ["-o", "addr", "show"]:
        for address in lb.get("addresses", []):
            print(f"1: lo    inet {address}/32 scope global lo\\       valid_lft forever")
        sys.exit(0)
    if a[:3] == ["link", "show", "dev"]:
        sys.exit(0 if a[3] in links else 1)
    if a[:2] == ["link", "add"]:
        if not lb.get("dummy", True):
            fail("Error: Unknown device type.", 2)
        links.append(a[2])
    elif a[:2] == ["link", "del"]:
        if a[2] not in links:
            fail(f'Cannot find device "{a[2]}"')
        links.remove(a[2])
    save(); sys.exit(0)

if prog == "ipvsadm":
    lb = st[LBK]
    if a[:2] == ["-Ln", "--daemon"] and "daemons" in lb:
        for line in lb["daemons"]:
            print(line)
        sys.exit(0)
    if a[:1] == ["--start-daemon"]:
        o = dict(zip(a[2::2], a[3::2]))
        if any(d.startswith(a[1]) for d in lb["daemons"]):
            fail("ipvsadm: Daemon has already run", 2)
        lb["daemons"].append(
            f"{a[1]} sync daemon (mcast={o['--mcast-interface']}, syncid={o['--syncid']}, "
            f"maxlen=1472, group={o['--mcast-group']}, port={o['--mcast-port']}, ttl=1)")
        save(); sys.exit(0)
    if a[:1] == ["--stop-daemon"]:
        lb["daemons"] = [d for d in lb["daemons"] if not d.startswith(a[1])]
        save(); sys.exit(0)
    if a[:1] == ["-Ln"]:
        print("IP Virtual Server version 1.2.1 (size=4096)")
        if "--stats" in a:
            print("Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes")
            print("  -> RemoteAddress:Port")
            print(f"UDP  {VIP:<32}0        0        0        0        0")
            for d in lb["dests"]:
                print(f"  -> {d['rs']:<33}0        0        0        0        0")
        else:
            print("Prot LocalAddress:Port Scheduler Flags")
            print("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn")
            flags = f" ({','.join(lb['flags'])})" if lb["flags"] else ""
            print(f"UDP  {VIP} sh{flags}")
            for d in lb["dests"]:
                print(f"  -> {d['rs']:<28} Masq    {d['w']:<6} 0          0         ")
        sys.exit(0)
    o, flags = opts(a[1:])
    if o.get("-u") != VIP:
        fail("Service not defined", 2)
    dests = lb["dests"]
    found = [d for d in dests if d["rs"] == o.get("-r")]
    if a[0] == "-E":
        lb["flags"] = [f for f in o.get("-b", "").split(",") if f]
    elif a[0] == "-e":
        if not found:
            fail("No such destination", 2)
        found[0]["w"] = int(o["-w"])
    elif a[0] == "-d":
        if not found:
            fail("No such destination", 2)
        dests.remove(found[0])
        # expire_nodest_conn=1: its entries expire, and each client's next packet (here at
        # once) is scheduled to the first dest that takes new clients.
        others = [d["rs"] for d in dests if d["w"] > 0]
        if lb.get("expire") and others:
            for client, dest in lb.get("conns", {}).items():
                if dest == o["-r"]:
                    lb["conns"][client] = others[0]
    elif a[0] == "-a":
        if found:
            fail("Destination already exists", 2)
        dests.insert(0, {"rs": o["-r"], "w": int(o.get("-w", "1"))})
    else:
        fail("fake ipvsadm: unsupported " + " ".join(a), 2)
    save(); sys.exit(0)

if prog == "nft":
    # The LB's fence (ops.hostcmd.fence): its table exists once anything was fenced.
    lb = st[LBK]
    if a[:2] == ["-f", "-"]:
        for line in sys.stdin.read().splitlines():
            if "element" not in line:
                lb.setdefault("fence", [])
                continue
            element = line.split("{")[1].split("}")[0].strip()
            fence = lb.setdefault("fence", [])
            if line.startswith("add element") and element not in fence:
                fence.append(element)
            elif line.startswith("delete element"):
                if element not in fence:
                    fail("Error: Could not process rule: No such file or directory")
                fence.remove(element)
        save(); sys.exit(0)
    if "fence" not in lb:
        fail("Error: No such file or directory")
    if a[:1] == ["-j"]:
        sets = {"fenced4": [], "fenced6": []}
        for element in lb["fence"]:
            address, _, port = element.partition(" . ")
            sets["fenced6" if ":" in address else "fenced4"].append(
                {"concat": [address, int(port)]})
        items = [{"set": {"name": n, "elem": e} if e else {"name": n}} for n, e in sets.items()]
        print(json.dumps({"nftables": items}))
    sys.exit(0)

if prog == "sysctl":
    name, _, value = a[-1].partition("=")
    if name != "net.ipv4.vs.expire_nodest_conn":
        fail("fake sysctl: unsupported " + name)
    st[LBK]["expire"] = int(value); save(); sys.exit(0)

gw = st["gateways"].get(host)
if gw is None:
    fail(f"{prog}: not found", 127)

if prog == "ip":
    if a[:2] == ["-o", "link"]:
        if a[-1] != "wg0" or gw.get("missing"):
            fail(f'Device "{a[-1]}" does not exist.')
        flags = "POINTOPOINT,NOARP,UP,LOWER_UP" if gw["up"] else "POINTOPOINT,NOARP"
        state = "UNKNOWN" if gw["up"] else "DOWN"
        print(f"4: wg0: <{flags}> mtu 1420 qdisc noqueue state {state} mode DEFAULT group "
              "default qlen 1000\\    link/none ")
        sys.exit(0)
    if a[:2] == ["link", "set"]:
        gw["up"] = a[-1] == "up"; save(); sys.exit(0)
    fail("fake ip: unsupported " + " ".join(a))

if prog == "wg" and gw.get("missing"):
    fail("Unable to access interface: No such device")

if prog == "wg":
    if a[:1] == ["show"] and a[2:] == ["dump"]:
        print("\t".join([st["private"], st["public"], "51280", "off"]))
        for k, p in gw["peers"].items():
            print("\t".join([k, "(none)", p["endpoint"], p["ips"], str(p["hs"]), "0", "0",
                             str(p["ka"]) if p["ka"] else "off"]))
        sys.exit(0)
    if a[:1] == ["set"]:
        rest, p = a[2:], None
        while rest:
            if rest[0] == "peer":
                p = gw["peers"].get(rest[1])
                if p is None:
                    fail("fake wg: no such peer")
                rest = rest[2:]
                if rest[:1] == ["remove"]:
                    # Re-created as the rest of the command says: no endpoint, no session.
                    p["endpoint"], rest = "(none)", rest[1:]
                continue
            if rest[0] == "endpoint":
                p["endpoint"] = rest[1]
                if st.get("answer"):
                    # The client answers the gateway's initiation (a sync world).
                    import time
                    p["hs"] = int(time.time())
                    p["kicked"] = p.get("kicked", 0) + 1
            elif rest[0] == "persistent-keepalive":
                p["ka"] = 0 if rest[1] == "off" else int(rest[1])
            rest = rest[2:]
        save(); sys.exit(0)
    fail("fake wg: unsupported " + " ".join(a))

if prog == "wg-quick":
    if a[0] == "down" and gw.get("missing"):
        fail("wg-quick: `wg0' is not a WireGuard interface")
    gw["missing"] = False
    gw["up"] = a[0] == "up"
    for p in gw["peers"].values():
        p["endpoint"] = "(none)"
    save(); sys.exit(0)

fail(f"fake kernel: {prog}?", 127)
"""


def initial_state() -> dict[str, Any]:
    peers = {k: {"endpoint": "(none)", "ips": ips, "hs": 0, "ka": 15} for k, ips in CLIENTS.items()}
    return {
        "private": FAKE_PRIVATE,
        "public": GW_PUBLIC,
        "lb": {
            "flags": [],
            "expire": 0,
            "dests": [{"rs": "10.77.0.12:51280", "w": 1}, {"rs": "10.77.0.11:51280", "w": 1}],
        },
        "gateways": {
            "gw1": {"up": True, "peers": json.loads(json.dumps(peers))},
            "gw2": {"up": True, "peers": json.loads(json.dumps(peers))},
        },
    }


@dataclass
class Sent:
    host: str
    command: str
    mutating: bool


@dataclass
class World:
    root: Path
    inventory: Inventory
    sent: list[Sent] = field(default_factory=list)  # every command that reached a host
    refused: list[Sent] = field(default_factory=list)  # mutating commands refused (read-only)
    cut_after: int | None = None  # commands allowed before every connection is "lost"
    down: set[str] = field(default_factory=set)  # hosts that do not answer at all
    # The LBs' IPVS sync (`with_sync`): their sync daemons, links and sysctls are the fake
    # kernel's, and their connection tables are kept (a sync message re-points an entry).
    sync: bool = False

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_path.read_text())
        return data

    def set_state(self, change: Callable[[dict[str, Any]], None]) -> None:
        data = self.state()
        change(data)
        self.state_path.write_text(json.dumps(data))

    def run_dir(self, lb: str = LB) -> Path:
        """The LB's /run/wgconsole (a pair's second director has its own)."""
        return self.root / ("lb-run" if lb == LB else f"{HOSTS[lb]}-run") / "wgconsole"

    def records(self) -> dict[str, dict[str, Any]]:
        return {
            p.name: json.loads(p.read_text()) for p in sorted(self.run_dir().glob("drain-*.json"))
        }

    def transport(self, name: str, *, read_only: bool = False) -> FakeHost:
        return FakeHost(self, name, read_only=read_only)

    def factory(self, *, read_only: bool = False) -> Callable[[Host], Transport]:
        return lambda host: self.transport(host.name, read_only=read_only)

    def collector(self, **kwargs: Any) -> FleetCollector:
        return FleetCollector(self.inventory, transport_factory=self.factory(), **kwargs)

    def transports(self, *, read_only: bool = False) -> dict[str, Transport]:
        return {h.name: self.transport(h.name, read_only=read_only) for h in self.inventory.hosts}


def _publish(path: Path, text: str) -> None:
    """Replace a fake /proc file whole: hosts are polled in parallel, and a reader in
    another host's script must never see it truncated half-way through a rewrite."""
    fresh = path.with_name(f"{path.name}.{threading.get_ident()}")
    fresh.write_text(text)
    os.replace(fresh, path)


class FakeHost:
    """A host's transport: sh with the fake kernel on PATH; honours read-only like SSH."""

    def __init__(self, world: World, name: str, *, read_only: bool) -> None:
        self.world = world
        self.name = name
        self.read_only = read_only

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        world = self.world
        if mutating and self.read_only:
            world.refused.append(Sent(self.name, command, mutating))
            raise ReadOnlyViolation(f"{self.name}: read-only: refused to run a mutating command")
        if world.cut_after is not None and len(world.sent) >= world.cut_after:
            raise TransportError("ssh: connection lost (injected)")
        world.sent.append(Sent(self.name, command, mutating))
        if self.name in world.down:
            raise TransportError("ssh: timed out connecting (injected)")
        key = HOSTS[self.name] if self.name in (LB, LB2) else "lb"
        proc_dir = world.root / ("proc" if key == "lb" else f"proc-{key}")
        proc_dir.mkdir(exist_ok=True)
        state = world.state()
        lb = state[key]
        _publish(proc_dir / "ip_vs_conn", conn_table(lb.get("conns", {})))
        _publish(proc_dir / "expire", f"{lb['expire']}\n")
        run_dir = world.run_dir(self.name if key != "lb" else LB)
        run_dir.parent.mkdir(exist_ok=True)
        local = (
            command.replace("/run/wgconsole", str(run_dir))
            .replace("/proc/net/ip_vs_conn", str(proc_dir / "ip_vs_conn"))
            .replace("/proc/sys/net/ipv4/vs/expire_nodest_conn", str(proc_dir / "expire"))
        )
        sys_dir = None
        if world.sync:
            # Made afresh for each command: hosts are polled in parallel.
            sys_dir = Path(tempfile.mkdtemp(prefix=f"sys-{key}-", dir=world.root))
            local = _sync_paths(local, sys_dir, lb)
        env = dict(
            os.environ,
            PATH=f"{world.root / 'bin'}:{os.environ['PATH']}",
            FAKE_STATE=str(world.state_path),
            FAKE_HOST=HOSTS[self.name],
            FAKE_PROC=str(proc_dir / "ip_vs_conn"),
        )
        proc = subprocess.run(
            ["sh", "-c", local], capture_output=True, text=True, env=env, timeout=timeout
        )
        out = proc.stdout.replace(str(run_dir), "/run/wgconsole")
        if sys_dir is not None:
            out = out.replace(f"{sys_dir / 'vs'}/", "/proc/sys/net/ipv4/vs/")
            shutil.rmtree(sys_dir)
        return CommandResult(out, proc.stderr, proc.returncode, 0.0, len(out))

    def close(self) -> None:
        pass


def _hex(endpoint: str) -> str:
    address, _, port = endpoint.rpartition(":")
    return "".join(f"{int(x):02X}" for x in address.split(".")) + f" {int(port):04X}"


def conn_table(conns: dict[str, str]) -> str:
    """/proc/net/ip_vs_conn with an entry client -> VIP -> dest for each of `conns`."""
    lines = ["Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData"]
    lines += [f"UDP {_hex(c)} {_hex(VIP)} {_hex(d)} UDP             299" for c, d in conns.items()]
    return "\n".join(lines) + "\n"


def _sync_paths(command: str, sys_dir: Path, lb: dict[str, Any]) -> str:
    """The paths an LB's sync commands read, made the fake kernel's: its links (and their
    ifindex), whether the dummy module is in, its net.ipv4.vs sysctls; module autoload off."""
    net = sys_dir / "class" / "net"
    net.mkdir(parents=True)
    for index, link in enumerate(lb.get("links", []), 10):
        (net / link).mkdir()
        (net / link / "ifindex").write_text(f"{index}\n")
    if lb.get("dummy", True):
        (sys_dir / "module" / "dummy").mkdir(parents=True)
    vs = sys_dir / "vs"
    vs.mkdir()
    (vs / "expire_nodest_conn").write_text(f"{lb['expire']}\n")
    (vs / "backup_only").write_text(f"{lb.get('backup_only', 0)}\n")
    (sys_dir / "modprobe").write_text("\n")
    return (
        command.replace("/sys/class/net/", f"{net}/")
        .replace("/sys/module/dummy", str(sys_dir / "module" / "dummy"))
        .replace("/proc/sys/net/ipv4/vs/", f"{vs}/")
        .replace("/proc/sys/kernel/modprobe", str(sys_dir / "modprobe"))
        .replace("/lib/modules/", f"{sys_dir}/modules/")
    )


def with_sync(
    world: World,
    clients_on: str = "gw2",
    *,
    dummy: bool = True,
    backup_only: int = 0,
    pair: bool = False,
) -> None:
    """The world's LBs able to move entries by IPVS sync (a poll shows their daemons and
    sysctls), and both clients on one gateway, each with an LB entry and a fresh handshake
    there; a kicked client answers at once. `pair`: a second director, wg-lb-2, the
    standby, with the holder's entries synced and keepalived's backup daemon running."""
    world.sync = True
    endpoints = ["10.77.1.10:51601", "10.77.1.11:51602"]
    rs = {"gw1": "10.77.0.11:51280", "gw2": "10.77.0.12:51280"}[clients_on]

    def change(st: dict[str, Any]) -> None:
        st["answer"] = True
        now = int(time.time())
        for key, endpoint in zip(CLIENTS, endpoints, strict=True):
            st["gateways"][clients_on]["peers"][key].update(endpoint=endpoint, hs=now - 20)
        st["lb"].update(
            conns=dict.fromkeys(endpoints, rs),
            daemons=[KEEPALIVED_MASTER] if pair else [],
            addresses=["10.77.255.1"],
            links=["lan"] if pair else [],
            dummy=dummy,
            backup_only=backup_only,
            flags=["sh-fallback"],
            expire=1,
        )
        if pair:
            st["lb2"] = json.loads(json.dumps(st["lb"]))
            st["lb2"].update(daemons=[KEEPALIVED_BACKUP], addresses=[])

    world.set_state(change)


KEEPALIVED_MASTER = (
    "master sync daemon (mcast=lan, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
)
KEEPALIVED_BACKUP = (
    "backup sync daemon (mcast=lan, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
)


def make_world(root: Path, *, pair: bool = False) -> World:
    root.mkdir(parents=True, exist_ok=True)
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    kernel = bin_dir / "fake-kernel"
    kernel.write_text(f"#!{sys.executable} -S\n{FAKE_KERNEL}")
    kernel.chmod(0o755)
    for tool in ("ipvsadm", "sysctl", "ip", "wg", "wg-quick", "nft", "perl"):
        link = bin_dir / tool
        if not link.exists():
            link.symlink_to(kernel)
    inventory_path = root / "inventory.yaml"
    text = (NORMAL / "inventory.yaml").read_text()
    if pair:
        text = text.replace(
            "  - {name: wg-lb, host: 127.0.0.1, port: 2321}\n",
            f"  - {{name: wg-lb, host: 127.0.0.1, port: 2321}}\n"
            f"  - {{name: {LB2}, host: 127.0.0.1, port: 2324}}\n",
        )
    inventory_path.write_text(text)
    world = World(root, load_inventory(inventory_path))
    state = initial_state()
    if pair:
        state["lb2"] = json.loads(json.dumps(state["lb"]))
    world.state_path.write_text(json.dumps(state))
    return world


def world_for_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """A fake world that `wgconsole` commands (cli.main) reach instead of SSH hosts, with the
    bastion's state (last answers, the default audit log) kept in `tmp_path`."""
    world = make_world(tmp_path / "world")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(
        collect,
        "SshTransport",
        lambda host, **kw: world.transport(host.name, read_only=bool(kw.get("read_only"))),
    )
    return world
