"""Rebalance without a kernel: who is misplaced, the plan and its preview, the sync messages
that re-point entries, and the gateway-side session script (run by `sh` against a fake `wg`).

The kernel's side (the entries really move, nobody else loses a packet) is
tests/lab/test_rebalance_lab.py.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tests import observations as o
from tests.fakeworld import World, make_world
from wgconsole.core.inventory import Gateway, SshSettings
from wgconsole.core.rebalance import balance, fleet_choice, imbalance_note, misplaced, sh_choice
from wgconsole.core.records import Endpoint, LbObservation, SyncDaemon, VsSysctls, WgPeer
from wgconsole.ops.hostcmd import entrysync, handshake
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import LockedError, OpError, ValidationError
from wgconsole.ops.machinery.readings import entries_by_client
from wgconsole.ops.procedures.rebalance import (
    BACKUP_ONLY,
    NOTHING_TO_MOVE,
    SIDE_EFFECTS,
    execute_rebalance,
    plan_rebalance,
    refuse_without_private_interface,
    table_key,
)
from wgconsole.poll.transport.base import CommandResult

# The seed's dests listed the other way round: the table that puts alpha on gateway-02 and
# beta on gateway-01, while their entries stay where the healthy seed has them.
SWAPPED = o.service(dests=(o.dest(o.GW1_RS), o.dest(o.GW2_RS)))


def _ready_lb(
    backup_only: str | None = "0", daemons: tuple[SyncDaemon, ...] | None = ()
) -> LbObservation:
    """The seed's LB with SWAPPED, its sync daemons and net.ipv4.vs.backup_only read (None:
    the sysctl not listed)."""
    values: tuple[tuple[str, str], ...] = (("sync_threshold", "3 50"),)
    if backup_only is not None:
        values = ((BACKUP_ONLY, backup_only), *values)
    return replace(o.lb_obs(services=(SWAPPED,)), sync_daemons=daemons, sysctls=VsSysctls(values))


def _swapped_fleet(**kw: object) -> object:
    return o.fleet(lb=o.lb_obs(services=(SWAPPED,)), **kw)  # type: ignore[arg-type]


def test_clients_on_their_sh_choice_are_not_misplaced() -> None:
    fleet = o.fleet()
    choice = fleet_choice(o.make_inventory(), fleet)
    assert choice is not None
    assert misplaced(fleet.clients, choice) == []
    rows = balance(o.make_inventory(), fleet)
    assert [(r.gateway, r.clients, r.clients_after, r.buckets) for r in rows] == [
        (o.GW1, 1, 1, 128),
        (o.GW2, 1, 1, 128),
    ]
    assert imbalance_note(rows) is None


def test_a_changed_table_misplaces_clients_whose_entries_stay() -> None:
    inventory = o.make_inventory()
    fleet = o.fleet(lb=o.lb_obs(services=(SWAPPED,)))
    found = misplaced(fleet.clients, fleet_choice(inventory, fleet))
    assert [(m.client.label, m.now, m.sh) for m in found] == [
        ("alpha", o.GW1, o.GW2),
        ("beta", o.GW2, o.GW1),
    ]
    assert found[0].source == o.ALPHA_EP
    rows = balance(inventory, fleet)
    assert [(r.clients, r.clients_after) for r in rows] == [(1, 1), (1, 1)]
    # Both move, but each gateway keeps one client: the note counts moves, not imbalance.
    assert imbalance_note(rows) is None


def test_balance_after_a_weight_change_and_its_note() -> None:
    inventory = o.make_inventory()
    heavy = o.service(dests=(o.dest(o.GW2_RS, weight=255), o.dest(o.GW1_RS, weight=1)))
    fleet = o.fleet(lb=o.lb_obs(services=(heavy,)))
    rows = {r.gateway: r for r in balance(inventory, fleet)}
    assert rows[o.GW2].buckets > 250
    assert rows[o.GW1].buckets < 6
    assert rows[o.GW1].clients == 1
    assert rows[o.GW1].clients_after == 0
    assert rows[o.GW2].clients_after == 2
    assert imbalance_note(tuple(rows.values())) == (
        "1 client(s) not where sh sends them: `wgconsole rebalance` moves them"
    )


def test_a_client_the_table_would_drop_is_not_misplaced() -> None:
    # gateway-02 weight 0 without sh-fallback: its buckets drop; beta stays where it is.
    svc = o.service(dests=(o.dest(o.GW2_RS, weight=0), o.dest(o.GW1_RS)), flags=1)
    inventory = o.make_inventory()
    choice = sh_choice(inventory, svc)
    assert choice is not None
    assert None in choice.gateways
    fleet = o.fleet(lb=o.lb_obs(services=(svc,)))
    assert all(m.sh is not None for m in misplaced(fleet.clients, choice))
    assert sh_choice(inventory, o.service(scheduler="rr")) is None
    assert sh_choice(inventory, None) is None


def test_the_plan_moves_misplaced_clients_with_a_session_and_says_what_else_it_touches() -> None:
    inventory = o.make_inventory()
    fleet = o.fleet(lb=_ready_lb())
    plan = plan_rebalance(inventory, fleet)
    assert [(m.label, m.origin, m.target, m.source) for m in plan.moves] == [
        ("alpha", o.GW1, o.GW2, o.ALPHA_EP),
        ("beta", o.GW2, o.GW1, o.BETA_EP),
    ]
    assert plan.untouched == 0
    assert plan.table == table_key(SWAPPED)
    text = "\n".join(plan.describe())
    assert "alpha" in text
    assert f"{o.GW1} -> {o.GW2}" in text
    assert SIDE_EFFECTS in text
    assert "no other service, entry, dest, kernel order, weight, flag or timeout" in text
    assert "checked: net.ipv4.vs.backup_only=0 on wg-lb" in text


@pytest.mark.parametrize(
    ("lb", "cause"),
    [
        (_ready_lb("1"), "net.ipv4.vs.backup_only=1 on wg-lb: "),
        (_ready_lb(None), "net.ipv4.vs.backup_only on wg-lb is unknown (not read)"),
        (replace(_ready_lb(), sysctls=None), "net.ipv4.vs.backup_only on wg-lb is unknown"),
        # Which daemons run is unknown: the private one may start.
        (_ready_lb("1", daemons=None), "net.ipv4.vs.backup_only=1 on wg-lb: "),
        # Only a master daemon: the private backup one starts next to it.
        (
            _ready_lb("1", daemons=(SyncDaemon("master", "lan", 51),)),
            "net.ipv4.vs.backup_only=1 on wg-lb: ",
        ),
    ],
)
def test_backup_only_not_known_zero_where_the_private_daemon_starts_is_refused(
    lb: LbObservation, cause: str
) -> None:
    """Issue 22 item 2: a backup daemon with backup_only=1 stops every IPVS service."""
    with pytest.raises(ValidationError) as refused:
        plan_rebalance(o.make_inventory(), o.fleet(lb=lb))
    text = str(refused.value)
    assert cause in text
    assert "would stop forwarding every IPVS service" in text
    assert "set it to 0 for the rebalance" in text
    assert "move clients with drain/undrain" in text


def test_backup_only_does_not_matter_where_the_lbs_own_backup_daemon_receives() -> None:
    # A standby's keepalived daemon receives the entries: rebalance starts none there.
    theirs = SyncDaemon("backup", "lan", 51)
    plan = plan_rebalance(o.make_inventory(), o.fleet(lb=_ready_lb("1", daemons=(theirs,))))
    assert len(plan.moves) == 2
    assert plan.private_on == ()


def test_a_balanced_fleet_plans_nothing() -> None:
    plan = plan_rebalance(o.make_inventory(), o.fleet())
    assert plan.moves == ()
    assert plan.untouched == 2
    assert NOTHING_TO_MOVE in plan.describe()
    assert SIDE_EFFECTS not in "\n".join(plan.describe())


def test_a_misplaced_client_without_a_session_is_left_to_the_table() -> None:
    gateways = o.healthy_gateways()
    gateways[o.GW1] = o.gw_obs(o.GW1, [o.alpha_on(o.ALPHA_EP, 500), o.beta_on(None, None)])
    fleet = o.fleet(lb=_ready_lb(), gateways=gateways)
    plan = plan_rebalance(o.make_inventory(), fleet)
    assert [m.label for m in plan.moves] == ["beta"]
    assert [label for label, _ in plan.skipped] == ["alpha"]
    assert "no session now (stale)" in plan.skipped[0][1]


def test_no_service_or_another_scheduler_is_refused() -> None:
    with pytest.raises(ValidationError, match="not on any answering"):
        plan_rebalance(o.make_inventory(), o.fleet(lb=o.lb_obs(services=[])))
    rr = o.service(scheduler="wrr")
    with pytest.raises(ValidationError, match="not sh"):
        plan_rebalance(o.make_inventory(), o.fleet(lb=o.lb_obs(services=(rr,))))


# --- the sync messages --------------------------------------------------------------------


def _entry(n: int = 0) -> entrysync.Entry:
    return entrysync.Entry(
        "udp",
        Endpoint(f"10.77.1.{10 + n}", 38414 + n),
        Endpoint("10.77.255.1", 51280),
        Endpoint("10.77.0.12", 51280),
    )


def test_a_sync_message_is_the_kernels_version_1_format() -> None:
    (msg,) = entrysync.messages([_entry()], inactive=False, timeout=300)
    # struct ip_vs_sync_mesg: reserved, syncid, size, nr_conns, version, spare
    assert struct.unpack("!BBHBbH", msg[:8]) == (0, entrysync.SYNCID, 44, 1, 1, 0)
    fields = struct.unpack("!BBHIHHHHII4s4s4s", msg[8:])
    kind, proto, ver_size, flags, state, cport, vport, dport, fwmark, timeout = fields[:10]
    assert (kind, proto, ver_size, flags, state) == (0, 17, 36, 0, 0)
    assert (cport, vport, dport, fwmark, timeout) == (38414, 51280, 51280, 0, 300)
    assert [socket.inet_ntoa(a) for a in fields[10:]] == ["10.77.1.10", "10.77.255.1", "10.77.0.12"]
    (inactive,) = entrysync.messages([_entry()], inactive=True, timeout=300)
    assert struct.unpack("!I", inactive[12:16]) == (entrysync.CONN_F_INACTIVE,)


def test_many_entries_are_split_into_messages_the_daemon_accepts() -> None:
    msgs = entrysync.messages([_entry(i) for i in range(85)], inactive=False, timeout=300)
    assert [m[4] for m in msgs] == [40, 40, 5]
    assert all(len(m) <= 1472 and struct.unpack("!H", m[2:4])[0] == len(m) for m in msgs)


def test_ipv6_entries_are_refused_before_anything_is_sent() -> None:
    v6 = entrysync.Entry(
        "udp", Endpoint("fd00::1", 1), Endpoint("fd00::2", 2), Endpoint("fd00::3", 3)
    )
    with pytest.raises(entrysync.EntrySyncError, match="IPv6"):
        entrysync.messages([v6], inactive=False, timeout=300)


def test_proc_key_is_how_the_lbs_table_shows_the_entry() -> None:
    assert entrysync.proc_key(_entry()) == "0A4D010A:960E:0A4DFF01:C850:0A4D000C:C850"


# --- the gateway-side session script, run by sh against a fake wg --------------------------

FAKE_WG = r"""
import json, os, sys
path = os.environ["FAKE_WG_STATE"]
st = json.load(open(path))
a = sys.argv[1:]
log = st.setdefault("log", [])
if a[0] == "show":
    what = a[2]
    for k, p in st["peers"].items():
        if what == "allowed-ips":
            print(k + "\t" + (" ".join(p["ips"]) or "(none)"))
        elif what == "persistent-keepalive":
            print(k + "\t" + (str(p["ka"]) if p["ka"] else "off"))
        elif what == "preshared-keys":
            print(k + "\t" + (p["psk"] or "(none)"))
        elif what == "endpoints":
            print(k + "\t" + (p["endpoint"] or "(none)"))
        else:
            sys.exit("fake wg: show " + what)
    sys.exit(0)
assert a[0] == "set"
rest = a[2:]
while rest:
    assert rest[0] == "peer"
    key = rest[1]
    rest = rest[2:]
    if rest[:1] == ["remove"]:
        st["peers"].pop(key)
        rest = rest[1:]
        continue
    p = st["peers"].setdefault(key, {"ips": [], "ka": 0, "psk": None, "endpoint": None})
    while rest and rest[0] != "peer":
        opt, val = rest[0], rest[1]
        rest = rest[2:]
        if opt == "allowed-ips":
            p["ips"] = [x for x in val.split(",") if x]
        elif opt == "persistent-keepalive":
            old, p["ka"] = p["ka"], int(val)
            if not old and p["ka"] and p["endpoint"]:
                log.append(("sent", key, p["endpoint"]))
        elif opt == "preshared-key":
            p["psk"] = open(val).read().strip()
            log.append(("psk-file-mode", oct(os.stat(val).st_mode & 0o777)))
        elif opt == "endpoint":
            p["endpoint"] = val
        else:
            sys.exit("fake wg: " + opt)
json.dump(st, open(path, "w"))
"""
K1 = "a" * 43 + "="
K2 = "b" * 43 + "="
PSK = "c" * 43 + "="


def _gateway_world(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wg = bin_dir / "wg"
    wg.write_text(f"#!{sys.executable}\n{FAKE_WG}")
    wg.chmod(0o755)
    state = tmp_path / "state.json"
    peers = {
        K1: {
            "ips": ["10.255.0.2/32", "10.9.0.0/24"],
            "ka": 15,
            "psk": PSK,
            "endpoint": "10.77.1.10:38414",
        },
        K2: {"ips": ["10.255.0.3/32"], "ka": 0, "psk": None, "endpoint": "10.77.1.11:4000"},
    }
    state.write_text(json.dumps({"peers": peers}))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_WG_STATE": str(state)}
    return env, state


GW = Gateway("gw", "127.0.0.1", SshSettings(), real_server=Endpoint("10.77.0.12", 51280))


def _run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)


def _read(key: str, ips: tuple[str, ...], ka: int, *, psk: bool, endpoint: str) -> WgPeer:
    """A peer as the gateway's reading shows it."""
    address, port = endpoint.split(":")
    return WgPeer(key, psk, Endpoint(address, int(port)), ips, 0, 0, 0, ka)


def test_forget_keeps_each_peer_as_it_was_but_its_endpoint_and_session(tmp_path: Path) -> None:
    """One `wg set` from the gateway's peers as read before (handshake.forget_command)."""
    env, state = _gateway_world(tmp_path)
    read = [
        _read(K1, ("10.255.0.2/32", "10.9.0.0/24"), 15, psk=True, endpoint="10.77.1.10:38414"),
        _read(K2, ("10.255.0.3/32",), 0, psk=False, endpoint="10.77.1.11:4000"),
    ]
    (command,) = handshake.forget_command(GW, read)
    assert PSK not in command
    res = _run(command, env)
    assert res.returncode == 0, res.stderr
    peers = json.loads(state.read_text())["peers"]
    assert peers[K1] == {
        "ips": ["10.255.0.2/32", "10.9.0.0/24"],
        "ka": 15,
        "psk": PSK,
        "endpoint": None,
    }
    assert peers[K2] == {"ips": ["10.255.0.3/32"], "ka": 0, "psk": None, "endpoint": None}
    log = json.loads(state.read_text())["log"]
    assert ["psk-file-mode", "0o600"] in log
    assert not [e for e in log if e[0] == "sent"]  # forgetting sends nothing
    assert PSK not in res.stdout + res.stderr


def test_initiate_sends_at_once_to_the_entrys_address_and_keeps_keepalive_off(
    tmp_path: Path,
) -> None:
    """The one kick every operation uses (drain, rebalance, failover): handshake.initiate_command
    from the peers as read on the gateway."""
    env, state = _gateway_world(tmp_path)
    read = [
        _read(K1, ("10.255.0.2/32", "10.9.0.0/24"), 15, psk=True, endpoint="10.77.1.10:38414"),
        _read(K2, ("10.255.0.3/32",), 0, psk=False, endpoint="10.77.1.11:4000"),
    ]
    kicks = [
        handshake.Kick(read[0], "10.77.1.10:40000"),
        handshake.Kick(read[1], "10.77.1.11:4001"),
    ]
    (command,) = handshake.initiate_command(GW, kicks)
    assert PSK not in command
    res = _run(command, env)
    assert res.returncode == 0, res.stderr
    st = json.loads(state.read_text())
    sent = [e for e in st["log"] if e[0] == "sent"]
    assert sent == [["sent", K1, "10.77.1.10:40000"], ["sent", K2, "10.77.1.11:4001"]]
    assert st["peers"][K1]["ka"] == 15
    assert st["peers"][K1]["psk"] == PSK
    assert st["peers"][K2]["ka"] == 0  # off again, as configured
    assert st["peers"][K2]["endpoint"] == "10.77.1.11:4001"


def test_forgetting_a_peer_whose_key_is_gone_fails_and_says_which(tmp_path: Path) -> None:
    env, _ = _gateway_world(tmp_path)
    gone = _read("d" * 43 + "=", ("10.255.0.9/32",), 0, psk=True, endpoint="10.77.1.12:1")
    (command,) = handshake.forget_command(GW, [gone])
    res = _run(command, env)
    assert res.returncode == 3
    assert "no peer ddd" in res.stderr


def test_many_peers_are_split_into_commands() -> None:
    keys = [f"{i:043d}=" for i in range(450)]
    read = [_read(k, (), 0, psk=False, endpoint="1.2.3.4:5") for k in keys]
    assert len(handshake.forget_command(GW, read)) == 3
    kicks = [handshake.Kick(p, "1.2.3.4:5") for p in read]
    assert len(handshake.initiate_command(GW, kicks)) == 3


# --- the not-on-sh-choice finding ----------------------------------------------------------


def test_status_reports_each_client_not_on_its_sh_choice_with_what_to_run() -> None:
    fleet = o.fleet(lb=o.lb_obs(services=(SWAPPED,)))
    found = [f for f in fleet.findings if f.code == "not-on-sh-choice"]
    assert [(f.subject, f.severity, f.client_key) for f in found] == [
        ("alpha", "info", o.ALPHA),
        ("beta", "info", o.BETA),
    ]
    assert found[0].message.startswith(
        f"alpha's LB entry is on {o.GW1}, but the sh table now sends it to {o.GW2}"
    )
    assert "`wgconsole rebalance`" in found[0].message
    assert all("not-on-sh-choice" in c.findings for c in fleet.clients)
    assert not [f for f in o.fleet().findings if f.code == "not-on-sh-choice"]


def test_many_clients_not_on_their_sh_choice_are_one_group() -> None:
    from wgconsole.view.finding_groups import FindingGroup, fold_findings

    n = 24
    clients = [(f"c{i}", f"key-{i}", f"10.255.0.{10 + i}") for i in range(n)]
    inventory = o.make_inventory(clients=clients)
    sources = [Endpoint(f"10.211.{56 + i}.{3 * i}", 40000 + i) for i in range(n)]
    # Every client's entry is on gateway-01; the table sends about half to gateway-02.
    conns = [o.conn(s, o.GW1_RS) for s in sources]
    peers = [
        o.peer(key, s, 20, (f"{addr}/32",))
        for (_, key, addr), s in zip(clients, sources, strict=True)
    ]
    gateways = {o.GW1: o.gw_obs(o.GW1, peers), o.GW2: o.gw_obs(o.GW2, [])}
    fleet = o.fleet(inventory, gateways=gateways, lb=o.lb_obs(conns=conns))
    mine = [f for f in fleet.findings if f.code == "not-on-sh-choice"]
    choice = fleet_choice(inventory, fleet)
    assert choice is not None
    expected = [s for s in sources if choice.gateway(s) == o.GW2]
    assert len(mine) == len(expected) > 5
    groups = [g for g in fold_findings(fleet.findings) if isinstance(g, FindingGroup)]
    assert [(g.code, len(g.findings)) for g in groups] == [("not-on-sh-choice", len(expected))]


def test_the_fleet_builder_rederives_the_finding_when_the_table_changes() -> None:
    from wgconsole.core.fleet_builder import FleetBuilder

    builder = FleetBuilder()
    inventory = o.make_inventory()
    args = (o.healthy_gateways(), o.hosts_ok(), o.NOW)
    first = builder.build(inventory, {"wg-lb": o.lb_obs()}, *args)
    again = builder.build(inventory, {"wg-lb": o.lb_obs()}, *args)
    assert again.clients[0] is first.clients[0]  # nothing changed: the same view
    swapped = builder.build(inventory, {"wg-lb": o.lb_obs(services=(SWAPPED,))}, *args)
    assert all("not-on-sh-choice" in c.findings for c in swapped.clients)
    back = builder.build(inventory, {"wg-lb": o.lb_obs()}, *args)
    assert not any("not-on-sh-choice" in c.findings for c in back.clients)


# --- the LB's private sync daemon, its script run by sh against fake ipvsadm and ip ------


FAKE_LB = r"""#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_LB_LOG"
case "$(basename "$0") $1" in
  "ipvsadm -Ln") [ -f "$FAKE_LB_DAEMON" ] && cat "$FAKE_LB_DAEMON"; exit 0;;
  "ip link") [ "$2" = show ] && exit 1; exit 0;;
esac
exit 0
"""


def _lb_world(tmp_path: Path, daemon: str | None) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("ipvsadm", "ip"):
        (bin_dir / name).write_text(FAKE_LB)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    log.write_text("")
    listing = tmp_path / "daemon"
    if daemon is not None:
        listing.write_text(daemon + "\n")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LB_LOG": str(log),
        "FAKE_LB_DAEMON": str(listing),
    }
    return env, log


LB_HOST = o.make_inventory().load_balancers[0]


def test_the_private_daemon_starts_on_its_dummy_interface(tmp_path: Path) -> None:
    env, log = _lb_world(tmp_path, None)
    res = _run(entrysync.setup_command(LB_HOST), env)
    assert res.returncode == 0, res.stderr
    calls = log.read_text().splitlines()
    assert "ip link add wgcsync type dummy" in calls
    assert (
        "ipvsadm --start-daemon backup --mcast-interface wgcsync --syncid 213 "
        "--mcast-group 239.255.213.1 --mcast-port 18848"
    ) in calls
    assert "ip route replace 239.255.213.1/32 dev wgcsync" in calls


def test_a_daemon_left_by_a_run_cut_short_is_used_again(tmp_path: Path) -> None:
    ours = "backup sync daemon (mcast=wgcsync, syncid=213, maxlen=1472, group=239.255.213.1)"
    env, log = _lb_world(tmp_path, ours)
    assert _run(entrysync.setup_command(LB_HOST), env).returncode == 0
    assert not [c for c in log.read_text().splitlines() if "--start-daemon" in c]
    assert entrysync.ours_running(ours)
    res = _run(entrysync.teardown_command(LB_HOST), env)
    assert res.returncode == 0
    assert "ipvsadm --stop-daemon backup" in log.read_text().splitlines()


def test_an_lb_running_another_backup_daemon_is_refused_and_left_alone(tmp_path: Path) -> None:
    theirs = "backup sync daemon (mcast=eth1, syncid=7, maxlen=1472, group=224.0.0.81)"
    env, log = _lb_world(tmp_path, theirs)
    res = _run(entrysync.setup_command(LB_HOST), env)
    assert res.returncode == 4
    assert "a backup sync daemon already runs on this LB" in res.stderr
    assert "mcast=eth1" in res.stderr
    assert log.read_text().splitlines() == ["ipvsadm -Ln --daemon"]
    assert not entrysync.ours_running(theirs)
    assert _run(entrysync.teardown_command(LB_HOST), env).returncode == 0
    assert "--stop-daemon" not in log.read_text()


# --- a director pair: the standby's own backup daemon receives the entries ----------------

KEEPALIVED_MASTER = (
    "master sync daemon (mcast=lan, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
)
KEEPALIVED_BACKUP = (
    "backup sync daemon (mcast=lan, syncid=51, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)"
)
OURS_LINE = (
    "backup sync daemon (mcast=wgcsync, syncid=213, maxlen=1472, group=239.255.213.1, "
    "port=18848, ttl=1)"
)


def test_the_standbys_backup_daemon_is_the_receiver_as_ipvsadm_shows_it() -> None:
    receiver = entrysync.other_backup(KEEPALIVED_BACKUP + "\n")
    assert receiver == entrysync.Receiver("lan", "224.0.0.81", 8848, 51, ours=False)
    assert receiver is not None
    assert "interface lan, group 224.0.0.81:8848, syncid 51" in (receiver.describe())
    # The holder: a master daemon, and the private backup one next to it, are not receivers.
    assert entrysync.other_backup(f"{KEEPALIVED_MASTER}\n{OURS_LINE}\n") is None
    assert entrysync.other_backup("") is None
    # ipvsadm prints no group or port for a daemon started without them: the kernel's defaults.
    bare = entrysync.other_backup("backup sync daemon (mcast=eth1, syncid=7, maxlen=1472)")
    assert bare == entrysync.Receiver("eth1", "224.0.0.81", 8848, 7, ours=False)


def test_a_backup_daemon_on_an_ipv6_group_is_refused() -> None:
    line = "backup sync daemon (mcast=lan, syncid=51, maxlen=1452, group=ff02::8848, port=8848)"
    with pytest.raises(entrysync.EntrySyncError, match="IPv6 group"):
        entrysync.other_backup(line)


def test_the_messages_carry_the_receivers_syncid() -> None:
    (msg,) = entrysync.messages([_entry()], inactive=False, timeout=300, syncid=51)
    assert msg[1] == 51


def test_the_entries_are_sent_to_the_receivers_group_and_port(tmp_path: Path) -> None:
    """The send script's own socket code (perl, else python3), on this host: to a listener on
    127.0.0.1 standing for the group, out of `lo`. The wait for the entries that follows needs
    an IPVS table, which this host has not: it fails, after the send."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(30)
    port = listener.getsockname()[1]
    to = entrysync.Receiver("lo", "127.0.0.1", port, 51, ours=False)
    batch = entrysync.messages([_entry()], inactive=False, timeout=300, syncid=51)
    batch += entrysync.messages([_entry()], inactive=True, timeout=300, syncid=51)
    command = entrysync.send_command(LB_HOST, batch, [_entry()], to)
    res = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert "IP_MULTICAST_IF" not in res.stderr, res.stderr
    assert "send:" not in res.stderr, res.stderr
    assert [listener.recv(2048) for _ in batch] == batch
    listener.close()


def test_a_replaced_entry_that_lingers_does_not_hide_its_replacement() -> None:
    """Seen on the pair lab: after a re-point, the old entry (its expiry re-armed while a
    packet held it) was listed after the new one, and a check that kept the last listed said
    the client had not moved. The kernel's lookup takes the first in the chain, as listed."""
    new, old = o.conn(o.BETA_EP, o.GW1_RS), o.conn(o.BETA_EP, o.GW2_RS)
    alpha = o.conn(o.ALPHA_EP, o.GW2_RS)
    entries = entries_by_client(o.lb_obs(conns=(new, old, alpha)), o.VIP)
    assert entries == {o.BETA_EP: new, o.ALPHA_EP: alpha}


# --- issue 22 item 9: one parser of the daemon listing, with the kernel's limits -----------


def test_a_receivers_maxlen_is_read_and_the_messages_fit_it() -> None:
    """A backup daemon started with a smaller maxlen (1024: the least the kernel lets a backup
    have) reads at most that many bytes of a datagram and drops a longer message as "bogus
    message size": after the clients were forgotten. Every message must fit."""
    line = "backup sync daemon (mcast=lan, syncid=51, maxlen=1024, group=224.0.0.81, port=8848)"
    receiver = entrysync.other_backup(line)
    assert receiver is not None
    assert receiver.maxlen == 1024
    msgs = entrysync.messages(
        [_entry(i) for i in range(85)],
        inactive=False,
        timeout=300,
        syncid=receiver.syncid,
        maxlen=receiver.maxlen,
    )
    assert all(len(m) <= 1024 and struct.unpack("!H", m[2:4])[0] == len(m) for m in msgs)
    assert sum(m[4] for m in msgs) == 85
    assert [m[4] for m in msgs] == [28, 28, 28, 1]
    # The private daemon, and one that prints no maxlen: the kernel's default, 1472.
    assert entrysync.PRIVATE.maxlen == 1472


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("backup sync daemon (mcast=lan, syncid=300, maxlen=1472)", "syncid 300"),
        ("backup sync daemon (mcast=lan, syncid=51, maxlen=512)", "maxlen 512"),
        ("backup sync daemon (mcast=lan, syncid=51, maxlen=70000)", "maxlen 70000"),
        ("backup sync daemon (mcast=lan, syncid=51, port=0)", "port 0"),
        ("backup sync daemon (mcast=lan, syncid=51, group=nope)", "group"),
    ],
)
def test_a_daemon_line_outside_the_kernels_limits_is_refused_with_its_reason(
    line: str, reason: str
) -> None:
    """The kernel keeps syncid in a byte and clamps a backup's maxlen to 1024..65507: a line
    outside is not a kernel's; refused as the poll's parser refuses it (no struct.error)."""
    with pytest.raises(entrysync.EntrySyncError, match=reason):
        entrysync.other_backup(line)


# --- one sync mechanism per LB: the sync lock (issue 22 item 8) ---------------------------


def _held_sync_lock(world: World) -> Path:
    """Another rebalance, of another service on the same LB, holding the LB's sync lock."""
    held = world.run_dir() / "lock-ipvs-sync"
    held.mkdir(parents=True)
    owner = {
        "operator": "ops2",
        "action": "rebalance tcp 10.77.255.9:443",
        "since": 1,
        "token": "t",
    }
    (held / "owner").write_text(json.dumps(owner))
    return held


def _world_ctx(world: World) -> OpContext:
    return OpContext(world.inventory, world.transports(), AuditLog(world.root / "audit.jsonl"))


def test_a_rebalance_of_another_service_on_the_lb_holds_it_off(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    held = _held_sync_lock(world)
    plan = plan_rebalance(o.make_inventory(), o.fleet(lb=_ready_lb()))
    with pytest.raises(LockedError, match=r"rebalance tcp 10\.77\.255\.9:443"):
        execute_rebalance(_world_ctx(world), plan)
    # Nothing but the locks: no daemon started, no gateway touched.
    changed = [s.command for s in world.sent if s.mutating]
    assert all("lock-" in c for c in changed)
    assert held.is_dir()
    assert sorted(p.name for p in world.run_dir().iterdir()) == ["lock-ipvs-sync"]


def test_the_sync_lock_is_taken_and_released_when_the_run_fails(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    plan = plan_rebalance(o.make_inventory(), o.fleet(lb=_ready_lb()))
    with pytest.raises(OpError):
        execute_rebalance(_world_ctx(world), plan)
    sent = [s.command for s in world.sent if s.mutating]
    assert any("lock-ipvs-sync" in c and "mkdir" in c for c in sent)
    assert not [p.name for p in world.run_dir().iterdir() if p.name.startswith("lock-")]


class _InterfaceCheckAnswers:
    """An LB that answers only rebalance's plan-time interface check, as the lab's kernel did
    with the dummy module unloaded and autoload failing (tests/lab/test_rebalance_lab.py runs
    the check there for real)."""

    name = "wg-lb"

    def __init__(self, status: int, stderr: str) -> None:
        self.status, self.stderr = status, stderr
        self.sent: list[tuple[str, bool]] = []

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        self.sent.append((command, mutating))
        return CommandResult("", self.stderr, self.status, 0.0, 0)

    def close(self) -> None:
        pass


def test_an_lb_that_cannot_make_the_dummy_link_is_refused_while_planning(tmp_path: Path) -> None:
    """Issue 22 item 11: found out while planning, not at the first step."""
    lb = _InterfaceCheckAnswers(
        entrysync.NO_DUMMY, "the dummy module is not loaded and /bin/false cannot load it\n"
    )
    inventory = o.make_inventory()
    ctx = OpContext(inventory, {"wg-lb": lb}, AuditLog(tmp_path / "audit.jsonl"))
    plan = plan_rebalance(inventory, o.fleet(lb=_ready_lb()))
    assert plan.private_on == ("wg-lb",)
    with pytest.raises(ValidationError) as refused:
        refuse_without_private_interface(ctx, plan)
    text = str(refused.value)
    assert text.startswith("wg-lb: rebalance needs a dummy network interface there (wgcsync")
    assert "/bin/false cannot load it" in text
    assert "`modprobe dummy`" in text
    assert "nothing was changed" in text
    assert lb.sent == [(entrysync.interface_check_command(), False)]


def test_nothing_to_move_sends_no_interface_check(tmp_path: Path) -> None:
    lb = _InterfaceCheckAnswers(entrysync.NO_DUMMY, "")
    ctx = OpContext(o.make_inventory(), {"wg-lb": lb}, AuditLog(tmp_path / "audit.jsonl"))
    refuse_without_private_interface(ctx, plan_rebalance(o.make_inventory(), o.fleet()))
    assert lb.sent == []
