"""The drain's fast path, off the lab: the LB-side entry watch and the one-command handshake.

Their commands run here for real (sh, awk) against a file in the kernel's format and a fake
`wg` that records its arguments; tests/lab/test_ops_drain_lab.py runs them on the real kernel.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tests.fakeworld import GW2, LB, make_world
from wgconsole.core.inventory import Gateway, Host, SshSettings
from wgconsole.core.records import Endpoint, WgPeer
from wgconsole.ops.hostcmd.entrywatch import parse_watch, proc_form, then_watch, watch_command
from wgconsole.ops.hostcmd.handshake import Kick, initiate_command
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.procedures.drain import execute_drain, plan_drain

LB_HOST = Host(name="wg-lb", host="127.0.0.1", ssh=SshSettings())
GW = Gateway("wg-gateway-02", "127.0.0.1", SshSettings(), Endpoint("10.77.0.12", 51280))
VIP = Endpoint("10.77.255.1", 51280)
OLD = Endpoint("10.77.0.11", 51280)
TABLE = """\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
UDP 0A4D010A C991 0A4DFF01 C850 0A4D000B C850 UDP             299
UDP 0A4D010B AA37 0A4DFF01 C850 0A4D000C C850 UDP             299
UDP 0A4D010C D8B9 0A4DFF01 C850 0A4D000C C850 UDP             299
"""
PSK = "PSKofTHEpeerNEVERonTHEcommandLINE000000000="


def _run(command: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    local = command.replace("/proc/net/ip_vs_conn", str(tmp_path / "ip_vs_conn"))
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    return subprocess.run(["sh", "-c", local], capture_output=True, text=True, env=env, timeout=60)


def test_proc_form_is_the_kernels() -> None:
    assert proc_form(Endpoint("10.77.1.10", 0xC991)) == "0A4D010A C991"
    assert proc_form(Endpoint("fd00::1", 5)) == ("FD00:0000:0000:0000:0000:0000:0000:0001 0005")


def test_the_watch_prints_the_awaited_entries_that_moved(tmp_path: Path) -> None:
    (tmp_path / "ip_vs_conn").write_text(TABLE)
    awaited = [Endpoint("10.77.1.10", 0xC991), Endpoint("10.77.1.11", 0xAA37)]
    command = watch_command(LB_HOST, VIP, awaited, away_from=OLD, seconds=30)
    started = time.monotonic()
    res = _run(command, tmp_path)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started < 30  # it returned on its find, not at its deadline
    # 10.77.1.10 is still on the old real server; 10.77.1.12 is not awaited.
    entries = parse_watch(res.stdout)
    assert [(str(e.client), str(e.dest)) for e in entries] == [
        ("10.77.1.11:43575", "10.77.0.12:51280")
    ]


def test_the_watch_ends_with_nothing_when_nobody_moves(tmp_path: Path) -> None:
    (tmp_path / "ip_vs_conn").write_text(TABLE)
    command = watch_command(
        LB_HOST, VIP, [Endpoint("10.77.1.10", 0xC991)], away_from=OLD, seconds=0.3
    )
    res = _run(then_watch("true", command), tmp_path)
    assert res.returncode == 0, res.stderr
    assert parse_watch(res.stdout) == []
    # The command before the watch failing fails the whole (a delete that did not happen).
    assert _run(then_watch("false", command), tmp_path).returncode != 0


def _fake_wg(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    wg = bin_dir / "wg"
    wg.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = show ]; then printf "AAA=\\t{PSK}\\nBBB=\\t(none)\\n"; exit 0; fi\n'
        f'for a in "$@"; do case "$a" in */psk*) printf "<%s>" "$(cat "$a")";; '
        f'*) printf "[%s]" "$a";; esac; done >> {calls}; echo >> {calls}\n'
    )
    wg.chmod(0o755)
    return calls


def _peer(key: str, *, psk: bool, keepalive: int) -> WgPeer:
    return WgPeer(key, psk, None, ("10.255.0.2/32", "10.9.0.0/24"), 0, 0, 0, keepalive)


def test_one_wg_set_makes_every_peer_afresh_and_initiates(tmp_path: Path) -> None:
    calls = _fake_wg(tmp_path)
    kicks = [Kick(_peer("BBB=", psk=False, keepalive=15), "10.77.1.10:51601")]
    (command,) = initiate_command(GW, kicks)
    assert _run(command, tmp_path).returncode == 0
    assert calls.read_text().splitlines() == [
        "[set][wg0][peer][BBB=][remove][peer][BBB=][allowed-ips][10.255.0.2/32,10.9.0.0/24]"
        "[endpoint][10.77.1.10:51601][persistent-keepalive][15]"
    ]


def test_a_preshared_key_stays_on_the_gateway_and_keepalive_off_stays_off(
    tmp_path: Path,
) -> None:
    calls = _fake_wg(tmp_path)
    kicks = [
        Kick(_peer("AAA=", psk=True, keepalive=0), "10.77.1.10:51601"),
        Kick(_peer("BBB=", psk=False, keepalive=15), "10.77.1.11:40000"),
    ]
    (command,) = initiate_command(GW, kicks)
    assert PSK not in command
    res = _run(command, tmp_path)
    assert res.returncode == 0, res.stderr
    first, second = calls.read_text().splitlines()
    assert first == (
        f"[set][wg0][peer][AAA=][remove][peer][AAA=][preshared-key]<{PSK}>"
        "[allowed-ips][10.255.0.2/32,10.9.0.0/24][endpoint][10.77.1.10:51601]"
        "[persistent-keepalive][25]"
        "[peer][BBB=][remove][peer][BBB=][allowed-ips][10.255.0.2/32,10.9.0.0/24]"
        "[endpoint][10.77.1.11:40000][persistent-keepalive][15]"
    )
    assert second == "[set][wg0][peer][AAA=][persistent-keepalive][0]"


def test_a_peer_the_gateway_lacks_is_not_made_up(tmp_path: Path) -> None:
    _fake_wg(tmp_path)
    (command,) = initiate_command(GW, [Kick(_peer("CCC=", psk=True, keepalive=15), "10.77.1.12:1")])
    res = _run(command, tmp_path)
    assert res.returncode == 3
    assert "no peer CCC=" in res.stderr


def test_nothing_is_read_between_wg0_down_and_the_delete(tmp_path: Path) -> None:
    """From wg0 down until the delete, the drained gateway's clients lose every packet: the
    down reports its own state and the delete follows at once (its LB was read before)."""
    world = make_world(tmp_path)
    ctx = OpContext(world.inventory, world.transports(), AuditLog(tmp_path / "audit.jsonl"))
    fleet = world.collector(timeout=60.0).read_fleet()
    execute_drain(ctx, plan_drain(world.inventory, fleet, GW2, None), wait=True, wait_timeout=5)
    sent = [(s.host, s.command) for s in world.sent]
    down = next(i for i, (_, c) in enumerate(sent) if "link set dev wg0 down" in c)
    assert sent[down][0] == GW2
    assert "ip -o link show dev wg0" in sent[down][1]
    assert sent[down + 1][0] == LB
    assert sent[down + 1][1].startswith("ipvsadm -d ")
