"""The prober's key file on the machine that probes: base64 as `wg genkey` writes it, readable
by its owner alone (as ssh insists for its keys), made once by `wgconsole probe setup` and
never replaced. Each prober (a bastion, each director) has its own: a gateway drops an
initiation whose timestamp is not newer than the last it accepted for the peer, so two probers
sharing a key with skewed clocks would fail each other.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

from wgconsole.config.paths import state_dir
from wgconsole.core.keys import PrivateKey
from wgconsole.core.wgkey import wireguard_key_problem


class ProbeKeyError(Exception):
    """The key file cannot be used: says why and what to do (never a key's text)."""


def default_probe_key_path() -> Path:
    return state_dir() / "probe.key"


def read_probe_key(path: Path) -> PrivateKey:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ProbeKeyError(
            f"no probe key at {path}: `wgconsole probe setup` makes one and adds it to every "
            "gateway"
        ) from None
    except OSError as exc:
        raise ProbeKeyError(f"cannot read the probe key {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ProbeKeyError(f"the probe key {path} is not a regular file")
    if st.st_mode & 0o077:
        raise ProbeKeyError(
            f"the probe key {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): "
            "chmod 600 it"
        )
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    # The one rule for a key's text (core.wgkey), as wg itself reads one.
    if wireguard_key_problem(text) is not None:
        raise ProbeKeyError(f"the probe key {path} is not a WireGuard key")
    return PrivateKey(base64.b64decode(text))


def optional_probe_key(path: Path | None) -> PrivateKey | None:
    """The key in `path` (which must be there), or when none is given the default key file's
    if there is one: None then means this machine has no prober key (and probes nothing)."""
    if path is None:
        path = default_probe_key_path()
        if not path.exists():
            return None
    return read_probe_key(path)


def write_probe_key(path: Path, key: PrivateKey) -> None:
    """A new key file, 0600 from its first byte, never replacing one (FileExistsError)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.reveal() + "\n")
