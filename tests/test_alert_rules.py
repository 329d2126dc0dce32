"""The shipped alert rules: valid for Prometheus (`promtool check rules`), each alert firing in
its case and quiet in the ones it must ride out (`promtool test rules`), and what
`wgconsole metrics --alert-rules` prints.

promtool is Debian's `prometheus` package, which `make setup` installs (PACKAGES in
wgconsole/lab/manager.py): without it these tests fail with the reason, they never skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from wgconsole.cli.main import main
from wgconsole.export.families import FAMILIES
from wgconsole.export.rules import alert_rules

ROOT = Path(__file__).parent.parent
RULES = ROOT / "wgconsole" / "export" / "alert_rules.yml"
RULES_TEST = Path(__file__).parent / "promtool" / "alert_rules_test.yml"


def _promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make setup` installs it (Debian package prometheus)"
    return found


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *argv], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_promtool_checks_the_rules() -> None:
    result = _run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_tests_every_alert() -> None:
    result = _run("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    # Every alert of the file has a test case.
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    tested = set(re.findall(r"alertname: (\w+)", RULES_TEST.read_text()))
    assert {r["alert"] for r in rules} == tested


def test_every_rule_has_a_summary_and_a_description_that_says_what_to_run() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert len(rules) >= 10
    for rule in rules:
        notes = rule["annotations"]
        assert notes["summary"].strip(), rule["alert"]
        assert notes["description"].strip(), rule["alert"]
        assert "`" in notes["description"], f"{rule['alert']}: no command to run"
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]


def test_the_rules_use_only_exported_metric_names() -> None:
    used = set(re.findall(r"\bwgconsole_[a-z_]+", RULES.read_text()))
    exported = {spec.name for spec in FAMILIES}
    assert used <= exported, used - exported


def test_alert_rules_prints_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    # No inventory is needed (nor read) for it.
    assert main(["metrics", "--alert-rules", "-i", "/nonexistent/inventory.yaml"]) == 0
    assert capsys.readouterr().out == RULES.read_text() == alert_rules()


def test_the_rules_are_package_data() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "export/alert_rules.yml" in project["tool"]["setuptools"]["package-data"]["wgconsole"]
