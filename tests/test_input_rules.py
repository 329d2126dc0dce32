"""Names and weights are input too: one rule for each, everywhere (wgconsole.core.input_rules).

A gateway's name is part of its drain record's file name on every load balancer, and the LB's
poll recognises a record by that name: the inventory accepted `gw+2`, `gw@site`, `gw/2` and
non-ASCII names whose records were then never recognised (a drain cut short on such a gateway
was never reported; tests/test_op_records.py shows one of the oddest allowed name reported).
The inventory now holds its names (load balancers, gateways, clients) to the rule `peer add`
holds new names to. And an inventory nested 100,000 levels deep, or a port of 5,000 digits,
is one located message, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wgconsole.cli import main as cli
from wgconsole.ops.machinery.errors import ValidationError
from wgconsole.ops.machinery.validate import weight as valid_weight

BASE = (Path(__file__).parent / "fixtures" / "lab" / "normal" / "inventory.yaml").read_text()


@pytest.mark.parametrize(
    "bad", ["gw+2", "gw@site", "gw/2", "gw\u00e9", "\u0433\u0448", "-gw", ".gw", "g" * 64, "g w"]
)
def test_a_name_outside_the_rule_is_one_located_message_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(BASE.replace("name: wg-gateway-02", f"name: '{bad}'"), encoding="utf-8")
    assert cli.main(["-i", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wgconsole: {path}:14: gateways[1].name: "), err
    assert "use letters, digits, '.', '_' or '-' (at most 63, no leading symbol)" in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("name: wg-lb", "name: lb@site", ":11: load_balancers[0].name"),
        ("name: wg-client-1", "name: alice@laptop", ":18: clients[1].name"),
    ],
)
def test_the_name_rule_holds_for_load_balancers_and_clients_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, where: str
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(BASE.replace(old, new))
    assert cli.main(["-i", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wgconsole: {path}{where}: "), err
    assert "use letters, digits" in err


# --- an inventory nested deeper than any needs ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("service: " + "[" * 100_000 + "]" * 100_000 + "\n", 1),
        ("service: " + "{a: " * 100_000 + "}" * 100_000 + "\n", 1),
        ("# deep\nservice:\n" + "- " * 100_000 + "x\n", 3),
    ],
    ids=["flow-lists", "flow-mappings", "block-lists"],
)
def test_an_inventory_nested_100000_deep_is_one_located_message_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    assert cli.main(["-i", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"wgconsole: {path}:{line}: nested more than 32 levels deep (an inventory needs 5)\n"
    )


def test_a_real_server_port_of_5000_digits_is_a_located_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(BASE.replace("10.77.0.12:51280", "10.77.0.12:" + "9" * 5000))
    assert cli.main(["-i", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"wgconsole: {path}:14: gateways[1].real_server: its port has 5000 digits: "
        "out of range 1..65535\n"
    )


# --- weights ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "weight True: not an integer"),
        ("\u0663", "not an integer"),  # ARABIC-INDIC DIGIT THREE: int() takes it
        ("1_0", "not an integer"),  # int() takes it as 10
    ],
)
def test_an_operator_weight_is_ascii_digits_in_range(value: int | str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        valid_weight(value)
    assert valid_weight(" 3 ") == 3
    assert valid_weight(0) == 0
    assert valid_weight("256") == 256
    with pytest.raises(ValidationError, match="not an integer"):
        valid_weight("1" * 5000)  # over int()'s digit limit: its ValueError is not a crash
