"""WireGuard's first handshake message, made as a real initiator makes it, and the answer read.

A gateway answers a handshake initiation only when it decrypts it: the message names the
gateway's static public key (mac1, and the Noise_IKpsk2 pattern's first DH), carries the
initiator's public key encrypted, and a TAI64N timestamp newer than the last one the gateway
accepted from that peer. A response is then proof that the gateway's WireGuard itself is up,
holds the key the inventory's clients use, and knows the prober as a peer. This module only
builds bytes and reads bytes (no socket); the protocol is the one in docs/domain/wireguard.md.

The prober's private key lives in a `PrivateKey` (never shown); the ephemeral key and the
chaining state live in the `Initiation` only as long as its answer is awaited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
from dataclasses import dataclass, field
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from wgconsole.core.keys import PrivateKey
from wgconsole.core.trace import MAC1_END

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"

INITIATION = 1
RESPONSE = 2
COOKIE_REPLY = 3
INITIATION_SIZE = 148
RESPONSE_SIZE = 92
COOKIE_REPLY_SIZE = 64
# TAI64N's label for the seconds field: 2**62, plus the 10 s TAI-UTC offset WireGuard uses.
TAI64_BASE = 0x400000000000000A

Answer = Literal["response", "cookie"]


def _hash(data: bytes) -> bytes:
    return hashlib.blake2s(data).digest()


def _mac(key: bytes, data: bytes) -> bytes:
    return hashlib.blake2s(data, digest_size=16, key=key).digest()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.blake2s).digest()


def _kdf(key: bytes, data: bytes, n: int) -> list[bytes]:
    """HKDF with HMAC-BLAKE2s, n outputs of 32 bytes (the protocol's KDF1/2/3)."""
    prk = _hmac(key, data)
    out: list[bytes] = []
    last = b""
    for i in range(1, n + 1):
        last = _hmac(prk, last + bytes([i]))
        out.append(last)
    return out


def _aead(key: bytes, plain: bytes, auth: bytes) -> bytes:
    return ChaCha20Poly1305(key).encrypt(b"\0" * 12, plain, auth)  # counter 0, always


def _open(key: bytes, sealed: bytes, auth: bytes) -> bytes:
    return ChaCha20Poly1305(key).decrypt(b"\0" * 12, sealed, auth)


def _dh(private: X25519PrivateKey, public: bytes) -> bytes:
    return private.exchange(X25519PublicKey.from_public_bytes(public))


def _public(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


class ProbeKey:
    """The prober's static key pair. The private half never shows itself (no repr, no str)."""

    __slots__ = ("__private", "public")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise ValueError("a WireGuard private key is 32 bytes")
        self.__private = X25519PrivateKey.from_private_bytes(raw)
        self.public = _public(self.__private)

    @classmethod
    def from_private(cls, key: PrivateKey) -> ProbeKey:
        """The pair of a key read from a key file (core.keys keeps it hidden until here)."""
        return cls(base64.b64decode(key.reveal()))

    def dh(self, public: bytes) -> bytes:
        return _dh(self.__private, public)

    def __repr__(self) -> str:
        return "ProbeKey(<hidden>)"

    __str__ = __repr__


_last_stamp = [0]


def tai64n(now_ns: int | None = None) -> bytes:
    """A TAI64N timestamp strictly newer than any this process made before: a gateway drops
    an initiation whose timestamp is not newer than the last one it accepted from the peer."""
    ns = time.time_ns() if now_ns is None else now_ns
    ns = max(ns, _last_stamp[0] + 1)
    _last_stamp[0] = ns
    seconds, nanos = divmod(ns, 1_000_000_000)
    return struct.pack(">QI", TAI64_BASE + seconds, nanos)


@dataclass(frozen=True)
class Initiation:
    """One handshake initiation and what reading its answer needs."""

    message: bytes
    sender: int  # the index a response must carry as its receiver
    server: bytes  # the gateway's static public key
    chaining: bytes = field(repr=False)
    hash: bytes = field(repr=False)
    ephemeral: X25519PrivateKey = field(repr=False)


def initiation(
    key: ProbeKey, server_public: bytes, sender: int, *, stamp: bytes | None = None
) -> Initiation:
    """The first message of a handshake from `key` to the gateway whose public key is
    `server_public`, with sender index `sender`; mac2 is zero (no cookie)."""
    if len(server_public) != 32:
        raise ValueError("a WireGuard public key is 32 bytes")
    chaining = _hash(CONSTRUCTION)
    h = _hash(_hash(chaining + IDENTIFIER) + server_public)
    ephemeral = X25519PrivateKey.generate()
    e_pub = _public(ephemeral)
    (chaining,) = _kdf(chaining, e_pub, 1)
    h = _hash(h + e_pub)
    chaining, k = _kdf(chaining, _dh(ephemeral, server_public), 2)
    static = _aead(k, key.public, h)
    h = _hash(h + static)
    chaining, k = _kdf(chaining, key.dh(server_public), 2)
    timestamp = _aead(k, stamp if stamp is not None else tai64n(), h)
    h = _hash(h + timestamp)
    body = struct.pack("<I", INITIATION) + struct.pack("<I", sender) + e_pub + static + timestamp
    mac1 = _mac(_hash(LABEL_MAC1 + server_public), body)
    message = body + mac1 + bytes(16)
    return Initiation(message, sender, server_public, chaining, h, ephemeral)


# An initiation's bytes before mac1: type, sender, ephemeral, static, timestamp (116).
MAC1_START = MAC1_END - 16


def mac1_matches(head: bytes, server_public: bytes) -> bool:
    """Whether an initiation (its first MAC1_END bytes are enough) carries a mac1 made for the
    responder whose static public key is `server_public`: mac1 is keyed with
    BLAKE2s("mac1----" || that key) only, so a captured initiation can be checked with public
    keys alone (`wgconsole trace`: is the client's config naming the gateways' key)."""
    if len(head) < MAC1_END or len(server_public) != 32:
        return False
    expected = _mac(_hash(LABEL_MAC1 + server_public), head[:MAC1_START])
    return hmac.compare_digest(head[MAC1_START:MAC1_END], expected)


class NotAnAnswer(ValueError):
    """A datagram that is not this initiation's answer (says why, never quoting the bytes)."""


def read_answer(
    init: Initiation, key: ProbeKey, datagram: bytes, preshared: bytes = bytes(32)
) -> Answer:
    """What `datagram` says about `init`: "response" for a handshake response that completes
    the handshake (receiver index, mac1 and the empty payload's tag all right), "cookie" for a
    cookie reply to it (the gateway is alive but under load). Anything else raises NotAnAnswer."""
    if len(datagram) < 4:
        raise NotAnAnswer("a datagram too short for WireGuard")
    kind = struct.unpack_from("<I", datagram)[0]
    if kind == COOKIE_REPLY and len(datagram) == COOKIE_REPLY_SIZE:
        if struct.unpack_from("<I", datagram, 4)[0] != init.sender:
            raise NotAnAnswer("a cookie reply to another handshake")
        return "cookie"
    if kind != RESPONSE or len(datagram) != RESPONSE_SIZE:
        raise NotAnAnswer("not a WireGuard handshake response")
    receiver = struct.unpack_from("<I", datagram, 8)[0]
    if receiver != init.sender:
        raise NotAnAnswer("a handshake response to another initiation")
    if not hmac.compare_digest(
        datagram[60:76], _mac(_hash(LABEL_MAC1 + key.public), datagram[:60])
    ):
        raise NotAnAnswer("a handshake response whose mac1 is not for the prober's key")
    e_pub = datagram[12:44]
    (chaining,) = _kdf(init.chaining, e_pub, 1)
    h = _hash(init.hash + e_pub)
    (chaining,) = _kdf(chaining, _dh(init.ephemeral, e_pub), 1)
    (chaining,) = _kdf(chaining, key.dh(e_pub), 1)
    chaining, tau, k = _kdf(chaining, preshared, 3)
    h = _hash(h + tau)
    try:
        _open(k, datagram[44:60], h)
    except InvalidTag:
        raise NotAnAnswer(
            "a handshake response that does not decrypt (another key, or a preshared key)"
        ) from None
    return "response"
