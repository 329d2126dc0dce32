"""The console's options, as the command line gives them (wgconsole.cli builds them).

Textual-free: the command line imports it without paying for the console's import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wgconsole.probe.handshake import ProbeKey


@dataclass(frozen=True, slots=True)
class ConsoleOptions:
    interval: float = 2.0  # seconds between polls (at least 0.2)
    read_only: bool = False  # never send a mutating command; every action refused
    theme: str | None = None  # None: the default theme
    accept_new_host_keys: bool = False  # record unknown SSH host keys in known_hosts
    timeout: float = 30.0  # per-host command timeout, and each operation's
    audit_log: Path | None = None  # None: the default audit log
    probe_key: ProbeKey | None = None  # None: no handshake probes
    # The site its operations act on, among several loaded (`--site`): their previews, locks
    # and audit records carry it. None: the only one.
    site: str | None = None
