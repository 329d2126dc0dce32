"""Folding many clients' findings of one code into a line (console Overview, `status`)."""

from __future__ import annotations

import io

from rich.console import Console

from wgconsole.cli.status_text import RICH_ROWS, _table
from wgconsole.core.fleet import Finding
from wgconsole.view.finding_groups import FOLD_ABOVE, FindingGroup, fold_findings


def _client(code: str, n: int, severity: str = "info") -> Finding:
    return Finding(code, severity, f"client-{n}", f"client-{n} says {code}", client_key=f"k{n}")  # type: ignore[arg-type]


def test_few_client_findings_stay_one_by_one() -> None:
    findings = [_client("stale", n, "warning") for n in range(FOLD_ABOVE)]
    assert fold_findings(findings) == findings


def test_many_of_a_code_fold_into_one_group_in_place_of_the_first() -> None:
    lb = Finding("sh-no-fallback", "warning", "udp 10.77.255.1:51280", "no fallback")
    host = Finding("host-unreachable", "critical", "gw2", "gw2 does not answer")
    nevers = [_client("never", n) for n in range(FOLD_ABOVE + 1)]
    stale = [_client("stale", n, "warning") for n in range(2)]
    shown = fold_findings([host, stale[0], lb, *nevers, stale[1]])
    assert shown[:3] == [host, stale[0], lb]
    group = shown[3]
    assert isinstance(group, FindingGroup)
    assert group.findings == tuple(nevers)
    assert (group.code, group.severity, group.rank) == ("never", "info", nevers[0].rank)
    assert group.subject == f"{FOLD_ABOVE + 1} clients"
    assert group.message.startswith("client-0, client-1, client-2 and 3 more. The first: ")
    assert group.message.endswith(nevers[0].message)
    assert shown[4:] == [stale[1]]


def test_findings_about_hosts_are_never_folded() -> None:
    hosts = [Finding("host-unreachable", "critical", f"gw{n}", "down") for n in range(20)]
    assert fold_findings(hosts) == hosts


def test_a_large_table_is_plain_columns_one_line_a_row_never_wrapped() -> None:
    rows = [(f"client-{n}", f"10.0.{n // 256}.{n % 256}", "x" * (n % 7)) for n in range(2000)]
    assert len(rows) > RICH_ROWS
    out = io.StringIO()
    console = Console(file=out, width=20, color_system=None)
    console.print(_table("clients", ("client", "address", "note"), rows), soft_wrap=True)
    lines = out.getvalue().splitlines()
    assert lines[0] == "clients (2,000)"
    assert lines[1].split() == ["client", "address", "note"]
    assert len(lines) == 2 + len(rows)
    # Columns line up: every row's address starts where the header's does.
    at = lines[1].index("address")
    for line, (name, address, _) in zip(lines[2:], rows, strict=True):
        assert line.startswith(name)
        assert line[at:].startswith(address)
