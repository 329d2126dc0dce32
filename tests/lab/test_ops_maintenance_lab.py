"""Maintenance that clients do not notice, on the real kernel: while drain, undrain and a weight
change run, both lab clients ping through their tunnels; afterwards every client's tunnel works
through the VIP, and a client the operation did not need to move lost no packet.

The lab's two clients hash to the same gateway; for this test one of them sends from a second
address that the current sh table gives to the other gateway (lab-only: its source address and
wg0 are set up again, and put back as they were afterwards).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lab import helpers
from tests.lab.conftest import Lab
from tests.lab.helpers import cli_json, endpoints, run_cli
from wgconsole.lab.topology import LB_WAN, TUNNEL_GATEWAY

pytestmark = pytest.mark.lab

CLIENTS = ("cl0", "cl1")
PROBES = "/run/wgconsole-test-probes"
INTERVAL = 0.2  # s between pings
REPLY = re.compile(r"icmp_seq=(\d+) ttl=")
# Per host command: on a loaded machine one emulated LB reading can take longer than 30 s.
SLOW = ("--timeout", "120")


def _clients(lab: Lab) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in helpers.status(lab, *SLOW)["clients"]}


def _recreate_client_wg(lab: Lab, ns: str) -> None:
    """A fresh wg0 from the lab's own config: no session, a new port; it handshakes at once."""
    tunnel = next(c["tunnel_address"] for c in lab.meta["topology"]["clients"] if c["netns"] == ns)
    lab.sh(
        f"ip -n {ns} link del wg0; ip -n {ns} link add wg0 type wireguard && "
        f"ip netns exec {ns} wg setconf wg0 /run/wglab/{ns}/wg0.conf && "
        f"ip -n {ns} addr add {tunnel}/24 dev wg0 && ip -n {ns} link set wg0 up"
    )


def _settle(lab: Lab, want: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Until every client is on one gateway by LB entry and by handshake (with `want`: on
    that gateway); `status`'s clients then, by name."""
    settled = helpers.settle_clients(
        lab,
        timeout=240,
        interval=3,
        pings=2,
        repair=False,
        read=lambda: helpers.status(lab, *SLOW),
        want=want,
    )
    return {c["name"]: c for c in settled}


@dataclass(frozen=True)
class Placement:
    drained: str  # the gateway wg-client-0 (cl0) is on
    other: str  # the gateway wg-client-1 (cl1) is on, from its second address


def _in_service(lab: Lab) -> None:
    """Every gateway back in service (an earlier test cut short may have left one drained)."""
    data = helpers.status(lab, *SLOW)
    for rs in data["real_servers"]:
        if rs["gateway"] and not rs["weight"]:
            _op(
                lab,
                lab.dir / "audit-maintenance.jsonl",
                "undrain",
                rs["gateway"],
                "--weight",
                "1",
                "--no-rebalance",
                "--break-lock",
            )


@pytest.fixture
def placement(lab: Lab) -> Iterator[Placement]:
    _in_service(lab)
    drained = _settle(lab)["wg-client-0"]["lb_gateway"]
    other = next(g.name for g in lab.inventory.gateways if g.name != drained)
    candidates = [f"10.77.1.{n}" for n in range(20, 80)]
    picks = cli_json(lab.inventory_path, "whereis", *candidates, *SLOW)
    second = next(p["address"] for p in picks if p["gateway"] == other)
    first = next(c["wan"] for c in lab.meta["topology"]["clients"] if c["netns"] == "cl1")
    lab.sh(
        f"ip -n cl1 addr add {second}/24 dev wan && "
        f"ip -n cl1 route replace default via {LB_WAN} src {second}"
    )
    _recreate_client_wg(lab, "cl1")
    try:
        _settle(lab, {"wg-client-0": drained, "wg-client-1": other})
        yield Placement(drained, other)
    finally:
        lab.sh(
            f"ip -n cl1 route replace default via {LB_WAN} src {first}; "
            f"ip -n cl1 addr del {second}/24 dev wan"
        )
        _recreate_client_wg(lab, "cl1")
        _settle(lab)


class Probes:
    """Pings through every client's tunnel, in the guest, while an operation runs."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def __enter__(self) -> Probes:
        lines = [f"mkdir -p {PROBES} && cd {PROBES} && rm -f *.log *.pid"]
        for ns in CLIENTS:
            ping = f"ping -n -O -i {INTERVAL} -W 2 {TUNNEL_GATEWAY}"
            lines.append(
                f"setsid ip netns exec {ns} {ping} > {ns}.log 2>&1 < /dev/null & echo $! > {ns}.pid"
            )
        self.lab.sh("\n".join(lines))
        # Every probe answered a few times before the operation begins.
        helpers.eventually(
            lambda: {ns: len(self.replies(ns)) for ns in CLIENTS},
            accept=lambda answered: all(n >= 3 for n in answered.values()),
            timeout=120,
            what="the probes answered (3 each) before the operation",
        )
        return self

    def log(self, ns: str) -> str:
        return self.lab.sh(f"cat {PROBES}/{ns}.log", check=False)

    def replies(self, ns: str) -> set[int]:
        return {int(m.group(1)) for m in REPLY.finditer(self.log(ns))}

    def __exit__(self, *exc: object) -> None:
        # Answers to the last pings come in before the probes stop.
        time.sleep(3)
        self.lab.sh(f"cd {PROBES} && for p in *.pid; do kill -INT $(cat $p); done; sleep 1")

    def lost(self, ns: str) -> list[int]:
        """Pings sent while the probe ran that never got an answer (the last one excepted:
        it may have been in flight when the probe stopped)."""
        answered = self.replies(ns)
        return [s for s in range(1, max(answered)) if s not in answered]


def _tunnels_work_through_the_vip(lab: Lab) -> None:
    for ns in CLIENTS:
        assert set(endpoints(lab, ns).values()) == {helpers.vip(lab)}, f"{ns} left the VIP"
        lab.ns(ns, ["ping", "-c", "2", "-W", "5", TUNNEL_GATEWAY])


def _op(lab: Lab, audit: Path, *args: str) -> str:
    res = run_cli(
        lab.inventory_path, *args, "--yes", "--audit-log", str(audit), *SLOW, timeout=1800
    )
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_drain_undrain_and_weight_keep_every_tunnel(
    lab: Lab, placement: Placement, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    drained, other = placement.drained, placement.other

    with Probes(lab) as probes:
        out = _op(lab, audit, "drain", drained)
    assert f"wg-client-0 -> {other}" in out
    # The client on the other gateway did not need to move: it lost nothing.
    assert probes.lost("cl1") == [], f"cl1 lost pings {probes.lost('cl1')} during the drain"
    print(f"drain: cl0 (moved) lost {len(probes.lost('cl0'))} pings of {INTERVAL} s")
    _tunnels_work_through_the_vip(lab)
    clients = _clients(lab)
    assert {c["lb_gateway"] for c in clients.values()} == {other}
    assert not any("bypassing-lb" in c["findings"] for c in clients.values())

    # Back in service: nobody moves, nobody loses a packet.
    with Probes(lab) as probes:
        _op(lab, audit, "undrain", drained, "--no-rebalance")
    for ns in CLIENTS:
        assert probes.lost(ns) == [], f"{ns} lost pings {probes.lost(ns)} during the undrain"
    _tunnels_work_through_the_vip(lab)

    # A weight change moves no existing flow either.
    with Probes(lab) as probes:
        _op(lab, audit, "weight", other, "3")
        _op(lab, audit, "weight", other, "1")
    for ns in CLIENTS:
        assert probes.lost(ns) == [], f"{ns} lost pings {probes.lost(ns)} during the weights"
    _tunnels_work_through_the_vip(lab)
    assert not any("bypassing-lb" in c["findings"] for c in _clients(lab).values())
