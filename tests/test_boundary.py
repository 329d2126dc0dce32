"""The layers hold: import-linter's contracts (pyproject.toml) pass and catch a wrong import.

`make lint` runs `lint-imports` too; these tests guard the guard (a contract that no longer
matches the tree would pass silently) and check at run time that the Textual-free packages
really load without Textual (an import hidden behind importlib is invisible to a static scan).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_layer_contracts_pass() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("core/sched.py", "import textual", "Only the tui imports Textual"),
        ("core/sched.py", "import paramiko", "The core is pure"),
        ("view/present.py", "from wgconsole.tui import app", "wgconsole's packages are layered"),
        (
            "poll/replay.py",
            "from wgconsole.ops.machinery import audit",
            "wgconsole's packages are layered",
        ),
        ("config/paths.py", "from wgconsole.poll import collector", "are layered"),
        ("core/records.py", "from wgconsole.core import sched", "No import cycles"),
        ("export/families.py", "from wgconsole.ops.machinery import audit", "are layered"),
        ("export/server.py", "from wgconsole.view import rows", "are layered"),
        ("poll/replay.py", "import prometheus_client", "Only the exporter imports prometheus"),
        ("tui/app.py", "from wgconsole.cli import main", "wgconsole's packages are layered"),
        ("tui/options.py", "from wgconsole.cli import args", "are layered"),
        ("cli/main.py", "import textual", "The cli imports Textual only through the tui"),
        # Inside ops: the tiers (procedures > host commands > machinery), and siblings apart.
        ("ops/machinery/steps.py", "from wgconsole.ops.procedures import drain", "are tiered"),
        ("ops/machinery/readings.py", "from wgconsole.ops.hostcmd import wgconf", "are tiered"),
        ("ops/hostcmd/lbcmd.py", "from wgconsole.ops.procedures import align", "are tiered"),
        ("ops/hostcmd/lbcmd.py", "from wgconsole.ops import catalog", "are tiered"),
        (
            "ops/procedures/weight.py",
            "from wgconsole.ops.procedures.drain import plan_drain",
            "No procedure imports another",
        ),
        (
            "ops/procedures/align.py",
            "from wgconsole.ops.procedures.failover import plan_failover",
            "No procedure imports another",
        ),
        (
            "ops/hostcmd/handshake.py",
            "from wgconsole.ops.hostcmd import entrywatch",
            "Host commands stand alone",
        ),
    ],
)
def test_a_planted_wrong_import_breaks_a_contract(
    tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    copy = tmp_path / "wgconsole"
    shutil.copytree(ROOT / "wgconsole", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{planted}  # planted\n")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
    assert Path(module).stem in broken


def test_textual_free_packages_load_without_textual() -> None:
    probe = (
        "import sys\n"
        "import wgconsole.cli.main, wgconsole.cli.operations, wgconsole.cli.status_text\n"
        "import wgconsole.view.snapshot, wgconsole.view.details\n"
        "import wgconsole.ops.procedures.drain, wgconsole.ops.procedures.weight\n"
        "import wgconsole.ops.procedures.peers.add, wgconsole.ops.procedures.peers.remove\n"
        "import wgconsole.poll.collector, wgconsole.lab.manager\n"
        "import wgconsole.export.server, wgconsole.cli.metrics\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'textual')\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
