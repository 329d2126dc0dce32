"""The inventory edit made by `peer add` / `peer remove`: only the client's own item changes.

Operators keep this file by hand: comments above, beside and after the clients, blank lines,
their own indentation and item style must come through an add and a remove byte for byte, the
new item must look like its neighbours, and every result must load with the real loader.
Texts are compared whole, as bytes on disk.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from wgconsole.config import inventory_edit
from wgconsole.config.inventory_edit import (
    Entry,
    InventoryEditError,
    Section,
    add_client,
    remove_client,
)
from wgconsole.config.inventory_file import load_inventory
from wgconsole.core.inventory import Client, Probe


def _key(seed: int) -> str:
    return base64.b64encode(bytes([seed]) * 32).decode()


ALPHA_KEY, BETA_KEY, GAMMA_KEY = _key(2), _key(3), _key(4)
ALPHA = Client("alpha", ALPHA_KEY, "10.255.0.2")
BETA = Client("beta", BETA_KEY, "10.255.0.3")
GAMMA = Client("gamma", GAMMA_KEY, "10.255.0.4")

A = f"{{name: alpha, public_key: {ALPHA_KEY}, address: 10.255.0.2}}"
B = f"{{name: beta, public_key: {BETA_KEY}, address: 10.255.0.3}}"
G = f"{{name: gamma, public_key: {GAMMA_KEY}, address: 10.255.0.4}}"

HEAD = """\
# wgconsole inventory for the office, kept by hand

service: {protocol: udp, vip: 172.16.0.1, port: 51280, scheduler: sh}

ssh:                      # defaults for every host
  user: root
  identity_file: ~/.ssh/id_ed25519   # optional; ssh-agent also applies

load_balancers:
  - {name: wg-lb, host: 10.211.55.120}

gateways:
  - {name: wg-gateway-01, host: 10.211.55.118, real_server: 10.211.55.118:51280}
  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 10.211.55.119:51280}
  # optional per gateway: interface (default wg0), config

tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1, keepalive: 15}
"""

BLOCK_GATEWAYS = HEAD.replace(
    "  - {name: wg-gateway-01, host: 10.211.55.118, real_server: 10.211.55.118:51280}\n"
    "  - {name: wg-gateway-02, host: 10.211.55.119, real_server: 10.211.55.119:51280}\n",
    "- name: wg-gateway-01\n  host: 10.211.55.118\n  real_server: 10.211.55.118:51280\n"
    "- name: wg-gateway-02\n  host: 10.211.55.119\n  real_server: 10.211.55.119:51280\n",
)


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "inventory.yaml"
    path.write_bytes(text.encode())
    return str(path)


def _read(path: str) -> str:
    return Path(path).read_bytes().decode()


def _no_temp_files(tmp_path: Path) -> bool:
    return not [p for p in os.listdir(tmp_path) if p.startswith(".inventory-")]


# --- comments and the other sections ----------------------------------------------------

COMMENTED = f"""
clients:                  # names for peers
  # alpha is the desktop
  - {A}   # since 2023
  # beta is the laptop
  - {B}
  # more to come
# end of file
"""


def test_comments_above_beside_and_after_survive_an_add(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + COMMENTED)
    after = add_client(path, GAMMA)
    assert _read(path) == HEAD + COMMENTED.replace(f"  - {B}\n", f"  - {B}\n  - {G}\n")
    assert after == load_inventory(path)
    assert after.clients == (ALPHA, BETA, GAMMA)


def test_a_remove_takes_the_item_s_line_and_nothing_else(tmp_path: Path) -> None:
    # The comment beside the item is on its line and goes; the ones above and below stay:
    # which client a comment line speaks of is the operator's to say, not ours.
    path = _write(tmp_path, HEAD + COMMENTED)
    after = remove_client(path, ALPHA_KEY)
    assert _read(path) == HEAD + COMMENTED.replace(f"  - {A}   # since 2023\n", "")
    assert after == load_inventory(path)
    assert after.clients == (BETA,)


def test_removing_every_client_leaves_a_valid_inventory_and_every_comment(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, HEAD + COMMENTED)
    remove_client(path, ALPHA_KEY)
    after = remove_client(path, BETA_KEY)
    assert after.clients == () == load_inventory(path).clients
    assert _read(path) == HEAD + (
        "\nclients:                  # names for peers\n"
        "  # alpha is the desktop\n  # beta is the laptop\n  # more to come\n# end of file\n"
    )
    # ...and a client can be added again: below the comments indented under `clients:`.
    assert add_client(path, GAMMA).clients == (GAMMA,)
    assert _read(path) == HEAD + (
        "\nclients:                  # names for peers\n"
        f"  # alpha is the desktop\n  # beta is the laptop\n  # more to come\n  - {G}\n"
        "# end of file\n"
    )


def test_add_then_remove_gives_back_the_same_bytes(tmp_path: Path) -> None:
    original = HEAD + COMMENTED
    path = _write(tmp_path, original)
    add_client(path, GAMMA)
    remove_client(path, GAMMA_KEY)
    assert _read(path) == original


def test_clients_before_other_sections_leave_them_untouched(tmp_path: Path) -> None:
    tunnel = "tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1, keepalive: 15}\n"
    head = HEAD.replace(tunnel, "")
    tail = f"\n# the tunnel\n{tunnel}"
    path = _write(tmp_path, head + f"clients:\n  - {A}\n  # more to come\n" + tail)
    add_client(path, GAMMA)
    assert _read(path) == head + f"clients:\n  - {A}\n  - {G}\n  # more to come\n" + tail
    remove_client(path, ALPHA_KEY)
    assert _read(path) == head + f"clients:\n  - {G}\n  # more to come\n" + tail


# --- the new item looks like its neighbours ---------------------------------------------

BLOCK_ALPHA = f"  - name: alpha\n    public_key: {ALPHA_KEY}   # rotated\n    address: 10.255.0.2\n"
BLOCK_GAMMA = f"  - name: gamma\n    public_key: {GAMMA_KEY}\n    address: 10.255.0.4\n"


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(f"clients:\n  - {A}\n", f"clients:\n  - {A}\n  - {G}\n", id="flow items"),
        pytest.param(f"clients:\n- {A}\n", f"clients:\n- {A}\n- {G}\n", id="zero-indented"),
        pytest.param(f"clients:\n    - {A}\n", f"clients:\n    - {A}\n    - {G}\n", id="indent-4"),
        pytest.param(
            f"clients:\n{BLOCK_ALPHA}\n",
            f"clients:\n{BLOCK_ALPHA}{BLOCK_GAMMA}\n",
            id="block items",
        ),
        pytest.param(
            "clients:\n    -   name: alpha\n        public_key: K\n        address: 10.255.0.2\n",
            "clients:\n    -   name: alpha\n        public_key: K\n        address: 10.255.0.2\n"
            "    -   name: gamma\n        public_key: N\n        address: 10.255.0.4\n",
            id="block items, own indentation",
        ),
        pytest.param(
            f"clients: [{A}]  # c\n", f"clients: [{A}, {G}]  # c\n", id="flow list on a line"
        ),
        pytest.param(
            f"clients: [\n  {A},\n  {B},  # laptop\n]\n",
            f"clients: [\n  {A},\n  {B},  # laptop\n  {G},\n]\n",
            id="flow list, an item a line",
        ),
        pytest.param(
            f"clients: [\n  {A}]\n",
            f"clients: [\n  {A},\n  {G}]\n",
            id="flow list closed on a line",
        ),
        pytest.param("clients: []   # none yet\n", f"clients: [{G}]   # none yet\n", id="[]"),
        pytest.param(
            "clients:   # none yet\n  # add with peer add\n",
            f"clients:   # none yet\n  # add with peer add\n  - {G}\n",
            id="empty, comments kept",
        ),
        pytest.param(
            "clients: ~   # none yet\n",
            f"clients:     # none yet\n  - {G}\n",
            id="~, comment column",
        ),
        pytest.param("clients: null\n", f"clients:\n  - {G}\n", id="null"),
        pytest.param("# the end\n", f"# the end\nclients:\n  - {G}\n", id="no clients key"),
        pytest.param(f"clients:\n  - {A}", f"clients:\n  - {A}\n  - {G}\n", id="no final newline"),
    ],
)
def test_the_new_item_is_laid_out_like_its_neighbours(
    tmp_path: Path, before: str, after: str
) -> None:
    before = before.replace("public_key: K", f"public_key: {ALPHA_KEY}")
    after = after.replace("public_key: K", f"public_key: {ALPHA_KEY}")
    after = after.replace("public_key: N", f"public_key: {GAMMA_KEY}")
    path = _write(tmp_path, HEAD + before)
    listed = load_inventory(path).clients
    added = add_client(path, GAMMA)
    assert _read(path) == HEAD + after
    assert added.clients == (*listed, GAMMA) == load_inventory(path).clients


def test_a_first_client_is_laid_out_like_the_gateways(tmp_path: Path) -> None:
    path = _write(tmp_path, BLOCK_GATEWAYS + "\nclients:\n")
    add_client(path, GAMMA)
    block = f"- name: gamma\n  public_key: {GAMMA_KEY}\n  address: 10.255.0.4\n"
    assert _read(path) == BLOCK_GATEWAYS + "\nclients:\n" + block


def test_values_yaml_would_misread_are_quoted_in_either_style(tmp_path: Path) -> None:
    tricky = Client("yes", GAMMA_KEY, "10.255.0.4")  # a plain `yes` reads as true
    path = _write(tmp_path, HEAD + f"clients:\n  - {A}\n")
    assert add_client(path, tricky).clients[-1] == tricky
    assert _read(path).endswith(
        f'  - {{name: "yes", public_key: {GAMMA_KEY}, address: 10.255.0.4}}\n'
    )
    path = _write(tmp_path, HEAD + f"clients:\n{BLOCK_ALPHA}")
    assert add_client(path, tricky).clients[-1] == tricky
    assert _read(path).endswith(
        f'  - name: "yes"\n    public_key: {GAMMA_KEY}\n    address: 10.255.0.4\n'
    )


# --- removes in every layout ------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(f"clients:\n  - {A}\n  - {B}\n", f"clients:\n  - {B}\n", id="flow items"),
        pytest.param(
            f"clients:\n{BLOCK_ALPHA}\n  - {B}  # laptop\n",
            f"clients:\n\n  - {B}  # laptop\n",
            id="block item",
        ),
        pytest.param(f"clients: [{A}, {B}]\n", f"clients: [{B}]\n", id="flow list on a line"),
        pytest.param(
            f"clients: [\n  {A},  # desk\n  {B},\n]\n",
            f"clients: [\n  {B},\n]\n",
            id="flow list, an item a line",
        ),
    ],
)
def test_a_remove_takes_only_the_item(tmp_path: Path, before: str, after: str) -> None:
    path = _write(tmp_path, HEAD + before)
    assert remove_client(path, ALPHA_KEY).clients == (BETA,)
    assert _read(path) == HEAD + after


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            f"clients:   # named peers\n  - {A}   # the only one\n# end\n",
            "clients:   # named peers\n# end\n",
            id="flow item",
        ),
        pytest.param(f"clients:\n{BLOCK_ALPHA}", "clients:\n", id="block item"),
        pytest.param(f"clients: [{A}]\n", "clients: []\n", id="flow list on a line"),
        pytest.param(f"clients: [\n  {A}\n]\n", "clients: [\n]\n", id="flow list, an item a line"),
    ],
)
def test_removing_the_only_client_leaves_a_valid_inventory(
    tmp_path: Path, before: str, after: str
) -> None:
    path = _write(tmp_path, HEAD + before)
    assert remove_client(path, ALPHA_KEY).clients == ()
    assert _read(path) == HEAD + after
    assert load_inventory(path).clients == ()


def test_crlf_files_stay_crlf(tmp_path: Path) -> None:
    original = (HEAD + COMMENTED).replace("\n", "\r\n")
    path = _write(tmp_path, original)
    add_client(path, GAMMA)
    assert _read(path) == original.replace(f"  - {B}\r\n", f"  - {B}\r\n  - {G}\r\n")
    remove_client(path, GAMMA_KEY)
    assert _read(path) == original


# --- the safety of the edit ---------------------------------------------------------------


def test_mode_is_kept_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + COMMENTED)
    os.chmod(path, 0o640)
    add_client(path, GAMMA)
    remove_client(path, ALPHA_KEY)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert _no_temp_files(tmp_path)


def test_an_edit_that_would_break_the_inventory_is_not_written(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + COMMENTED)
    with pytest.raises(InventoryEditError, match="would break the inventory"):
        add_client(path, Client("alpha2", GAMMA_KEY, "10.255.0.2"))  # alpha's address
    assert _read(path) == HEAD + COMMENTED
    assert _no_temp_files(tmp_path)


def test_a_file_changed_meanwhile_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, HEAD + COMMENTED)
    theirs = HEAD + COMMENTED.replace("# end of file", "# edited meanwhile")
    check = inventory_edit._check

    def check_then_someone_edits(
        tmp: str, target: str, section: Section, expected: tuple[Entry, ...]
    ) -> None:
        check(tmp, target, section, expected)
        Path(target).write_text(theirs)

    monkeypatch.setattr(inventory_edit, "_check", check_then_someone_edits)
    with pytest.raises(InventoryEditError, match="changed while it was being edited"):
        add_client(path, GAMMA)
    assert _read(path) == theirs
    assert _no_temp_files(tmp_path)


def test_removing_an_unlisted_key_changes_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + COMMENTED)
    mtime = os.stat(path).st_mtime_ns
    assert remove_client(path, GAMMA_KEY).clients == (ALPHA, BETA)
    assert os.stat(path).st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("service: [\n", "cannot be edited", id="broken file"),
        pytest.param(
            "clients:\n  -\n" + BLOCK_ALPHA.replace("  - ", "    "),
            "does not start on its `-` line",
            id="item off its dash line",
        ),
    ],
)
def test_what_cannot_be_edited_safely_is_refused(tmp_path: Path, text: str, reason: str) -> None:
    original = text if text.startswith("service: [") else HEAD + text
    path = _write(tmp_path, original)
    with pytest.raises(InventoryEditError, match=reason):
        add_client(path, GAMMA)
    with pytest.raises(InventoryEditError, match=reason):
        remove_client(path, ALPHA_KEY)
    assert _read(path) == original
    assert _no_temp_files(tmp_path)


def test_a_flow_mapping_at_the_top_is_refused(tmp_path: Path) -> None:
    original = (
        "{service: {vip: 172.16.0.1, port: 51280}, load_balancers: [{name: lb, host: 10.0.0.1}],"
        " gateways: [{name: gw, host: 10.0.0.2, real_server: 10.0.0.2:51280}],"
        " tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1}}\n"
    )
    path = _write(tmp_path, original)
    with pytest.raises(InventoryEditError, match="not a block mapping at the top"):
        add_client(path, GAMMA)
    assert _read(path) == original


PROBER = Probe("bastion", _key(9))


def test_a_probe_goes_under_probes_and_leaves_the_clients_alone(tmp_path: Path) -> None:
    """`probe setup` records its prober like `peer add` records a client: a new `probes:`
    list when there is none, laid out like the other lists, and removed byte for byte."""
    original = HEAD + f"clients:\n  - {A}\n"
    path = _write(tmp_path, original)
    after = add_client(path, PROBER)
    assert after.probes == (PROBER,)
    assert after.clients == (ALPHA,)
    assert _read(path) == original + f"probes:\n  - {{name: bastion, public_key: {_key(9)}}}\n"
    second = Probe("lb1", _key(10))
    assert add_client(path, second).probes == (PROBER, second)
    assert remove_client(path, second.public_key, "probes").probes == (PROBER,)
    # A client's key is not looked for among the probes, nor the other way round.
    assert remove_client(path, ALPHA_KEY, "probes").clients == (ALPHA,)
    assert remove_client(path, PROBER.public_key).probes == (PROBER,)
    assert remove_client(path, PROBER.public_key, "probes").probes == ()
    assert load_inventory(path).clients == (ALPHA,)
