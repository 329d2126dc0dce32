"""Where the lab keeps its state (keys, inventory, QEMU pid, console log)."""

from __future__ import annotations

import os
from pathlib import Path


def lab_dir() -> Path:
    # On disk rather than /run: the guest mounts its own tmpfs over /run, and it reads this
    # directory through the 9p share of the host's root.
    return Path(os.environ.get("WGCONSOLE_LAB_DIR", "/var/lib/wgconsole-lab"))


def lab_inventory_path() -> Path:
    return lab_dir() / "inventory.yaml"
