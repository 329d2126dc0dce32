"""A host that accepts the TCP connection and then stalls (a ProxyJump hop or a NAT in front of
a dead host) never holds a run past its deadline, nor a poll, nor the other hosts' data.

Real listeners on 127.0.0.1 (ephemeral ports) that stall in one phase each: no banner, a
banner then nothing in key exchange, a paramiko server that stalls in authentication, in
opening the channel or in the command. Every listener and thread is stopped at the end.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tests.fakeworld import make_world
from wgconsole.core.inventory import Host, SshSettings
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.transport.base import Transport, TransportError
from wgconsole.poll.transport.ssh import SshTransport

DEADLINE = 1.5
BOUND = 3 * DEADLINE  # generous: returned, with an error, well before this


class Stalled:
    """A listener on 127.0.0.1 whose connections stall in `phase`; never closes one first."""

    def __init__(self, phase: str, host_key: paramiko.PKey | None = None) -> None:
        self.phase = phase
        self.host_key = host_key
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.conns: list[socket.socket] = []
        self.transports: list[paramiko.Transport] = []
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)
            if self.phase == "banner":
                continue  # accepted; never a byte
            if self.phase == "kex":
                worker = threading.Thread(target=self._kex_stall, args=(conn,), daemon=True)
                worker.start()
                self.threads.append(worker)
                continue
            self._serve(conn)

    def _kex_stall(self, conn: socket.socket) -> None:
        conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 stalled\r\n")
        conn.settimeout(0.1)
        while not self.stop.is_set():  # reads the client's KEXINIT, answers nothing
            try:
                if not conn.recv(4096):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _serve(self, conn: socket.socket) -> None:
        assert self.host_key is not None
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        self.transports.append(transport)
        transport.start_server(server=_StallingServer(self.phase, self.stop))

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.accepting.join(timeout=5)
        for transport in self.transports:
            transport.close()
        for conn in self.conns:
            conn.close()
        for worker in self.threads:
            worker.join(timeout=5)


class _StallingServer(paramiko.ServerInterface):
    """Key exchange done; then stalls in authentication, the channel or the command."""

    def __init__(self, phase: str, stop: threading.Event) -> None:
        self.phase = phase
        self.stop = stop

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if self.phase == "auth":
            self.stop.wait(30)  # the server's transport thread holds the answer
        return paramiko.common.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if self.phase == "channel":
            self.stop.wait(30)
        return paramiko.common.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        return True  # "command": accepted, and never a byte nor an exit status


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[paramiko.RSAKey, Path]:
    """The stalling server's host key, and a client key file (any key: auth accepts all)."""
    client = paramiko.RSAKey.generate(2048)
    path = tmp_path_factory.mktemp("keys") / "id_rsa"
    client.write_private_key_file(str(path))
    return paramiko.RSAKey.generate(2048), path


def _host(listener: Stalled, tmp_path: Path, identity: Path, name: str = "stalled") -> Host:
    known = tmp_path / "known_hosts"
    if listener.host_key is not None:
        key = listener.host_key
        known.write_text(f"[127.0.0.1]:{listener.port} {key.get_name()} {key.get_base64()}\n")
    settings = SshSettings(
        port=listener.port, known_hosts=str(known), identity_file=str(identity), user="probe"
    )
    return Host(name, "127.0.0.1", settings)


@pytest.fixture
def stalled(
    request: pytest.FixtureRequest, keys: tuple[paramiko.RSAKey, Path]
) -> Iterator[Stalled]:
    phase: str = request.param
    listener = Stalled(phase, None if phase in ("banner", "kex") else keys[0])
    try:
        yield listener
    finally:
        listener.close()


PHASES = ["banner", "kex", "auth", "channel", "command"]


@pytest.mark.parametrize("stalled", PHASES, indirect=True)
def test_a_stalled_phase_fails_the_run_within_its_deadline(
    stalled: Stalled, keys: tuple[paramiko.RSAKey, Path], tmp_path: Path
) -> None:
    transport = SshTransport(
        _host(stalled, tmp_path, keys[1]), compress=False, ssh_config=str(tmp_path / "none")
    )
    started = time.monotonic()
    try:
        with pytest.raises(TransportError) as failed:
            transport.run("true", timeout=DEADLINE)
    finally:
        transport.close()
    took = time.monotonic() - started
    assert took < BOUND, f"{stalled.phase}: the run took {took:.1f} s"
    message = str(failed.value)
    assert "deadline" in message or "timed out" in message, message


POLL_DEADLINE = 4.0


@pytest.mark.parametrize("stalled", ["banner", "kex"], indirect=True)
def test_a_stalled_gateway_is_down_at_the_deadline_and_never_holds_the_next_poll(
    stalled: Stalled, keys: tuple[paramiko.RSAKey, Path], tmp_path: Path
) -> None:
    world = make_world(tmp_path / "world")
    dead = world.inventory.gateways[0].name
    working = world.factory(read_only=True)

    def factory(host: Host) -> Transport:
        if host.name != dead:
            return working(host)
        target = _host(stalled, tmp_path, keys[1], name=host.name)
        return SshTransport(target, read_only=True, ssh_config=str(tmp_path / "none"))

    # The command timeout stays the default (30 s): the poll's deadline is what bounds it.
    collector = FleetCollector(
        world.inventory, read_only=True, poll_deadline=POLL_DEADLINE, transport_factory=factory
    )
    try:
        for n in range(3):
            started = time.monotonic()
            poll = collector.poll()
            took = time.monotonic() - started
            fleet = collector.fleet(poll)
            by_name = {h.name: h for h in fleet.hosts}
            assert not by_name[dead].reachable
            others = [h for name, h in by_name.items() if name != dead]
            assert all(h.reachable for h in others), [(h.name, h.error) for h in others]
            assert took < 3 * POLL_DEADLINE, f"poll {n}: {took:.1f} s"
            if n:
                # The attempt still in flight (or refused by its backoff) holds no later
                # poll: those end when the working hosts answered, well before the deadline.
                assert took < 0.75 * POLL_DEADLINE, f"poll {n}: {took:.1f} s"
    finally:
        collector.close()
