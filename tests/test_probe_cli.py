"""`wgconsole probe`'s refusals, each before anything is sent (exit 2, the reason, never a
key): a missing or unsafe key file, an unknown target, a check that would wait for SSH."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakeworld import GW2, World, world_for_cli
from wgconsole.cli import main as cli
from wgconsole.config.probe_key import write_probe_key
from wgconsole.core.keys import PrivateKey

SERVER = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return world_for_cli(tmp_path, monkeypatch)


def _run(world: World, *argv: str) -> int:
    return cli.main(["probe", "-i", str(world.root / "inventory.yaml"), *argv])


def test_no_key_names_the_setup(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(world, "--key", str(tmp_path / "none.key"), "--server-key", SERVER) == 2
    err = capsys.readouterr().err
    assert "no probe key at" in err
    assert "`wgconsole probe setup` makes one" in err
    assert not world.sent


def test_a_key_others_can_read_is_refused_and_never_shown(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = PrivateKey.generate()
    path = tmp_path / "probe.key"
    write_probe_key(path, key)
    assert os.stat(path).st_mode & 0o777 == 0o600
    path.chmod(0o644)
    assert _run(world, "--key", str(path), "--server-key", SERVER) == 2
    err = capsys.readouterr().err
    assert "chmod 600" in err
    assert key.reveal() not in err
    path.chmod(0o600)
    path.write_text("not a key\n")
    assert _run(world, "--key", str(path), "--server-key", SERVER) == 2
    assert "is not a WireGuard key" in capsys.readouterr().err
    with pytest.raises(FileExistsError):
        write_probe_key(path, key)  # never replaces a key


def test_unknown_targets_and_a_check_without_server_key(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "probe.key"
    write_probe_key(path, PrivateKey.generate())
    assert _run(world, "--key", str(path), "--server-key", SERVER, "nope\x1b[2J") == 2
    err = capsys.readouterr().err
    assert "no such target: nope\\x1b[2J" in err
    # A health check is silent (keepalived reads the exit status) and never waits for SSH.
    assert _run(world, "--key", str(path), "--check", GW2) == 2
    assert capsys.readouterr() == ("", "")
    assert _run(world, "--key", str(path), "--check", "nope", "--server-key", SERVER) == 2
    assert not world.sent


def test_the_probe_starts_without_ssh_the_operations_or_the_exporter() -> None:
    """A keepalived MISC_CHECK runs it every few seconds: it imports only what it uses."""
    code = (
        "import sys\n"
        "from wgconsole.cli import entry\n"
        "try:\n"
        "    entry.main(['--timeout', '5', 'probe', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('paramiko', 'prometheus_client', 'textual', 'wgconsole.ops', 'wgconsole.poll')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "[]"
    assert "--check GATEWAY" in out


def test_setup_options_belong_to_setup_and_setup_reads_no_key_file_itself(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "probe.key"
    write_probe_key(path, PrivateKey.generate())
    assert _run(world, "--key", str(path), "--server-key", SERVER, "--yes") == 2
    assert "are for `probe setup`" in capsys.readouterr().err
    assert _run(world, "setup", "--json") == 2
    assert "--json and --server-key are not its" in capsys.readouterr().err
    assert not world.sent
