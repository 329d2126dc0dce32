"""The `wgconsole` command's entry point: `probe` and `guard` start on their own modules'
imports.

A keepalived MISC_CHECK runs `wgconsole probe --check` every few seconds on a director, so
the probe must not pay for what the rest of the command line imports (SSH, the operations,
the exporter, the console's options). Every other command goes to `cli.main`, unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from wgconsole.cli.args import ArgParser, add_global_options

PROBE = "probe"
GUARD = "guard"


def _command(argv: Sequence[str]) -> str | None:
    """The command named in `argv`, past wgconsole's own options (None if it cannot tell:
    the full parser then reports whatever is wrong)."""
    options = ArgParser(add_help=False)
    add_global_options(options, after_command=False)
    try:
        _, rest = options.parse_known_args(list(argv))
    except SystemExit:
        return None
    return rest[0] if rest else None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = _command(args)
    if command == PROBE:
        from wgconsole.cli.probe import main as probe_main

        return probe_main(args)
    if command == GUARD:
        from wgconsole.cli.guard import main as guard_main

        return guard_main(args)
    from wgconsole.cli.main import main as full_main

    return full_main(args)
