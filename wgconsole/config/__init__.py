"""The bastion's own files: the inventory (`inventory_file` loads it, `inventory_edit` edits its
`clients:`), theme files (`themes`) and where all of them live (`paths`, via platformdirs).

May import `core` only; never `poll`, `ops`, `view` or the front ends.
"""
