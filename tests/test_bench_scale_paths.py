"""The scale work's fast paths give exactly what the reference paths give (no timing here).

- the gateway poll script streams the dump through the secret-hiding filter and still
  reports `wg`'s own exit status (run with a fake `wg` under sh and busybox sh);
- the section scanner finds the same markers as the reference regex scan;
- the column-wise wg dump pass equals the line-by-line pass, and falls back to it;
- parsers.bulk builds records equal to the classes' own and restores the GC state.
"""

from __future__ import annotations

import base64
import gc
import random
import shutil
import subprocess
import threading
import weakref
from pathlib import Path

import pytest

from wgconsole.core.bulk import Columns, LineMemo, gc_paused
from wgconsole.core.records import Endpoint, WgPeer
from wgconsole.poll.collector import parse_gateway_output
from wgconsole.poll.parsers import sections, wg_dump
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.remote_scripts import gateway_script

PRIVATE = base64.b64encode(bytes(range(32))).decode()
PUBLIC = base64.b64encode(bytes(range(1, 33))).decode()
PSK = base64.b64encode(bytes(range(2, 34))).decode()


def _key(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(32)).decode()


def _fake_tools(tmp_path: Path, dump: str, status: int, shell: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "dump.txt").write_text(dump)
    wg = bin_dir / "wg"
    wg.write_text(f"#!/bin/sh\ncat {tmp_path / 'dump.txt'}\nexit {status}\n")
    ip = bin_dir / "ip"
    ip.write_text(
        "#!/bin/sh\necho '4: wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue'\n"
    )
    wg.chmod(0o755)
    ip.chmod(0o755)
    if shell == "busybox":
        busybox = shutil.which("busybox")
        assert busybox is not None
        for tool in ("awk", "cat"):  # busybox awk, as on small gateways
            (bin_dir / tool).symlink_to(busybox)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def _run_gateway_script(env: dict[str, str]) -> str:
    # The poll sends `sh -c '...'` to the remote login shell; run it the same way here.
    done = subprocess.run(
        ["sh", "-c", gateway_script("wg0", sudo=False)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_gateway_script_streams_the_dump_without_secrets(tmp_path: Path, shell: str) -> None:
    if shell == "busybox" and shutil.which("busybox") is None:
        pytest.skip("busybox not installed")
    rng = random.Random(3)
    peers = [
        f"{_key(rng)}\t{PSK if i % 2 else '(none)'}\t10.0.0.{i}:5{i:04d}\t10.255.{i}.2/32"
        f"\t{1795664000 + i}\t{i * 10}\t{i * 20}\t{'off' if i % 3 else 25}"
        for i in range(1, 200)
    ]
    dump = "\n".join([f"{PRIVATE}\t{PUBLIC}\t51280\toff", *peers]) + "\n"
    out = _run_gateway_script(_fake_tools(tmp_path, dump, 0, shell))
    assert PRIVATE not in out
    assert PSK not in out
    assert "@@wgc-rc:dump:0" in out
    obs = parse_gateway_output("gw", "wg0", out)
    assert obs.interface is not None
    assert obs.link_up is True
    assert len(obs.interface.peers) == len(peers)
    assert [p.has_preshared_key for p in obs.interface.peers] == [
        bool(i % 2) for i in range(1, 200)
    ]


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_gateway_script_keeps_the_exit_status_of_wg(tmp_path: Path, shell: str) -> None:
    if shell == "busybox" and shutil.which("busybox") is None:
        pytest.skip("busybox not installed")
    env = _fake_tools(tmp_path, "Unable to access interface: Operation not permitted\n", 1, shell)
    out = _run_gateway_script(env)
    assert "@@wgc-rc:dump:1" in out
    with pytest.raises(ParseError, match="exit status 1: 'Unable to access interface"):
        parse_gateway_output("gw", "wg0", out)


def test_a_filter_that_fails_reads_as_cut_short() -> None:
    script = sections.section_command_through("dump", "echo secret", "false")
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout
    assert "secret" not in out
    with pytest.raises(ParseError, match="cut short"):
        sections.section_text(sections.split_sections(out), "dump")


@pytest.mark.parametrize(
    "text",
    [
        "@@wgc:a\nx@@wgc:b\n@@wgc-rc:a:0\n",
        "x\n@@wgc@@wgc:a\n@@wgc-rc:a:0",
        "@@wgc:a\r\nfoo@@wgc-rc:a:0\r\n@@wgc:b\n@@wgc@@wgc-rc:b:1",
        "@@wgc",
        "@@wgc:",
        "\n@@wgc:a",
        "noise\n@@wgc:a\n@@wgc-rc:a:0\n@@wgc:b\nout@@wgc@@wgc-rc:b:0\n",
        "@@wgc-rc:a:0@@wgc-rc:a:1\n@@wgc:\n",
    ],
)
def test_marker_scan_equals_the_regex_scan(text: str) -> None:
    def spans(matches: list[object]) -> list[tuple[int, int, dict[str, str | None]]]:
        return [(m.start(), m.end(), m.groupdict()) for m in matches]  # type: ignore[attr-defined]

    expected = spans(list(sections._MARKER.finditer(text)))
    assert spans(list(sections._markers(text))) == expected


def _random_dump(rng: random.Random, count: int, *, ipv6: bool = False) -> str:
    lines = [f"(hidden)\t{PUBLIC}\t51280\t0xca6c"]
    for i in range(count):
        endpoint = rng.choice(["(none)", f"192.0.2.{i % 250}:{rng.randrange(65536)}"])
        if ipv6 and i == count // 2:
            endpoint = "[2001:db8::1]:51820"
        allowed = rng.choice(
            ["(none)", f"10.1.{i % 250}.1/32", f"10.2.0.{i % 250}/32,fd00::{i}/128"]
        )
        lines.append(
            "\t".join(
                [
                    _key(rng),
                    rng.choice(["(none)", "(hidden)"]),
                    endpoint,
                    allowed,
                    str(rng.choice([0, 1795664000 + i])),
                    str(rng.randrange(10**9)),
                    str(rng.randrange(10**9)),
                    rng.choice(["off", "25", "0"]),
                ]
            )
        )
    return "\n".join(lines) + "\n"


def _by_line(text: str) -> object:
    lines = text.splitlines()
    head = wg_dump._interface_fields(lines[0], 4, wg_dump.SOURCE_DUMP, text, 1)
    builder = wg_dump._InterfaceBuilder("wg0", head, 1, wg_dump.SOURCE_DUMP)
    return wg_dump._peers_by_line(builder, lines)


@pytest.mark.parametrize("seed", range(4))
def test_wg_dump_column_pass_equals_the_line_pass(seed: int) -> None:
    text = _random_dump(random.Random(seed), 500)
    assert wg_dump._peers_by_column(text.splitlines()[1:]) is not None
    fast = wg_dump.parse_wg_dump(text, "wg0")
    assert fast == _by_line(text)
    assert repr(fast) == repr(_by_line(text))


def test_wg_dump_unusual_lines_take_the_line_pass() -> None:
    text = _random_dump(random.Random(9), 50, ipv6=True)
    assert wg_dump._peers_by_column(text.splitlines()[1:]) is None
    assert wg_dump.parse_wg_dump(text, "wg0") == _by_line(text)
    for damaged in (
        text.replace("\t25\n", "\t2x\n", 1),
        text.replace("/32", "/32/1", 1),
        text.replace("192.0.2.", "192.0\x00.2.", 1),  # inet_pton raises ValueError on a NUL
        text + "\n",  # a blank line: skipped by the line pass
    ):
        assert wg_dump._peers_by_column(damaged.splitlines()[1:]) is None
        try:
            expected: object = _by_line(damaged)
        except ParseError as error:
            with pytest.raises(ParseError) as raised:
                wg_dump.parse_wg_dump(damaged, "wg0")
            assert str(raised.value) == str(error)  # noqa: PT017 - either outcome is valid
        else:
            assert wg_dump.parse_wg_dump(damaged, "wg0") == expected


def test_columns_build_records_equal_to_the_class() -> None:
    built = Columns(Endpoint, ("address", "port")).build(["10.0.0.1", "::1"], [1, 2])
    assert built == [Endpoint("10.0.0.1", 1), Endpoint("::1", 2)]
    assert hash(built[0]) == hash(Endpoint("10.0.0.1", 1))
    peer = WgPeer(
        "k",
        has_preshared_key=False,
        endpoint=None,
        allowed_ips=("10.0.0.1/32",),
        latest_handshake=0,
        rx_bytes=1,
        tx_bytes=2,
        keepalive=0,
    )
    (copy,) = Columns(
        WgPeer,
        (
            "public_key",
            "has_preshared_key",
            "endpoint",
            "allowed_ips",
            "latest_handshake",
            "rx_bytes",
            "tx_bytes",
            "keepalive",
        ),
    ).build(*([value] for value in (peer.public_key, False, None, ("10.0.0.1/32",), 0, 1, 2, 0)))
    assert copy == peer
    assert repr(copy) == repr(peer)
    with pytest.raises(AttributeError):
        copy.rx_bytes = 5  # type: ignore[misc]
    with pytest.raises(TypeError, match="fields changed"):
        Columns(Endpoint, ("port", "address"))
    with pytest.raises(ValueError, match="different lengths"):
        Columns(Endpoint, ("address", "port")).build(["a"], [1, 2])


@pytest.mark.parametrize("was_enabled", [True, False])
def test_gc_pause_is_shared_by_threads_and_restores_the_state(*, was_enabled: bool) -> None:
    previous = gc.isenabled()
    try:
        gc.enable() if was_enabled else gc.disable()
        inside = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with gc_paused():
                inside.set()
                release.wait(10)

        worker = threading.Thread(target=hold)
        worker.start()
        assert inside.wait(10)
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the other thread is still inside
        release.set()
        worker.join(10)
        assert gc.isenabled() is was_enabled
    finally:
        gc.enable() if previous else gc.disable()


def test_gc_pause_leaves_what_it_made_to_the_oldest_generation() -> None:
    previous = gc.isenabled()
    gc.enable()
    try:
        with gc_paused():
            made = [[i] for i in range(5_000)]  # lists: tracked by the collector
        # Old ones now: no young collection walks them.
        oldest = {id(o) for o in gc.get_objects(generation=2)}
        assert all(id(m) in oldest for m in made)
        cyclic = _Cyclic()
        ref = weakref.ref(cyclic)
        with gc_paused():
            pass
        assert id(cyclic) in {id(o) for o in gc.get_objects(generation=2)}
        del cyclic
        gc.collect()  # a cycle moved to the oldest generation is still collected in full
        assert ref() is None
    finally:
        gc.enable() if previous else gc.disable()


class _Cyclic:
    def __init__(self) -> None:
        self.me = self


def test_wg_dump_reuses_unchanged_lines_and_parses_the_rest() -> None:
    rng = random.Random(11)
    first = _random_dump(rng, 300)
    lines = first.splitlines()
    # The next poll: some counters moved, a peer left, two arrived.
    second_lines = [lines[0], *lines[1:50], *lines[51:]]
    second_lines[10] = second_lines[10].rsplit("\t", 3)[0] + "\t1\t2\t25"
    second = "\n".join([*second_lines, *_random_dump(rng, 2).splitlines()[1:]]) + "\n"
    memo: LineMemo[WgPeer] = LineMemo()
    a = wg_dump.parse_wg_dump(first, "wg0", memo)
    b = wg_dump.parse_wg_dump(second, "wg0", memo)
    assert a == _by_line(first)
    assert b == _by_line(second)
    assert wg_dump.parse_wg_dump(second, "wg0", memo) == b
    assert b.peers[0] is a.peers[0]  # unchanged lines give the very same records
    assert wg_dump.parse_wg_dump(second, "wg0").peers[0] is not b.peers[0]  # no memo: new
    bad = second.replace("\t25\n", "\tx\n", 1)
    with pytest.raises(ParseError, match="keepalive: expected a number"):
        wg_dump.parse_wg_dump(bad, "wg0", memo)


def test_a_gateways_memo_finds_lines_in_its_familys() -> None:
    family: dict[str, LineMemo[WgPeer]] = {}
    family["a"] = LineMemo(family)
    family["b"] = LineMemo(family)
    text = _random_dump(random.Random(12), 50)
    a = wg_dump.parse_wg_dump(text, "wg0", family["a"])
    changed = text.replace("\t25\n", "\t26\n", 1)
    b = wg_dump.parse_wg_dump(changed, "wg0", family["b"])
    assert b == _by_line(changed)
    same = [x is y for x, y in zip(a.peers, b.peers, strict=True)]
    assert same.count(False) == 1  # only the changed line was parsed again
