"""The alert rules shipped with the exporter (`alert_rules.yml`, package data)."""

from __future__ import annotations

from importlib import resources

RULES_FILE = "alert_rules.yml"


def alert_rules() -> str:
    """The Prometheus rules file, as shipped (`wgconsole metrics --alert-rules` prints it)."""
    return resources.files(__package__).joinpath(RULES_FILE).read_text(encoding="utf-8")
