"""The lab: the seed topology on a real kernel (IPVS, WireGuard, sshd) under QEMU.

May import `config` (its paths) and `core`; nothing else of wgconsole imports it but the CLI.
"""
