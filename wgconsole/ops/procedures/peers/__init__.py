"""Peer add and remove: the plans (`plan`), what both executions share (`common`), the add
(`add`) and the remove (`remove`)."""
