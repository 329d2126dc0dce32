from __future__ import annotations

from wgconsole.core.fleet import CLIENT_STATUSES, REAL_SERVER_STATES, SEVERITIES
from wgconsole.view import present


def test_every_status_has_a_symbol_and_a_word() -> None:
    for status in CLIENT_STATUSES:
        text, tone = present.client_status(status)
        mark, word = text.split(" ", 1)
        assert word == status
        assert mark
        assert tone
    for state in REAL_SERVER_STATES:
        text, tone = present.server_state(state)
        assert text.endswith(state)
        assert text[0] != state[0]
        assert tone
    for level in SEVERITIES:
        assert present.severity(level)[0].endswith(level)


def test_symbols_differ_between_good_and_bad() -> None:
    # The high-contrast theme relies on these, not on colour.
    marks = {present.client_status(s)[0].split()[0] for s in CLIENT_STATUSES}
    assert len(marks) == len(CLIENT_STATUSES)


def test_ages() -> None:
    assert present.age(None) == "-"
    assert present.age(0.4) == "0s"
    assert present.age(84.9) == "84s"
    assert present.age(125) == "2m05s"
    assert present.age(3 * 3600 + 12 * 60) == "3h12m"
    assert present.age(3 * 86400) == "3d"
    assert present.handshake("fresh", 84) == ("✔ fresh 84s", present.GOOD)
    assert present.handshake("never", None) == ("∅ never", present.MUTED)
    assert present.stale_note(12.2) == "stale 12s"


def test_rates_and_counts() -> None:
    assert present.byte_rate(None) == "-"
    assert present.byte_rate(812) == "812B/s"
    assert present.byte_rate(1234) == "1.2kB/s"
    assert present.byte_rate(3_400_000) == "3.4MB/s"
    assert present.packet_rate(12) == "12p/s"
    assert present.count(50000) == "50 000"


def test_sparkline() -> None:
    assert present.sparkline([], 5) == ""
    assert present.sparkline([0, 0], 5) == "▁▁"
    assert present.sparkline([0, 5, 10], 5) == "▁▅█"
    assert len(present.sparkline(list(range(100)), 12)) == 12
