"""The trace's timeline puts every host's packets on the bastion's clock, from the poll's
readings of the hosts' clocks: hosts that agree share one correction (their readings differ
by their latency only), a host really off gets its own."""

from __future__ import annotations

from dataclasses import replace

from tests.console_support import NORMAL, SteppedCollector
from wgconsole.poll.collector import PollResult
from wgconsole.trace.session import SKEW_FLOOR, clock_skews


def _lab_poll() -> PollResult:
    collector = SteppedCollector([NORMAL])
    try:
        return collector.poll()
    finally:
        collector.close()


def _late(poll: PollResult, name: str, seconds: float) -> PollResult:
    """`poll` as if `name`'s reading had come `seconds` later (or its clock were off)."""
    hosts = []
    for hp in poll.hosts:
        if hp.name == name and hp.observation is not None:
            hp = replace(
                hp, observation=replace(hp.observation, clock=hp.observation.clock + seconds)
            )
        hosts.append(hp)
    return replace(poll, hosts=tuple(hosts))


def test_hosts_on_one_clock_share_one_correction_despite_their_latencies() -> None:
    poll = _lab_poll()
    names = [hp.name for hp in poll.hosts if hp.observation is not None]
    assert len(names) >= 3
    # The lab's hosts share one clock, yet their readings in this recorded poll came 0.3 to
    # 1.6 s after it began (the emulated guest answers one host after another).
    raw = [hp.observation.clock - poll.taken_at for hp in poll.hosts if hp.observation]
    assert max(raw) - min(raw) > SKEW_FLOOR
    skews = clock_skews(poll)
    assert set(skews) == set(names)
    assert len(set(skews.values())) == 1


def test_a_host_whose_clock_is_off_gets_its_own_correction() -> None:
    poll = _lab_poll()
    names = [hp.name for hp in poll.hosts if hp.observation is not None]
    base = clock_skews(poll)
    skews = clock_skews(_late(poll, names[-1], 5.0))
    late = next(hp for hp in poll.hosts if hp.name == names[-1])
    assert late.observation is not None
    assert skews[names[-1]] == late.observation.clock + 5.0 - poll.taken_at
    # The others keep one correction between them (their median moved by a latency at most).
    assert len({skews[name] for name in names[:-1]}) == 1
    assert all(abs(skews[name] - base[name]) < SKEW_FLOOR for name in names[:-1])
