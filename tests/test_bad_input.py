"""Bad input at the command line: a broken inventory is one located message and exit 2; bad
operator input (names, keys, addresses, weights) is refused with its reason before anything
is sent to a host (tests.fakeworld records every command that reaches one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakeworld import GW2, World, world_for_cli
from tests.test_ops_peers import NEWKEY
from wgconsole.cli import main as cli

BASE = (Path(__file__).parent / "fixtures" / "lab" / "normal" / "inventory.yaml").read_text()
GW2_LINE = "  - {name: wg-gateway-02, host: 127.0.0.1, port: 2323, real_server: 10.77.0.12:51280}"


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "  sudo: false",
            "  sduo: false",
            ":9: ssh.sduo: unknown key 'sduo' (did you mean 'sudo'?)",
        ),
        ("  port: 22", "  port: twenty-two", ":6: ssh.port: expected an integer"),
        (GW2_LINE, GW2_LINE.replace("wg-gateway-02", "wg-gateway-01"), ":14: gateways[1].name"),
        (GW2_LINE, GW2_LINE.replace("10.77.0.12:51280", "10.77.0.300:51280"), ":14: gateways[1]"),
        (GW2_LINE, GW2_LINE.replace("10.77.0.12:51280", "'[fd00::12]:51280'"), ":14: gateways[1]"),
        ("vip: 10.77.255.1", "vip: 10.77.255", ":3: service.vip: '10.77.255' is not an IP"),
    ],
)
def test_a_bad_inventory_is_one_located_message_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, where: str
) -> None:
    assert old in BASE
    path = tmp_path / "inventory.yaml"
    path.write_text(BASE.replace(old, new))
    assert cli.main(["-i", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wgconsole: {path}{where}"), err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return world_for_cli(tmp_path, monkeypatch)


BAD = [
    (["weight", GW2, "257"], "weight 257: must be between 0 and 256"),
    (["weight", GW2, "-1"], "weight -1: must be between 0 and 256"),
    (["weight", GW2, "one"], "weight 'one': not an integer"),
    (["weight", "gw;rm -rf /", "1"], "no gateway named 'gw;rm -rf /'"),
    (["undrain", GW2, "--weight", "999"], "weight 999: must be between 0 and 256"),
    (["drain", "nope"], "no gateway named 'nope'"),
    (["peer", "add", "bad name", "--public-key", NEWKEY], "name 'bad name': use letters"),
    (["peer", "add", "n" * 64, "--public-key", NEWKEY], "at most 63"),
    (["peer", "add", "gamma", "--public-key", "not base64!"], "public key: not base64"),
    (["peer", "add", "gamma", "--public-key", "AAAA"], "must be 32 bytes"),
    (["peer", "add", "gamma", "--public-key", NEWKEY, "--address", "10.9.9.9"], "outside"),
    (["peer", "add", "gamma", "--public-key", NEWKEY, "--address", "10.255.0.2"], "in use"),
    (["peer", "add", "gamma", "--public-key", NEWKEY, "--address", "10.255.0.1"], "gateways'"),
    (["peer", "add", "gamma", "--public-key", NEWKEY, "--address", "x"], "not an IP address"),
    (["peer", "add", "gamma", "--public-key", NEWKEY, "--keepalive", "70000"], "keepalive"),
    (["peer", "add", "wg-client-0", "--public-key", NEWKEY], "already an inventory client"),
    (["peer", "add", "gamma"], "--output"),  # a generated key needs a file to go to
    (["peer", "remove", "nobody"], "no client of that name"),
]


# Refusals that need the fleet's (or the inventory's) current state: a read came first.
NEEDS_THE_FLEET: tuple[str, ...] = (
    "outside",
    "in use",
    "gateways'",
    "already an inventory client",
    "--output",
)
NEEDS_THE_FLEET += ("no client of that name",)


@pytest.mark.parametrize(("argv", "reason"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_operator_input_is_refused_before_anything_is_sent(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], reason: str
) -> None:
    before = (world.state(), world.records())
    inventory = str(world.root / "inventory.yaml")
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    assert cli.main(["-i", inventory, *argv, "--yes", *audit]) == 2
    err = capsys.readouterr().err
    assert reason in err, err
    assert "Traceback" not in err
    assert [s for s in world.sent if s.mutating] == []
    if not any(needs in reason for needs in NEEDS_THE_FLEET):
        assert world.sent == []  # checked before even a read was sent
    assert (world.state(), world.records()) == before
    assert not (tmp_path / "audit.jsonl").exists()  # nothing was even attempted
