"""README claims checked against the code (issue 22, item 10)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from wgconsole.core import findings

README = (Path(__file__).parent.parent / "README.md").read_text()


def _per_client_codes() -> list[str]:
    source = inspect.getsource(findings.client_findings)
    return re.findall(r'checks\.append\(\("([a-z-]+)"', source)


def test_the_cardinality_section_counts_every_per_client_finding_code() -> None:
    codes = _per_client_codes()
    assert len(codes) == 8
    section = README[README.index("### Cardinality") :]
    section = section[: section.index("\n## ")]
    words = {1: "one", 8: "8"}
    assert f"of the {words.get(len(codes), len(codes))} per-client\ncodes" in section
    for code in codes:
        assert code in section, code
    assert "at most 4" not in section


def test_the_readme_says_what_the_keepalived_signal_costs() -> None:
    assert "the signal only makes" not in README
    assert "logs a line per signal" in README
    assert "43,200 syslog lines a day" in README
