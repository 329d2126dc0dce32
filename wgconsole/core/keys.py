"""WireGuard key pairs made on the bastion (X25519, standard base64, as `wg genkey`/`wg pubkey`).

A generated private key goes to exactly one place: the client config file the operator asked
for. It lives in a `PrivateKey` whose repr and str hide it, so that a log line, a traceback's
locals or an f-string never show it by accident; the only way to the text is `reveal()`.
"""

from __future__ import annotations

import base64
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

KEY_BYTES = 32
HIDDEN = "<hidden>"


def _clamp(raw: bytes) -> bytes:
    """RFC 7748 clamping, as `wg genkey` does: the stored key is then the one X25519 uses."""
    key = bytearray(raw)
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


class PrivateKey:
    """A private key that never shows itself: not in repr, str, format, pickle or comparison."""

    __slots__ = ("__raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_BYTES:
            raise ValueError("a WireGuard private key is 32 bytes")
        self.__raw = _clamp(raw)

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    def public_key(self) -> str:
        """The matching public key, standard base64 (what `wg pubkey` prints)."""
        private = X25519PrivateKey.from_private_bytes(self.__raw)
        return base64.b64encode(private.public_key().public_bytes_raw()).decode("ascii")

    def reveal(self) -> str:
        """The private key as base64 text, for the one file it is written to."""
        return base64.b64encode(self.__raw).decode("ascii")

    def __repr__(self) -> str:
        return f"PrivateKey({HIDDEN})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a private key is not pickled (it must not leave this process)")

    def __eq__(self, other: object) -> bool:
        # Identity only: equality on the secret would invite comparisons in logs and asserts.
        return self is other

    def __hash__(self) -> int:
        return id(self)


class KeyPair:
    """A freshly generated pair; `public_key` is plain text, `private_key` stays hidden."""

    __slots__ = ("private_key", "public_key")

    def __init__(self, private_key: PrivateKey) -> None:
        self.private_key = private_key
        self.public_key = private_key.public_key()

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(PrivateKey.generate())

    def __repr__(self) -> str:
        return f"KeyPair(public_key={self.public_key!r}, private_key={HIDDEN})"

    __str__ = __repr__


def generate_keypair() -> KeyPair:
    return KeyPair.generate()
