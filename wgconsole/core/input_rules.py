"""Rules every layer applies the same way to input: what a name may be, what a weight may be.

A gateway's name is part of a file name on every load balancer (its drain record,
`drain-<name>.json`, see `core.lb_state`), and the LB's poll recognises a record by that file
name. So one rule serves the inventory's names (load balancers, gateways, clients), the names
an operator gives (`peer add NAME`), and the records' file names: a name that the inventory
accepts is always a safe file name component, and its record is always recognised.
"""

from __future__ import annotations

import re

# ASCII only (explicit ranges, not \w): a name is the same bytes on every host and shell.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
NAME = re.compile(NAME_PATTERN)
NAME_RULE = "use letters, digits, '.', '_' or '-' (at most 63, no leading symbol)"

# Sums above 256 starve real servers in sh's 256-bucket table; one weight above is refused.
MAX_WEIGHT = 256


def name_problem(value: str) -> str | None:
    """Why `value` is not a name (None: it is one)."""
    return None if NAME.fullmatch(value) else NAME_RULE
