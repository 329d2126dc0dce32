"""The config-file edit on the gateway (wgconf's scripts, run for real under sh and under
busybox with only its applets): a symlinked wg0.conf keeps its link and its target gets the
change; owner and mode are kept; the temporary file is fresh (mktemp, never a link followed)
and fsynced before the rename; backups are 0600 and bounded; a rollback restores into the
resolved file. Also: the commands are never built for an interface that is not one, and
what the edit's read brings back is checked (keys, allowed IPs, numbers).

FAKE_GW_PRIVATE stands for the gateway's private key in its config file.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from tests.test_ops_peers import (
    ALPHA,
    FAKE_GW_PRIVATE,
    GW_CONF,
    GW_PUB,
    NEWKEY,
    make_inventory_plain,
    make_rig,
)
from wgconsole.ops.hostcmd import wgconf
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.procedures.peers.add import execute_peer_add
from wgconsole.ops.procedures.peers.plan import plan_peer_add

OWNER = (1234, 2345)
APPLETS: tuple[str, ...] = (
    *("awk", "cat", "chmod", "chown", "dirname", "mktemp", "mv", "readlink", "rm", "stat"),
)
APPLETS += ("sync",)


@pytest.fixture(params=["sh", "busybox"])
def shell(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """The argv that runs a script: the system's sh and tools, or busybox with nothing else
    on PATH (the small gateways' case)."""
    if request.param == "sh":
        return ["sh"]
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox not installed")
    bin_dir = tmp_path / "busybox-bin"
    bin_dir.mkdir()
    for applet in APPLETS:
        (bin_dir / applet).symlink_to(busybox)
    return ["env", f"PATH={bin_dir}", busybox, "sh"]


def run(shell: list[str], script: str, args: Sequence[str], path: str | None = None) -> str:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = f"{path}:{env['PATH']}"
    done = subprocess.run(
        [*shell, "-c", script, "sh", *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert FAKE_GW_PRIVATE not in done.stdout + done.stderr
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _linked(tmp_path: Path) -> tuple[Path, Path]:
    """/etc/wireguard/wg0.conf as a link into a directory that config management owns."""
    etc, managed = tmp_path / "etc", tmp_path / "managed"
    etc.mkdir()
    managed.mkdir()
    target = managed / "wg0.conf"
    target.write_text(GW_CONF)
    target.chmod(0o640)
    os.chown(target, *OWNER)
    conf = etc / "wg0.conf"
    conf.symlink_to(target)
    return conf, target


def _bak(conf: Path, n: int) -> str:
    return f"{conf}{wgconf.BACKUP_SUFFIX}2025010{n}T000000Z-{n:06x}"


def _add(conf: Path, bak: str) -> list[str]:
    return [str(conf), bak, "gamma", NEWKEY, "10.255.0.4/32", "25"]


def _leftovers(*dirs: Path) -> list[str]:
    return sorted(p.name for d in dirs for p in d.iterdir() if wgconf.TMP_SUFFIX in p.name)


def test_a_symlinked_config_keeps_its_link_owner_and_mode(tmp_path: Path, shell: list[str]) -> None:
    conf, target = _linked(tmp_path)
    bak = _bak(conf, 1)
    assert run(shell, wgconf.ADD_SCRIPT, _add(conf, bak)) == "written"
    assert conf.is_symlink()
    assert conf.resolve() == target
    assert f"PublicKey = {NEWKEY}" in target.read_text()
    info = target.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert (info.st_uid, info.st_gid) == OWNER
    assert Path(bak).read_text() == GW_CONF
    assert stat.S_IMODE(Path(bak).stat().st_mode) == 0o600
    assert _leftovers(conf.parent, target.parent) == []

    bak2 = _bak(conf, 2)
    assert run(shell, wgconf.REMOVE_SCRIPT, [str(conf), bak2, NEWKEY]) == "removed"
    assert conf.is_symlink()
    assert target.read_text() == GW_CONF
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_uid == OWNER[0]

    # The rollback of that remove: the backup's text back into the target, the link kept.
    assert run(shell, wgconf.RESTORE_SCRIPT, [str(conf), bak2]) == "restored"
    assert conf.is_symlink()
    assert f"PublicKey = {NEWKEY}" in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_uid == OWNER[0]
    assert not Path(bak2).exists()
    assert Path(bak).exists()
    assert run(shell, wgconf.RESTORE_SCRIPT, [str(conf), bak2]) == "untouched"
    assert _leftovers(conf.parent, target.parent) == []


def test_a_regular_config_keeps_owner_and_mode(tmp_path: Path, shell: list[str]) -> None:
    conf = tmp_path / "wg0.conf"
    conf.write_text(GW_CONF)
    conf.chmod(0o640)
    os.chown(conf, *OWNER)
    assert run(shell, wgconf.ADD_SCRIPT, _add(conf, _bak(conf, 1))) == "written"
    info = conf.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert (info.st_uid, info.st_gid) == OWNER
    assert not conf.is_symlink()
    assert f"PublicKey = {NEWKEY}" in conf.read_text()


def test_the_temporary_file_is_fresh_and_never_followed(tmp_path: Path, shell: list[str]) -> None:
    """A link where the old fixed temporary name was (left by anyone) is not written through;
    a temporary file an edit killed half-way left (it holds the private key) is removed."""
    conf = tmp_path / "wg0.conf"
    conf.write_text(GW_CONF)
    victim = tmp_path / "elsewhere.txt"
    victim.write_text("precious\n")
    (tmp_path / f"wg0.conf{wgconf.TMP_SUFFIX}").symlink_to(victim)
    stale = tmp_path / f".wg0.conf{wgconf.TMP_SUFFIX}.Ab12Cd"
    stale.write_text(GW_CONF)
    assert run(shell, wgconf.ADD_SCRIPT, _add(conf, _bak(conf, 1))) == "written"
    assert victim.read_text() == "precious\n"
    assert f"PublicKey = {NEWKEY}" in conf.read_text()
    assert not conf.is_symlink()
    assert not stale.exists()


def test_the_new_file_is_fsynced_before_it_is_renamed(tmp_path: Path) -> None:
    """`sync FILE` on the temporary file (and the backup), then on the directory."""
    conf = tmp_path / "wg0.conf"
    conf.write_text(GW_CONF)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "sync.log"
    fake = bin_dir / "sync"
    fake.write_text(f'#!/bin/sh\nfor f in "$@"; do echo "$f" >> {log}; done\n')
    fake.chmod(0o755)
    bak = _bak(conf, 1)
    assert run(["sh"], wgconf.ADD_SCRIPT, _add(conf, bak), path=str(bin_dir)) == "written"
    synced = log.read_text().splitlines()
    names = [Path(p).name for p in synced if p != "--"]
    assert any(n.startswith(f".wg0.conf{wgconf.TMP_SUFFIX}.") for n in names), synced
    assert any(n.startswith(Path(bak).name) for n in names), synced
    assert str(tmp_path) in synced
    assert synced.index(str(tmp_path)) == len(synced) - 1  # the rename's directory, last


def test_backups_are_bounded_and_the_running_ones_kept(tmp_path: Path, shell: list[str]) -> None:
    conf = tmp_path / "wg0.conf"
    conf.write_text(GW_CONF)
    # One that sorts after every stamp (a hand-made name): the running backup is kept anyway.
    late = Path(f"{conf}{wgconf.BACKUP_SUFFIX}zz-by-hand")
    late.write_text(GW_CONF)
    for n in range(1, 9):
        bak = _bak(conf, n)
        if n % 2:
            assert run(shell, wgconf.ADD_SCRIPT, _add(conf, bak)) == "written"
        else:
            assert run(shell, wgconf.REMOVE_SCRIPT, [str(conf), bak, NEWKEY]) == "removed"
        backups = sorted(tmp_path.glob(f"wg0.conf{wgconf.BACKUP_SUFFIX}*"))
        assert Path(bak) in backups
        assert len(backups) <= wgconf.BACKUPS_KEPT
    names = [p.name for p in sorted(tmp_path.glob(f"wg0.conf{wgconf.BACKUP_SUFFIX}*"))]
    assert len(names) == wgconf.BACKUPS_KEPT
    assert names[-2:] == [Path(_bak(conf, 8)).name, late.name]
    for path in tmp_path.glob(f"wg0.conf{wgconf.BACKUP_SUFFIX}2*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert conf.read_text() == GW_CONF


def test_an_owner_that_cannot_be_kept_fails_the_edit_cleanly(tmp_path: Path) -> None:
    conf = tmp_path / "wg0.conf"
    conf.write_text(GW_CONF)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "chown"
    fake.write_text("#!/bin/sh\necho 'chown: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    argv = ["sh", "-c", wgconf.ADD_SCRIPT, "sh", *_add(conf, _bak(conf, 1))]
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert done.returncode == 7
    assert "cannot give the new" in done.stderr
    assert conf.read_text() == GW_CONF
    assert _leftovers(tmp_path) == []


# --- the whole peer add, with a rollback, on a symlinked config ---------------------------


def test_a_rollback_restores_a_symlinked_config_in_place(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    gw1, gw2 = rig.inventory.gateways
    conf = Path(gw1.config)
    managed = tmp_path / "managed"
    managed.mkdir()
    target = managed / "wg0.conf"
    shutil.move(conf, target)
    target.chmod(0o640)
    os.chown(target, *OWNER)
    conf.symlink_to(target)
    before = rig.snapshot()
    rig.gateways[gw2.name].fail_when = lambda c: "make_backup" in c and gw2.config in c
    plan = plan_peer_add(rig.inventory, rig.fleet(), "gamma", NEWKEY)
    with pytest.raises(OpError, match="Every gateway is back as it was"):
        execute_peer_add(rig.ctx, plan, keepalive=15)
    assert rig.snapshot() == before
    assert conf.is_symlink()
    assert conf.resolve() == target
    assert target.read_text() == GW_CONF
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_uid == OWNER[0]
    assert _leftovers(conf.parent, managed) == []
    assert not list(conf.parent.glob(f"wg0.conf{wgconf.BACKUP_SUFFIX}*"))
    rig.gateways[gw2.name].fail_when = None
    result = execute_peer_add(rig.ctx, plan, keepalive=15)
    assert conf.is_symlink()
    assert f"PublicKey = {NEWKEY}" in target.read_text()
    assert Path(result.backups[gw1.name]).read_text() == GW_CONF


# --- commands for an interface that is not one ----------------------------------------------


@pytest.mark.parametrize("interface", ["all", "interfaces", "..", "a b"])
def test_no_gateway_command_is_built_for_what_is_not_an_interface(interface: str) -> None:
    gw = replace(make_inventory_plain().gateways[0], interface=interface)
    state = wgconf.LivePeer(("10.255.0.4/32",), 15)
    for build in (
        lambda: wgconf.read_command(gw, ALPHA),
        lambda: wgconf.live_set_command(gw, ALPHA, ["10.255.0.4/32"], 15),
        lambda: wgconf.live_remove_command(gw, ALPHA),
        lambda: wgconf.live_restore_command(gw, ALPHA, state),
    ):
        with pytest.raises(OpError, match=r"interface .* refused: "):
            build()  # type: ignore[no-untyped-call]


# --- the config edit's own read -------------------------------------------------------------


def _read_output(allowed: str = "10.255.0.2/32", keepalive: str = "25", key: str = "") -> str:
    key = key or ALPHA
    return (
        f"@public-key\n{GW_PUB}\n@allowed-ips\n{key}\t{allowed}\n"
        f"@keepalive\n{key}\t{keepalive}\n@psk\n{key}\t0\n@file\ncount\t0\ndir\twritable\n"
    )


def test_the_edits_read_takes_what_wg_prints() -> None:
    state = wgconf.parse_read(_read_output("10.255.0.2/32 fd00::2/128"))
    assert state.peers[ALPHA].allowed_ips == ("10.255.0.2/32", "fd00::2/128")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_read_output("junk/32"), "allowed IP 'junk/32': not an IP address"),
        (_read_output("10.255.0.2/33"), "prefix length over 32"),
        (_read_output(keepalive="9" * 5000), "keepalive"),
        (_read_output(keepalive="70000"), "keepalive"),
        (_read_output(key="\x1b[2Jnot-a-key"), "is not a WireGuard key"),
        (_read_output().replace(GW_PUB, "[/]"), "public key is not a WireGuard key"),
    ],
    ids=["junk", "prefix", "huge-keepalive", "keepalive-range", "peer-key", "public-key"],
)
def test_the_edits_read_refuses_what_does_not_fit(text: str, message: str) -> None:
    with pytest.raises(OpError, match=message) as info:
        wgconf.parse_read(text)
    assert "\x1b" not in str(info.value)
