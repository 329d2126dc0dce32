"""Framing of the one shell command a poll sends per host.

Each command's output is preceded by a line `@@wgc:NAME` and followed by
`@@wgc-rc:NAME:STATUS`, so one SSH round trip carries several outputs and their exit
statuses. `section_command` builds the shell side, `split_sections` takes the output apart.
A command streamed through a filter (`section_command_through`) has its stderr in a section
of its own, NAME-err, which follows NAME's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from wgconsole.poll.parsers.errors import ParseError, excerpt

START_PREFIX = "@@wgc:"
STATUS_PREFIX = "@@wgc-rc:"
STDERR_SUFFIX = "-err"

_SOURCE = "sections"
_NAME = re.compile(r"[a-z0-9_-]+")
# A start marker is always a whole line (it is echoed after the previous status line's
# newline). A status marker may follow output that lacked a final newline, so it is found
# at the end of a line rather than only at its start. A terminal (SSH with a pty) would
# end lines with \r\n: the markers tolerate that, parsers split lines with splitlines().
_MARKER = re.compile(
    r"^@@wgc:(?P<start>[^\n]*?)\r?$\n?|@@wgc-rc:(?P<status>[^\n]*?)\r?$\n?",
    re.MULTILINE,
)
_MARKER_LEAD = "@@wgc"  # what both kinds of marker start with


@dataclass(frozen=True, slots=True)
class Section:
    """One command's output (stdout and stderr merged, unless the command has a NAME-err
    section: see `section_command_through`) and its exit status."""

    name: str
    text: str
    rc: int | None  # None: the status line never arrived (output cut short)

    @property
    def ok(self) -> bool:
        return self.rc == 0


def section_command(name: str, command: str) -> str:
    """Shell text that runs `command` between the markers of section `name`.

    `command` must already be shell-quoted; it is inserted as is.
    """
    _check_name(name)
    if not command.strip():
        raise ValueError(f"empty command for section {name!r}")
    return f"echo '{START_PREFIX}{name}'; {command}; echo \"{STATUS_PREFIX}{name}:$?\""


def section_command_through(name: str, command: str, through: str) -> str:
    """Like `section_command`, with stdout streamed through the filter `through`, and
    stderr in section NAME-err after it (through the same filter).

    The exit status is still `command`'s: its status line is written into the pipe after
    the output, so the filter must pass lines it does not recognise unchanged. stdout is
    not held in a shell variable: a gateway's dump is ~1 MB with 10,000 peers, and the filter
    runs while the command still writes. If the filter fails, the status line is lost and
    the section reads as cut short, never as the command's unfiltered output.

    stderr never enters the filtered stream: a filter that knows the command's output by
    its lines (the dump's first line is the private key) would be misled by a warning that
    came first (sudo's "unable to resolve host"). It is held in a variable instead (a
    command's messages are short) and sent once the command ended. fd 3 is the script's
    stdout, fd 4 the capture of stderr.
    """
    _check_name(name)
    if not command.strip() or not through.strip():
        raise ValueError(f"empty command or filter for section {name!r}")
    err = name + STDERR_SUFFIX
    _check_name(err)
    return (
        f"echo '{START_PREFIX}{name}'; "
        f'{{ err=$( {{ {{ {command} 2>&4 4>&- 3>&-; echo "{STATUS_PREFIX}{name}:$?"; }}'
        f" | {through} >&3 3>&- 4>&-; }} 4>&1 ); }} 3>&1; "
        f"echo '{START_PREFIX}{err}'; "
        f'[ -z "$err" ] || printf \'%s\\n\' "$err" | {through}; '
        f"echo '{STATUS_PREFIX}{err}:0'"
    )


def split_sections(text: str) -> dict[str, Section]:
    """The sections of one poll's output, by name, in the order they appeared.

    Text before the first marker (shell start-up noise) is ignored; output without any
    marker is an error showing that output, as it is usually a shell or SSH error.
    Raises ParseError on a duplicate section, a status line for another section than the
    open one, a bad name or status, or non-blank text between a status line and the next
    section (the framing is then not trustworthy).
    """
    builder = _Builder(text)
    for match in _markers(text):
        builder.marker(match)
    return builder.finish()


def _markers(text: str) -> Iterator[re.Match[str]]:
    """The same matches as `_MARKER.finditer(text)`, found in a fraction of the time.

    A poll's output is megabytes (50,000 LB entries, 10,000 peers per gateway) with a
    dozen markers. Every marker starts with `@@wgc`, so str.find (a C scan) jumps from one
    candidate to the next and the pattern is only tried there; `^` still means the start
    of a line, as `match(text, pos)` honours MULTILINE at `pos`.
    """
    find = text.find
    match = _MARKER.match
    pos = find(_MARKER_LEAD)
    while pos >= 0:
        found = match(text, pos)
        if found is None:
            pos = find(_MARKER_LEAD, pos + 1)
            continue
        yield found
        pos = find(_MARKER_LEAD, found.end())


def section_text(sections: Mapping[str, Section], name: str, *, allow_failure: bool = False) -> str:
    """The text of section `name`, or ParseError when it is missing or incomplete.

    A non-zero exit status is an error showing the command's output, unless
    `allow_failure` (for commands whose failure output is itself an answer, such as
    `ip link show` of a missing device).
    """
    section = sections.get(name)
    if section is None:
        raise ParseError(_SOURCE, None, f"no section {name!r} in the output")
    if section.rc is None:
        raise ParseError(name, None, "output ended before the exit status (cut short?)")
    if section.rc != 0 and not allow_failure:
        raise ParseError(
            name, None, f"exit status {section.rc}: {excerpt(section_messages(sections, name))}"
        )
    return section.text


def section_messages(sections: Mapping[str, Section], name: str) -> str:
    """What section `name`'s command printed, for an error: its stderr first, where it has
    a NAME-err section (those that do not merged it into their text)."""
    section = sections.get(name)
    text = "" if section is None else section.text
    err = sections.get(name + STDERR_SUFFIX)
    if err is None or not err.text.strip():
        return text
    return err.text if not text.strip() else f"{err.text}\n{text}"


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"section name {name!r} does not match [a-z0-9_-]+")


class _Builder:
    """Walks the markers in order, tracking the open section."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._sections: dict[str, Section] = {}
        self._open: str | None = None
        self._body_start = 0
        self._closed_end: int | None = None  # end of the last status line, if one closed
        self._seen_marker = False

    def marker(self, match: re.Match[str]) -> None:
        self._seen_marker = True
        start = match.group("start")
        if start is not None:
            self._start(start, match)
        else:
            self._status(match.group("status"), match)

    def finish(self) -> dict[str, Section]:
        if not self._seen_marker:
            if self._text.strip():
                raise ParseError(_SOURCE, None, f"no section markers: {excerpt(self._text)}")
            return {}
        if self._open is not None:
            self._close(len(self._text), None)
        elif self._closed_end is not None:
            self._check_gap(self._closed_end, len(self._text))
        return self._sections

    def _start(self, name: str, match: re.Match[str]) -> None:
        if not _NAME.fullmatch(name):
            raise ParseError(_SOURCE, self._line(match), f"bad section name {name!r}")
        if self._open is not None:
            # The previous command's status line is missing; keep its text, status unknown.
            self._close(match.start(), None)
        elif self._closed_end is not None:
            self._check_gap(self._closed_end, match.start())
        if name in self._sections:
            raise ParseError(_SOURCE, self._line(match), f"duplicate section {name!r}")
        self._open = name
        self._body_start = match.end()

    def _status(self, body: str, match: re.Match[str]) -> None:
        name, sep, rc_text = body.rpartition(":")
        if not sep or not rc_text.isascii() or not rc_text.isdigit():
            raise ParseError(_SOURCE, self._line(match), f"bad status line {body!r}")
        if self._open != name:
            where = f"section {self._open!r}" if self._open else "no open section"
            raise ParseError(
                _SOURCE, self._line(match), f"status line for {name!r} found in {where}"
            )
        self._close(match.start(), int(rc_text))
        self._closed_end = match.end()

    def _close(self, end: int, rc: int | None) -> None:
        assert self._open is not None
        self._sections[self._open] = Section(self._open, self._text[self._body_start : end], rc)
        self._open = None

    def _check_gap(self, start: int, end: int) -> None:
        stray = self._text[start:end]
        if stray.strip():
            raise ParseError(
                _SOURCE,
                self._text.count("\n", 0, start) + 1,
                f"output outside any section: {excerpt(stray)}",
            )

    def _line(self, match: re.Match[str]) -> int:
        return self._text.count("\n", 0, match.start()) + 1
