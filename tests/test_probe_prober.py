"""The prober's sockets and verdicts on 127.0.0.1: a responder written from the protocol
(tests/test_probe_handshake.py) is up; a UDP echo server, a silent port and a closed port
are down, each saying why. The real gateways answer it in tests/lab/test_wireguard_probe_lab.py."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from tests.test_probe_handshake import Responder
from wgconsole.core.records import Endpoint
from wgconsole.probe.handshake import ProbeKey
from wgconsole.probe.prober import Target, probe

Reply = Callable[[bytes], bytes | None]
Serve = Callable[..., Endpoint]  # (reply, address="127.0.0.1")


@pytest.fixture
def udp_server() -> Iterator[Serve]:
    """Starts UDP servers on loopback addresses (never leaving this machine)."""
    socks: list[socket.socket] = []
    stop = threading.Event()

    def start(reply: Reply, address: str = "127.0.0.1") -> Endpoint:
        assert address.startswith("127."), "loopback only"
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, 0))
        sock.settimeout(0.05)
        socks.append(sock)

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, peer = sock.recvfrom(4096)
                except (TimeoutError, OSError):
                    continue
                answer = reply(data)
                if answer is not None:
                    sock.sendto(answer, peer)

        threading.Thread(target=serve, daemon=True).start()
        return Endpoint(address, sock.getsockname()[1])

    yield start
    stop.set()
    for s in socks:
        s.close()


def _closed_port() -> Endpoint:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return Endpoint("127.0.0.1", port)


def test_a_wireguard_responder_is_up_and_everything_else_down(
    udp_server: Serve,
) -> None:
    key = ProbeKey(os.urandom(32))
    gw = Responder(key.public)
    up = udp_server(gw.respond)
    echo = udp_server(lambda data: data)
    silent = udp_server(lambda data: None)
    targets = [
        Target("gw-up", up),
        Target("gw-echo", echo),
        Target("gw-silent", silent),
        Target("gw-closed", _closed_port()),
    ]
    results = {r.target: r for r in probe(targets, Target("vip", up), key, gw.public, timeout=0.4)}
    assert results["gw-up"].ok
    assert results["gw-up"].rtt_ms is not None
    assert results["gw-up"].error is None
    assert results["vip"].ok  # probed after the gateways: a newer timestamp, not a replay
    assert not results["gw-echo"].ok
    assert "not a WireGuard handshake response" in str(results["gw-echo"].error)
    assert not results["gw-silent"].ok
    assert str(results["gw-silent"].error).startswith("no handshake response within 0.4 s")
    assert not results["gw-closed"].ok
    assert "port unreachable" in str(results["gw-closed"].error)
    assert results["gw-up"].as_json().keys() == {"target", "address", "ok", "rtt_ms", "error"}


def test_one_lost_initiation_is_sent_again(udp_server: Serve) -> None:
    key = ProbeKey(os.urandom(32))
    gw = Responder(key.public)
    seen: list[bytes] = []

    def drop_first(data: bytes) -> bytes | None:
        seen.append(data)
        return gw.respond(data) if len(seen) > 1 else None

    (result,) = probe([Target("gw", udp_server(drop_first))], None, key, gw.public, timeout=0.4)
    assert result.ok, result
    assert len(seen) == 2
