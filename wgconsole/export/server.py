"""`wgconsole metrics`: polls in a background thread, serves the latest poll over HTTP.

One poll at a time (a poll starts `interval` seconds after the previous one started, or as
soon as it ended when it took longer), each turned into the metric families once; a scrape is
served from the latest families in memory and never polls. The exposition is rendered on the
first scrape after a poll and kept for the scrapes that follow until the next poll.

A host is down for the exporter when it has not answered within the poll's deadline:
`--timeout`, or two intervals (at least MIN_DEADLINE) when that is shorter. A gateway whose
link is cut mid-session shows `host_up 0` from the first poll that began after the cut, its
deadline later, and holds no poll after that (`poll.collector`). One interval would be too
tight: a gateway with thousands of peers, or an emulated one on a loaded machine, takes
longer than that to read, and would be called down at every poll.

`/healthz` says whether the exporter is current, not whether the fleet is healthy (that is
what the metrics say): 200 when a poll finished within the last `interval + the poll's
deadline` seconds plus STALE_SLACK (polls that end at their deadline finish at most that far
apart), 503 before the first poll or after that.

Slow or stalled clients cannot pile up: at most `max_connections` connections are served at
once, each by its own thread; one beyond gets a 503 and is closed at once, without a thread.
A connection has `timeout` seconds in all to send its request (bytes dribbled in one at a
time do not extend it) and `timeout` seconds in all to take the response; then it is closed,
and with it the thread and its reference to the body (the body itself is shared, never
copied per connection). One request per connection (HTTP/1.0).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import ipaddress
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from wgconsole.core.records import GatewayObservation, LbObservation
from wgconsole.core.text import printable
from wgconsole.export.counters import ByteCounters
from wgconsole.export.exposition import CONTENT_TYPE, Renderer
from wgconsole.export.families import Family, build_families
from wgconsole.poll.collector import FleetCollector, PollResult
from wgconsole.probe.fleet_probe import FleetProber

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


# The shortest poll deadline the exporter uses (see poll_deadline).
MIN_DEADLINE = 5.0
# What /healthz allows past the longest gap between two polls that end on time: thread
# wake-ups, and building the fleet and its families (most of a second at 10,000 clients).
STALE_SLACK = 3.0


def poll_deadline(interval: float, timeout: float) -> float:
    """How long a poll waits for a host before it is down for that poll: the command timeout,
    or two intervals (at least MIN_DEADLINE) when that is shorter."""
    return min(timeout, max(2 * interval, MIN_DEADLINE))


@dataclass(slots=True)
class Latest:
    """One poll's families and, once a scrape asked for it, their exposition."""

    families: tuple[Family, ...]
    site: str | None
    finished: float  # monotonic clock
    hosts: int
    answered: int
    renderer: Renderer
    _body: bytes | None = None
    _gzipped: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, *, gzipped: bool = False) -> bytes:
        with self._lock:  # two scrapes at once render once
            if self._body is None:
                self._body = self.renderer.render(self.families, self.site)
            if not gzipped:
                return self._body
            if self._gzipped is None:
                self._gzipped = gzip.compress(self._body, compresslevel=6)
            return self._gzipped


def observations(
    poll: PollResult,
) -> tuple[dict[str, LbObservation | None], dict[str, GatewayObservation | None]]:
    """The poll's LB and gateway observations by host name (None: did not answer)."""
    lbs: dict[str, LbObservation | None] = {}
    gateways: dict[str, GatewayObservation | None] = {}
    for hp in poll.hosts:
        obs = hp.observation
        if hp.role == "lb":
            lbs[hp.name] = obs if isinstance(obs, LbObservation) else None
        else:
            gateways[hp.name] = obs if isinstance(obs, GatewayObservation) else None
    return lbs, gateways


class Exporter:
    """Polls with its collector (read-only: it must have been made so) and keeps the latest
    families; `run` polls until stopped."""

    def __init__(
        self,
        collector: FleetCollector,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        prober: FleetProber | None = None,
    ) -> None:
        if not collector.read_only:
            raise ValueError("the exporter's collector must be read-only")
        self.collector = collector
        self.interval = interval
        self.site = collector.inventory.site
        self._clock = clock
        self._counters = ByteCounters()
        self._renderer = Renderer()
        self._latest: Latest | None = None
        self.last_error: str | None = None
        self._prober = prober

    @property
    def latest(self) -> Latest | None:
        return self._latest

    def poll_once(self) -> Latest:
        poll = self.collector.poll()
        fleet = self.collector.fleet(poll)
        lbs, gateways = observations(poll)
        inventory = self.collector.inventory
        # After the poll, bounded by the probe's own timeout: WireGuard answers (or not)
        # whatever SSH did, and the key told by the latest gateway that answered is kept.
        probes = (
            ()
            if self._prober is None
            else self._prober.round(inventory, (g.public_key for g in fleet.gateways))
        )
        families = build_families(
            inventory,
            fleet,
            lbs,
            gateways,
            self._counters.update(fleet),
            poll.seconds,
            probes=probes,
        )
        answered = sum(h.reachable for h in fleet.hosts)
        return self.publish(families, hosts=len(fleet.hosts), answered=answered)

    def publish(self, families: tuple[Family, ...], hosts: int, answered: int) -> Latest:
        """Make `families` the ones scrapes are served from."""
        latest = Latest(
            families, self.site, self._clock(), hosts, answered, renderer=self._renderer
        )
        self._latest = latest  # one reference swapped: a scrape sees one poll or the next
        self.last_error = None
        return latest

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = self._clock()
            try:
                self.poll_once()
            except Exception as exc:  # a bug must not end the exporter: healthz shows it
                self.last_error = printable(f"{type(exc).__name__}: {exc}")
            stop.wait(max(0.0, started + self.interval - self._clock()))

    @property
    def stale_after(self) -> float:
        return self.interval + self.collector.poll_deadline + STALE_SLACK

    def health(self) -> tuple[int, str]:
        """(HTTP status, one line) for /healthz."""
        latest = self._latest
        error = f"; the latest poll failed: {self.last_error}" if self.last_error else ""
        if latest is None:
            return 503, f"no poll has finished yet{error}"
        age = max(0.0, self._clock() - latest.finished)
        answered = f"{latest.answered} of {latest.hosts} hosts answered"
        if age > self.stale_after:
            return 503, (
                f"stale: the latest poll finished {age:.0f} s ago "
                f"(more than {self.stale_after:.0f} s), {answered}{error}"
            )
        return 200, f"ok: the latest poll finished {age:.1f} s ago, {answered}{error}"


def parse_listen(text: str) -> tuple[str, int]:
    """ADDR:PORT or [IPV6]:PORT, an IP address (a name could resolve to anything); port 0
    picks a free one. ValueError with the reason."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"--listen {text!r}: expected ADDR:PORT (e.g. 127.0.0.1:9586)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--listen {text!r}: {host!r} is not an IP address") from None
    if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise ValueError(f"--listen {text!r}: the port must be a number 0..65535")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"--listen {text!r}: the port must be a number 0..65535")
    return address.compressed, port


TIMEOUT = 5.0  # seconds to send a request, and again to take the response
MAX_CONNECTIONS = 64  # served at once; Prometheus needs one per scrape
_BUSY = b"busy: too many connections, try again\n"
_REFUSAL = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


class _DeadlineReader(io.RawIOBase):
    """A connection's reading side that ends at a deadline, however slowly bytes arrive."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request was not sent in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits in the kernel, not in SYN retries
    max_connections = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._closing: deque[tuple[float, socket.socket]] = deque()
        super().__init__(*args, **kwargs)

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        """A 503 for a connection beyond the bound, from the accepting thread: never waits
        (what the socket buffer does not take is dropped). Closed a second later, from the
        serving loop: closed with its request unread, it would be reset before the client
        read the 503."""
        try:
            request.settimeout(0.0)  # non-blocking
            request.send(_REFUSAL)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._closing.append((time.monotonic() + 1.0, request))
        while len(self._closing) > self.max_connections:
            self._drop(self._closing.popleft()[1])

    @staticmethod
    def _drop(request: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for _ in range(16):  # what it sent, at most 1 MiB
                if not request.recv(65536):
                    break
        request.close()

    def service_actions(self) -> None:
        super().service_actions()
        now = time.monotonic()
        while self._closing and self._closing[0][0] <= now:
            self._drop(self._closing.popleft()[1])

    def server_close(self) -> None:
        super().server_close()
        while self._closing:
            self._drop(self._closing.popleft()[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # a client that went away or timed out is not news
        super().handle_error(request, client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class Body(Protocol):
    """What a scrape of /metrics is served from."""

    def body(self, *, gzipped: bool = False) -> bytes: ...


class Served(Protocol):
    """What the HTTP server serves: one site's Exporter, or several sites'
    (export.sites.SitesExporter)."""

    @property
    def latest(self) -> Body | None: ...

    def health(self) -> tuple[int, str]: ...


def make_server(
    exporter: Served,
    host: str,
    port: int,
    *,
    timeout: float = TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> ThreadingHTTPServer:
    """An HTTP server on host:port (OSError if it cannot listen there), serving at most
    `max_connections` at once, each within `timeout` seconds to read and again to write."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "wgconsole-metrics"
        sys_version = ""

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # the socket's own reader: its timeout is per recv
            deadline = time.monotonic() + timeout
            self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def _answer(self, *, head: bool) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                latest = exporter.latest
                if latest is None:
                    self._send(503, b"no poll has finished yet\n", "text/plain", head=head)
                    return
                gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
                body = latest.body(gzipped=gzipped)
                self._send(200, body, CONTENT_TYPE, head=head, encoding="gzip" if gzipped else None)
            elif path == "/healthz":
                status, text = exporter.health()
                self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8", head=head)
            elif path == "/":
                page = b"wgconsole metrics: /metrics (Prometheus), /healthz\n"
                self._send(200, page, "text/plain; charset=utf-8", head=head)
            else:
                self._send(404, b"not found: /metrics or /healthz\n", "text/plain", head=head)

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str,
            *,
            head: bool,
            encoding: str | None = None,
        ) -> None:
            self.connection.settimeout(timeout)  # sendall: in all, not per send
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if encoding is not None:
                self.send_header("Content-Encoding", encoding)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds is not news

    server_class = _Server6 if ":" in host else _Server
    server = server_class((host, port), Handler, bind_and_activate=False)
    server.max_connections = max_connections
    try:
        server.server_bind()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise
    return server
