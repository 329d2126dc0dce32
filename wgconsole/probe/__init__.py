"""Health probes that speak WireGuard: a real handshake initiation to each gateway and through
the VIP (`handshake` makes and reads the messages, `prober` sends them), counted up only when
the gateway completes the handshake.

May import `core` and the standard library's sockets; never `poll`, `config`, `ops`, `view`
or the front ends (a probe needs no SSH: it is what still works when SSH does not).
"""
