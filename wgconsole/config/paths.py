"""Where wgconsole keeps its files on the bastion: config, state, themes, and the lab's directory.

One place for every path lookup, through `platformdirs` (which follows the XDG spec on Linux,
ignoring a relative `XDG_CONFIG_HOME` or `XDG_STATE_HOME` as the spec says).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "wgconsole"


def config_dir() -> Path:
    """`$XDG_CONFIG_HOME/wgconsole` (default `~/.config/wgconsole`): inventory, themes."""
    return platformdirs.user_config_path(APP)


def state_dir() -> Path:
    """`$XDG_STATE_HOME/wgconsole` (default `~/.local/state/wgconsole`): audit log, last answers."""
    return platformdirs.user_state_path(APP)


def lab_dir() -> Path:
    # On disk rather than /run: the guest mounts its own tmpfs over /run, and it reads this
    # directory through the 9p share of the host's root.
    return Path(os.environ.get("WGCONSOLE_LAB_DIR", "/var/lib/wgconsole-lab"))


def lab_inventory_path() -> Path:
    return lab_dir() / "inventory.yaml"
