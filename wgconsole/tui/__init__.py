"""The Textual console: the `app`, its `screens` and `widgets`, and the one module that touches
Textual's internals (`textual_compat`).

Renders `view` snapshots and sends commands through `ops`; the only package that imports
Textual. May import every layer below it; never `cli`.
"""
