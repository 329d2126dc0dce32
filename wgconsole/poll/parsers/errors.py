"""The one error every parser raises, and the helpers that keep its message safe to show."""

from __future__ import annotations

import re

# A WireGuard key is 44 base64 characters. Any long base64 run is hidden from error
# messages, so a private or preshared key can never reach a log or the screen through one,
# whatever a broken or mislabelled input put where we did not expect it. Runs from 20
# characters on are hidden when they mix both cases: a piece of a key cut by a damaged line
# or by a shortened excerpt almost surely does; numbers, hex, words and (lowercase) paths
# such as /proc/sys/net/ipv4/vs/expire_nodest_conn do not.
_KEYLIKE = re.compile(r"[A-Za-z0-9+/]{20,}={0,2}")

_EXCERPT_CHARS = 160


def redact(text: str) -> str:
    """`text` with every key-like base64 run replaced by a placeholder."""
    return _KEYLIKE.sub(_hide, text)


def _hide(match: re.Match[str]) -> str:
    run = match.group()
    if len(run) >= 40 or (not run.islower() and not run.isupper() and not run.isdigit()):
        return "<redacted>"
    return run


def excerpt(text: str, limit: int = _EXCERPT_CHARS) -> str:
    """The first non-blank lines of `text`, joined and shortened, for an error message.

    Used when a command printed an error (stderr is merged into each section) instead of
    the expected format: that error is the most useful thing to show.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "(no output)"
    # Redacted before it is shortened (a key cut in two would no longer look like one), and
    # again after: the cut may leave a piece of a run that was too short to be hidden whole.
    joined = redact(" / ".join(lines))
    if len(joined) > limit:
        joined = joined[: limit - 3] + "..."
    return repr(redact(joined))


class ParseError(Exception):
    """Command output that does not have the expected format.

    `source` names the command or file, `line` is 1-based within that command's output
    (None when the problem is not tied to one line). The reason is redacted on the way in.
    """

    source: str
    line: int | None
    reason: str

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        reason = redact(reason)
        super().__init__(source, line, reason)
        self.source = source
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.source}: {self.reason}"
        return f"{self.source}, line {self.line}: {self.reason}"
