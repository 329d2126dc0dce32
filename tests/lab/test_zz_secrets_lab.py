"""Runs last (tests/conftest.py orders it so): no private key is anywhere the suite wrote.

The keys: every private key the lab holds (the gateways' shared key and each client's, in
LAB/wg/*.key) and every client private key the suite generated (found in the client configs
`peer add --output` wrote, the one place such a key may be). The places: every pytest
temporary directory on this machine (this run's and the ones kept from earlier runs: audit
logs, inventories, outputs, configs), everything the tests of this run printed or logged and
every failure's text (tests/conftest.py collects them), the test fixtures and screenshots,
the default audit log and state of wgconsole, the lab's own logs and inventories, and the
drain records on the lab's LB. A key may only be in its own key file, in a client config
written by wgconsole, or on the hosts that use it (a gateway's /etc/wireguard). There, the
gateways' key is only in their config file and its few backups (ops.hostcmd.wgconf keeps
BACKUPS_KEPT), never in a temporary file an edit left.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CAPTURED_NAME
from tests.lab.conftest import Lab
from wgconsole.ops.hostcmd import wgconf

pytestmark = pytest.mark.lab

TESTS = Path(__file__).resolve().parents[1]
MAX_BYTES = 64 << 20
PRIVATE_LINE = re.compile(rb"^PrivateKey = ([A-Za-z0-9+/]{43}=)$", re.M)
CLIENT_CONFIG = b"# wgconsole: client "


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        return
    for dirpath, _, names in os.walk(root, followlinks=False):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                yield path


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_BYTES:
            return b""
        return path.read_bytes()
    except OSError:
        return b""


def _pytest_dirs() -> list[Path]:
    base = (
        Path(os.environ.get("PYTEST_DEBUG_TEMPROOT") or "/tmp") / f"pytest-of-{getpass.getuser()}"
    )
    return sorted(base.glob("pytest-*")) if base.is_dir() else []


def _state_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(state) / "wgconsole"


def test_no_private_key_in_anything_the_suite_produced(
    lab: Lab, tmp_path_factory: pytest.TempPathFactory
) -> None:
    lab_keys = {p: p.read_bytes().strip() for p in sorted((lab.dir / "wg").glob("*.key"))}
    assert lab_keys, "no lab keys to look for"
    assert all(len(k) == 44 for k in lab_keys.values()), "no lab keys to look for"

    places = [
        *_pytest_dirs(),
        tmp_path_factory.getbasetemp(),
        TESTS / "fixtures",
        TESTS / "__snapshots__",
        TESTS / "snapshots",
        _state_dir(),
        lab.dir / "guest.log",
        lab.dir / "console.log",
        lab.dir / "guest.sh",
        *lab.dir.glob("*.yaml"),
        *lab.dir.glob("*.txt"),
        *lab.dir.glob("*.json"),
    ]
    files = sorted({f for place in places for f in _files(place)})
    captured = tmp_path_factory.getbasetemp() / CAPTURED_NAME
    assert captured in files, "this run's captured output is missing"

    # Client keys the suite generated: only ever in the configs `--output` wrote.
    generated: dict[bytes, set[Path]] = {}
    for path in files:
        data = _read(path)
        if CLIENT_CONFIG in data:
            for key in PRIVATE_LINE.findall(data):
                generated.setdefault(key, set()).add(path)
    print(f"looking for {len(lab_keys)} lab keys and {len(generated)} generated client keys")

    secrets = {key: {path} for path, key in lab_keys.items()} | generated
    leaks = []
    for path in files:
        data = _read(path)
        if not data:
            continue
        for key, holders in secrets.items():
            if path in holders:
                continue
            if key in data or key[:20] in data or key[20:40] in data:
                kind = "lab" if key in lab_keys.values() else "generated"
                leaks.append(f"{path}: {key[:4].decode()}... ({kind} key)")
    print(f"searched {len(files)} files")
    assert not leaks, "private key material found:\n" + "\n".join(leaks)

    # The LB keeps records of drains and locks: no key material in them either.
    records = lab.ns(
        "lb",
        ["sh", "-c", "cat /run/wgconsole/drain-*.json /run/wgconsole/lock-*/owner 2>/dev/null"],
        check=False,
    ).encode()
    assert not [k for k in secrets if k in records or k[:20] in records]


def test_the_gateways_key_is_in_their_config_and_its_few_backups_only(lab: Lab) -> None:
    """Every copy the config edit made on the gateways (the guest reads the key from the lab's
    key file: it is never on a command line)."""
    keyfile = shlex.quote(str(lab.dir / "wg" / "gateway.key"))
    holders = lab.sh(f"grep -rlF -f {keyfile} /run/wglab 2>/dev/null; true").split()
    for netns in ("gw1", "gw2"):
        config = f"/run/wglab/{netns}/wireguard/wg0.conf"
        mine = {p for p in holders if p.startswith(f"/run/wglab/{netns}/")}
        backups = {p for p in mine if p.startswith(config + wgconf.BACKUP_SUFFIX)}
        print(f"{netns}: config and {len(backups)} backups")
        assert config in mine, sorted(mine)
        assert mine == {config, *backups}, sorted(mine)
        assert len(backups) <= wgconf.BACKUPS_KEPT, sorted(backups)
