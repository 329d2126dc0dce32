"""How a long-running command (the exporter, the guard) is stopped by its service manager."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any


def stop_on_sigterm() -> Any:
    """SIGTERM ends the command as Ctrl-C does (connections closed on the way out)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, stop)
