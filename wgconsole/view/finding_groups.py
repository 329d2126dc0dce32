"""Many clients with the same finding read as one line, not thousands.

A fleet of 10,000 clients where most laptops are off has thousands of `never` and `stale`
findings: listed one per client they bury the one finding about the load balancer that
matters. Per-client findings of one code are folded into a group once there are more than
a few of them; findings about hosts, gateways and the service are always shown one by one.
Each client's own findings stay on its row (console Clients view, `status` clients table,
`status --json`), so nothing is lost by folding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wgconsole.core.fleet import SEVERITY_RANK, Finding, Severity

# Up to this many clients with one code are still listed one by one.
FOLD_ABOVE = 5
_NAMED = 3  # subjects named in a folded group's message


@dataclass(frozen=True, slots=True)
class FindingGroup:
    """Per-client findings of one code and severity, in the fleet's order."""

    code: str
    severity: Severity
    findings: tuple[Finding, ...]

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    @property
    def subject(self) -> str:
        return f"{len(self.findings):,} clients"

    @property
    def message(self) -> str:
        named = ", ".join(f.subject for f in self.findings[:_NAMED])
        more = len(self.findings) - _NAMED
        tail = f" and {more:,} more" if more > 0 else ""
        return f"{named}{tail}. The first: {self.findings[0].message}"


def fold_findings(findings: Sequence[Finding]) -> list[Finding | FindingGroup]:
    """The findings in their order, per-client ones of a code folded when there are many.

    A group takes the place of its first member, so "worst first" still holds.
    """
    members: dict[tuple[str, Severity], list[Finding]] = {}
    for f in findings:
        if f.client_key is not None:
            members.setdefault((f.code, f.severity), []).append(f)
    folded = {key for key, found in members.items() if len(found) > FOLD_ABOVE}
    shown: list[Finding | FindingGroup] = []
    for f in findings:
        key = (f.code, f.severity)
        if f.client_key is None or key not in folded:
            shown.append(f)
        elif members[key][0] is f:
            shown.append(FindingGroup(f.code, f.severity, tuple(members[key])))
    return shown
