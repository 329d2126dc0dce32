"""SSH through paramiko: one persistent connection per host, reused for every command.

New connections are expensive (key exchange; ~2 s each into the emulated lab), so a host keeps
its connection and only reconnects, with exponential backoff, after it failed. Host keys are
checked against known_hosts: an unknown key is refused unless the operator asked to accept new
keys, and a changed key is always refused.

Every phase of a connection (TCP connect, the server's banner, key exchange, authentication,
the tunnel through a jump host, the session channel) and the command itself share one deadline:
`run(command, timeout)` returns or fails within `timeout` seconds, even against a peer that
accepts the TCP connection and then says nothing (a ProxyJump hop or a NAT in front of a dead
host): paramiko's own timeouts are given what is left of it, and a watchdog closes a
connection still not established when it runs out (paramiko's are per phase, not in all).

The backoff is capped at 15 s: a retry costs one TCP connection attempt (and, since the
collector never waits for a host past its poll deadline, no poll of the other hosts), while
the cap is also how long a host that is back may stay shown as lost. 30 s made the console
lag a restarted sshd by up to half a minute for no gain.
"""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import paramiko

from wgconsole.core.inventory import Host
from wgconsole.poll.transport.base import (
    MAX_OUTPUT,
    CommandResult,
    CommandTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    LineBuffer,
    OutputTooLarge,
    ReadOnlyViolation,
    TransportError,
)

# paramiko logs a connection reset with a traceback at ERROR; unconfigured, Python prints that
# on stderr (over the console's screen). Every failure is reported as the host's error instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

# The longest a connection may take to be established, whatever the command's timeout.
CONNECT_TIMEOUT = 15.0
# Below this, a phase is not started: paramiko reads a timeout of 0 as "none".
MIN_PHASE = 0.05
BACKOFF_START = 1.0
BACKOFF_MAX = 15.0
KEEPALIVE_INTERVAL = 15
_TOO_SLOW = (
    "no SSH connection within the deadline (the TCP connection, the server's banner, key "
    "exchange or authentication stalled)"
)
# How a changed host key is worded: operators (and the lab tests) look for it in the error.
HOST_KEY_CHANGED = "HOST KEY CHANGED"


@dataclass(frozen=True, slots=True)
class JumpSpec:
    """One jump host as a ProxyJump names it: `[user@]host[:port]` (user, port: None if left
    out, for ~/.ssh/config to fill in)."""

    user: str | None
    host: str
    port: int | None


@dataclass(frozen=True, slots=True)
class SshHop:
    """A jump host after ~/.ssh/config has been applied to it."""

    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Where to connect, after ~/.ssh/config has been applied: through `jumps` in order
    (each one reached through the one before it), then to the host itself."""

    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts: str
    jumps: tuple[SshHop, ...] = ()


class SshConfigError(TransportError):
    """~/.ssh/config says something about this host that cannot be followed (a malformed
    ProxyJump, a Port that is not a number): the host is not tried at all, since connecting
    any other way than the config says could bypass the route it requires."""


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


# ProxyJump chains longer than this are refused: a jump host whose own ProxyJump leads back
# to itself would otherwise be followed for ever (OpenSSH keeps spawning ssh processes).
MAX_JUMPS = 8
_HOST_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # a ~/.ssh/config alias, a DNS name, IPv4
# Anything but separators, blanks and control characters; AD-style user@domain too.
_USER_NAME = re.compile(r"[^\x00-\x20\x7f,:/\[\]@]+(@[^\x00-\x20\x7f,:/\[\]@]+)*")


def _port(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{what} {text!r} is not a port number (1..65535)")
    return int(text)


def _jump_spec(text: str) -> JumpSpec:
    """One element of a ProxyJump: `[user@]host[:port]` or `ssh://[user@]host[:port]`, an IPv6
    address in brackets (`[fd00::1]:22`), as OpenSSH reads them."""
    rest = text
    if rest[:6].lower() == "ssh://":
        rest = rest[6:].removesuffix("/")
    user, at, hostport = rest.rpartition("@")
    if at and not user:
        raise ValueError(f"{text!r}: no user before '@'")
    if at and not _USER_NAME.fullmatch(user):
        raise ValueError(f"{text!r}: {user!r} is not a user name")
    port_text: str | None = None
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r}: '[' without its ']'")
        if after:
            if not after.startswith(":"):
                raise ValueError(f"{text!r}: {after!r} after ']' (expected :PORT)")
            port_text = after[1:]
        if ":" in host:
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
        elif not _HOST_NAME.fullmatch(host):
            raise ValueError(f"{text!r}: {host!r} is not a host name")
    else:
        host, colon, after = hostport.partition(":")
        if ":" in after:
            raise ValueError(f"{text!r}: write an IPv6 address in brackets: [ADDRESS]:PORT")
        if colon:
            port_text = after
        if not _HOST_NAME.fullmatch(host):
            shown = "no host" if not host else f"{host!r} is not a host name"
            raise ValueError(f"{text!r}: {shown}")
    port = None if port_text is None else _port(port_text, f"{text!r}: port")
    return JumpSpec(user=user or None, host=host, port=port)


def parse_proxy_jump(text: str) -> tuple[JumpSpec, ...]:
    """A ProxyJump value: jump hosts separated by commas, the first one connected to first;
    `none` means none. ValueError says what is wrong with it."""
    if text.strip().lower() == "none":
        return ()
    parts = [part.strip() for part in text.split(",")]
    if "" in parts:
        raise ValueError(f"{text!r}: an empty jump host (two commas, or one at an end)")
    return tuple(_jump_spec(part) for part in parts)


def _local_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry for this uid
        return None


class _SshConfig:
    """~/.ssh/config (absent: empty), looked up per name with OpenSSH's first-match rules."""

    def __init__(self, path: str) -> None:
        self.path = path
        expanded = Path(os.path.expanduser(path))
        self._config: paramiko.SSHConfig | None = None
        if expanded.exists():
            try:
                self._config = paramiko.SSHConfig.from_path(str(expanded))
            except (paramiko.SSHException, OSError, ValueError) as exc:
                raise SshConfigError(f"{path}: cannot be read: {exc}") from None

    def lookup(self, alias: str) -> dict[str, object]:
        if self._config is None:
            return {}
        try:
            return dict(self._config.lookup(alias))
        except (paramiko.SSHException, OSError, ValueError, KeyError) as exc:
            raise SshConfigError(f"{self.path}: Host {alias}: {exc}") from None

    def port(self, entry: Mapping[str, object], alias: str, default: int) -> int:
        if "port" not in entry:
            return default
        try:
            return _port(str(entry["port"]), "Port")
        except ValueError as exc:
            raise SshConfigError(f"{self.path}: Host {alias}: {exc}") from None

    def identities(self, entry: Mapping[str, object]) -> list[str]:
        """The entry's IdentityFiles that exist (OpenSSH's defaults are listed even if not)."""
        raw = entry.get("identityfile")
        if not isinstance(raw, list):
            return []
        paths = [os.path.expanduser(str(i)) for i in raw]
        return [p for p in paths if os.path.exists(p)]

    def jump(self, entry: Mapping[str, object]) -> str | None:
        value = entry.get("proxyjump")
        if value is None or str(value).strip().lower() == "none":
            return None
        return str(value)

    def chain(self, spec: str, alias: str, identity: str | None, depth: int = 0) -> list[SshHop]:
        """The jump hosts ProxyJump `spec` (from `alias`'s entry) goes through, in order.

        As with OpenSSH's -J: each hop's own entry gives its HostName, User, Port and
        IdentityFile (what the ProxyJump writes wins); the first hop's own ProxyJump is followed
        (it is how that hop is reached), a later hop's is not (the chain before it is its route).
        A hop's user is, failing both, the local login name, as OpenSSH's.
        """
        try:
            specs = parse_proxy_jump(spec)
        except ValueError as exc:
            raise SshConfigError(f"{self.path}: Host {alias}: ProxyJump: {exc}") from None
        if depth + len(specs) > MAX_JUMPS:
            raise SshConfigError(
                f"{self.path}: Host {alias}: ProxyJump: more than {MAX_JUMPS} jump hosts in "
                "all (does a jump host's own ProxyJump lead back to it?)"
            )
        hops: list[SshHop] = []
        for i, jump in enumerate(specs):
            entry = self.lookup(jump.host)
            before = self.jump(entry) if i == 0 else None
            if before is not None:
                hops += self.chain(before, jump.host, identity, depth + len(specs))
            user = jump.user or entry.get("user") or _local_user()
            if user is None:
                raise SshConfigError(
                    f"{self.path}: Host {alias}: ProxyJump: no user for jump host {jump.host} "
                    "(write it as USER@HOST)"
                )
            ids = self.identities(entry)
            if identity:
                ids.append(identity)
            hops.append(
                SshHop(
                    hostname=str(entry.get("hostname", jump.host)),
                    port=jump.port if jump.port is not None else self.port(entry, jump.host, 22),
                    user=str(user),
                    identity_files=tuple(dict.fromkeys(ids)),
                )
            )
        return hops


def resolve_target(host: Host, ssh_config_path: str = "~/.ssh/config") -> SshTarget:
    """The inventory's user and port win where it gives them (on the host or in its `ssh:`
    defaults); ~/.ssh/config fills in the rest, its HostName and ProxyJump, and adds its
    IdentityFiles after the inventory's, as OpenSSH does with its command line and config.

    SshConfigError: the config cannot be read, or says something that cannot be followed.
    """
    config = _SshConfig(ssh_config_path)
    entry = config.lookup(host.host)
    identity = os.path.expanduser(host.ssh.identity_file) if host.ssh.identity_file else None
    identities = [identity] if identity else []
    identities += config.identities(entry)
    port = host.ssh.port
    if not host.ssh.is_given("port"):
        port = config.port(entry, host.host, port)
    user = host.ssh.user if host.ssh.is_given("user") else str(entry.get("user", host.ssh.user))
    spec = config.jump(entry)
    return SshTarget(
        hostname=str(entry.get("hostname", host.host)),
        port=port,
        user=user,
        identity_files=tuple(dict.fromkeys(identities)),
        known_hosts=os.path.expanduser(host.ssh.known_hosts),
        jumps=() if spec is None else tuple(config.chain(spec, host.host, identity)),
    )


def _host_port(hostname: str, port: int) -> str:
    return f"[{hostname}]:{port}" if ":" in hostname else f"{hostname}:{port}"


@dataclass(frozen=True, slots=True)
class _Leg(SshHop):
    """One SSH connection of a route: a jump host or the host itself."""

    what: str = ""  # "" for the host itself, "jump host 1 of 2 " for a hop: said in its errors


class SshTransport:
    """Runs commands on one host over a persistent paramiko connection (through its jump
    hosts, when ~/.ssh/config gives it a ProxyJump: one connection to each, kept as long)."""

    def __init__(
        self,
        host: Host,
        *,
        accept_new_host_keys: bool = False,
        read_only: bool = False,
        compress: bool = False,
        backoff_max: float = BACKOFF_MAX,
        max_output: int = MAX_OUTPUT,
        ssh_config: str = "~/.ssh/config",
    ) -> None:
        self.name = host.name
        self.host = host
        # A config that cannot be followed is this host's error on every attempt (the target
        # stays the inventory's, never used: connecting without the route could bypass it).
        self.config_error: str | None = None
        try:
            self.target = resolve_target(host, ssh_config)
        except SshConfigError as exc:
            self.config_error = str(exc)
            self.target = SshTarget(
                host.host, host.ssh.port, host.ssh.user, (), host.ssh.known_hosts
            )
        self.accept_new = accept_new_host_keys
        self.read_only = read_only
        self.compress = compress
        self.max_output = max_output
        self._client: paramiko.SSHClient | None = None
        self._hops: list[paramiko.SSHClient] = []  # the jump hosts' connections, first first
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

    def _legs(self) -> list[_Leg]:
        t = self.target
        n = len(t.jumps)
        legs = [
            _Leg(h.hostname, h.port, h.user, h.identity_files, f"jump host {i} of {n} ")
            for i, h in enumerate(t.jumps, 1)
        ]
        return [*legs, _Leg(t.hostname, t.port, t.user, t.identity_files, "")]

    def _connect(self, deadline: float | None = None) -> paramiko.SSHClient:
        """A new connection to the host, through each of its jump hosts in turn, established
        by `deadline` (monotonic; None: CONNECT_TIMEOUT from now) or not at all."""
        if deadline is None:
            deadline = time.monotonic() + CONNECT_TIMEOUT
        if self.config_error is not None:
            raise SshConfigError(self.config_error)
        now = time.monotonic()
        if now < self._next_attempt:
            wait = self._next_attempt - now
            retry = f"{self.last_error or 'unreachable'} (next retry in {wait:.0f} s)"
            raise self._last_failure(retry)
        legs = self._legs()
        hops: list[paramiko.SSHClient] = []
        sock: paramiko.Channel | None = None
        try:
            for leg, after in itertools.pairwise(legs):
                hop = self._open(leg, sock, deadline)
                hops.append(hop)
                sock = self._tunnel(hop, leg, after, deadline)
            client = self._open(legs[-1], sock, deadline)
        except BaseException:
            for hop in reversed(hops):
                hop.close()
            raise
        self._hops = hops
        self._backoff = 0.0
        self._next_attempt = 0.0
        self.connects += 1
        return client

    def _remaining(self, leg: _Leg, deadline: float) -> float:
        """What is left of `deadline` for the next phase; TransportError when nothing is."""
        left = deadline - time.monotonic()
        if left < MIN_PHASE:
            self._failed(f"ssh: {leg.what}{_host_port(leg.hostname, leg.port)}: {_TOO_SLOW}")
            raise TransportError(self.last_error or "")
        return left

    def _open(
        self, leg: _Leg, sock: paramiko.Channel | None, deadline: float
    ) -> paramiko.SSHClient:
        """One SSH connection (over `sock`, a tunnel through the jump host before, if any),
        its host key checked against known_hosts whichever leg it is; established by
        `deadline` or closed by the watchdog, whichever phase it is in then."""
        left = self._remaining(leg, deadline)
        client = paramiko.SSHClient()
        known = Path(self.target.known_hosts)
        if known.exists():
            client.load_host_keys(str(known))
        client.set_missing_host_key_policy(
            _AcceptNewPolicy(str(known)) if self.accept_new else paramiko.RejectPolicy()
        )
        where = f"{leg.what}{_host_port(leg.hostname, leg.port)}"
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            client.close()  # wakes paramiko in whichever phase it waits (its reads poll)

        watchdog = threading.Timer(left, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            client.connect(
                leg.hostname,
                port=leg.port,
                username=leg.user,
                key_filename=list(leg.identity_files) or None,  # type: ignore[arg-type]
                timeout=left,  # TCP connect, then banner and key exchange together
                banner_timeout=left,
                auth_timeout=left,
                channel_timeout=left,
                allow_agent=True,
                look_for_keys=not leg.identity_files,
                compress=self.compress,
                sock=sock,
            )
            if expired.is_set():  # closed by the watchdog just as it succeeded
                raise EOFError("closed at the deadline")
        except Exception as exc:
            # Whatever the watchdog's close made paramiko raise (an AttributeError from a
            # transport gone mid-authentication included) is the deadline's.
            client.close()
            stalled = expired.is_set() or (
                isinstance(exc, paramiko.SSHException | EOFError) and time.monotonic() >= deadline
            )
            if stalled:
                self._failed(f"ssh: {where}: {_TOO_SLOW} ({left:.1f} s)")
                raise TransportError(self.last_error or "") from None
            if isinstance(exc, paramiko.SSHException | OSError | EOFError):
                raise self._connect_error(leg, exc) from None
            raise
        finally:
            watchdog.cancel()
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(KEEPALIVE_INTERVAL)
        return client

    def _connect_error(self, leg: _Leg, exc: Exception) -> TransportError:
        """The TransportError that `exc`, out of paramiko's connect, stands for (recorded as
        the last failure)."""
        where = f"{leg.what}{_host_port(leg.hostname, leg.port)}"
        if isinstance(exc, paramiko.BadHostKeyException):
            self._failed(
                f"{HOST_KEY_CHANGED} for {leg.what}{exc.hostname}: refusing to connect "
                f"(fix {self.target.known_hosts} once the change is understood)",
                HostKeyChanged,
            )
            return HostKeyChanged(self.last_error or "")
        if isinstance(exc, paramiko.SSHException):
            if "not found in known_hosts" in str(exc):
                self._failed(
                    f"unknown host key for {leg.what}[{leg.hostname}]:{leg.port} "
                    f"(not in {self.target.known_hosts}; --accept-new-host-keys records it)",
                    HostKeyUnknown,
                )
                return HostKeyUnknown(self.last_error or "")
            self._failed(f"ssh: {where}: {exc}")
            return TransportError(self.last_error or "")
        self._failed(f"cannot connect to {where}: {exc}")
        return TransportError(self.last_error or "")

    def _tunnel(
        self, hop: paramiko.SSHClient, leg: _Leg, to: _Leg, deadline: float
    ) -> paramiko.Channel:
        """A TCP connection from jump host `leg` to the next leg's sshd (OpenSSH's -W)."""
        transport = hop.get_transport()
        where = _host_port(to.hostname, to.port)
        left = self._remaining(leg, deadline)
        try:
            if transport is None:
                raise paramiko.SSHException("connection lost")
            return transport.open_channel(
                "direct-tcpip", (to.hostname, to.port), ("127.0.0.1", 0), timeout=left
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            hop.close()
            self._failed(
                f"{leg.what}{_host_port(leg.hostname, leg.port)} cannot reach {where}: {exc}"
            )
            raise TransportError(self.last_error or "") from None

    def _failed(self, message: str, kind: type[TransportError] = TransportError) -> None:
        self.last_error = message
        self._last_failure = kind
        self._backoff = min(self.backoff_max, self._backoff * 2 if self._backoff else BACKOFF_START)
        self._next_attempt = time.monotonic() + self._backoff

    def _ensure(self, deadline: float | None = None) -> paramiko.SSHClient:
        if self._closed:
            raise TransportError("ssh: connection closed")
        client = self._client
        if client is not None:
            transport = client.get_transport()
            if transport is not None and transport.is_active():
                return client
            self._drop()
        client = self._connect(deadline)
        self._client = client
        if self._closed:  # closed by another thread while connecting
            self._drop()
            raise TransportError("ssh: connection closed")
        return client

    def run(self, command: str, timeout: float, *, mutating: bool = False) -> CommandResult:
        if mutating and self.read_only:
            raise ReadOnlyViolation(f"{self.name}: read-only: refused to run a mutating command")
        with self._lock:
            # One deadline for all of it: connecting (every phase), the channel, the command;
            # from the moment this run has the connection (another run may have held it).
            started = time.monotonic()
            deadline = started + timeout
            client = self._ensure(min(deadline, time.monotonic() + CONNECT_TIMEOUT))
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
        deadline = started + timeout
        left = deadline - time.monotonic()
        if left < MIN_PHASE:
            raise CommandTimeout(f"{self.name}: command timed out after {timeout:g} s")
        try:
            channel = transport.open_session(timeout=left)
        except paramiko.SSHException:
            if time.monotonic() < deadline - MIN_PHASE:
                raise
            raise CommandTimeout(
                f"{self.name}: no session channel within the deadline (timed out after "
                f"{timeout:g} s)"
            ) from None
        channel.settimeout(0.5)
        channel.exec_command(command)
        out = bytearray()
        err = bytearray()
        cap = self.max_output

        def read_stderr() -> None:
            while channel.recv_stderr_ready():
                err.extend(channel.recv_stderr(min(1 << 16, cap + 1 - len(out) - len(err))))
                if len(out) + len(err) > cap:
                    # Closing the channel stops the host's sending (and the command, on its
                    # next write); the connection stays for the next command.
                    channel.close()
                    raise OutputTooLarge(cap)

        while True:
            read_stderr()
            if time.monotonic() > deadline:
                channel.close()
                raise CommandTimeout(f"{self.name}: command timed out after {timeout:g} s")
            try:
                # Never more than one byte past the cap: what is read is what is held.
                chunk = channel.recv(min(1 << 20, cap + 1 - len(out) - len(err)))
            except TimeoutError:
                continue
            if not chunk:
                break
            out += chunk
            if len(out) + len(err) > cap:
                channel.close()
                raise OutputTooLarge(cap)
        if not channel.status_event.wait(max(0.0, deadline - time.monotonic())):
            channel.close()
            raise CommandTimeout(f"{self.name}: command timed out after {timeout:g} s")
        read_stderr()
        status = channel.recv_exit_status()
        channel.close()
        return CommandResult(
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
            status=status,
            seconds=time.monotonic() - started,
            bytes_received=len(out) + len(err),
        )

    def start(self, command: str, timeout: float) -> SshRunningCommand:
        """`command` started on its own channel of the kept connection: other commands (and
        other started ones) run beside it while it runs."""
        with self._lock:
            deadline = time.monotonic() + timeout
            client = self._ensure(min(deadline, time.monotonic() + CONNECT_TIMEOUT))
            transport = client.get_transport()
            if transport is None:
                raise TransportError("ssh: not connected")
            try:
                channel = transport.open_session(
                    timeout=max(MIN_PHASE, deadline - time.monotonic())
                )
                channel.exec_command(command)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self._drop()
                self._failed(f"ssh: connection lost: {exc}")
                raise TransportError(self.last_error or "") from None
        return SshRunningCommand(channel, self.max_output)

    def _drop(self) -> None:
        client, self._client = self._client, None
        hops, self._hops = self._hops, []
        if client is not None:
            client.close()
        for hop in reversed(hops):
            hop.close()

    def close(self) -> None:
        """Close at once, even while another thread waits on a command (it then fails)."""
        self._closed = True
        self._drop()


class SshRunningCommand:
    """A started command's channel, read as its output comes (base.RunningCommand)."""

    def __init__(self, channel: paramiko.Channel, cap: int) -> None:
        self._channel = channel
        self._buffer = LineBuffer(cap)
        self._errors = LineBuffer(cap)
        self._eof = False

    def read(self, wait: float) -> tuple[list[str], list[str]]:
        channel = self._channel
        out: list[str] = []
        if not self._eof:
            channel.settimeout(max(0.01, wait))
            try:
                chunk = channel.recv(1 << 16)
            except TimeoutError:
                chunk = None
            except (paramiko.SSHException, OSError, EOFError):
                chunk = b""
            if chunk == b"":
                self._eof = True
                out.extend(self._buffer.rest())
            elif chunk:
                out.extend(self._buffer.add(chunk))
        else:
            channel.status_event.wait(min(wait, 0.2))
        err: list[str] = []
        while channel.recv_stderr_ready():
            err.extend(self._errors.add(channel.recv_stderr(1 << 16)))
        if self.ended:
            err.extend(self._errors.rest())
        return out, err

    @property
    def ended(self) -> bool:
        return self._eof and self._channel.exit_status_ready()

    @property
    def status(self) -> int | None:
        return self._channel.recv_exit_status() if self.ended else None

    def stop(self) -> None:
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            self._channel.shutdown_write()

    def close(self) -> None:
        self._channel.close()
