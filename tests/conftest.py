"""Suite-wide hooks for the secrets check (tests/lab/test_zz_secrets_lab.py).

Everything a test printed or logged, and every failure's text, is appended to
`<basetemp>/captured-output.log`, so that the secrets check can grep what the suite produced
besides its files; and that check runs last, whatever order the suite was collected in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CAPTURED_NAME = "captured-output.log"
LAST = "test_zz_secrets_lab.py"
_captured: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def captured_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.getbasetemp() / CAPTURED_NAME
    path.touch()
    _captured[:] = [path]
    return path


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _captured:
        return
    parts = [f"--- {name}\n{text}" for name, text in report.sections]
    if report.failed:
        parts.append(f"--- failure\n{report.longreprtext}")
    if parts:
        with _captured[0].open("a", encoding="utf-8", errors="replace") as f:
            f.write(f"=== {report.nodeid} ({report.when})\n" + "\n".join(parts) + "\n")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name == LAST)
