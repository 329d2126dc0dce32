"""Reading the fleet: `transport` (SSH, local, netlink), `parsers` (command output -> records),
the `collector` (one request per host per poll, a fleet out of it) and `replay` (captured polls
served as a transport).

May import `core` and third-party I/O libraries (paramiko, pyroute2); never `config`, `ops`,
`view` or the front ends.
"""
