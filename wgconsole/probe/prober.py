"""Send handshake initiations to targets and wait for their answers, with a bound on time.

Each target gets its own connected UDP socket, so an answer is taken only from the address
probed and an ICMP port-unreachable is seen as such. An unanswered initiation is sent once
more, fresh, half-way through the time allowed (a lost datagram, or another probe with the
same key within WireGuard's 20 ms flood window, is then not a failure).

The gateways are probed first, all at once; the VIP after they are done: the VIP leads to one
of those gateways, and a gateway drops a second initiation from one peer that arrives within
20 ms of the first (INITIATIONS_PER_SECOND in the kernel's `noise.c`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from wgconsole.core.records import Endpoint
from wgconsole.probe.handshake import Initiation, NotAnAnswer, ProbeKey, initiation, read_answer

DEFAULT_TIMEOUT = 1.0
FLOOD_GAP = 0.03  # s between rounds: longer than the kernel's 20 ms per-peer flood window
MAX_DATAGRAM = 2048


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # a gateway's inventory name, or "vip"
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class ProbeResult:
    target: str
    address: str  # ADDR:PORT probed
    ok: bool
    rtt_ms: float | None
    error: str | None  # why not ok; for ok, None
    under_load: bool = False  # answered with a cookie reply: alive, but asks for a cookie

    def as_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "address": self.address,
            "ok": self.ok,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 3),
            "error": self.error,
        }


def address_text(endpoint: Endpoint) -> str:
    host = f"[{endpoint.address}]" if ":" in endpoint.address else endpoint.address
    return f"{host}:{endpoint.port}"


class _Attempt:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.sock: socket.socket | None = None
        self.inits: list[Initiation] = []
        self.sent_at: list[float] = []
        self.result: ProbeResult | None = None
        self.ignored: str | None = None  # the last datagram that was not an answer, why

    def fail(self, error: str, rtt: float | None = None, *, load: bool = False) -> None:
        self._end(
            ProbeResult(
                self._name, self._address, ok=False, rtt_ms=rtt, error=error, under_load=load
            )
        )

    def succeed(self, rtt: float) -> None:
        self._end(ProbeResult(self._name, self._address, ok=True, rtt_ms=rtt, error=None))

    @property
    def _name(self) -> str:
        return self.target.name

    @property
    def _address(self) -> str:
        return address_text(self.target.endpoint)

    def _end(self, result: ProbeResult) -> None:
        if self.result is None:
            self.result = result
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _sender_index() -> int:
    index: int = struct.unpack("<I", os.urandom(4))[0]
    return index


def _send(attempt: _Attempt, key: ProbeKey, server: bytes) -> None:
    init = initiation(key, server, _sender_index())
    assert attempt.sock is not None
    attempt.inits.append(init)
    attempt.sent_at.append(time.monotonic())
    attempt.sock.send(init.message)


def _round(
    targets: Sequence[Target], key: ProbeKey, server: bytes, timeout: float
) -> list[ProbeResult]:
    attempts = [_Attempt(t) for t in targets]
    sel = selectors.DefaultSelector()
    for a in attempts:
        try:
            family = socket.AF_INET6 if ":" in a.target.endpoint.address else socket.AF_INET
            a.sock = socket.socket(family, socket.SOCK_DGRAM)
            a.sock.setblocking(False)  # noqa: FBT003 - the socket API
            a.sock.connect((a.target.endpoint.address, a.target.endpoint.port))
            _send(a, key, server)
            sel.register(a.sock, selectors.EVENT_READ, a)
        except OSError as exc:
            a.fail(f"cannot send: {exc.strerror or exc}")
    start = time.monotonic()
    deadline = start + timeout
    resent = False
    try:
        while any(a.result is None for a in attempts):
            now = time.monotonic()
            if now >= deadline:
                break
            if not resent and now >= start + timeout / 2:
                resent = True
                for a in attempts:
                    if a.result is None and a.sock is not None:
                        with contextlib.suppress(OSError):  # the first one's fate decides
                            _send(a, key, server)
            wake = deadline if resent else min(deadline, start + timeout / 2)
            for sk, _ in sel.select(max(0.0, wake - now)):
                _receive(sk.data, key)
    finally:
        sel.close()
    for a in attempts:
        if a.result is None:
            why = f"no handshake response within {timeout:g} s"
            a.fail(why + (f" ({a.ignored})" if a.ignored else ""))
    return [a.result for a in attempts if a.result is not None]


def _receive(a: _Attempt, key: ProbeKey) -> None:
    assert a.sock is not None
    try:
        datagram = a.sock.recv(MAX_DATAGRAM)
    except OSError as exc:
        if exc.errno == errno.ECONNREFUSED:
            a.fail("port unreachable: nothing listens on that UDP port")
        elif exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
            a.fail(f"receive failed: {exc.strerror or exc}")
        return
    now = time.monotonic()
    for init, sent in zip(a.inits, a.sent_at, strict=True):
        try:
            answer = read_answer(init, key, datagram)
        except NotAnAnswer as exc:
            a.ignored = f"got {len(datagram)} bytes that were {exc}"
            continue
        rtt = (now - sent) * 1000.0
        if answer == "cookie":
            a.fail("answered with a cookie reply: alive but under load", rtt, load=True)
        else:
            a.succeed(rtt)
        return


def probe(
    gateways: Sequence[Target],
    vip: Target | None,
    key: ProbeKey,
    server_public: bytes,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[ProbeResult]:
    """Every gateway at once, then the VIP; each result within `timeout` of its round's start."""
    results = _round(gateways, key, server_public, timeout) if gateways else []
    if vip is not None:
        if gateways:
            time.sleep(FLOOD_GAP)
        results += _round([vip], key, server_public, timeout)
    return results
