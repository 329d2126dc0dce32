"""SVG snapshots of the console over a director pair (tests/pair_world.py) with a frozen clock:
the Overview's directors and sh tables picture at 80x24 and 160x50 (and in the high-contrast
theme), a client's failover line, the Log after a failover.

Update after a deliberate change with `pytest tests/test_app_pair_snapshots.py
--snapshot-update`, and look at the result (render the SVG to PNG) before committing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tests.console_support import step, utc, wait_for  # noqa: F401 - utc: autouse
from tests.pair_world import GAMMA, Frame, PairCollector, failed_over, steady
from wgconsole.tui.app import ConsoleApp

SMALL = (80, 24)
LARGE = (160, 50)


def _compare(
    snap_compare: Any,
    size: tuple[int, int],
    frames: Sequence[Frame],
    keys: Sequence[str] = (),
    client: str | None = None,
    **kwargs: Any,
) -> None:
    collector = PairCollector(frames)
    app = ConsoleApp(
        collector.inventory, collector, interval=3600, clock=collector.clock_, **kwargs
    )

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: app.applied >= 1)
        for _ in frames[1:]:
            await step(pilot, app)
        if client is not None:
            app.open_client(client)
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_pair_overview_small(snap_compare: Any) -> None:
    _compare(snap_compare, SMALL, [steady()])


def test_pair_overview_small_scrolled_to_the_tables(snap_compare: Any) -> None:
    # Tab moves the focus from the real servers to the hosts, findings, then the picture.
    _compare(snap_compare, SMALL, [steady()], ["tab", "tab", "tab"])


def test_pair_overview_large(snap_compare: Any) -> None:
    _compare(snap_compare, LARGE, [steady()])


@pytest.mark.parametrize("theme", ["high-contrast", "light"])
def test_pair_overview_large_themes(snap_compare: Any, theme: str) -> None:
    _compare(snap_compare, LARGE, [steady()], theme=theme)


def test_pair_client_detail_failover_small(snap_compare: Any) -> None:
    _compare(snap_compare, SMALL, [steady()], client=GAMMA)


def test_pair_log_after_a_failover_large(snap_compare: Any) -> None:
    _compare(snap_compare, LARGE, [steady(), failed_over()], ["4"])
