"""The append-only audit log: one JSON object per line, one line per action."""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgconsole.config.paths import state_dir


def default_audit_path() -> Path:
    explicit = os.environ.get("WGCONSOLE_AUDIT_LOG")
    if explicit:
        return Path(explicit)
    return state_dir() / "audit.jsonl"


def operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass
class AuditLog:
    path: Path

    def record(
        self,
        action: str,
        target: str,
        *,
        outcome: str,
        before: Any = None,
        after: Any = None,
        detail: str = "",
        site: str | None = None,
    ) -> dict[str, Any]:
        """`site`: the site acted on when several are loaded (else no `site` key at all)."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "epoch": round(time.time(), 3),
            "operator": operator(),
            "action": action,
            "target": target,
            "before": before,
            "after": after,
            "outcome": outcome,
            "detail": detail,
        }
        if site is not None:
            entry["site"] = site
        line = json.dumps(entry, sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND and a single write: concurrent writers never interleave within a line.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line after a crash must not hide the rest
        return out
