"""Operations on a director pair, without a lab: the switchover hook's parser and the values
a failover writes."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.observations import (
    ALPHA,
    ALPHA_EP,
    BETA,
    BETA_EP,
    GW1_RS,
    GW2,
    GW2_RS,
    VIP,
    dest,
    fleet,
    gw_obs,
    lb_obs,
    make_inventory,
    peer,
    service,
)
from wgconsole.core.fleet import Fleet
from wgconsole.core.inventory import Host, Inventory, SshSettings
from wgconsole.core.lb_state import SWITCHOVER_TRACK_FILE
from wgconsole.core.records import (
    Endpoint,
    IpvsConn,
    IpvsDest,
    KeepalivedRealServer,
    KeepalivedReport,
    KeepalivedVirtualServer,
    LbObservation,
    ServiceFlag,
    VrrpInstance,
    VrrpState,
)
from wgconsole.core.sched import ShDest, with_added, with_removed, with_weights
from wgconsole.ops.hostcmd import handshake as handshake_module
from wgconsole.ops.machinery import pair as pair_module
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError, ValidationError
from wgconsole.ops.machinery.pair import tables_step
from wgconsole.ops.procedures import failover as failover_module
from wgconsole.ops.procedures.align import Rebuild, plan_align, rebuild
from wgconsole.ops.procedures.failover import (
    ClientFate,
    DirectorHook,
    FailoverPlan,
    plan_failover,
    switchover_values,
)
from wgconsole.ops.procedures.weight import _weight_steps, plan_weight
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.parsers.switchover import (
    HOOK_EXAMPLE,
    NoHook,
    SwitchoverHook,
    parse_switchover_hook,
    parse_switchover_value,
)
from wgconsole.poll.transport.base import CommandResult

INSTANCE = """
vrrp_instance VI_1 {
    state BACKUP
    priority 100
    virtual_ipaddress {
        10.0.0.1/32
    }
    %s
}
"""
DEFINITION = """
track_file wgconsole_switchover {
    file "/var/lib/wgconsole/vrrp-switchover"   # persistent
    %s
}
"""


def _conf(definition: str = "weight 1", tracking: str = "", extra: str = "") -> str:
    track = f"track_file {{\n        {tracking or SWITCHOVER_TRACK_FILE}\n    }}"
    return DEFINITION % definition + INSTANCE % (track + "\n" + extra)


def test_switchover_hook_weights_reverse_and_overrides() -> None:
    hook = parse_switchover_hook(_conf(), "VI_1")
    assert isinstance(hook, SwitchoverHook)
    assert (hook.file, hook.factor, hook.nopreempt) == (
        "/var/lib/wgconsole/vrrp-switchover",
        1,
        False,
    )
    hook = parse_switchover_hook(_conf("weight 5 reverse"), "VI_1")
    assert isinstance(hook, SwitchoverHook)
    assert hook.factor == -5
    # The instance's own weight wins over the definition's.
    hook = parse_switchover_hook(_conf("weight 5", f"{SWITCHOVER_TRACK_FILE} weight 2"), "VI_1")
    assert isinstance(hook, SwitchoverHook)
    assert hook.factor == 2
    hook = parse_switchover_hook(_conf(extra="nopreempt"), "VI_1")
    assert isinstance(hook, SwitchoverHook)
    assert hook.nopreempt
    legacy = _conf().replace(
        "track_file wgconsole_switchover {", "vrrp_track_file wgconsole_switchover {"
    )
    assert isinstance(parse_switchover_hook(legacy, "VI_1"), SwitchoverHook)


def test_the_targets_preempt_delay_is_read_and_shown() -> None:
    """Issue 22 (suspicion, holds): failover ignored preempt_delay, so its wait for the VIP
    could run out before keepalived moved it (after the movers were forgotten). Read from
    the config, added to the wait, and said in the preview."""
    hook = parse_switchover_hook(_conf(extra="preempt_delay 12.5"), "VI_1")
    assert isinstance(hook, SwitchoverHook)
    assert hook.preempt_delay == 12.5
    plain = parse_switchover_hook(_conf(), "VI_1")
    assert isinstance(plain, SwitchoverHook)
    assert plain.preempt_delay == 0.0
    for bad in ("1001", "-1", "soon"):
        with pytest.raises(ParseError, match="preempt_delay"):
            parse_switchover_hook(_conf(extra=f"preempt_delay {bad}"), "VI_1")
    holder = _hook("a", 150)
    target = replace(_hook("b", 100), hook=replace(_hook("b", 100).hook, preempt_delay=12.5))
    plan = FailoverPlan("a", "b", (holder, target), {"a": -51, "b": 0}, 0, (), ())
    assert plan.preempt_delay == 12.5
    assert "b has preempt_delay 12.5: it takes the VIP that many seconds after" in "\n".join(
        plan.describe()
    )


def test_switchover_hook_tracked_by_the_sync_group() -> None:
    conf = (
        DEFINITION % "weight 1"
        + INSTANCE % ""
        + (
            "vrrp_sync_group G {\n  group {\n    VI_1\n  }\n  track_file {\n"
            f"    {SWITCHOVER_TRACK_FILE}\n  }}\n}}\n"
        )
    )
    hook = parse_switchover_hook(conf, "VI_1")
    assert isinstance(hook, SwitchoverHook)
    assert hook.tracked_by == "vrrp_sync_group G"


def test_no_switchover_hook_says_why() -> None:
    no_definition = INSTANCE % ""
    why = parse_switchover_hook(no_definition, "VI_1")
    assert isinstance(why, NoHook)
    assert "no `track_file wgconsole_switchover" in why.reason
    untracked = DEFINITION % "weight 1" + INSTANCE % ""
    why = parse_switchover_hook(untracked, "VI_1")
    assert isinstance(why, NoHook)
    assert "does not track" in why.reason
    zero = _conf("weight 0")
    why = parse_switchover_hook(zero, "VI_1")
    assert isinstance(why, NoHook)
    assert "FAULT" in why.reason
    why = parse_switchover_hook(_conf() + "include /etc/keepalived/more.conf\n", "VI_2")
    assert isinstance(why, NoHook)
    assert "included" in why.reason
    # What the operator is told to add is itself a working hook.
    example = HOOK_EXAMPLE.replace("INSTANCE", "VI_1").replace("    ...\n", "")
    assert isinstance(parse_switchover_hook(example, "VI_1"), SwitchoverHook)


def test_switchover_value() -> None:
    assert parse_switchover_value("-51\n") == -51
    assert parse_switchover_value("") == 0


# --- lb align: the fewest deletes and adds that give a backup the holder's kernel order ----


def _dests(*spec: tuple[str, int]) -> tuple[IpvsDest, ...]:
    return tuple(IpvsDest(Endpoint(a, 51280), w, "masq", 0, 0) for a, w in spec)


def _apply(backup: Sequence[IpvsDest], work: Rebuild) -> list[tuple[Endpoint, int]]:
    """What the kernel's list becomes (core.sched's model of ipvsadm -d/-a/-e)."""
    dests = [ShDest(d.endpoint, d.weight) for d in backup]
    for e in work.deletes:
        dests = with_removed(dests, e)
    for d in work.adds:
        dests = with_added(dests, ShDest(d.endpoint, d.weight))
    dests = with_weights(dests, {d.endpoint: d.weight for d in work.edits})
    return [(d.key, d.weight) for d in dests]


def test_rebuild_swapped_pair_is_one_delete_and_one_add() -> None:
    holder = _dests(("10.0.0.2", 1), ("10.0.0.1", 1))
    backup = holder[::-1]
    work = rebuild(holder, backup)
    assert work.deletes == (Endpoint("10.0.0.2", 51280),)
    assert [d.endpoint for d in work.adds] == [Endpoint("10.0.0.2", 51280)]
    assert work.edits == ()
    assert _apply(backup, work) == [(d.endpoint, d.weight) for d in holder]


def test_rebuild_gives_the_holders_order_weights_and_dests_in_every_case() -> None:
    names = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    for n in range(1, 5):
        for order in itertools.permutations(names[:n]):
            holder = _dests(*((a, 1 + i % 2) for i, a in enumerate(order)))
            for kept in range(n + 1):
                for other in itertools.permutations(names[: kept + 1], kept):
                    # The backup: some of the holder's dests (another order, weight 1) and
                    # maybe one the holder does not have.
                    backup = _dests(*((a, 1) for a in other))
                    work = rebuild(holder, backup)
                    assert _apply(backup, work) == [(d.endpoint, d.weight) for d in holder]
                    same_tail = [d.endpoint for d in backup] == [d.endpoint for d in holder]
                    assert not same_tail or not (work.deletes or work.adds)


# --- failover: the values written into each director's switchover file ----------------------


def _hook(name: str, priority: int, value: int = 0, factor: int = 1) -> DirectorHook:
    hook = SwitchoverHook(
        "VI_1",
        "/var/lib/wgconsole/s",
        factor,
        "vrrp_instance VI_1",
        nopreempt=False,
        address_owner=False,
    )
    return DirectorHook(
        Host(name, "10.0.0.9", SshSettings()), "VI_1", "BACKUP", priority, hook, value
    )


def test_switchover_values_put_every_other_director_below_the_target() -> None:
    holder, target = _hook("a", 150), _hook("b", 100)
    assert switchover_values((holder, target), "b") == {"a": -51, "b": 0}
    # Back: the target's own lowering goes, and the other's too once it is below anyway.
    holder, target = _hook("a", 99, value=-51), _hook("b", 100)
    assert switchover_values((holder, target), "a") == {"a": 0, "b": 0}
    # A reversed track (factor -1) takes positive numbers; weight 2 rounds away from 0.
    assert switchover_values((_hook("a", 150, factor=-1), _hook("b", 100)), "b")["a"] == 51
    assert switchover_values((_hook("a", 150, factor=2), _hook("b", 100)), "b")["a"] == -26
    # A director already below the target is left alone; a lowered target is raised.
    three = (_hook("a", 150), _hook("b", 60, value=-60), _hook("c", 110), _hook("d", 130))
    assert switchover_values(three, "b") == {"a": -31, "b": 0, "c": 0, "d": -11}


def test_switchover_values_refuse_what_would_fault() -> None:
    with pytest.raises(ValidationError, match="FAULT"):
        switchover_values((_hook("a", 254), _hook("b", 1)), "b")


# --- operations planned on a pair's fleet (no host is contacted) ----------------------------

LB1, LB2 = "wg-lb-1", "wg-lb-2"
PAIR = make_inventory(lbs=(LB1, LB2))
HOLDER_ORDER = (dest(GW2_RS), dest(GW1_RS))


def _director(
    host: str, *, holds: bool, dests: Sequence[IpvsDest] = HOLDER_ORDER, **keepalived: Any
) -> LbObservation:
    state: VrrpState = "MASTER" if holds else "BACKUP"
    instance = VrrpInstance("VI_1", state, 150 if holds else 100, 150, 51, "eth0", (VIP.address,))
    report = KeepalivedReport(
        "json", (instance,), "/etc/keepalived/keepalived.conf", keepalived.get("servers", ())
    )
    return replace(
        lb_obs(services=[service(dests)], host=host),
        addresses=("127.0.0.1", *((VIP.address,) if holds else ())),
        keepalived=report,
    )


def _pair_fleet(backup: Sequence[IpvsDest] = HOLDER_ORDER, **keepalived: Any) -> Fleet:
    lbs = {
        LB1: _director(LB1, holds=True),
        LB2: _director(LB2, holds=False, dests=backup, **keepalived),
    }
    return fleet(PAIR, lbs=lbs)


class _Reads:
    """The LBs as `ops.machinery.pair` reads them during an operation: fixed observations."""

    def __init__(self, observations: dict[str, LbObservation]) -> None:
        self.observations = observations
        self.keepalived: list[tuple[str, bool]] = []  # (LB, whether its report was asked)

    def __call__(
        self, ctx: OpContext, lb: Host, *, conns: bool, keepalived: bool = False
    ) -> LbObservation:
        self.keepalived.append((lb.name, keepalived))
        obs = self.observations[lb.name]
        return obs if keepalived else replace(obs, keepalived=None)


def _ctx(tmp_path: Path, inventory: Inventory = PAIR) -> OpContext:
    return OpContext(inventory, {}, AuditLog(tmp_path / "audit.jsonl"))


def test_tables_step_says_an_operation_is_not_finished_when_a_backup_hashes_differently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _ctx(tmp_path)
    reversed_order = HOLDER_ORDER[::-1]
    reads = _Reads(
        {LB1: _director(LB1, holds=True), LB2: _director(LB2, holds=False, dests=reversed_order)}
    )
    monkeypatch.setattr(pair_module, "read_lb", reads)
    step = tables_step(ctx, "`drain wg-gateway-01`")
    assert step is not None
    assert step.verify is not None
    with pytest.raises(OpError) as failed:
        step.verify()
    assert str(failed.value) == (
        "`drain wg-gateway-01` is NOT finished: wg-lb-2's sh table differs from "
        "wg-lb-1's (the VIP holder's) in 256/256 buckets: after a failover, new clients and "
        "clients without a synced entry hashed there would go to another gateway. "
        "`wgconsole lb align wg-lb-2` gives it the holder's table."
    )
    reads.observations[LB2] = _director(LB2, holds=False)
    step.verify()  # the same order: the same table
    assert tables_step(_ctx(tmp_path, make_inventory()), "the drain") is None
    # The VIP holder known from the addresses: keepalived's report (a signal and a dump on
    # each director) is never asked for.
    assert sorted(reads.keepalived) == sorted([(LB1, False), (LB2, False)] * 2)


def test_tables_step_asks_keepalived_for_the_reference_only_when_the_addresses_cannot_tell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both directors hold the VIP: the reference is VRRP's MASTER (wg-lb-2 here), as
    `status` has it, so keepalived's report is read then, and the table compared with it."""
    both = ("127.0.0.1", VIP.address)
    reads = _Reads(
        {
            LB1: replace(_director(LB1, holds=False), addresses=both),
            LB2: _director(LB2, holds=True, dests=HOLDER_ORDER[::-1]),
        }
    )
    monkeypatch.setattr(pair_module, "read_lb", reads)
    step = tables_step(_ctx(tmp_path), "`weight wg-gateway-01 2`")
    assert step is not None
    assert step.verify is not None
    with pytest.raises(OpError, match="wg-lb-1's sh table differs from wg-lb-2's"):
        step.verify()
    assert sorted(reads.keepalived) == sorted(
        [(LB1, False), (LB2, False), (LB1, True), (LB2, True)]
    )


def test_weight_and_undrain_end_with_the_tables_check_on_a_pair(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    plan = plan_weight(PAIR, _pair_fleet(), GW2, 3)
    steps = list(_weight_steps(ctx, plan))
    assert [s.host for s in steps[:-1]] == [LB1, LB2]
    assert steps[-1].title == "every director's 256-bucket table equals the VIP holder's"


def test_lb_align_plans_the_rebuild_and_never_touches_the_holder() -> None:
    pair = _pair_fleet(HOLDER_ORDER[::-1])
    with pytest.raises(ValidationError, match="wg-lb-1 holds the VIP"):
        plan_align(pair, PAIR.service, PAIR.load_balancers, LB1)
    plan = plan_align(pair, PAIR.service, PAIR.load_balancers, None)
    assert plan.holder == LB1
    assert [t.lb.name for t in plan.targets] == [LB2]
    target = plan.targets[0]
    assert target.differing == 256
    assert target.rebuild.deletes == (GW2_RS,)
    assert [d.endpoint for d in target.rebuild.adds] == [GW2_RS]
    text = "\n".join(plan.describe())
    assert "wg-lb-2: 256/256 buckets differ from wg-lb-1's" in text
    assert f"delete {GW2_RS}" in text
    assert f"add {GW2_RS} weight 1 masq (to the head)" in text
    with pytest.raises(ValidationError, match="already has"):
        plan_align(_pair_fleet(), PAIR.service, PAIR.load_balancers, None)


def test_lb_align_refuses_where_a_keepalived_reload_would_undo_it() -> None:
    weights_2 = KeepalivedVirtualServer(
        "udp",
        VIP,
        "sh",
        int(ServiceFlag.SH_FALLBACK),
        (
            KeepalivedRealServer(GW2_RS, 1, inhibit_on_failure=True),
            KeepalivedRealServer(GW1_RS, 2, inhibit_on_failure=True),
        ),
    )
    pair = _pair_fleet(HOLDER_ORDER[::-1], servers=(weights_2,))
    with pytest.raises(ValidationError) as refused:
        plan_align(pair, PAIR.service, PAIR.load_balancers, LB2)
    assert "keepalived owns the service" in str(refused.value)
    assert f"they must be {GW2_RS} weight 1, {GW1_RS} weight 1" in str(refused.value)
    same = replace(
        weights_2,
        real_servers=(
            KeepalivedRealServer(GW1_RS, 1, inhibit_on_failure=False),
            KeepalivedRealServer(GW2_RS, 1, inhibit_on_failure=True),
        ),
    )
    plan = plan_align(
        _pair_fleet(HOLDER_ORDER[::-1], servers=(same,)), PAIR.service, PAIR.load_balancers, LB2
    )
    notes = " ".join(plan.targets[0].notes)
    assert "a reload leaves the alignment as it is" in notes
    assert f"health check of {GW1_RS} deletes and re-adds it" in notes


def test_failover_is_refused_when_the_tables_differ(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)  # no transport: refused before any director is read
    with pytest.raises(ValidationError) as refused:
        plan_failover(ctx, _pair_fleet(HOLDER_ORDER[::-1]), None)
    assert "wg-lb-2's sh table differs from wg-lb-1's (the VIP holder's) in 256/256" in str(
        refused.value
    )
    assert "`wgconsole lb align wg-lb-2` first, or pass --allow-differing-tables" in str(
        refused.value
    )
    with pytest.raises(ValidationError, match="already holds the VIP"):
        plan_failover(ctx, _pair_fleet(), LB1)
    with pytest.raises(ValidationError, match="no other director"):
        plan_failover(_ctx(tmp_path, make_inventory()), fleet(), None)


class _Director:
    """An LB's shell as a failover plan reads it: its keepalived config and switchover file."""

    def __init__(self, config: str, value: str | None = "0\n") -> None:
        self.config, self.value = config, value
        self.commands: list[str] = []

    def run(self, command: str, timeout: float, *, mutating: bool = True) -> CommandResult:
        self.commands.append(command)
        assert not mutating, command  # planning changes nothing
        if command.startswith("cat "):
            return CommandResult(self.config, "", 0, 0.0, 0)
        if self.value is None:
            return CommandResult("", "", 3, 0.0, 0)  # no switchover file yet
        return CommandResult(self.value, "", 0, 0.0, 0)


def _lab_config(priority: int, *, hook: bool = True) -> str:
    text = (DEFINITION % "weight 1" if hook else "") + INSTANCE % (
        f"track_file {{\n        {SWITCHOVER_TRACK_FILE}\n    }}" if hook else ""
    )
    return text.replace("priority 100", f"priority {priority}")


def _failover_ctx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lb1: _Director, lb2: _Director
) -> OpContext:
    reads = _Reads({LB1: _director(LB1, holds=True), LB2: _director(LB2, holds=False)})
    monkeypatch.setattr(failover_module, "read_lb", reads)
    transports: dict[str, Any] = {LB1: lb1, LB2: lb2}
    return OpContext(PAIR, transports, AuditLog(tmp_path / "audit.jsonl"))


def test_failover_plans_the_switchover_values_and_each_clients_fate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lb1, lb2 = _Director(_lab_config(150)), _Director(_lab_config(100), value=None)
    ctx = _failover_ctx(tmp_path, monkeypatch, lb1, lb2)
    plan = plan_failover(ctx, _pair_fleet(), None)
    assert (plan.holder, plan.target, plan.values) == (LB1, LB2, {LB1: -51, LB2: 0})
    assert [plan.priority_after(n) for n in (LB1, LB2)] == [99, 100]
    text = "\n".join(plan.describe())
    assert "/var/lib/wgconsole/vrrp-switchover: 0 -> -51" in text
    assert "wg-lb-2's sh table equals wg-lb-1's (all 256 buckets)" in text
    assert "to go back: wgconsole failover --to wg-lb-1" in text


def test_failover_without_the_hook_is_refused_with_what_to_add(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lb1, lb2 = _Director(_lab_config(150)), _Director(_lab_config(100, hook=False))
    ctx = _failover_ctx(tmp_path, monkeypatch, lb1, lb2)
    with pytest.raises(ValidationError) as refused:
        plan_failover(ctx, _pair_fleet(), None)
    message = str(refused.value)
    assert message.startswith(
        "wg-lb-2: keepalived's config (/etc/keepalived/keepalived.conf) has no switchover hook: "
        "no `track_file wgconsole_switchover {...}` block."
    )
    assert HOOK_EXAMPLE in message


def test_failover_to_a_director_with_nopreempt_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _lab_config(100).replace("    state BACKUP\n", "    state BACKUP\n    nopreempt\n")
    ctx = _failover_ctx(tmp_path, monkeypatch, _Director(_lab_config(150)), _Director(config))
    with pytest.raises(ValidationError, match="wg-lb-2's VI_1 has nopreempt"):
        plan_failover(ctx, _pair_fleet(), None)


def test_align_and_failover_need_every_director_read(tmp_path: Path) -> None:
    lost = fleet(PAIR, lbs={LB1: _director(LB1, holds=True), LB2: None})
    why = "who holds the VIP is not known: wg-lb-2 did not answer"
    with pytest.raises(ValidationError, match=why):
        plan_failover(_ctx(tmp_path), lost, None)
    with pytest.raises(ValidationError, match=why):
        plan_align(lost, PAIR.service, PAIR.load_balancers, None)


class _Gateway:
    """A gateway's shell during a failover: records what it is told to run."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str, timeout: float, *, mutating: bool = True) -> CommandResult:
        self.commands.append(command)
        return CommandResult("", "", 0, 0.0, 0)


def test_a_client_that_will_change_gateway_is_forgotten_there_before_the_vip_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the VIP is on the target, the old gateway's keepalives to a moving client pass
    the target un-NATed (it has no entry for them) and the client roams to the gateway's own
    address: seen on the lab, the client bypassing the VIP afterwards. So the old gateway
    forgets the movers, in one `wg set` without their endpoints, before any switchover file
    is written; and so does any other gateway but a client's predicted one that still holds
    its endpoint (a session orphaned there: on the lab it roamed its client after a failover
    that moved nobody). A peer without an endpoint, and the predicted gateway, are not
    touched."""
    lb1, lb2 = _Director(_lab_config(150)), _Director(_lab_config(100), value=None)
    ctx = _failover_ctx(tmp_path, monkeypatch, lb1, lb2)
    gw2 = _Gateway()
    ctx.transports[GW2] = gw2  # type: ignore[index]
    plan = plan_failover(ctx, _pair_fleet(), None)
    mover = ClientFate("beta", BETA, GW2, "wg-gateway-01", "target's table", "10.211.55.11:1")
    stayer = ClientFate("alpha", ALPHA, "wg-gateway-01", "wg-gateway-01", "synced entry", None)
    gamma = "gamma-fake-public-key"
    quiet = ClientFate("gamma", gamma, "wg-gateway-01", "wg-gateway-01", "synced entry", None)
    plan = replace(plan, clients=(mover, stayer, quiet))
    on_gw2 = gw_obs(
        GW2,
        [
            peer(BETA, BETA_EP, 40, ("10.255.0.3/32",), keepalive=15),
            peer(ALPHA, ALPHA_EP, 400, ("10.255.0.2/32",), keepalive=15),  # orphaned
            peer(gamma, None, None, ("10.255.0.4/32",), keepalive=15),  # no endpoint
        ],
    )
    monkeypatch.setattr(handshake_module, "read_gateway", lambda ctx, gw: on_gw2)
    steps = failover_module._steps(ctx, plan, failover_module.FailoverResult(started=0.0))
    # gateway-01 is every client's predicted gateway: it is not even read.
    read = next(steps)
    assert read.label == f"{GW2}: read its peers for the 3 client(s) that will not be on it"
    assert read.verify is not None
    assert read.do is None
    read.verify()
    forget = next(steps)
    assert forget.label.startswith(f"{GW2}: forget the session of 2 client(s)")
    assert forget.do is not None
    forget.do()
    (command,) = gw2.commands
    assert f"peer {BETA} remove peer {BETA} allowed-ips 10.255.0.3/32" in command
    assert f"peer {ALPHA} remove peer {ALPHA} allowed-ips 10.255.0.2/32" in command
    assert "endpoint" not in command
    assert "gamma" not in command  # no endpoint: it sends nothing
    # Only then the switchover files.
    assert (
        next(steps).label
        == f"{LB1}: /var/lib/wgconsole/vrrp-switchover = -51 (VRRP priority 150 -> 99)"
    )


def test_with_a_preempt_delay_the_movers_are_forgotten_again_once_the_vip_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During the target's preempt_delay a forgotten mover shakes hands again through the
    holder with the gateway it leaves; once the VIP has moved, that gateway forgets it again."""
    lb1, lb2 = _Director(_lab_config(150)), _Director(_lab_config(100), value=None)
    ctx = _failover_ctx(tmp_path, monkeypatch, lb1, lb2)
    ctx.transports[GW2] = _Gateway()  # type: ignore[index]
    plan = plan_failover(ctx, _pair_fleet(), None)
    target = next(h for h in plan.hooks if h.lb.name == plan.target)
    delayed = replace(target, hook=replace(target.hook, preempt_delay=20.0))
    hooks = tuple(delayed if h is target else h for h in plan.hooks)
    mover = ClientFate("beta", BETA, GW2, "wg-gateway-01", "target's table", "10.211.55.11:1")
    plan = replace(plan, hooks=hooks, clients=(mover,))
    on_gw2 = gw_obs(GW2, [peer(BETA, BETA_EP, 40, ("10.255.0.3/32",), keepalive=15)])
    monkeypatch.setattr(handshake_module, "read_gateway", lambda ctx, gw: on_gw2)
    steps = failover_module._steps(ctx, plan, failover_module.FailoverResult(started=0.0))
    labels = []
    for step in steps:
        labels.append(step.label)
        if step.title.startswith("read its peers"):
            assert step.verify is not None
            step.verify()
        if len(labels) > 8:
            break
    vip = labels.index(f"the VIP moves to {plan.target}")
    assert labels[1].startswith(f"{GW2}: forget the session of 1 client(s)")
    assert labels[vip + 1] == labels[1]


def _fates(ctx: OpContext, clients: tuple[ClientFate, ...]) -> FailoverPlan:
    return replace(plan_failover(ctx, _pair_fleet(), None), clients=clients)


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds} s: the first reading should have verified")


def test_clients_are_verified_on_traffic_since_the_vip_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verification counts each gateway's received bytes from the reading taken once the
    VIP was on the target alone (the kick step's): a client whose bytes grew since then is
    verified at the first reading, one whose bytes did not is not verified."""
    lb1, lb2 = _Director(_lab_config(150)), _Director(_lab_config(100), value=None)
    ctx = _failover_ctx(tmp_path, monkeypatch, lb1, lb2)
    alpha = ClientFate("alpha", ALPHA, "wg-gateway-01", "wg-gateway-01", "synced entry", None)
    beta = ClientFate("beta", BETA, "wg-gateway-01", "wg-gateway-01", "synced entry", None)
    plan = _fates(ctx, (alpha, beta))
    gw1 = "wg-gateway-01"
    on_gw1 = gw_obs(
        gw1,
        [
            replace(peer(ALPHA, ALPHA_EP, 5), rx_bytes=1500),
            replace(peer(BETA, BETA_EP, 5), rx_bytes=1000),
        ],
    )
    monkeypatch.setattr(failover_module, "read_gateways", lambda ctx: {gw1: on_gw1})
    monkeypatch.setattr(time, "sleep", _no_sleep)
    result = failover_module.FailoverResult(started=0.0)
    result.received_after_move = {(gw1, ALPHA): 1000, (gw1, BETA): 1000}
    with pytest.raises(OpError, match=r"not verified .*: beta \(-> wg-gateway-01\)$"):
        failover_module._verify_clients(ctx, plan, result, timeout=-1)
    assert result.verified == {"alpha": gw1}


def test_a_peer_the_kick_recreated_counts_its_traffic_from_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The baseline is read beside the kick step's first look at the target's entries; a
    mover's peer re-created by its kick after that begins its counters again at 0, so its
    handshake's bytes verify it (compared with the old peer's count, they never would)."""
    lb1, lb2 = _Director(_lab_config(150)), _Director(_lab_config(100), value=None)
    ctx = _failover_ctx(tmp_path, monkeypatch, lb1, lb2)
    gw1 = "wg-gateway-01"
    gateway = _Gateway()
    ctx.transports[gw1] = gateway  # type: ignore[index]
    mover = ClientFate("beta", BETA, GW2, gw1, "target's table", "10.211.55.11:1")
    plan = _fates(ctx, (mover,))
    entry = IpvsConn("UDP", Endpoint("10.211.55.11", 1), VIP, GW1_RS, "NONE", 300)
    monkeypatch.setattr(
        failover_module, "_target_entries", lambda ctx, lb: {str(entry.client): entry}
    )
    monkeypatch.setattr(failover_module, "_received", lambda ctx: {(gw1, BETA): 50_000})
    monkeypatch.setattr(failover_module, "_peer_on", lambda *a: peer(BETA, BETA_EP, 400))
    result = failover_module.FailoverResult(started=0.0)
    failover_module._kick_movers(ctx, plan, result, timeout=30)
    assert result.kicked == {"beta": gw1}
    assert len(gateway.commands) == 1
    assert result.received_after_move == {(gw1, BETA): 0}
    recreated = gw_obs(gw1, [replace(peer(BETA, BETA_EP, 1), rx_bytes=148)])
    monkeypatch.setattr(failover_module, "read_gateways", lambda ctx: {gw1: recreated})
    monkeypatch.setattr(time, "sleep", _no_sleep)
    failover_module._verify_clients(ctx, plan, result, timeout=30)
    assert result.verified == {"beta": gw1}
