"""The probe's handshake messages against a responder written from the protocol's text
(the whitepaper's section 5.4), independent of the module's own reading of an answer.
The real gateways' kernel answers it in tests/lab/test_wireguard_probe_lab.py."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from wgconsole.probe.handshake import (
    INITIATION_SIZE,
    NotAnAnswer,
    ProbeKey,
    initiation,
    read_answer,
    tai64n,
)


def blake(data: bytes) -> bytes:
    return hashlib.blake2s(data).digest()


def kdf(key: bytes, data: bytes, n: int) -> list[bytes]:
    t0 = hmac.new(key, data, hashlib.blake2s).digest()
    out, prev = [], b""
    for i in range(1, n + 1):
        prev = hmac.new(t0, prev + bytes([i]), hashlib.blake2s).digest()
        out.append(prev)
    return out


def dh(private: X25519PrivateKey, public: bytes) -> bytes:
    return private.exchange(X25519PublicKey.from_public_bytes(public))


NONCE0 = bytes(12)


class Responder:
    """A gateway's side of the handshake, from the whitepaper, with one known peer."""

    def __init__(self, peer_public: bytes, psk: bytes = bytes(32)) -> None:
        self.static = X25519PrivateKey.generate()
        self.public = self.static.public_key().public_bytes_raw()
        self.peer = peer_public
        self.psk = psk
        self.last_stamp = b""

    def respond(self, msg: bytes, index: int = 7) -> bytes | None:
        assert len(msg) == INITIATION_SIZE
        assert msg[:4] == b"\x01\0\0\0"
        mac1 = hashlib.blake2s(msg[:116], digest_size=16, key=blake(b"mac1----" + self.public))
        if mac1.digest() != msg[116:132]:
            return None
        sender = msg[4:8]
        e_pub = msg[8:40]
        c = blake(b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s")
        h = blake(blake(c + b"WireGuard v1 zx2c4 Jason@zx2c4.com") + self.public)
        (c,) = kdf(c, e_pub, 1)
        h = blake(h + e_pub)
        c, k = kdf(c, dh(self.static, e_pub), 2)
        static = ChaCha20Poly1305(k).decrypt(NONCE0, msg[40:88], h)
        if static != self.peer:
            return None
        h = blake(h + msg[40:88])
        c, k = kdf(c, dh(self.static, static), 2)
        stamp = ChaCha20Poly1305(k).decrypt(NONCE0, msg[88:116], h)
        if stamp <= self.last_stamp:
            return None  # a replay, or a clock behind the last accepted one
        self.last_stamp = stamp
        h = blake(h + msg[88:116])
        eph = X25519PrivateKey.generate()
        er_pub = eph.public_key().public_bytes_raw()
        (c,) = kdf(c, er_pub, 1)
        h = blake(h + er_pub)
        (c,) = kdf(c, dh(eph, e_pub), 1)
        (c,) = kdf(c, dh(eph, static), 1)
        c, tau, k = kdf(c, self.psk, 3)
        h = blake(h + tau)
        empty = ChaCha20Poly1305(k).encrypt(NONCE0, b"", h)
        body = b"\x02\0\0\0" + struct.pack("<I", index) + sender + er_pub + empty
        mac = hashlib.blake2s(body, digest_size=16, key=blake(b"mac1----" + self.peer)).digest()
        return body + mac + bytes(16)


@pytest.fixture
def key() -> ProbeKey:
    return ProbeKey(os.urandom(32))


def test_a_responder_accepts_the_initiation_and_its_response_completes_it(key: ProbeKey) -> None:
    gw = Responder(key.public)
    init = initiation(key, gw.public, sender=0xDEADBEEF)
    assert len(init.message) == INITIATION_SIZE
    answer = gw.respond(init.message)
    assert answer is not None
    assert read_answer(init, key, answer) == "response"


def test_a_preshared_key_on_the_gateway_is_told_from_a_wrong_server_key(key: ProbeKey) -> None:
    gw = Responder(key.public, psk=os.urandom(32))
    init = initiation(key, gw.public, sender=1)
    answer = gw.respond(init.message)
    assert answer is not None
    with pytest.raises(NotAnAnswer, match="does not decrypt"):
        read_answer(init, key, answer)


def test_a_gateway_with_another_key_does_not_answer(key: ProbeKey) -> None:
    gw = Responder(key.public)
    other = X25519PrivateKey.generate().public_key().public_bytes_raw()
    assert gw.respond(initiation(key, other, sender=1).message) is None


def test_a_stranger_is_not_answered() -> None:
    gw = Responder(ProbeKey(os.urandom(32)).public)
    stranger = ProbeKey(os.urandom(32))
    assert gw.respond(initiation(stranger, gw.public, sender=1).message) is None


def test_timestamps_only_grow_so_no_probe_is_a_replay(key: ProbeKey) -> None:
    gw = Responder(key.public)
    first = initiation(key, gw.public, sender=1)
    assert gw.respond(first.message) is not None
    # The same message again is a replay; a new one from this process is newer.
    assert gw.respond(first.message) is None
    assert gw.respond(initiation(key, gw.public, sender=2).message) is not None
    assert tai64n(0) < tai64n(0)


def test_answers_to_other_initiations_and_junk_are_not_answers(key: ProbeKey) -> None:
    gw = Responder(key.public)
    init = initiation(key, gw.public, sender=5)
    other = initiation(key, gw.public, sender=6)
    answer = gw.respond(other.message)
    assert answer is not None
    with pytest.raises(NotAnAnswer, match="another initiation"):
        read_answer(init, key, answer)
    for junk in (b"", b"\x02", b"ping\n", bytes(92), init.message):
        with pytest.raises(NotAnAnswer):
            read_answer(init, key, junk)
    # An echo of the probe itself (a UDP echo server on the port) is not an answer.
    with pytest.raises(NotAnAnswer, match="not a WireGuard handshake response"):
        read_answer(init, key, init.message)


def test_a_cookie_reply_to_it_is_alive_under_load(key: ProbeKey) -> None:
    init = initiation(key, os.urandom(32), sender=9)
    reply = b"\x03\0\0\0" + struct.pack("<I", 9) + os.urandom(56)
    assert read_answer(init, key, reply) == "cookie"
    with pytest.raises(NotAnAnswer, match="another handshake"):
        read_answer(init, key, b"\x03\0\0\0" + struct.pack("<I", 8) + os.urandom(56))


def test_the_key_never_shows_itself(key: ProbeKey) -> None:
    raw = os.urandom(32)
    shown = f"{ProbeKey(raw)!r} {ProbeKey(raw)}"
    assert "hidden" in shown
    assert raw.hex() not in shown
