"""When an unattended guard may evict a gateway: the decision alone, from rounds of probes.

Never wrong in the dangerous direction. A gateway is only condemned on corroborated evidence:
it failed its handshake probe in every round of the detection window, and in each of those
rounds another gateway answered, which proves the guard's own network works (a guard that lost
its link sees every target silent at once: it is blind, and blindness evicts nothing). A flap
shorter than the window resets the count. The last answering gateway in service is never
evicted, whatever the probes say. After one eviction, the next needs a round after it in which
the others answered again (the eviction itself must not have broken them) and the minimum
interval between evictions. A gateway already out of service (evicted or drained) is not
counted.

Pure: the guard feeds it each round and acts on (or, in a dry run, reports) its verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["healthy", "suspect", "evict", "blind", "hold-last", "hold-rate"]


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    rounds_to_evict: int = 4  # consecutive failed rounds: with a round every 0.5 s, 2 s
    min_between_evictions: float = 30.0  # seconds


@dataclass(frozen=True, slots=True)
class Decision:
    gateway: str
    verdict: Verdict
    why: str


@dataclass(slots=True)
class GuardState:
    """What the guard remembers between rounds (one per guarded service)."""

    failed_rounds: dict[str, int] = field(default_factory=dict)
    last_eviction: float | None = None
    confirmed_since_eviction: bool = True  # the others answered in a round after it
    out_of_service: set[str] = field(default_factory=set)
    # Condemned here and not yet seen out of service in what the guard is told (its fleet
    # reading catches up after the eviction); an undrain later puts the gateway back.
    pending_out: set[str] = field(default_factory=set)
    # The rate limit's state before the last `evict`, for an eviction that did not happen.
    before_eviction: tuple[float | None, bool] = (None, True)

    def forget_eviction(self, gateway: str) -> None:
        """The guard could not evict `gateway` (a lock deferred it, a step failed): it is
        judged again from the next round with the rounds it failed (still failing, it is
        condemned again at once), and the rate limit is as if nothing happened."""
        self.pending_out.discard(gateway)
        self.last_eviction, self.confirmed_since_eviction = self.before_eviction


def judge(
    policy: GuardPolicy,
    state: GuardState,
    at: float,
    answered: Mapping[str, bool],
    *,
    out_of_service: Iterable[str] = (),
) -> list[Decision]:
    """The round's verdict per gateway in service (`answered`: each gateway's probe, True
    when it completed a handshake). At most one `evict` per call; updates `state`."""
    told = set(out_of_service)
    state.pending_out -= told
    state.out_of_service = told | state.pending_out
    for gateway in state.out_of_service:
        # Back in service one day (an undrain): its count starts from nothing then.
        state.failed_rounds.pop(gateway, None)
    serving = {g: ok for g, ok in answered.items() if g not in state.out_of_service}
    up = [g for g, ok in serving.items() if ok]
    if len(serving) == 1 and not up:
        (only,) = serving
        state.failed_rounds.pop(only, None)
        return [Decision(only, "hold-last", "the only gateway in service is never evicted")]
    if not up:
        # Every gateway silent at once: the guard's own network is the likelier cause, and
        # evicting all would take the service down. Nothing counts.
        state.failed_rounds.clear()
        return [
            Decision(g, "blind", "no gateway answered this round: the guard may be cut off")
            for g in serving
        ]
    if state.last_eviction is not None:
        state.confirmed_since_eviction = True
    decisions: list[Decision] = []
    evicted = False
    for gateway, ok in serving.items():
        if ok:
            state.failed_rounds.pop(gateway, None)
            decisions.append(Decision(gateway, "healthy", "completed a handshake"))
            continue
        failed = state.failed_rounds.get(gateway, 0) + 1
        state.failed_rounds[gateway] = failed
        if failed < policy.rounds_to_evict:
            why = f"failed {failed} of {policy.rounds_to_evict} rounds while others answered"
            decisions.append(Decision(gateway, "suspect", why))
            continue
        if evicted or not _rate_allows(policy, state, at):
            why = "one eviction at a time, and only after the others answered since the last"
            decisions.append(Decision(gateway, "hold-rate", why))
            continue
        why = f"no handshake in {failed} rounds while {', '.join(sorted(up))} answered"
        decisions.append(Decision(gateway, "evict", why))
        evicted = True
        state.before_eviction = (state.last_eviction, state.confirmed_since_eviction)
        state.last_eviction = at
        state.confirmed_since_eviction = False
        state.out_of_service.add(gateway)
        state.pending_out.add(gateway)
    return decisions


def _rate_allows(policy: GuardPolicy, state: GuardState, at: float) -> bool:
    if state.last_eviction is None:
        return True
    waited = at - state.last_eviction >= policy.min_between_evictions
    return waited and state.confirmed_since_eviction
