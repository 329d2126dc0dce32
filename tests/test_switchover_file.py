"""The switchover (keepalived track) file, read and written by failover's own shell commands,
run on this machine (LocalTransport) against files in a temporary directory: a symlink, a
directory others can write and a file that is no number are refused, and none of its bytes
reaches an error (issue 22, item 3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import observations as o
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.context import OpContext
from wgconsole.ops.machinery.errors import OpError
from wgconsole.ops.procedures.failover import read_value, write_value
from wgconsole.poll.parsers.switchover import SwitchoverHook
from wgconsole.poll.transport.local import LocalTransport

INVENTORY = o.make_inventory()
LB = INVENTORY.load_balancers[0]
SECRET = "root:$6$hunter2secret:19000:0:99999:7:::\n"


def _ctx(tmp_path: Path) -> OpContext:
    return OpContext(INVENTORY, {LB.name: LocalTransport(LB.name)}, AuditLog(tmp_path / "audit"))


def _hook(path: Path) -> SwitchoverHook:
    return SwitchoverHook(
        "VI_1", str(path), -1, "vrrp_instance VI_1", nopreempt=False, address_owner=False
    )


def _world(tmp_path: Path) -> tuple[Path, Path]:
    """A root-only directory holding the track file's place, and a secret elsewhere."""
    track_dir = tmp_path / "lib"
    track_dir.mkdir(mode=0o755)
    track_dir.chmod(0o755)
    secret = tmp_path / "shadow"
    secret.write_text(SECRET)
    return track_dir, secret


def test_the_write_uses_a_fresh_temporary_not_a_planted_name(tmp_path: Path) -> None:
    """Today's fixed temporary (FILE.wgconsole) is written through a symlink planted there."""
    track_dir, secret = _world(tmp_path)
    track = track_dir / "vrrp-switchover"
    (track_dir / "vrrp-switchover.wgconsole").symlink_to(secret)
    write_value(_ctx(tmp_path), LB, _hook(track), -51)
    assert secret.read_text() == SECRET
    assert not track.is_symlink()
    assert track.read_text() == "-51\n"
    assert sorted(p.name for p in track_dir.iterdir()) == [
        "vrrp-switchover",
        "vrrp-switchover.wgconsole",
    ]
    assert read_value(_ctx(tmp_path), LB, _hook(track)) == -51


def test_a_track_file_that_is_a_symlink_is_refused_without_its_bytes(tmp_path: Path) -> None:
    track_dir, secret = _world(tmp_path)
    track = track_dir / "vrrp-switchover"
    track.symlink_to(secret)
    ctx = _ctx(tmp_path)
    with pytest.raises(OpError, match="symbolic link") as read_error:
        read_value(ctx, LB, _hook(track))
    with pytest.raises(OpError, match="symbolic link") as write_error:
        write_value(ctx, LB, _hook(track), -51)
    for exc in (read_error.value, write_error.value):
        assert "hunter2" not in str(exc)
        assert "99999" not in str(exc)
    assert secret.read_text() == SECRET
    assert track.is_symlink()


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_a_track_file_in_a_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    track_dir, _ = _world(tmp_path)
    track = track_dir / "vrrp-switchover"
    track.write_text("0\n")
    track_dir.chmod(mode)
    ctx = _ctx(tmp_path)
    with pytest.raises(OpError, match="others can write"):
        read_value(ctx, LB, _hook(track))
    with pytest.raises(OpError, match="others can write"):
        write_value(ctx, LB, _hook(track), -51)
    assert track.read_text() == "0\n"
    assert os.listdir(track_dir) == ["vrrp-switchover"]


def test_a_track_file_that_is_no_number_is_named_so_without_its_bytes(tmp_path: Path) -> None:
    track_dir, _ = _world(tmp_path)
    track = track_dir / "vrrp-switchover"
    track.write_text(SECRET)
    with pytest.raises(OpError, match="not a number") as exc:
        read_value(_ctx(tmp_path), LB, _hook(track))
    assert "hunter2" not in str(exc.value)
    assert "99999" not in str(exc.value)
    track.unlink()
    track.mkdir()
    with pytest.raises(OpError, match="not a regular file"):
        read_value(_ctx(tmp_path), LB, _hook(track))
    with pytest.raises(OpError, match="not a regular file"):
        write_value(_ctx(tmp_path), LB, _hook(track), -51)
    assert os.listdir(track) == []
