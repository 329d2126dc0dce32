"""The captures of `wgconsole trace`: tcpdump on each LB and gateway, all at once, bounded.

Each capture is one tcpdump on its own channel of the host's kept connection, wrapped in a
small shell script that bounds it three ways: `timeout` (the trace's seconds plus the time
given to start every capture), `-c` (a packet count), and EOF on its standard input, which
the bastion sends when the trace ends or is stopped (and sshd sends when the connection
drops): tcpdump then gets SIGINT, prints what it holds and exits. No tcpdump outlives its
trace on a host.

What is captured is the least the verdict needs (docs/domain/wireguard.md): the handshake
messages (types 1-3) up to an initiation's mac1 (byte 132 of the UDP payload), the data
messages (type 4) up to their 16-byte header (type, receiver index, counter; never payload),
and on the gateway's WireGuard interface the client's tunnel address, IP and transport
headers only. Two BPF filters with two snapshot lengths keep the data captures short.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from wgconsole.core.inventory import Host, Inventory
from wgconsole.core.text import printable
from wgconsole.core.trace import (
    DATA_HEADER,
    MAC1_END,
    CaptureKind,
    CaptureState,
    CaptureStatus,
    Packet,
    Role,
    TraceTarget,
)
from wgconsole.poll.parsers.errors import ParseError
from wgconsole.poll.parsers.tcpdump import TcpdumpReader
from wgconsole.poll.transport.base import (
    RunningCommand,
    StreamingTransport,
    Transport,
    TransportError,
    privileged,
    sudo_refusal,
)

# `tcpdump -i any` puts a Linux cooked v2 header (20 bytes) before the network header; the
# snapshot length counts from there.
SLL2_HEADER = 20
UDP_HEADER = 8
TRANSPORT_HEADER = 8  # the tunnel capture: ports (TCP/UDP) or type and code (ICMP)
# Packets per capture: a busy client sends thousands a second; the timeline needs a few.
HANDSHAKE_COUNT = 200
DATA_COUNT = 400
TUNNEL_COUNT = 200
# Time for every capture to start (SSH channel, sudo, tcpdump opening its socket) before the
# trace's window begins anyway; part of each host's `timeout` bound too.
ARM_TIMEOUT = 20.0
# After EOF, the time a capture has to print what it holds and exit before its channel is
# closed (which ends it on the host as well).
STOP_GRACE = 5.0
NOT_INSTALLED = 127
TCPDUMP_PACKAGE = "tcpdump"
_MISSING_MARK = "wgconsole-trace: tcpdump: not found"
_ARMED_MARK = "listening on "

# $1 timeout seconds, $2 snapshot length, $3 packet count, $4 the BPF filter. EOF on stdin
# (kept as fd 3: a background list's stdin is /dev/null otherwise) interrupts tcpdump.
CAPTURE_SCRIPT = f"""if ! command -v tcpdump >/dev/null 2>&1; then
  echo '{_MISSING_MARK}' >&2; exit {NOT_INSTALLED}
fi
exec 3<&0
timeout -s INT "$1" tcpdump -n -l -tt -x -i any -s "$2" -c "$3" -- "$4" </dev/null &
p=$!
{{ cat <&3 >/dev/null 2>&1; kill -INT "$p" 2>/dev/null; }} &
w=$!
wait "$p"; s=$?
kill "$w" 2>/dev/null
exit "$s"
"""


@dataclass(frozen=True, slots=True)
class CaptureSpec:
    host: str
    role: Role
    capture: CaptureKind
    bpf: str
    snaplen: int
    count: int


def _ip_header(address: str) -> int:
    return 40 if ":" in address else 20


def capture_specs(inventory: Inventory, target: TraceTarget) -> list[CaptureSpec]:
    """Every LB's and each traced gateway's captures. Needs the client's outer address."""
    if target.source is None:
        return []
    client = target.source.address
    outer = SLL2_HEADER + _ip_header(client) + UDP_HEADER
    ports = sorted({target.vip.port, *(rs.port for rs in target.real_servers.values())})
    port_filter = " or ".join(f"port {p}" for p in ports)
    base = f"udp and host {client} and ({port_filter})"
    handshake = f"{base} and (udp[8] = 1 or udp[8] = 2 or udp[8] = 3)"
    data = f"{base} and udp[8] = 4"
    specs: list[CaptureSpec] = []

    def outer_specs(host: str, role: Role) -> None:
        specs.append(
            CaptureSpec(host, role, "handshake", handshake, outer + MAC1_END, HANDSHAKE_COUNT)
        )
        specs.append(CaptureSpec(host, role, "data", data, outer + DATA_HEADER, DATA_COUNT))

    for lb in inventory.load_balancers:
        outer_specs(lb.name, "lb")
    for name in target.traced_gateways:
        outer_specs(name, "gateway")
        if target.tunnel_address is not None:
            inner = SLL2_HEADER + _ip_header(target.tunnel_address) + TRANSPORT_HEADER
            specs.append(
                CaptureSpec(
                    name, "gateway", "tunnel", f"host {target.tunnel_address}", inner, TUNNEL_COUNT
                )
            )
    return specs


def capture_command(spec: CaptureSpec, host: Host, seconds: float) -> str:
    limit = f"{int(seconds + ARM_TIMEOUT + 1)}"
    argv = ["sh", "-c", CAPTURE_SCRIPT, "sh", limit, str(spec.snaplen), str(spec.count), spec.bpf]
    return privileged(argv, sudo=host.ssh.sudo)


@dataclass(frozen=True, slots=True)
class CaptureArmed:
    host: str
    capture: CaptureKind


@dataclass(frozen=True, slots=True)
class CapturedPacket:
    packet: Packet


@dataclass(frozen=True, slots=True)
class CaptureEnded:
    status: CaptureStatus


CaptureEvent = CaptureArmed | CapturedPacket | CaptureEnded


class _Window:
    """When the trace's window opens (every capture armed or ended, or ARM_TIMEOUT after the
    start) and closes (`seconds` later), or the operator's stop."""

    def __init__(self, specs: int, seconds: float, stop: threading.Event) -> None:
        self._waiting = specs
        self._lock = threading.Lock()
        self.seconds = seconds
        self.began = time.monotonic()
        self.opened: float | None = None
        self.opened_epoch: float | None = None
        self.stop = stop
        if specs == 0:
            self._open()

    def _open(self) -> None:
        self.opened = time.monotonic()
        self.opened_epoch = time.time()

    def ready(self) -> None:
        with self._lock:
            self._waiting -= 1
            if self._waiting <= 0 and self.opened is None:
                self._open()

    def closing(self) -> bool:
        if self.stop.is_set():
            return True
        now = time.monotonic()
        with self._lock:
            if self.opened is None and now - self.began >= ARM_TIMEOUT:
                self._open()
            return self.opened is not None and now - self.opened >= self.seconds


def run_captures(
    inventory: Inventory,
    transports: Mapping[str, Transport],
    specs: Sequence[CaptureSpec],
    seconds: float,
    on_event: Callable[[CaptureEvent], None],
    stop: threading.Event,
) -> float:
    """Run every capture at once until the window closes, `on_event` told of each packet and
    each capture's start and end (from the captures' threads). Returns the bastion's epoch
    time when the window opened."""
    hosts = {h.name: h for h in inventory.hosts}
    window = _Window(len(specs), seconds, stop)
    threads = [
        threading.Thread(
            target=_capture,
            args=(spec, hosts[spec.host], transports[spec.host], window, on_event),
            name=f"trace-{spec.host}-{spec.capture}",
            daemon=True,
        )
        for spec in specs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return window.opened_epoch or time.time()


def _capture(
    spec: CaptureSpec,
    host: Host,
    transport: Transport,
    window: _Window,
    on_event: Callable[[CaptureEvent], None],
) -> None:
    packets = 0
    armed = False

    def ended(error: str | None) -> None:
        if not armed:
            window.ready()
        state: CaptureState = "failed" if error is not None else "done"
        on_event(
            CaptureEnded(CaptureStatus(spec.host, spec.role, spec.capture, state, error, packets))
        )

    if not hasattr(transport, "start"):
        ended("this host's transport cannot capture (netlink only)")
        return
    streaming: StreamingTransport = transport  # type: ignore[assignment]
    try:
        running = streaming.start(capture_command(spec, host, window.seconds), ARM_TIMEOUT)
    except TransportError as exc:
        ended(printable(str(exc)))
        return
    reader = TcpdumpReader(spec.host, spec.capture)
    errors: list[str] = []
    error: str | None = None
    stopped_at: float | None = None
    try:
        while not running.ended:
            if stopped_at is None and window.closing():
                running.stop()
                stopped_at = time.monotonic()
            if stopped_at is not None and time.monotonic() - stopped_at > STOP_GRACE:
                break
            out, err = running.read(0.2)
            for line in err:
                if line.startswith(_ARMED_MARK) and not armed:
                    armed = True
                    window.ready()
                    on_event(CaptureArmed(spec.host, spec.capture))
                elif line.strip():
                    errors.append(line.strip())
            for line in out:
                packet = reader.feed(line)
                if packet is not None:
                    packets += 1
                    on_event(CapturedPacket(packet))
        last = reader.end()
        if last is not None:
            packets += 1
            on_event(CapturedPacket(last))
        error = _failure(running, errors, armed=armed)
    except ParseError as exc:
        error = printable(f"malformed capture output: {exc}")
    except TransportError as exc:
        error = printable(str(exc))
    except Exception as exc:  # a parser bug is this capture's error, never a traceback
        error = printable(f"cannot read the capture ({type(exc).__name__}: {exc})")
    finally:
        with contextlib.suppress(Exception):
            running.close()
    ended(error)


def _failure(running: RunningCommand, errors: Sequence[str], *, armed: bool) -> str | None:
    """Why a capture did not run, from its exit status and its error lines; None if it ran."""
    status = running.status
    if any(_MISSING_MARK in line for line in errors) or (status == NOT_INSTALLED and not armed):
        return f"tcpdump is not installed: install the Debian package `{TCPDUMP_PACKAGE}`"
    refusal = sudo_refusal("\n".join(errors))
    if refusal is not None:
        return printable(f"sudo refused tcpdump: {refusal}")
    if armed:
        return None
    said = "; ".join(e for e in errors if not e.startswith("tcpdump: verbose output"))
    return printable(f"tcpdump did not start (exit {status}): {said or 'no message'}"[:300])
