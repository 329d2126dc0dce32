"""The fence's nftables script and its listing (ops.hostcmd.fence); what the kernel does with
them is the lab's test (test_eviction_lab.py)."""

from __future__ import annotations

import json
import shlex

import pytest

from wgconsole.core.inventory import Host, SshSettings
from wgconsole.core.records import Endpoint
from wgconsole.ops.hostcmd.fence import (
    fence_command,
    list_command,
    parse_fenced,
    unfence_command,
)

LB = Host(name="lb", host="192.0.2.1", ssh=SshSettings())
SUDO_LB = Host(name="lb", host="192.0.2.1", ssh=SshSettings(sudo=True))


def _script(command: str) -> str:
    """The nft script a command feeds `nft -f -` (its last argument)."""
    return shlex.split(command)[-1]


def test_the_fence_is_one_transaction_that_rewrites_its_one_rule() -> None:
    script = _script(fence_command(LB, Endpoint("10.77.0.11", 51820))).splitlines()
    # Declared with `add` (idempotent) and the chain flushed before its rules: fencing twice
    # leaves one rule, and a second gateway's element joins the same set.
    assert script[0] == "add table inet wgconsole"
    assert script.index("flush chain inet wgconsole fence") < next(
        i for i, line in enumerate(script) if line.startswith("add rule")
    )
    assert script[-1] == "add element inet wgconsole fenced4 { 10.77.0.11 . 51820 }"
    rule = next(line for line in script if "@fenced4" in line)
    # Handshake responses and cookie replies get through: a prober still sees it come back.
    assert "ip saddr . udp sport @fenced4 @th,64,8 != 2-3 counter drop" in rule
    assert "priority -10" in next(line for line in script if "add chain" in line)


def test_ipv6_gateways_go_to_their_own_set_and_sudo_is_used_when_asked() -> None:
    command = unfence_command(SUDO_LB, Endpoint("2001:db8::11", 51820))
    assert command.startswith("sudo -n sh -c ")
    assert _script(command).strip() == (
        "delete element inet wgconsole fenced6 { 2001:db8::11 . 51820 }"
    )
    assert list_command(SUDO_LB).startswith("sudo -n sh -c ")


def test_the_listing_gives_the_fenced_pairs_of_both_sets() -> None:
    listing = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "wgconsole"}},
            {"set": {"name": "fenced4", "elem": [{"concat": ["10.77.0.11", 51820]}]}},
            {"set": {"name": "fenced6", "elem": [{"concat": ["2001:db8::11", 51820]}]}},
            {"set": {"name": "other", "elem": [{"concat": ["10.0.0.1", 1]}]}},
            {"chain": {"name": "fence"}},
        ]
    }
    assert parse_fenced(json.dumps(listing)) == {
        Endpoint("10.77.0.11", 51820),
        Endpoint("2001:db8::11", 51820),
    }
    # No table at all: nothing fenced. An empty set has no "elem".
    assert parse_fenced("") == set()
    assert parse_fenced('{"nftables": [{"set": {"name": "fenced4"}}]}') == set()


@pytest.mark.parametrize("text", ["not json", "[1]", '{"other": []}'])
def test_a_listing_that_is_not_nfts_json_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="not the JSON it should be"):
        parse_fenced(text)
