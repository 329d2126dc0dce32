"""What a WireGuard key is: 32 bytes in standard base64, as `wg` prints and accepts one.

One rule for every place a key comes in: the inventory's clients, an operator's
`peer add --public-key`, the keys a gateway's `wg show dump` and `wg0.conf` carry. `wg` itself
(wireguard-tools' `key_from_base64`) accepts exactly 43 base64 characters and `=`, whose last
character's two low bits (past the 32 bytes) are zero; so does this.
"""

from __future__ import annotations

import base64
import binascii
import re

# 32 bytes in base64: 43 characters, the last one carrying 2 padding bits (so one of 16).
KEY_PATTERN = r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]="
_KEY = re.compile(KEY_PATTERN)


def is_wireguard_key(text: str) -> bool:
    """Whether `text` is a WireGuard key as wg prints one: 32 bytes in base64."""
    return bool(_KEY.fullmatch(text))


def wireguard_key_problem(text: str) -> str | None:
    """Why `text` is not a WireGuard key (None: it is one). Never quotes the text: a mangled
    key may be part of a private one."""
    if _KEY.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return "not base64"
    if len(raw) != 32 or len(text) != 44:
        return "must be 32 bytes (44 base64 characters)"
    return "not a key as wg writes one (its last character sets bits past the 32 bytes)"
