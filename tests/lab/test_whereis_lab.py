"""`wgconsole whereis` against the real kernel's `sh` choice for thousands of source addresses.

Each scenario configures a scratch IPVS service on the lab's LB (same VIP, another port, the
lab's gateways as real servers), sends one datagram from each of thousands of sources through
it, and reads the connection table: the real server of each entry is the kernel's choice, and a
source with no entry was dropped. `whereis --json` must say the same for every source.
"""

from __future__ import annotations

import ipaddress
import random
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.conftest import Lab
from tests.lab.helpers import cli_json, kernel_conns, kernel_dests

pytestmark = pytest.mark.lab

SCRATCH_PORT = 51299
SOURCES = 2000


def _sources(seed: int, *, with_ports: bool) -> list[str]:
    rng = random.Random(seed)
    # One /16 per scenario: sources never repeat across scenarios, whose entries live 300 s.
    net = ipaddress.ip_network(f"100.{64 + seed}.0.0/16")
    addrs: set[str] = set()
    while len(addrs) < SOURCES:
        addrs.add(str(net[rng.randrange(1, net.num_addresses - 1)]))
    if with_ports:
        return [f"{a}:{rng.randrange(1024, 65535)}" for a in sorted(addrs)]
    return sorted(addrs)


@pytest.fixture
def scratch(lab: Lab, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A scratch sh service with the lab's gateways (added in inventory order) and its inventory."""
    vip = f"{lab.meta['vip']}:{SCRATCH_PORT}"
    lab.ns("lb", ["ipvsadm", "-D", "-u", vip], check=False)
    lab.ns("lb", ["ipvsadm", "-A", "-u", vip, "-s", "sh"])
    for gw in lab.inventory.gateways:
        rs = f"{gw.real_server.address}:{SCRATCH_PORT}"
        lab.ns("lb", ["ipvsadm", "-a", "-u", vip, "-r", rs, "-m", "-w", "1"])
    text = lab.inventory_path.read_text()
    text = text.replace(f"port: {lab.meta['port']}, scheduler", f"port: {SCRATCH_PORT}, scheduler")
    text = text.replace(f":{lab.meta['port']}}}", f":{SCRATCH_PORT}}}")
    inv = tmp_path / "scratch-inventory.yaml"
    inv.write_text(text)
    yield vip, inv
    lab.ns("lb", ["ipvsadm", "-D", "-u", vip], check=False)


def _send(lab: Lab, sources: list[str]) -> None:
    listing = lab.dir / "probe-sources.txt"  # the guest sees the lab directory over 9p
    listing.write_text("\n".join(sources) + "\n")
    cmd = (
        f"ip netns exec cl0 {shlex.quote(sys.executable)} -m wgconsole.lab.sendfrom "
        f"{lab.meta['vip']} {SCRATCH_PORT} --interval 0.0002 < {shlex.quote(str(listing))}"
    )
    assert lab.sh(cmd, timeout=300).strip() == str(len(sources))


def _kernel_choice(lab: Lab, vip: str, sources: list[str]) -> dict[str, str | None]:
    wanted = {s if ":" in s else f"{s}:40000": s for s in sources}
    names = {f"{gw.real_server.address}:{SCRATCH_PORT}": gw.name for gw in lab.inventory.gateways}
    choice: dict[str, str | None] = dict.fromkeys(sources)
    for c in kernel_conns(lab):
        if c.virtual == vip and c.client in wanted:
            choice[wanted[c.client]] = names[c.dest]
    return choice


def _fresh(lab: Lab, vip: str, sources: list[str]) -> list[str]:
    """Sources without an entry yet (a rerun on a kept lab finds its earlier entries)."""
    before = _kernel_choice(lab, vip, sources)
    fresh = [s for s in sources if before[s] is None]
    assert len(fresh) > 0.9 * len(sources)
    return fresh


def _check(lab: Lab, vip: str, inv: Path, seed: int, *, with_ports: bool = False) -> dict[str, int]:
    sources = _fresh(lab, vip, _sources(seed, with_ports=with_ports))
    predicted = cli_json(inv, "whereis", *sources)
    _send(lab, sources)
    kernel = _kernel_choice(lab, vip, sources)
    ours = {p["address"]: p["gateway"] for p in predicted}
    wrong = [(s, ours[s], kernel[s]) for s in sources if ours[s] != kernel[s]]
    assert not wrong, f"{len(wrong)} of {len(sources)} differ, e.g. {wrong[:5]}"
    tally: dict[str, int] = {}
    for g in kernel.values():
        tally[str(g)] = tally.get(str(g), 0) + 1
    print(f"seed {seed}: kernel placement {tally}")
    return tally


def _edit(lab: Lab, vip: str, gateway_index: int, weight: int) -> None:
    gw = lab.inventory.gateways[gateway_index]
    rs = f"{gw.real_server.address}:{SCRATCH_PORT}"
    lab.ns("lb", ["ipvsadm", "-e", "-u", vip, "-r", rs, "-m", "-w", str(weight)])


def test_equal_weights(lab: Lab, scratch: tuple[str, Path]) -> None:
    vip, inv = scratch
    tally = _check(lab, vip, inv, seed=1)
    assert "None" not in tally
    assert len(tally) == 2


def test_unequal_weights_and_kernel_order(lab: Lab, scratch: tuple[str, Path]) -> None:
    vip, inv = scratch
    _edit(lab, vip, 0, 3)
    _edit(lab, vip, 1, 1)
    tally = _check(lab, vip, inv, seed=2)
    assert tally["wg-gateway-01"] > 2 * tally["wg-gateway-02"]
    # delete + re-add moves gateway-01 to the head of the kernel's list: a different table.
    gw = lab.inventory.gateways[0]
    rs = f"{gw.real_server.address}:{SCRATCH_PORT}"
    lab.ns("lb", ["ipvsadm", "-d", "-u", vip, "-r", rs])
    lab.ns("lb", ["ipvsadm", "-a", "-u", vip, "-r", rs, "-m", "-w", "2"])
    assert kernel_dests(lab, vip)[0][0] == rs
    _check(lab, vip, inv, seed=3)


def test_weight_zero_without_fallback_drops(lab: Lab, scratch: tuple[str, Path]) -> None:
    vip, inv = scratch
    _edit(lab, vip, 0, 0)
    tally = _check(lab, vip, inv, seed=4)
    # About half the new sources hash to the drained gateway's buckets and are dropped.
    assert tally.get("None", 0) > len(_sources(4, with_ports=False)) // 4
    assert "wg-gateway-01" not in tally


def test_weight_zero_with_fallback(lab: Lab, scratch: tuple[str, Path]) -> None:
    vip, inv = scratch
    lab.ns("lb", ["ipvsadm", "-E", "-u", vip, "-s", "sh", "-b", "sh-fallback"])
    _edit(lab, vip, 0, 0)
    tally = _check(lab, vip, inv, seed=5)
    assert set(tally) == {"wg-gateway-02"}


def test_sh_port_and_unequal_weights(lab: Lab, scratch: tuple[str, Path]) -> None:
    vip, inv = scratch
    lab.ns("lb", ["ipvsadm", "-E", "-u", vip, "-s", "sh", "-b", "sh-fallback,sh-port"])
    _edit(lab, vip, 1, 5)
    tally = _check(lab, vip, inv, seed=6, with_ports=True)
    assert "None" not in tally


def test_whereis_what_if_matches_the_kernel_after_the_change(
    lab: Lab, scratch: tuple[str, Path]
) -> None:
    """A proposed weight, predicted before the change, is what the kernel does after it."""
    vip, inv = scratch
    sources = _fresh(lab, vip, _sources(7, with_ports=False))
    predicted = cli_json(inv, "whereis", "--weight", "wg-gateway-02=0", *sources)
    _edit(lab, vip, 1, 0)
    _send(lab, sources)
    kernel = _kernel_choice(lab, vip, sources)
    ours = {p["address"]: p["gateway"] for p in predicted}
    assert all(ours[s] == kernel[s] for s in sources)
