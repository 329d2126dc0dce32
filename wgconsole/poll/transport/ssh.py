"""SSH through paramiko: one persistent connection per host, reused for every command.

New connections are expensive (key exchange; ~2 s each into the emulated lab), so a host keeps
its connection and only reconnects, with exponential backoff, after it failed. Host keys are
checked against known_hosts: an unknown key is refused unless the operator asked to accept new
keys, and a changed key is always refused.

The backoff is capped at 15 s: a retry costs one TCP connection attempt (and, since the
collector never waits for a host past its poll deadline, no poll of the other hosts), while
the cap is also how long a host that is back may stay shown as lost. 30 s made the console
lag a restarted sshd by up to half a minute for no gain.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko

from wgconsole.core.inventory import Host
from wgconsole.poll.transport.base import (
    CommandResult,
    CommandTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    ReadOnlyViolation,
    TransportError,
)

# paramiko logs a connection reset with a traceback at ERROR; unconfigured, Python prints that
# on stderr (over the console's screen). Every failure is reported as the host's error instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

CONNECT_TIMEOUT = 15.0
BACKOFF_START = 1.0
BACKOFF_MAX = 15.0
KEEPALIVE_INTERVAL = 15
# How a changed host key is worded: operators (and the lab tests) look for it in the error.
HOST_KEY_CHANGED = "HOST KEY CHANGED"


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Where to connect, after ~/.ssh/config has been applied."""

    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts: str
    proxy_jump: str | None


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Like OpenSSH's StrictHostKeyChecking=accept-new: record unknown keys, never changed ones."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        path = Path(self.known_hosts)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def resolve_target(host: Host, ssh_config_path: str = "~/.ssh/config") -> SshTarget:
    """Inventory values win; ~/.ssh/config fills in what the inventory leaves at defaults."""
    cfg_path = Path(os.path.expanduser(ssh_config_path))
    entry: dict[str, object] = {}
    if cfg_path.exists():
        cfg = paramiko.SSHConfig.from_path(str(cfg_path))
        entry = dict(cfg.lookup(host.host))
    identities: list[str] = []
    if host.ssh.identity_file:
        identities.append(os.path.expanduser(host.ssh.identity_file))
    raw_ids = entry.get("identityfile")
    if isinstance(raw_ids, list):
        identities += [
            os.path.expanduser(str(i))
            for i in raw_ids
            if os.path.exists(os.path.expanduser(str(i)))
        ]
    hostname = str(entry.get("hostname", host.host))
    port = host.ssh.port if host.ssh.port != 22 else int(str(entry.get("port", 22)))
    user = host.ssh.user if host.ssh.user != "root" or "user" not in entry else str(entry["user"])
    jump = entry.get("proxyjump")
    return SshTarget(
        hostname=hostname,
        port=port,
        user=user,
        identity_files=tuple(dict.fromkeys(identities)),
        known_hosts=os.path.expanduser(host.ssh.known_hosts),
        proxy_jump=str(jump) if jump and str(jump).lower() != "none" else None,
    )


class SshTransport:
    """Runs commands on one host over a persistent paramiko connection."""

    def __init__(
        self,
        host: Host,
        *,
        accept_new_host_keys: bool = False,
        read_only: bool = False,
        compress: bool = False,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        self.name = host.name
        self.host = host
        self.target = resolve_target(host)
        self.accept_new = accept_new_host_keys
        self.read_only = read_only
        self.compress = compress
        self._client: paramiko.SSHClient | None = None
        self._jump: SshTransport | None = None
        self._lock = threading.Lock()
        self._backoff = 0.0
        self._next_attempt = 0.0
        self.backoff_max = backoff_max
        self._closed = False
        self.last_error: str | None = None
        # A retry refused within the backoff is the same kind of failure as the last one (a
        # changed host key stays one until the next attempt).
        self._last_failure: type[TransportError] = TransportError
        self.connects = 0  # how many connections were opened: reuse is measurable

    def _connect(self) -> paramiko.SSHClient:
        now = time.monotonic()
        if now < self._next_attempt:
            wait = self._next_attempt - now
            retry = f"{self.last_error or 'unreachable'} (next retry in {wait:.0f} s)"
            raise self._last_failure(retry)
        client = paramiko.SSHClient()
        known = Path(self.target.known_hosts)
        if known.exists():
            client.load_host_keys(str(known))
        client.set_missing_host_key_policy(
            _AcceptNewPolicy(str(known)) if self.accept_new else paramiko.RejectPolicy()
        )
        try:
            client.connect(
                self.target.hostname,
                port=self.target.port,
                username=self.target.user,
                key_filename=list(self.target.identity_files) or None,  # type: ignore[arg-type]
                timeout=CONNECT_TIMEOUT,
                banner_timeout=CONNECT_TIMEOUT,
                auth_timeout=CONNECT_TIMEOUT,
                allow_agent=True,
                look_for_keys=not self.target.identity_files,
                compress=self.compress,
                sock=self._proxy_sock(),
            )
        except paramiko.BadHostKeyException as exc:
            self._failed(
                f"{HOST_KEY_CHANGED} for {exc.hostname}: refusing to connect "
                f"(fix {self.target.known_hosts} once the change is understood)",
                HostKeyChanged,
            )
            client.close()
            raise HostKeyChanged(self.last_error or "") from None
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc):
                self._failed(
                    f"unknown host key for [{self.target.hostname}]:{self.target.port} "
                    f"(not in {self.target.known_hosts}; --accept-new-host-keys records it)",
                    HostKeyUnknown,
                )
                raise HostKeyUnknown(self.last_error or "") from None
            self._failed(f"ssh: {exc}")
            raise TransportError(self.last_error or "") from None
        except (OSError, EOFError) as exc:
            client.close()
            self._failed(f"cannot connect to {self.target.hostname}:{self.target.port}: {exc}")
            raise TransportError(self.last_error or "") from None
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_INTERVAL)
        self._backoff = 0.0
        self._next_attempt = 0.0
        self.connects += 1
        return client

    def _proxy_sock(self) -> paramiko.Channel | None:
        if not self.target.proxy_jump:
            return None
        spec = self.target.proxy_jump.split(",")[0]
        user, _, hostport = spec.rpartition("@")
        jhost, _, jport = hostport.partition(":")
        from wgconsole.core.inventory import SshSettings

        settings = SshSettings(
            user=user or self.host.ssh.user,
            port=int(jport or 22),
            identity_file=self.host.ssh.identity_file,
            known_hosts=self.host.ssh.known_hosts,
        )
        if self._jump is None:
            self._jump = SshTransport(
                Host(name=f"{self.name}-jump", host=jhost, ssh=settings),
                accept_new_host_keys=self.accept_new,
            )
        client = self._jump._ensure()
        transport = client.get_transport()
        if transport is None:
            raise TransportError("proxy jump connection lost")
        return transport.open_channel(
            "direct-tcpip", (self.target.hostname, self.target.port), ("127.0.0.1", 0)
        )

    def _failed(self, message: str, kind: type[TransportError] = TransportError) -> None:
        self.last_error = message
        self._last_failure = kind
        self._backoff = min(self.backoff_max, self._backoff * 2 if self._backoff else BACKOFF_START)
        self._next_attempt = time.monotonic() + self._backoff

    def _ensure(self) -> paramiko.SSHClient:
        if self._closed:
            raise TransportError("ssh: connection closed")
        client = self._client
        if client is not None:
            transport = client.get_transport()
            if transport is not None and transport.is_active():
                return client
            client.close()
            self._client = None
        client = self._connect()
        if self._closed:  # closed by another thread while connecting
            client.close()
            raise TransportError("ssh: connection closed")
        self._client = client
        return client

    def run(self, command: str, timeout: float, mutating: bool = False) -> CommandResult:
        if mutating and self.read_only:
            raise ReadOnlyViolation(f"{self.name}: read-only: refused to run a mutating command")
        with self._lock:
            client = self._ensure()
            started = time.monotonic()
            try:
                return self._exec(client, command, timeout, started)
            except CommandTimeout:
                # A hung command may leave the connection in any state: start afresh next time.
                self._drop()
                raise
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self._drop()
                self._failed(f"ssh: connection lost: {exc}")
                raise TransportError(self.last_error or "") from None

    def _exec(
        self, client: paramiko.SSHClient, command: str, timeout: float, started: float
    ) -> CommandResult:
        transport = client.get_transport()
        if transport is None:
            raise TransportError("ssh: not connected")
        channel = transport.open_session(timeout=timeout)
        channel.settimeout(0.5)
        channel.exec_command(command)
        out = bytearray()
        err = bytearray()
        deadline = started + timeout
        while True:
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(1 << 16)
            if time.monotonic() > deadline:
                channel.close()
                raise CommandTimeout(f"{self.name}: command timed out after {timeout:g} s")
            try:
                chunk = channel.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                break
            out += chunk
        if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
            channel.close()
            raise CommandTimeout(f"{self.name}: command timed out after {timeout:g} s")
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(1 << 16)
        status = channel.recv_exit_status()
        channel.close()
        return CommandResult(
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            status=status,
            seconds=time.monotonic() - started,
            bytes_received=len(out) + len(err),
        )

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self) -> None:
        """Close at once, even while another thread waits on a command (it then fails)."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if self._jump is not None:
            self._jump.close()
