"""Text that did not come from the project's own constants, made safe to put on a terminal.

Hosts (dumps, listings, error output, lock and drain records) and operators (names, filters,
pasted input) can hand the console any characters. A terminal obeys control characters: ESC
starts sequences that clear the screen, set the window title or write the clipboard (OSC 52),
and a C1 control (U+009B is CSI) does the same in one code point. Bidirectional overrides
reorder what is shown, so that one name reads as another; a lone surrogate cannot even be
encoded, and the print would raise. `printable` replaces each of these with a visible escape.

The escape is Python's (`\\x1b`, `\\u202e`), not U+FFFD: it says which character the host sent
(an operator reading `\\x1b[2J` knows it was a clear-screen sequence), it is plain ASCII that
every terminal and log shows alike, and it stays distinct from U+FFFD, which is already what
the transports decode an invalid UTF-8 byte to. A backslash itself is left as it is: hosts'
text has few, and doubling them would garble the common case to disambiguate a rare one.

Every front end calls this at its boundary (the console's widgets, `status`, the CLI's
prints); markup is a separate matter, handled there by never parsing such text as markup.
"""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls; the bidirectional marks, embeddings, overrides and
# isolates; the line and paragraph separators (some terminals break lines at them); and
# surrogates (only a lone one can be in a str, and it cannot be encoded for output).
_SPECIALS = "\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
UNPRINTABLE = f"[\x00-\x1f\x7f-\x9f{_SPECIALS}]"
_ANY = re.compile(UNPRINTABLE)
_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_SPECIALS}]")
# A regular expression matching text free of them (as an input box's restriction).
PRINTABLE_ONLY = f"[^\x00-\x1f\x7f-\x9f{_SPECIALS}]*"


_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` with every control character shown as its escape (`\\x1b`, `\\t`, `\\u202e`).

    With `newlines`, line breaks are kept (a CRLF becomes one line break): for multi-line
    text such as a command's output. Text without such characters is returned as it is.
    """
    if newlines:
        if "\r\n" in text:
            text = text.replace("\r\n", "\n")
        pattern = _BUT_NEWLINE
    else:
        pattern = _ANY
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def is_printable(text: str, *, newlines: bool = False) -> bool:
    """True when `printable` would return `text` unchanged."""
    pattern = _BUT_NEWLINE if newlines else _ANY
    return pattern.search(text) is None
