"""The exporter's HTTP server against slow and stalled clients (a slowloris on 127.0.0.1).

Every stalled connection is closed by the server within its per-request timeout, the handler
threads never exceed the bound (beyond it a connection gets a 503 at once, without a thread),
and a scrape is served while they stall. Every loop here is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from tests.console_support import NORMAL
from wgconsole.config.inventory_file import load_inventory
from wgconsole.export.exposition import Renderer
from wgconsole.export.server import Exporter, Latest, make_server
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.replay import replay_factory

PARTIAL = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"  # no blank line


@contextlib.contextmanager
def _serving(*, timeout: float, max_connections: int) -> Iterator[tuple[Exporter, int]]:
    collector = FleetCollector(
        load_inventory(NORMAL / "inventory.yaml"),
        read_only=True,
        transport_factory=replay_factory([NORMAL]),
        timeout=5.0,
    )
    exporter = Exporter(collector, interval=2.0)
    server = make_server(exporter, "127.0.0.1", 0, timeout=timeout, max_connections=max_connections)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        exporter.poll_once()
        yield exporter, server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        collector.close()


def _handlers() -> int:
    """The server's connection threads alive now."""
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def _scrape(port: int) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _stall(port: int, count: int, request: bytes = PARTIAL) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(request)
        socks.append(sock)
    return socks


def _wait_closed(socks: list[socket.socket], within: float) -> dict[socket.socket, bytes]:
    """Read each socket until the server closes it or `within` seconds pass; what each got
    before its end, for the ones the server closed."""
    got: dict[socket.socket, bytearray] = {s: bytearray() for s in socks}
    closed: dict[socket.socket, bytes] = {}
    deadline = time.monotonic() + within
    while len(closed) < len(socks) and time.monotonic() < deadline:
        open_ = [s for s in socks if s not in closed]
        readable, _, _ = select.select(open_, [], [], 0.2)
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:  # reset: closed too
                data = b""
            if data:
                got[sock] += data
            else:
                closed[sock] = bytes(got[sock])
    return closed


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def test_stalled_requests_are_closed_within_the_timeout_and_scrapes_are_served() -> None:
    with _serving(timeout=2.0, max_connections=64) as (_, port):
        socks = _stall(port, 50)
        try:
            # While the 50 stall, a scrape is served.
            status, body = _scrape(port)
            assert status == 200
            assert b"wgconsole_host_up" in body
            assert _handlers() <= 64
            closed = _wait_closed(socks, within=2.0 + 10)
            assert len(closed) == len(socks)
        finally:
            _close_all(socks)
        status, _ = _scrape(port)
        assert status == 200


def test_beyond_the_bound_a_connection_gets_503_at_once_without_a_thread() -> None:
    with _serving(timeout=3.0, max_connections=8) as (_, port):
        socks = _stall(port, 30)
        try:
            # The 22 beyond the bound are answered 503 and closed long before the timeout.
            refused = _wait_closed(socks, within=2.0)
            assert _handlers() <= 8
            assert len(refused) >= 22
            assert all(b" 503 " in got.split(b"\r\n", 1)[0] for got in refused.values())
            rest = [s for s in socks if s not in refused]
            closed = _wait_closed(rest, within=3.0 + 10)
            assert len(closed) == len(rest)
        finally:
            _close_all(socks)
        status, _ = _scrape(port)
        assert status == 200


def test_a_reader_that_never_reads_the_body_is_cut_off_and_lets_it_go() -> None:
    with _serving(timeout=1.0, max_connections=64) as (exporter, port):
        big = b"# filler\n" * 4_000_000  # 36 MB: more than the socket buffers take
        latest = exporter.latest
        assert latest is not None
        exporter._latest = Latest((), None, time.monotonic(), 1, 1, Renderer(), _body=big)
        request = b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        socks = _stall(port, 5, request)
        try:
            deadline = time.monotonic() + 5
            while _handlers() < len(socks) and time.monotonic() < deadline:
                time.sleep(0.01)  # each one is writing the body, which nobody reads
            assert _handlers() >= 1
            deadline = time.monotonic() + 1.0 + 10
            while _handlers() > 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _handlers() == 0
        finally:
            _close_all(socks)
        exporter._latest = latest
        status, _ = _scrape(port)
        assert status == 200
