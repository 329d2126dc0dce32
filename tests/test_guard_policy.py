"""The guard's decision rules (core.guard_policy), round by round: what evicts, and every case
that must not (blindness, a flap, the last gateway, a second eviction too soon)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.test_probe_handshake import Responder
from tests.test_probe_prober import Serve, udp_server
from wgconsole.cli.guard import run_guard
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.guard_policy import GuardPolicy, GuardState, judge
from wgconsole.probe.handshake import ProbeKey

__all__ = ["udp_server"]  # the fixture, used by name

POLICY = GuardPolicy(rounds_to_evict=4, min_between_evictions=30.0)


def _verdicts(
    state: GuardState, at: float, answered: dict[str, bool], **kw: object
) -> dict[str, str]:
    return {d.gateway: d.verdict for d in judge(POLICY, state, at, answered, **kw)}  # type: ignore[arg-type]


def test_a_gateway_silent_for_the_whole_window_while_others_answer_is_evicted_once() -> None:
    state = GuardState()
    for i in range(3):
        assert _verdicts(state, i * 0.5, {"gw1": False, "gw2": True}) == {
            "gw1": "suspect",
            "gw2": "healthy",
        }
    assert _verdicts(state, 1.5, {"gw1": False, "gw2": True}) == {
        "gw1": "evict",
        "gw2": "healthy",
    }
    # Out of service from then on: not judged again.
    assert _verdicts(state, 2.0, {"gw1": False, "gw2": True}) == {"gw2": "healthy"}


def test_a_flap_shorter_than_the_window_evicts_nothing() -> None:
    state = GuardState()
    pattern = [False, False, False, True, False, False, False, True]
    for i, ok in enumerate(pattern):
        verdicts = _verdicts(state, i * 0.5, {"gw1": ok, "gw2": True})
        assert verdicts["gw1"] in ("suspect", "healthy")


def test_a_guard_that_lost_its_network_is_blind_and_its_count_starts_again() -> None:
    state = GuardState()
    _verdicts(state, 0.0, {"gw1": False, "gw2": True})
    _verdicts(state, 0.5, {"gw1": False, "gw2": True})
    _verdicts(state, 1.0, {"gw1": False, "gw2": True})
    # The guard's link drops: every gateway silent at once, for a long time.
    for i in range(20):
        assert set(_verdicts(state, 1.5 + i * 0.5, {"gw1": False, "gw2": False}).values()) == {
            "blind"
        }
    # Back: gw1 still silent, but the window starts over.
    assert _verdicts(state, 12.0, {"gw1": False, "gw2": True})["gw1"] == "suspect"


def test_the_last_gateway_in_service_is_never_evicted() -> None:
    state = GuardState()
    for i in range(10):
        assert _verdicts(state, i * 0.5, {"gw1": False, "gw2": True}, out_of_service=["gw2"]) == {
            "gw1": "hold-last"
        }


def test_a_second_eviction_waits_for_the_interval_and_a_round_of_the_others() -> None:
    state = GuardState()
    three = {"gw1": False, "gw2": False, "gw3": True}
    verdicts = [_verdicts(state, i * 0.5, three) for i in range(4)]
    # Both silent gateways are due in the same round: one is evicted, the other held.
    assert sorted(verdicts[-1].values()) == ["evict", "healthy", "hold-rate"]
    held = next(g for g, v in verdicts[-1].items() if v == "hold-rate")
    for i in range(4, 80):  # until 30 s after the eviction
        at = i * 0.5
        v = _verdicts(state, at, {held: False, "gw3": True})
        if at - 1.5 < 30.0:
            assert v[held] == "hold-rate", at
        else:
            assert v[held] == "evict", at
            break
    else:
        raise AssertionError("never evicted the second")


def _answering_and_echoing(tmp_path: Path, udp_server: Serve) -> tuple[ProbeKey, Responder, Path]:
    """A prober key, and an inventory of two loopback gateways: gw1 a responder written from
    the protocol, gw2 a UDP echo server (down: it completes no handshake)."""
    key = ProbeKey(os.urandom(32))
    gateway = Responder(key.public)
    up = udp_server(gateway.respond)
    echo = udp_server(lambda data: data)
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "service: {protocol: udp, vip: 127.0.0.9, port: 51820, scheduler: sh}\n"
        "ssh: {user: root}\n"
        "load_balancers:\n  - {name: lb, host: 127.0.0.1}\n"
        "gateways:\n"
        f"  - {{name: gw1, host: 127.0.0.1, real_server: {up.address}:{up.port}}}\n"
        f"  - {{name: gw2, host: 127.0.0.1, real_server: {echo.address}:{echo.port}}}\n"
        "tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1}\n"
    )
    return key, gateway, path


def test_the_dry_run_says_it_would_evict_the_silent_gateway_and_changes_nothing(
    tmp_path: Path, udp_server: Serve
) -> None:
    """`guard --dry-run`'s rounds against loopback gateways: a responder written from the
    protocol and a UDP echo server (down: it completes no handshake)."""
    key, gateway, path = _answering_and_echoing(tmp_path, udp_server)
    lines: list[str] = []
    would = run_guard(
        load_inventory(path),
        key,
        gateway.public,
        rounds=6,
        out_of_service=set,
        say=lines.append,
        policy=POLICY,
    )
    assert would == 1
    [evict] = [line for line in lines if "would evict" in line]
    assert "would evict gw2: no handshake in 4 rounds while gw1 answered" in evict
    assert not [line for line in lines if "gw1" in line and "healthy" not in line and line != evict]


def test_an_undrained_gateway_is_guarded_again_once_the_fleet_shows_it_back() -> None:
    state = GuardState()
    for i in range(4):
        verdicts = _verdicts(state, i * 0.5, {"gw1": False, "gw2": True})
    assert verdicts["gw1"] == "evict"
    # Until the guard's fleet reading shows it out of service, its own verdict keeps it out.
    assert _verdicts(state, 2.0, {"gw1": False, "gw2": True}) == {"gw2": "healthy"}
    assert _verdicts(state, 2.5, {"gw1": False, "gw2": True}, out_of_service=["gw1"]) == {
        "gw2": "healthy"
    }
    # An operator's undrain: the reading no longer lists it, and it is judged again.
    assert _verdicts(state, 3.0, {"gw1": True, "gw2": True}) == {
        "gw1": "healthy",
        "gw2": "healthy",
    }


def test_an_eviction_that_did_not_happen_is_forgotten_rate_limit_included() -> None:
    state = GuardState()
    for i in range(4):
        verdicts = _verdicts(state, i * 0.5, {"gw1": False, "gw2": False, "gw3": True})
    condemned = next(g for g, v in verdicts.items() if v == "evict")
    state.forget_eviction(condemned)  # a lock deferred it
    # Judged again at once, and the other silent one is not held by a rate limit that
    # counts an eviction that never was.
    again = _verdicts(state, 2.0, {"gw1": False, "gw2": False, "gw3": True})
    assert sorted(again.values()) == ["evict", "healthy", "hold-rate"]


def test_the_guard_acts_on_its_verdict_and_tries_again_when_deferred(
    tmp_path: Path, udp_server: Serve
) -> None:
    """`run_guard` with hands: a gateway silent for the window is handed to `evict`; an
    eviction that could not be made (a lock) is tried again at the next condemning round."""
    key, gateway, path = _answering_and_echoing(tmp_path, udp_server)
    asked: list[str] = []
    answers = iter([False, True])
    out: set[str] = set()

    def evict(name: str) -> bool:
        asked.append(name)
        done = next(answers)
        if done:
            out.add(name)
        return done

    lines: list[str] = []
    made = run_guard(
        load_inventory(path),
        key,
        gateway.public,
        rounds=8,
        out_of_service=lambda: set(out),
        say=lines.append,
        policy=POLICY,
        evict=evict,
    )
    assert made == 1
    assert asked == ["gw2", "gw2"]  # deferred once, evicted at the next round
    assert [line for line in lines if "evicting gw2" in line]
    assert not [line for line in lines if "would evict" in line]


def test_the_guard_tells_its_hands_whether_each_gateway_out_of_service_answers(
    tmp_path: Path, udp_server: Serve
) -> None:
    """What lets it take the interface of an evicted gateway that came back down: each round,
    the probes of the gateways out of service."""
    key, gateway, path = _answering_and_echoing(tmp_path, udp_server)
    told: list[dict[str, bool]] = []
    lines: list[str] = []
    run_guard(
        load_inventory(path),
        key,
        gateway.public,
        rounds=3,
        out_of_service=lambda: {"gw1"},
        say=lines.append,
        policy=POLICY,
        evict=lambda name: True,
        back=told.append,
    )
    assert told == [{"gw1": True}] * 3
    # gw2, the only one left in service, is never evicted, however silent.
    assert not [line for line in lines if "evicting" in line]
