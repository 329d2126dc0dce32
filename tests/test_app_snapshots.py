"""SVG snapshots of the console at 80x24 and 160x50, from replayed lab polls and a frozen clock.

Update after a deliberate change with `pytest tests/test_app_snapshots.py --snapshot-update`,
and look at the result (rsvg-convert the SVG to PNG) before committing it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.console_support import (
    GW2_UNREACHABLE,
    NORMAL,
    WEIGHT0,
    WG_DOWN,
    ReplayedProbes,
    console,
    step,
    utc,  # noqa: F401 - autouse: clock texts in UTC
    wait_for,
)
from wgconsole.probe.prober import ProbeResult

SMALL = (80, 24)
LARGE = (160, 50)


def scene(
    frames: Sequence[Path], keys: Sequence[str] = (), **kwargs: Any
) -> tuple[Any, Callable[[Any], Awaitable[None]]]:
    app, _ = console(frames, **kwargs)

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: app.applied >= 1)
        for _ in frames[1:]:
            await step(pilot, app)
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.1)

    return app, run_before


def _compare(
    snap_compare: Any,
    size: tuple[int, int],
    frames: Sequence[Path],
    keys: Sequence[str] = (),
    **kwargs: Any,
) -> None:
    app, run_before = scene(frames, keys, **kwargs)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_overview_small(snap_compare: Any) -> None:
    _compare(snap_compare, SMALL, [NORMAL])


def test_overview_large_gateway_lost(snap_compare: Any) -> None:
    _compare(snap_compare, LARGE, [NORMAL, WG_DOWN, GW2_UNREACHABLE])


# The prober's verdicts in its own formats (wgconsole.probe.prober): all up, then the
# gateway whose wg0 went down stops answering its handshakes while its host still answers SSH.
ALL_UP = (
    ProbeResult("wg-gateway-01", "10.77.0.11:51280", ok=True, rtt_ms=2.4, error=None),
    ProbeResult("wg-gateway-02", "10.77.0.12:51280", ok=True, rtt_ms=3.1, error=None),
    ProbeResult("vip", "10.77.255.1:51280", ok=True, rtt_ms=4.2, error=None),
)
GW1_SILENT = (
    ProbeResult(
        "wg-gateway-01",
        "10.77.0.11:51280",
        ok=False,
        rtt_ms=None,
        error="no handshake response within 1 s",
    ),
    *ALL_UP[1:],
)


def test_overview_large_with_handshake_probes(snap_compare: Any) -> None:
    probes = ReplayedProbes([ALL_UP, GW1_SILENT])
    _compare(snap_compare, LARGE, [NORMAL, WG_DOWN], prober=probes)


def test_log_large_with_handshake_probes(snap_compare: Any) -> None:
    probes = ReplayedProbes([ALL_UP, GW1_SILENT, ALL_UP])
    _compare(snap_compare, LARGE, [NORMAL, WG_DOWN, NORMAL], ["4"], prober=probes)


def test_clients_small(snap_compare: Any) -> None:
    _compare(snap_compare, SMALL, [NORMAL, WG_DOWN], ["2"])


def test_clients_large_read_only(snap_compare: Any) -> None:
    _compare(snap_compare, LARGE, [NORMAL, GW2_UNREACHABLE], ["2"], read_only=True)


def test_connections_small(snap_compare: Any) -> None:
    _compare(snap_compare, SMALL, [NORMAL, WEIGHT0], ["3"])


def test_log_large(snap_compare: Any) -> None:
    _compare(snap_compare, LARGE, [NORMAL, WG_DOWN, WEIGHT0, GW2_UNREACHABLE, NORMAL], ["4"])


def test_gateway_detail_small(snap_compare: Any) -> None:
    _compare(snap_compare, SMALL, [NORMAL, WEIGHT0], ["down", "enter"])


def test_gateway_detail_large_stale(snap_compare: Any) -> None:
    _compare(snap_compare, LARGE, [NORMAL, GW2_UNREACHABLE], ["tab", "down", "down", "enter"])


def test_client_detail_small(snap_compare: Any) -> None:
    _compare(snap_compare, SMALL, [NORMAL], ["2", "enter"])


def test_client_detail_large(snap_compare: Any) -> None:
    _compare(snap_compare, LARGE, [NORMAL, GW2_UNREACHABLE], ["2", "down", "enter"])


def test_help_small(snap_compare: Any) -> None:
    _compare(snap_compare, SMALL, [NORMAL], ["question_mark"])


@pytest.mark.parametrize("theme", ["light", "high-contrast"])
def test_themes_small(snap_compare: Any, theme: str) -> None:
    _compare(snap_compare, SMALL, [NORMAL, GW2_UNREACHABLE], theme=theme)
