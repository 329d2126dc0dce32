"""The configuration file a new client needs, and the only place its private key is written.

Choices, for a client behind the VIP:
- `Address = ADDR/32`: the gateways accept exactly ADDR/32 from this client (its AllowedIPs
  there), so the client claims nothing more on-link; the route to the tunnel network comes
  from the peer's AllowedIPs, which wg-quick (and the mobile/desktop apps) turn into routes.
- `AllowedIPs = the tunnel network`: the client then accepts packets from the gateways'
  tunnel address and from anything else the gateways route inside the tunnel (another
  client, a monitoring address), and wg-quick routes the whole network through the tunnel.
  `GW/32` would silently drop all of that. Networks behind the gateways are site-specific:
  the operator adds them to AllowedIPs.
- `Endpoint = VIP:port`: never a gateway's own address; with it the client would bypass
  the load balancer and never fail over.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from wgconsole.core.inventory import Inventory
from wgconsole.core.keys import PrivateKey
from wgconsole.ops.machinery.errors import OpError, ValidationError

OWN_KEY_COMMENT = "# PrivateKey = (the client's own key: it never left the client)"


def host_prefix(address: str) -> str:
    """`ADDR/32` (or `/128`): the one address a peer is allowed to use."""
    addr = ipaddress.ip_address(address)
    return f"{addr.compressed}/{addr.max_prefixlen}"


def endpoint_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class ClientConfig:
    """A wg-quick config for one client. `private_key` is None when the client keeps its own."""

    name: str
    address: str  # the client's tunnel address, without prefix
    server_public_key: str  # the gateways' one shared public key
    endpoint: str  # VIP:port
    allowed_ips: str  # the tunnel network
    keepalive: int
    private_key: PrivateKey | None = field(default=None, repr=False)

    def _lines(self, private_line: str) -> list[str]:
        lines = [
            f"# wgconsole: client {self.name}",
            "[Interface]",
            private_line,
            f"Address = {host_prefix(self.address)}",
            "",
            "[Peer]",
            "# the gateways (one shared key), always through the load balancer's VIP",
            f"PublicKey = {self.server_public_key}",
            f"Endpoint = {self.endpoint}",
            f"AllowedIPs = {self.allowed_ips}",
        ]
        if self.keepalive > 0:
            lines.append(f"PersistentKeepalive = {self.keepalive}")
        return [*lines, ""]

    def secret_text(self) -> str:
        """The full file, with the private key if one was generated: for `write_new` and QR."""
        if self.private_key is None:
            return "\n".join(self._lines(OWN_KEY_COMMENT))
        return "\n".join(self._lines(f"PrivateKey = {self.private_key.reveal()}"))

    def display_text(self, output: str | os.PathLike[str] | None) -> str:
        """The file as it may be printed: a generated private key is replaced by a pointer."""
        if self.private_key is None:
            return "\n".join(self._lines(OWN_KEY_COMMENT))
        where = f"<written to {os.fspath(output)}>" if output is not None else "<not shown>"
        return "\n".join(self._lines(f"PrivateKey = {where}"))

    def write_new(self, path: str | os.PathLike[str]) -> Path:
        """Create `path` with mode 0600 and write the file; never overwrites anything."""
        return write_new_file(Path(path), self.secret_text())


def build_client_config(
    inventory: Inventory,
    *,
    name: str,
    address: str,
    server_public_key: str,
    keepalive: int,
    private_key: PrivateKey | None,
) -> ClientConfig:
    svc = inventory.service
    return ClientConfig(
        name=name,
        address=address,
        server_public_key=server_public_key,
        endpoint=endpoint_text(svc.vip, svc.port),
        allowed_ips=inventory.tunnel.network,
        keepalive=keepalive,
        private_key=private_key,
    )


def check_new_file(path: Path) -> None:
    """Refuse early (before anything changes) when the file exists or cannot be made."""
    if os.path.lexists(path):
        raise ValidationError(f"{path}: already exists; it is never overwritten")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValidationError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValidationError(f"{path}: directory {parent} is not writable")


def write_new_file(path: Path, text: str) -> Path:
    # O_EXCL: an existing file (or a symlink planted there) is refused, not followed.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ValidationError(f"{path}: already exists; it is never overwritten") from None
    except OSError as exc:
        raise OpError(f"{path}: cannot create: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o600)  # the umask could only have narrowed it; make it exact
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise OpError(f"{path}: cannot write: {exc.strerror or exc}") from None
    os.close(fd)
    return path


def print_qr(config: ClientConfig, stream: TextIO) -> None:
    """Draw the FULL config (private key included) as a QR code, for a phone to scan.

    The private key is in the picture: it is drawn only on an interactive terminal (never
    into a pipe, a file or a log), and only when the operator asked for it (`--qr`).
    """
    if not stream.isatty():
        raise ValidationError("--qr draws the private key: only onto an interactive terminal")
    qrcode = importlib.import_module("qrcode")  # only `--qr` needs it (no type hints)
    code = qrcode.QRCode(border=1, error_correction=qrcode.constants.ERROR_CORRECT_L)
    code.add_data(config.secret_text())
    code.make(fit=True)
    code.print_ascii(out=stream, invert=True)
