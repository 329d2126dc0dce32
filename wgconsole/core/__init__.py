"""The domain, pure: what the hosts report (`records`), what the operator declared (`inventory`),
the fleet derived from both (`fleet`, built by `fleet_builder`: a FleetBuilder per sequence of
polls uses again what did not change), its `findings`, and the kernel's `sh` scheduler (`sched`,
`whereis`, `whatif`); `input_rules` (what a name and a weight may be), `wgkey` (what a WireGuard
key is), `lb_state` (what operations keep on a load balancer); `text`: how any text from outside
the project is made printable, for every front end to call before it reaches a terminal.

Imports the standard library and itself only: no I/O, no clock reads, no rendering, no Textual.
Everything above it may import it.
"""
