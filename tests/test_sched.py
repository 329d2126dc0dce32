"""Tests for the Linux 6.1 IPVS `sh` model.

Known values are either spelled out from the formula here or were produced by a literal C
transliteration of 6.1's ip_vs_sh.c (u32 arithmetic, real ntohl/inet_pton, a list_head
filled by head insertion); the model agreed with it on 24,000 random picks.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wgconsole.core.records import Endpoint, IpvsDest, IpvsService, ServiceFlag
from wgconsole.core.sched import (
    TAB_SIZE,
    Move,
    Pick,
    ShDest,
    ShTable,
    address_fold,
    bucket_of,
    build_table,
    hash_32,
    moved_clients,
    with_added,
    with_readded,
    with_removed,
    with_weights,
)

GW1 = Endpoint("10.211.55.118", 51280)
GW2 = Endpoint("10.211.55.119", 51280)
GW3 = Endpoint("10.211.55.120", 51280)


def ep(n: int) -> Endpoint:
    return Endpoint(f"10.9.0.{n}", 51280)


def clients(count: int) -> list[tuple[str, int]]:
    return [
        (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 1024 + i % 60000) for i in range(count)
    ]


def address_in_bucket(bucket: int) -> str:
    for i in range(1 << 16):
        address = f"10.0.{i >> 8}.{i & 255}"
        if bucket_of(address) == bucket:
            return address
    raise AssertionError(f"no address found for bucket {bucket}")


# --- hashing ------------------------------------------------------------------------------


def test_hash_32_by_hand_for_10_0_0_1() -> None:
    addr = 0x0A000001  # 10.0.0.1 as a host-order u32 = 167772161
    product = addr * 0x61C88647
    assert product == 275235519473419847
    assert product % 2**32 == 0x27C88647
    assert (product % 2**32) >> 24 == 0x27 == 39
    assert hash_32(addr) == 39
    assert bucket_of("10.0.0.1") == 39


def test_not_the_4x_formula() -> None:
    # The 4.x scheduler would have used the low byte of addr * 2654435761.
    assert (0x0A000001 * 2654435761) & 255 == 177
    assert bucket_of("10.0.0.1") != 177


def test_hash_32_other_widths() -> None:
    assert hash_32(0x0A000001, 32) == 0x27C88647
    assert hash_32(0x0A000001, 16) == 0x27C8


@pytest.mark.parametrize(
    ("address", "port", "bucket"),
    [
        # From the C transliteration of the 6.1 source.
        ("10.0.0.2", 0, 137),
        ("10.255.0.2", 0, 74),
        ("10.255.0.3", 0, 172),
        ("10.0.0.1", 51280, 95),
        ("2001:db8::1", 0, 63),
        ("2001:db8::1", 443, 117),
        ("::1", 0, 97),
    ],
)
def test_bucket_golden_values(address: str, port: int, bucket: int) -> None:
    assert bucket_of(address, port) == bucket


def test_port_is_added_before_hashing() -> None:
    value = (0x0A000001 + 51280) % 2**32
    assert ((value * 0x61C88647) % 2**32) >> 24 == 95
    assert bucket_of("10.0.0.1", 51280) == 95


def test_port_plus_address_wraps_in_u32() -> None:
    # 0xFFFFFFFF + 1 wraps to 0, and hash_32(0) == 0.
    assert bucket_of("255.255.255.255", 1) == 0
    assert bucket_of("255.255.255.255", 0) == hash_32(0xFFFFFFFF)


def test_offset_is_added_modulo_256() -> None:
    assert bucket_of("10.0.0.1", 0, 1) == 40
    assert bucket_of("10.0.0.1", 0, 256 - 39) == 0
    assert bucket_of("10.0.0.1", 0, 300) == (39 + 300) & 255


def test_ipv6_fold_is_xor_of_big_endian_words() -> None:
    assert address_fold("2001:db8::1") == 0x20010DB8 ^ 0 ^ 0 ^ 1 == 0x20010DB9
    assert ((0x20010DB9 * 0x61C88647) % 2**32) >> 24 == 63
    assert address_fold("1:2:3:4:5:6:7:8") == 0x00010002 ^ 0x00030004 ^ 0x00050006 ^ 0x00070008
    # Anything that folds to the IPv4 value lands in the same bucket.
    assert address_fold("::10.0.0.1") == 0x0A000001
    assert bucket_of("::10.0.0.1") == bucket_of("10.0.0.1") == 39
    assert bucket_of("a:b::a:b") == hash_32(0)


@pytest.mark.parametrize("bad", ["10.1", "10.0.0.256", "host.example", "", "1::2::3"])
def test_bad_addresses_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        bucket_of(bad)


@pytest.mark.parametrize("port", [-1, 65536])
def test_bad_ports_are_rejected(port: int) -> None:
    with pytest.raises(ValueError, match="port out of range"):
        bucket_of("10.0.0.1", port)


# --- table fill (ip_vs_sh_reassign) -------------------------------------------------------


def test_equal_weights_alternate() -> None:
    table = build_table([ShDest(GW1, 1), ShDest(GW2, 1)])
    assert table == (0, 1) * 128


def test_weights_2_1() -> None:
    table = build_table([ShDest(GW1, 2), ShDest(GW2, 1)])
    assert table[:9] == (0, 0, 1, 0, 0, 1, 0, 0, 1)
    assert table == ((0, 0, 1) * 86)[:TAB_SIZE]


def test_weight_zero_takes_one_bucket_per_round() -> None:
    assert build_table([ShDest(GW1, 0), ShDest(GW2, 1)]) == (0, 1) * 128
    table = build_table([ShDest(GW1, 0), ShDest(GW2, 3)])
    assert table == (0, 1, 1, 1) * 64
    assert table.count(0) == 64


def test_large_weight_saturates() -> None:
    assert build_table([ShDest(GW1, 300), ShDest(GW2, 1)]) == (0,) * TAB_SIZE
    assert build_table([ShDest(GW1, 255), ShDest(GW2, 1)]) == (0,) * 255 + (1,)
    assert build_table([ShDest(GW2, 1), ShDest(GW1, 300)]) == (0,) + (1,) * 255


def test_single_dest_fills_everything() -> None:
    assert build_table([ShDest(GW1, 0)]) == (0,) * TAB_SIZE


def test_empty_dest_list() -> None:
    assert build_table([]) == (None,) * TAB_SIZE
    model = ShTable([], fallback=True, port_hashing=False)
    assert all(model.pick(a, p) == Pick(bucket_of(a), None) for a, p in clients(300))
    assert model.share() == {}
    assert model.effective_share() == {None: TAB_SIZE}


def test_share_counts_buckets_and_shows_starved_dests() -> None:
    model = ShTable([ShDest(GW1, 2), ShDest(GW2, 1)], fallback=False, port_hashing=False)
    assert model.share() == {GW1: 171, GW2: 85}
    starved = ShTable([ShDest(GW1, 256), ShDest(GW2, 1)], fallback=False, port_hashing=False)
    assert starved.share() == {GW1: 256, GW2: 0}
    assert list(starved.share()) == [GW1, GW2]


def test_weight_range() -> None:
    with pytest.raises(ValueError, match="weight out of the kernel's range"):
        ShDest(GW1, -1)
    with pytest.raises(ValueError, match="weight out of the kernel's range"):
        ShDest(GW1, 2**31)
    ShDest(GW1, 2**31 - 1)


def test_duplicate_dests_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate destination"):
        ShTable([ShDest(GW1, 1), ShDest(GW1, 2)], fallback=False, port_hashing=False)


# --- picking ------------------------------------------------------------------------------


def test_pick_reports_initial_bucket_and_owner() -> None:
    model = ShTable([ShDest(GW1, 1), ShDest(GW2, 1)], fallback=False, port_hashing=False)
    # 10.0.0.1 hashes to bucket 39, odd, so the second dest of an alternating table.
    assert model.pick("10.0.0.1") == Pick(39, GW2)
    assert model.pick("10.255.0.2") == Pick(74, GW1)


def test_weight_zero_without_fallback_drops_exactly_its_buckets() -> None:
    model = ShTable([ShDest(GW1, 0), ShDest(GW2, 1)], fallback=False, port_hashing=False)
    for address, port in clients(2000):
        pick = model.pick(address, port)
        if model.owner(pick.bucket) == GW1:
            assert pick.dest is None
            assert pick.dropped
        else:
            assert pick.dest == GW2
    assert model.effective_share() == {GW1: 0, GW2: 128, None: 128}


def test_overloaded_is_unavailable() -> None:
    model = ShTable(
        [ShDest(GW1, 1, overloaded=True), ShDest(GW2, 1)], fallback=False, port_hashing=False
    )
    assert model.pick("10.255.0.2") == Pick(74, None)
    assert model.pick("10.0.0.1") == Pick(39, GW2)


def _reference_fallback(model: ShTable, ihash: int) -> Endpoint | None:
    available = {d.key for d in model.dests if d.available}
    for offset in range(TAB_SIZE):
        owner = model.owner((2 * ihash + offset) & 255)
        if owner in available:
            return owner
    return None


def test_fallback_probes_from_twice_the_hash() -> None:
    # Table A,B,C,A,B,C,... with A unavailable. Probing from ihash would always find B
    # next; the kernel probes from 2*ihash, so for ihash 129 it starts at bucket 2 (C).
    model = ShTable(
        [ShDest(ep(1), 0), ShDest(ep(2), 1), ShDest(ep(3), 1)], fallback=True, port_hashing=False
    )
    assert [model.owner(b) for b in (0, 1, 2, 129, 130)] == [ep(1), ep(2), ep(3), ep(1), ep(2)]
    address = address_in_bucket(129)
    assert model.pick(address) == Pick(129, ep(3))
    assert model.pick(address_in_bucket(3)) == Pick(3, ep(2))  # 6 is A, 7 is B
    for ihash in range(TAB_SIZE):
        owner = model.owner(ihash)
        expected = owner if owner != ep(1) else _reference_fallback(model, ihash)
        assert model.resolved(ihash) == expected


def test_fallback_takes_every_client_to_the_remaining_gateway() -> None:
    model = ShTable([ShDest(GW1, 0), ShDest(GW2, 1)], fallback=True, port_hashing=False)
    assert {model.pick(a, p).dest for a, p in clients(500)} == {GW2}
    assert model.effective_share() == {GW1: 0, GW2: TAB_SIZE}


def test_all_dests_unavailable_with_fallback_drops() -> None:
    model = ShTable(
        [ShDest(GW1, 0), ShDest(GW2, 0), ShDest(GW3, 1, overloaded=True)],
        fallback=True,
        port_hashing=False,
    )
    assert all(model.pick(a, p).dest is None for a, p in clients(300))


def test_fallback_cannot_reach_a_starved_dest() -> None:
    # GW2 is available but owns no bucket, so even fallback finds nothing.
    model = ShTable([ShDest(GW1, 256), ShDest(GW2, 1)], fallback=True, port_hashing=False)
    assert model.pick("10.0.0.1").dest == GW1
    drained = model.with_dests(with_weights(model.dests, {GW1: 0}))
    assert drained.share() == {GW1: 128, GW2: 128}  # weight 0 no longer saturates
    overloaded = ShTable(
        [ShDest(GW1, 256, overloaded=True), ShDest(GW2, 1)], fallback=True, port_hashing=False
    )
    assert overloaded.pick("10.0.0.1").dest is None


def test_sh_port_changes_the_bucket_with_the_port() -> None:
    dests = [ShDest(GW1, 1), ShDest(GW2, 1)]
    hashed = ShTable(dests, fallback=False, port_hashing=True)
    plain = ShTable(dests, fallback=False, port_hashing=False)
    assert hashed.pick("10.0.0.1", 0).bucket == 39
    assert hashed.pick("10.0.0.1", 51280).bucket == 95
    assert {hashed.pick("10.0.0.1", p).bucket for p in range(1000, 1020)} != {39}
    assert {plain.pick("10.0.0.1", p).bucket for p in range(1000, 1020)} == {39}
    assert plain.bucket("10.0.0.1", 51280) == 39


# --- from_service ---------------------------------------------------------------------------


def _service(
    flags: int = ServiceFlag.HASHED, protocol: str = "udp", scheduler: str = "sh"
) -> IpvsService:
    return IpvsService(
        protocol=protocol,
        vip=Endpoint("172.16.0.1", 51280),
        scheduler=scheduler,
        flags=flags,
        dests=(
            IpvsDest(GW2, 1, "masq", 0, 1),
            IpvsDest(GW1, 0, "masq", 0, 1),
        ),
    )


def test_from_service_keeps_kernel_order_and_flags() -> None:
    model = ShTable.from_service(_service())
    assert [d.key for d in model.dests] == [GW2, GW1]
    assert [d.weight for d in model.dests] == [1, 0]
    assert not model.fallback
    assert not model.port_hashing
    assert model.owner(0) == GW2

    flagged = ShTable.from_service(
        _service(ServiceFlag.HASHED | ServiceFlag.SH_FALLBACK | ServiceFlag.SH_PORT)
    )
    assert flagged.fallback
    assert flagged.port_hashing


def test_from_service_port_hashing_needs_a_ported_protocol() -> None:
    flags = ServiceFlag.HASHED | ServiceFlag.SH_PORT
    assert ShTable.from_service(_service(flags, protocol="tcp")).port_hashing
    assert ShTable.from_service(_service(flags, protocol="sctp")).port_hashing
    assert not ShTable.from_service(_service(flags, protocol="esp")).port_hashing


def test_from_service_overloaded() -> None:
    model = ShTable.from_service(_service(), overloaded=frozenset({GW2}))
    assert model.dests[0].overloaded
    assert not model.dests[1].overloaded
    assert all(model.pick(a, p).dest is None for a, p in clients(200))


def test_from_service_rejects_other_schedulers() -> None:
    with pytest.raises(ValueError, match="uses scheduler 'rr', not 'sh'"):
        ShTable.from_service(_service(scheduler="rr"))


# --- what-if helpers ------------------------------------------------------------------------


def test_with_weights_keeps_order() -> None:
    dests = [ShDest(GW1, 1), ShDest(GW2, 1, overloaded=True)]
    edited = with_weights(dests, {GW1: 0, GW2: 5})
    assert edited == [ShDest(GW1, 0), ShDest(GW2, 5, overloaded=True)]
    assert dests == [ShDest(GW1, 1), ShDest(GW2, 1, overloaded=True)]
    with pytest.raises(ValueError, match="no such destination"):
        with_weights(dests, {GW3: 1})


def test_with_removed_and_added() -> None:
    dests = [ShDest(GW1, 1), ShDest(GW2, 1)]
    assert with_removed(dests, GW1) == [ShDest(GW2, 1)]
    assert with_added(dests, ShDest(GW3, 2)) == [ShDest(GW3, 2), *dests]
    with pytest.raises(ValueError, match="no such destination"):
        with_removed(dests, GW3)
    with pytest.raises(ValueError, match="destination already exists"):
        with_added(dests, ShDest(GW1, 1))


def test_readd_moves_dest_to_head_and_changes_table() -> None:
    dests = [ShDest(GW2, 1), ShDest(GW1, 1)]
    before = ShTable(dests, fallback=False, port_hashing=False)
    readded = with_readded(dests, GW1, 1)
    assert readded == [ShDest(GW1, 1), ShDest(GW2, 1)]
    after = before.with_dests(readded)
    assert before.owner(0) == GW2
    assert after.owner(0) == GW1
    # Same weights, yet every bucket changed owner: the order alone decides the table.
    assert all(before.owner(b) != after.owner(b) for b in range(TAB_SIZE))
    # An edit to the same weights would have changed nothing.
    assert before.with_dests(with_weights(dests, {GW1: 1})).table == before.table
    with pytest.raises(ValueError, match="no such destination"):
        with_readded(dests, GW3, 1)


def test_readd_with_weight_zero_drain() -> None:
    # The domain's drain: delete + re-add gateway-01 with weight 0. It goes to the head.
    dests = [ShDest(GW2, 1), ShDest(GW1, 1)]
    after = with_readded(dests, GW1, 0)
    assert after == [ShDest(GW1, 0), ShDest(GW2, 1)]


def test_moved_clients_for_a_weight_zero_drain() -> None:
    dests = [ShDest(GW2, 1), ShDest(GW1, 1)]
    before = ShTable(dests, fallback=False, port_hashing=False)
    population = clients(400)
    on_gw1 = [(a, p) for a, p in population if before.pick(a, p).dest == GW1]

    dropped = moved_clients(before, before.with_dests(with_weights(dests, {GW1: 0})), population)
    assert [(m.address, m.port) for m in dropped] == on_gw1
    assert all(m.before == GW1 and m.after is None for m in dropped)

    fallback = ShTable(dests, fallback=True, port_hashing=False)
    drained = fallback.with_dests(with_weights(dests, {GW1: 0}))
    moves = moved_clients(fallback, drained, population)
    assert moves
    assert all(m == Move(m.address, m.port, GW1, GW2) for m in moves)
    assert len(moves) == len(on_gw1)


def test_moved_clients_empty_when_nothing_changes() -> None:
    model = ShTable([ShDest(GW1, 1), ShDest(GW2, 1)], fallback=False, port_hashing=False)
    assert moved_clients(model, model.with_dests(model.dests), clients(100)) == []


# --- a literal reference implementation, compared on random inputs -------------------------


def _kernel_reference(
    dests: Sequence[ShDest], *, fallback: bool, address: str, port: int
) -> tuple[int, Endpoint | None]:
    """Straight-line copy of 6.1's reassign + get/get_fallback, with a circular list."""
    buckets: list[ShDest | None] = []
    nodes: list[ShDest | None] = [None, *dests]  # index 0 plays the list head
    p, d_count = 0, 0
    for _ in range(256):
        if not dests:
            buckets.append(None)
            continue
        if p == 0:
            p = 1
        dest = nodes[p]
        assert dest is not None
        buckets.append(dest)
        d_count += 1
        if d_count >= dest.weight:
            p, d_count = (p + 1) % len(nodes), 0

    def hashkey(offset: int) -> int:
        return (
            offset + ((((port + address_fold(address)) % 2**32) * 0x61C88647) % 2**32 >> 24)
        ) % 256

    def unavailable(dest: ShDest | None) -> bool:
        assert dest is not None
        return dest.weight <= 0 or dest.overloaded

    ihash = hashkey(0)
    dest = buckets[ihash]
    if dest is None:
        return ihash, None
    if not unavailable(dest):
        return ihash, dest.key
    if not fallback:
        return ihash, None
    for offset in range(256):
        roffset = (offset + ihash) % 256
        dest = buckets[hashkey(roffset)]
        if unavailable(dest):
            continue
        assert dest is not None
        return ihash, dest.key
    return ihash, None


_dest_lists = st.lists(
    st.tuples(st.sampled_from([0, 0, 1, 1, 2, 3, 7, 128, 255, 256, 1000]), st.booleans()),
    max_size=6,
).map(lambda specs: [ShDest(ep(i), w, ov) for i, (w, ov) in enumerate(specs)])
_addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))),
    st.integers(0, 2**128 - 1).map(
        lambda n: ":".join(f"{(n >> s) & 0xFFFF:x}" for s in range(112, -1, -16))
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    dests=_dest_lists,
    fallback=st.booleans(),
    port_hashing=st.booleans(),
    queries=st.lists(st.tuples(_addresses, st.integers(0, 65535)), min_size=1, max_size=20),
)
def test_matches_literal_kernel_reference(
    dests: list[ShDest], *, fallback: bool, port_hashing: bool, queries: list[tuple[str, int]]
) -> None:
    model = ShTable(dests, fallback=fallback, port_hashing=port_hashing)
    for address, port in queries:
        effective = port if port_hashing else 0
        bucket, dest = _kernel_reference(dests, fallback=fallback, address=address, port=effective)
        assert model.pick(address, port) == Pick(bucket, dest)


# --- practical properties -----------------------------------------------------------------


def test_ten_thousand_picks_with_a_weight_0_gateway_all_go_to_the_other() -> None:
    # Speed is the scale benchmark's to measure (`make bench`), not a test's.
    model = ShTable([ShDest(GW1, 0), ShDest(GW2, 1)], fallback=True, port_hashing=True)
    picks = [model.pick(a, p) for a, p in clients(10_000)]
    assert len(picks) == 10_000
    assert {pick.dest for pick in picks} == {GW2}


def test_does_not_import_textual() -> None:
    code = "import sys, wgconsole.core.sched; sys.exit('textual' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0
