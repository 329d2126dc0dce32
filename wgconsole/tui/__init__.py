"""The Textual console: the `app`, its `screens` and `widgets`, and the one module that touches
Textual's internals (`textual_compat`).

Renders `view` snapshots and sends commands through `ops`; the only package that imports
Textual. May import every layer below it; never `cli`.

Text from hosts and operators reaches a widget only as Rich Text of its printable form
(`widgets.colours.plain`, `ThemeColours.text`, `ThemeColours.line`), never as a str Textual
would read as markup; notifications are never markup (`ConsoleApp.notify`).
"""
