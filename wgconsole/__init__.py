"""wgconsole: an operations console for WireGuard gateways behind an IPVS load balancer.

The packages are layers; each may import only those below it (import-linter contracts in
pyproject.toml, checked by `make lint`):

- `cli`, `tui`: the front ends (the command line; the Textual console). Independent of each other.
- `ops`, `view`, `lab`, `export`: operations that change the fleet; the Textual-free view model
  the console renders; the QEMU lab; the Prometheus exporter (read-only). Independent of each
  other.
- `poll`, `config`: reading the fleet (transports, parsers, the collector); the bastion's own
  files (inventory, themes, paths).
- `core`: the domain, pure: records, inventory types, the fleet model, findings, the sh scheduler.
"""
