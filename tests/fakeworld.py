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
import subprocess
import sys
import threading
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
HOSTS = {LB: "lb", GW1: "gw1", GW2: "gw2"}

FAKE_KERNEL = r"""
import json, os, sys
path = os.environ["FAKE_STATE"]
host = os.environ["FAKE_HOST"]
st = json.load(open(path))
prog = os.path.basename(sys.argv[0])
a = sys.argv[1:]
VIP = "10.77.255.1:51280"

def save():
    tmp = path + "." + str(os.getpid())
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.replace(tmp, path)

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

if prog == "ipvsadm":
    lb = st["lb"]
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
    elif a[0] == "-a":
        if found:
            fail("Destination already exists", 2)
        dests.insert(0, {"rs": o["-r"], "w": int(o.get("-w", "1"))})
    else:
        fail("fake ipvsadm: unsupported " + " ".join(a), 2)
    save(); sys.exit(0)

if prog == "nft":
    # The LB's fence (ops.hostcmd.fence): its table exists once anything was fenced.
    lb = st["lb"]
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
    st["lb"]["expire"] = int(value); save(); sys.exit(0)

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
        p = gw["peers"].get(a[3])
        if p is None:
            fail("fake wg: no such peer")
        rest = a[4:]
        while rest:
            if rest[0] == "endpoint":
                p["endpoint"] = rest[1]
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

    def run_dir(self) -> Path:
        return self.root / "lb-run" / "wgconsole"

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
        proc_dir = world.root / "proc"
        proc_dir.mkdir(exist_ok=True)
        state = world.state()
        _publish(
            proc_dir / "ip_vs_conn",
            "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n",
        )
        _publish(proc_dir / "expire", f"{state['lb']['expire']}\n")
        world.run_dir().parent.mkdir(exist_ok=True)
        local = (
            command.replace("/run/wgconsole", str(world.run_dir()))
            .replace("/proc/net/ip_vs_conn", str(proc_dir / "ip_vs_conn"))
            .replace("/proc/sys/net/ipv4/vs/expire_nodest_conn", str(proc_dir / "expire"))
        )
        env = dict(
            os.environ,
            PATH=f"{world.root / 'bin'}:{os.environ['PATH']}",
            FAKE_STATE=str(world.state_path),
            FAKE_HOST=HOSTS[self.name],
        )
        proc = subprocess.run(
            ["sh", "-c", local], capture_output=True, text=True, env=env, timeout=timeout
        )
        out = proc.stdout.replace(str(world.run_dir()), "/run/wgconsole")
        return CommandResult(out, proc.stderr, proc.returncode, 0.0, len(out))

    def close(self) -> None:
        pass


def make_world(root: Path) -> World:
    root.mkdir(parents=True, exist_ok=True)
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    kernel = bin_dir / "fake-kernel"
    kernel.write_text(f"#!{sys.executable} -S\n{FAKE_KERNEL}")
    kernel.chmod(0o755)
    for tool in ("ipvsadm", "sysctl", "ip", "wg", "wg-quick", "nft"):
        link = bin_dir / tool
        if not link.exists():
            link.symlink_to(kernel)
    inventory_path = root / "inventory.yaml"
    inventory_path.write_text((NORMAL / "inventory.yaml").read_text())
    world = World(root, load_inventory(inventory_path))
    world.state_path.write_text(json.dumps(initial_state()))
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
