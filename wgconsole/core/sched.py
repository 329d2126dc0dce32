"""An exact, pure model of the IPVS `sh` (source hashing) scheduler of Linux 6.1.

It mirrors net/netfilter/ipvs/ip_vs_sh.c and include/linux/hash.h as of Linux 6.1:

* 256 buckets (CONFIG_IP_VS_SH_TAB_BITS = 8).
* ``ip_vs_sh_hashkey(addr, port, offset) =
  (offset + hash_32(ntohs(port) + ntohl(addr_fold), 8)) & 255`` where
  ``hash_32(v, 8) = ((v * 0x61C88647) mod 2**32) >> 24`` (the golden-ratio multiply of
  include/linux/hash.h, keeping the TOP 8 bits). This is NOT the older 4.x formula
  ``(addr * 2654435761) & 255`` (low 8 bits); tables computed with that one are wrong here.
* ``addr_fold`` is the IPv4 address, or the XOR of the four 32-bit words of an IPv6 address.
* ``ip_vs_sh_reassign`` fills the table walking the destinations in kernel order (newest
  first), ``weight`` consecutive buckets per dest but at least one, wrapping around.
* ``ip_vs_sh_get`` / ``ip_vs_sh_get_fallback`` pick, including the fallback loop's quirk:
  it probes bucket ``(2 * ihash + offset) & 255`` for offset 0..255, because it adds the
  initial hash twice (once as ``roffset``, once inside ``ip_vs_sh_hashkey``).

Nothing here touches the network or the UI; it only needs the records of `observed`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NamedTuple

from wgconsole.core.records import Endpoint, IpvsService

__all__ = [
    "GOLDEN_RATIO_32",
    "TAB_BITS",
    "TAB_MASK",
    "TAB_SIZE",
    "Move",
    "Pick",
    "ShDest",
    "ShTable",
    "address_fold",
    "bucket_of",
    "build_table",
    "hash_32",
    "moved_clients",
    "with_added",
    "with_readded",
    "with_removed",
    "with_weights",
]

TAB_BITS = 8
TAB_SIZE = 1 << TAB_BITS
TAB_MASK = TAB_SIZE - 1
GOLDEN_RATIO_32 = 0x61C88647
_U32 = 0xFFFFFFFF
# ip_vs_ctl.c rejects weights that are negative as a C int, so a u32 above INT_MAX
# never reaches the scheduler.
_MAX_WEIGHT = 0x7FFFFFFF
# ip_vs_sh_get_port only reads ports for these; any other protocol hashes with port 0.
_PORTED_PROTOCOLS = frozenset({"tcp", "udp", "sctp"})


def hash_32(value: int, bits: int = TAB_BITS) -> int:
    """Linux's generic ``hash_32``: golden-ratio multiply in u32, keep the top ``bits`` bits."""
    return ((value * GOLDEN_RATIO_32) & _U32) >> (32 - bits)


@lru_cache(maxsize=65536)
def address_fold(address: str) -> int:
    """``ntohl(addr_fold)`` for an address in text form (IPv4 dotted quad or IPv6).

    For IPv6 the kernel XORs the four big-endian words and byte-swaps the result; XOR
    commutes with the byte swap, so this is the XOR of the words read big-endian.
    """
    # inet_pton rather than ipaddress: this is on the per-client hot path, and unlike
    # inet_aton it refuses shorthand forms such as "10.1" that no kernel record would show.
    try:
        if ":" in address:
            raw = socket.inet_pton(socket.AF_INET6, address)
            words = int.from_bytes(raw, "big")
            return (words ^ (words >> 32) ^ (words >> 64) ^ (words >> 96)) & _U32
        return int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
    except OSError as exc:
        raise ValueError(f"not an IP address: {address!r}") from exc


def bucket_of(address: str, port: int = 0, offset: int = 0) -> int:
    """``ip_vs_sh_hashkey``: the bucket of a source address (and port, if hashed)."""
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port out of range: {port}")
    # The C sum is u32 and may wrap before the multiply.
    return (offset + hash_32((port + address_fold(address)) & _U32)) & TAB_MASK


@dataclass(frozen=True, slots=True)
class ShDest:
    """A destination as the scheduler sees it: identity, weight and the overload flag."""

    key: Endpoint
    weight: int
    overloaded: bool = False  # IP_VS_DEST_F_OVERLOAD, set by the kernel from u_threshold

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= _MAX_WEIGHT:
            raise ValueError(f"weight out of the kernel's range 0..{_MAX_WEIGHT}: {self.weight}")

    @property
    def available(self) -> bool:
        """The negation of the kernel's ``is_unavailable``."""
        return self.weight > 0 and not self.overloaded


def build_table(dests: Sequence[ShDest]) -> tuple[int | None, ...]:
    """``ip_vs_sh_reassign``: for each bucket, the index into ``dests`` that owns it."""
    if not dests:
        return (None,) * TAB_SIZE
    table: list[int | None] = []
    index = 0
    d_count = 0
    for _ in range(TAB_SIZE):
        table.append(index)
        d_count += 1
        # `>=` makes a weight-0 dest take one bucket, like the kernel's ++d_count >= weight.
        if d_count >= dests[index].weight:
            index = (index + 1) % len(dests)
            d_count = 0
    return tuple(table)


@dataclass(frozen=True, slots=True)
class Pick:
    """Where the kernel would send a new connection.

    ``bucket`` is the initial hash bucket (ihash); ``dest`` None means the kernel drops it.
    """

    bucket: int
    dest: Endpoint | None

    @property
    def dropped(self) -> bool:
        return self.dest is None


class ShTable:
    """One ``sh`` service: its table, built once, and what each bucket resolves to."""

    __slots__ = ("_resolved", "dests", "fallback", "port_hashing", "table")

    dests: tuple[ShDest, ...]
    fallback: bool
    port_hashing: bool
    table: tuple[int | None, ...]
    _resolved: tuple[Endpoint | None, ...]

    def __init__(self, dests: Sequence[ShDest], *, fallback: bool, port_hashing: bool) -> None:
        self.dests = tuple(dests)
        keys = [d.key for d in self.dests]
        if len(set(keys)) != len(keys):
            # The kernel refuses a duplicate dest (EEXIST); share() would also be ambiguous.
            raise ValueError("duplicate destination in the dest list")
        self.fallback = fallback
        self.port_hashing = port_hashing
        self.table = build_table(self.dests)
        # The outcome depends only on ihash, so resolving all 256 once makes pick() a lookup.
        self._resolved = tuple(self._resolve(ihash) for ihash in range(TAB_SIZE))

    @classmethod
    def from_service(
        cls, svc: IpvsService, overloaded: frozenset[Endpoint] = frozenset()
    ) -> ShTable:
        """Model a service as observed; ``svc.dests`` is already in kernel order.

        ``overloaded`` names the dests the kernel currently flags as overloaded; neither
        netlink nor /proc shows that flag, so the caller has to infer it (u_threshold).
        """
        if svc.scheduler != "sh":
            raise ValueError(f"service {svc.vip} uses scheduler {svc.scheduler!r}, not 'sh'")
        dests = [ShDest(d.endpoint, d.weight, d.endpoint in overloaded) for d in svc.dests]
        port_hashing = svc.sh_port and svc.protocol.lower() in _PORTED_PROTOCOLS
        return cls(dests, fallback=svc.sh_fallback, port_hashing=port_hashing)

    def with_dests(self, dests: Sequence[ShDest]) -> ShTable:
        """The same service with another dest list (for what-if previews)."""
        return ShTable(dests, fallback=self.fallback, port_hashing=self.port_hashing)

    def _resolve(self, ihash: int) -> Endpoint | None:
        index = self.table[ihash]
        if index is None:
            return None
        if self.dests[index].available:
            return self.dests[index].key
        if not self.fallback:
            return None
        # Literal copy of the kernel loop: roffset = offset + ihash, then hashkey adds
        # ihash again, so probing starts at 2*ihash, not at ihash.
        for offset in range(TAB_SIZE):
            roffset = (offset + ihash) % TAB_SIZE
            probe = (roffset + ihash) & TAB_MASK
            candidate = self.table[probe]
            # The table is either all None or all filled; None was ruled out above.
            assert candidate is not None
            if self.dests[candidate].available:
                return self.dests[candidate].key
        return None

    def bucket(self, address: str, port: int = 0) -> int:
        """The initial bucket (ihash) of a client; ``port`` is ignored without sh-port."""
        return bucket_of(address, port if self.port_hashing else 0)

    def pick(self, address: str, port: int = 0) -> Pick:
        """The dest a NEW connection from ``address:port`` gets (existing ones stay put)."""
        ihash = self.bucket(address, port)
        return Pick(ihash, self._resolved[ihash])

    def owner(self, bucket: int) -> Endpoint | None:
        """The dest stored in a bucket, available or not."""
        index = self.table[bucket]
        return None if index is None else self.dests[index].key

    def resolved(self, bucket: int) -> Endpoint | None:
        """Where a client hashing to ``bucket`` ends up, after availability and fallback."""
        return self._resolved[bucket]

    def share(self) -> dict[Endpoint, int]:
        """Buckets owned per dest, in kernel order; starved dests appear with 0."""
        counts = dict.fromkeys((d.key for d in self.dests), 0)
        for index in self.table:
            if index is not None:
                counts[self.dests[index].key] += 1
        return counts

    def effective_share(self) -> dict[Endpoint | None, int]:
        """Buckets whose new clients each dest actually receives; key None = dropped."""
        counts: dict[Endpoint | None, int] = dict.fromkeys((d.key for d in self.dests), 0)
        for dest in self._resolved:
            counts[dest] = counts.get(dest, 0) + 1
        return counts

    def __repr__(self) -> str:
        return (
            f"ShTable(dests={list(self.dests)!r}, fallback={self.fallback}, "
            f"port_hashing={self.port_hashing})"
        )


# What-if helpers. Each mirrors what one ipvsadm/netlink command does to the kernel's
# dest list, including the order, because the order decides the whole table.


def _index_of(dests: Sequence[ShDest], key: Endpoint) -> int:
    for i, dest in enumerate(dests):
        if dest.key == key:
            return i
    raise ValueError(f"no such destination: {key}")


def with_weights(dests: Sequence[ShDest], weights: Mapping[Endpoint, int]) -> list[ShDest]:
    """Edit weights (``ipvsadm -e``): the list order is unchanged.

    The overload flag is kept as is, though the kernel may clear it on an edit that
    changes u_threshold; the caller knows the thresholds, this model does not.
    """
    for key in weights:
        _index_of(dests, key)
    return [replace(d, weight=weights[d.key]) if d.key in weights else d for d in dests]


def with_removed(dests: Sequence[ShDest], key: Endpoint) -> list[ShDest]:
    """Delete a dest (``ipvsadm -d``)."""
    i = _index_of(dests, key)
    return [*dests[:i], *dests[i + 1 :]]


def with_added(dests: Sequence[ShDest], dest: ShDest) -> list[ShDest]:
    """Add a dest (``ipvsadm -a``): ``list_add_rcu`` puts it at the head."""
    if any(d.key == dest.key for d in dests):
        raise ValueError(f"destination already exists: {dest.key}")
    return [dest, *dests]


def with_readded(dests: Sequence[ShDest], key: Endpoint, weight: int) -> list[ShDest]:
    """Delete then re-add a dest: it moves to the head, even when revived from the trash.

    The re-added dest is modelled as not overloaded.
    """
    return with_added(with_removed(dests, key), ShDest(key, weight))


class Move(NamedTuple):
    address: str
    port: int
    before: Endpoint | None
    after: Endpoint | None


def moved_clients(
    before: ShTable, after: ShTable, addresses: Iterable[tuple[str, int]]
) -> list[Move]:
    """Clients whose NEW-connection pick differs between two models (None = dropped).

    This is about scheduling only: an existing IPVS entry keeps its dest until it expires
    or its dest is deleted (expire_nodest_conn), whatever the table says.
    """
    moves: list[Move] = []
    for address, port in addresses:
        old = before.pick(address, port).dest
        new = after.pick(address, port).dest
        if old != new:
            moves.append(Move(address, port, old, new))
    return moves
