"""The gateway's secrets never leave it through a poll: the poll script (run for real under sh
and busybox, with a fake `wg` and `sudo`) hides the private and preshared keys by the shape of
their lines, keeps stderr out of the filtered stream, and is never built for `all` or any
other word that is not an interface name (nor is such an inventory loaded).

Keys here are made up for the tests; PRIVATE and PSK stand for a gateway's secrets.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from wgconsole.cli import main as cli
from wgconsole.config.inventory_file import InventoryError, load_inventory
from wgconsole.core.ifname import interface_name_problem
from wgconsole.poll.collector import FleetCollector, parse_gateway_output
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.parsers.sections import split_sections
from wgconsole.poll.remote_scripts import gateway_script
from wgconsole.poll.transport.base import CommandResult


def _key(label: str) -> str:
    return base64.b64encode(hashlib.sha256(label.encode()).digest()).decode()


PRIVATE = _key("private")
PUBLIC = _key("public")
PEER = _key("peer")
PSK = _key("preshared")
OTHER_PRIVATE = _key("other private")

DUMP = (
    f"{PRIVATE}\t{PUBLIC}\t51280\toff\n"
    f"{PEER}\t{PSK}\t192.0.2.7:40001\t10.255.0.2/32\t1795664000\t10\t20\t25\n"
)
RESOLVE = "sudo: unable to resolve host gw-9: Name or service not known"
SHELLS = ["sh", "busybox"]


def _tools(tmp_path: Path, shell: str, wg_body: str, sudo_body: str | None = None) -> list[str]:
    """A PATH with a fake `wg` (and `sudo`), and the argv of the shell to run a script with.

    Under busybox the script's shell and awk are busybox's, as on small gateways.
    """
    if shell == "busybox" and shutil.which("busybox") is None:
        pytest.skip("busybox not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "dump.txt").write_text(DUMP)
    wg = bin_dir / "wg"
    wg.write_text("#!/bin/sh\n" + wg_body.replace("@DUMP@", str(tmp_path / "dump.txt")))
    ip = bin_dir / "ip"
    ip.write_text("#!/bin/sh\necho '4: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420'\n")
    tools = [wg, ip]
    if sudo_body is not None:
        sudo = bin_dir / "sudo"
        sudo.write_text("#!/bin/sh\n" + sudo_body)
        tools.append(sudo)
    for tool in tools:
        tool.chmod(0o755)
    argv = ["sh"]
    if shell == "busybox":
        busybox = shutil.which("busybox")
        assert busybox is not None
        (bin_dir / "awk").symlink_to(busybox)
        argv = [busybox, "sh"]
    return [f"{bin_dir}:/usr/bin:/bin", *argv]


# What the clock and link sections give under busybox, whose sh runs its own `date` (no %N)
# and `ip` before any on PATH: those sections are not what these tests are about.
_CANNED = (
    "@@wgc:clock\n1795664000.0\n@@wgc-rc:clock:0\n"
    "@@wgc:link\n4: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420\n@@wgc-rc:link:0\n"
)


def _run(tools: list[str], script: str) -> str:
    path, *shell = tools
    busybox = shell[0] != "sh"
    if busybox:
        script = "\n".join(
            line
            for line in script.splitlines()
            if not line.startswith(("echo '@@wgc:c", "echo '@@wgc:l"))
        )
    done = subprocess.run(
        [*shell, "-c", script],
        env={"PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return (_CANNED if busybox else "") + done.stdout


def _poll_script(interface: str = "wg0", *, sudo: bool = False) -> str:
    """The script `sh -c` runs on the gateway (the poll sends it as one quoted argv)."""
    import shlex

    argv = shlex.split(gateway_script(interface, sudo=sudo))
    assert argv[:2] == ["sh", "-c"]
    return argv[2]


# --- stderr never moves the private key out ------------------------------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_a_sudo_warning_before_the_dump_never_sends_the_private_key(
    tmp_path: Path, shell: str
) -> None:
    """sudo warns on stderr before `wg` prints a line (an unresolvable host name): the key
    line is then no longer the stream's first one. It used to be sent as is."""
    tools = _tools(tmp_path, shell, f'echo "{RESOLVE}" >&2\ncat @DUMP@\n')
    out = _run(tools, _poll_script())
    assert PRIVATE not in out
    assert PSK not in out
    assert PRIVATE[:20] not in out
    assert PRIVATE[20:40] not in out
    obs = parse_gateway_output("gw", "wg0", out)
    assert obs.interface is not None
    assert obs.interface.public_key == PUBLIC
    assert [p.has_preshared_key for p in obs.interface.peers] == [True]
    sections = split_sections(out)
    assert RESOLVE in sections["dump-err"].text
    assert RESOLVE not in sections["dump"].text


@pytest.mark.parametrize("shell", SHELLS)
def test_stderr_between_dump_lines_never_splits_them(tmp_path: Path, shell: str) -> None:
    body = 'head -n 1 @DUMP@\necho "wg: warning" >&2\ntail -n +2 @DUMP@\necho "late" >&2\n'
    out = _run(_tools(tmp_path, shell, body), _poll_script())
    assert PRIVATE not in out
    assert PSK not in out
    obs = parse_gateway_output("gw", "wg0", out)
    assert obs.interface is not None
    assert len(obs.interface.peers) == 1
    assert split_sections(out)["dump-err"].text == "wg: warning\nlate\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_every_interface_dump_shape_has_its_secrets_hidden(tmp_path: Path, shell: str) -> None:
    """Should `wg show all dump` ever run (the name is checked: it cannot), its lines have
    another shape (the interface name first): no key of theirs gets out either."""
    all_dump = (
        f"wg0\t{PRIVATE}\t{PUBLIC}\t51280\toff\n"
        f"wg0\t{PEER}\t{PSK}\t(none)\t10.255.0.2/32\t0\t0\t0\toff\n"
        f"wg1\t{OTHER_PRIVATE}\t{PEER}\t51281\toff\n"
    )
    (tmp_path / "all.txt").write_text(all_dump)
    tools = _tools(tmp_path, shell, f"cat {tmp_path / 'all.txt'}\n")
    out = _run(tools, _poll_script())
    for secret in (PRIVATE, PSK, OTHER_PRIVATE):
        assert secret not in out
    with pytest.raises(ParseError):
        parse_gateway_output("gw", "wg0", out)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_dump_keeps_wgs_exit_status_and_its_message(tmp_path: Path, shell: str) -> None:
    body = 'echo "Unable to access interface: No such device" >&2\nexit 1\n'
    out = _run(_tools(tmp_path, shell, body), _poll_script())
    assert "@@wgc-rc:dump:1" in out
    with pytest.raises(ParseError, match="exit status 1: 'Unable to access interface: No such"):
        parse_gateway_output("gw", "wg0", out)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_sudo_refusal_on_stderr_is_a_missing_sudo_right(tmp_path: Path, shell: str) -> None:
    tools = _tools(
        tmp_path, shell, "cat @DUMP@\n", "echo 'sudo: a password is required' >&2\nexit 1\n"
    )
    out = _run(tools, _poll_script(sudo=True))
    with pytest.raises(ParseError, match=r"missing sudo right for `wg show wg0 dump` \(sudo: a"):
        parse_gateway_output("gw", "wg0", out)


# --- `all` and other non-names are refused --------------------------------------------------

NOT_NAMES = ["all", "interfaces", ".", "..", "a/b", "eth 0", "wg:0", "", "x" * 16, "wg0\n"]


@pytest.mark.parametrize("name", NOT_NAMES)
def test_the_poll_script_is_never_built_for_what_is_not_an_interface(name: str) -> None:
    assert interface_name_problem(name) is not None
    with pytest.raises(ValueError, match="is not an interface name"):
        gateway_script(name, sudo=False)


@pytest.mark.parametrize("name", ["wg0", "wg-office_2", "x" * 15, "wg.1", "a=b+c"])
def test_interface_names_that_are_accepted(name: str) -> None:
    assert interface_name_problem(name) is None
    assert f" {name} dump" in gateway_script(name, sudo=True)


class _Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: list[str] = []

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        self.commands.append(command)
        return CommandResult("", "", 0, 0.0, 0)

    def close(self) -> None:
        pass


def test_a_gateway_with_interface_all_is_never_asked_for_a_dump(tmp_path: Path) -> None:
    """An inventory built in code (the loader refuses it) still never sends `wg show all`."""
    inventory = load_inventory(_inventory(tmp_path, "wg0"))
    bad = replace(inventory.gateways[0], interface="all")
    inventory = replace(inventory, gateways=(bad,))
    recorders: dict[str, _Recorder] = {}

    def factory(host: object) -> _Recorder:
        name = host.name  # type: ignore[attr-defined]
        recorders[name] = _Recorder(name)
        return recorders[name]

    collector = FleetCollector(inventory, transport_factory=factory, timeout=5.0)
    try:
        poll = collector.poll(("gateway",))
    finally:
        collector.close()
    [host] = poll.hosts
    assert host.observation is None
    assert host.error is not None
    assert "not polled: interface 'all'" in host.error
    assert "private key" in host.error
    assert recorders["gw"].commands == []


def _inventory(tmp_path: Path, interface: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "service: {protocol: udp, vip: 10.77.255.1, port: 51280, scheduler: sh}\n"
        "load_balancers:\n"
        "  - {name: lb, host: 127.0.0.1}\n"
        "gateways:\n"
        "  - {name: gw, host: 127.0.0.1, real_server: 10.77.0.11:51280,"
        f" interface: '{interface}'}}\n"
        "tunnel: {network: 10.255.0.0/24, gateway_address: 10.255.0.1}\n"
    )
    return path


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("all", "`wg show all` is every interface, with its private key"),
        ("interfaces", "`wg show interfaces` is the list of interfaces"),
        ("..", "the kernel refuses `.` and `..`"),
        ("a/b", "only letters, digits and _=+.- are allowed"),
        ("x" * 16, "longer than 15 characters"),
    ],
)
def test_the_inventory_refuses_what_is_not_an_interface_name(
    tmp_path: Path, name: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _inventory(tmp_path, name)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    message = str(info.value)
    assert message.startswith(f"{path}:5: gateways[0].interface: {name!r} is not an interface")
    assert reason in message
    assert cli.main(["-i", str(path), "status"]) == 2
    assert f"{path}:5: gateways[0].interface:" in capsys.readouterr().err
