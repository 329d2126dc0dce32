"""The lab: the seed topology on a real kernel (IPVS, WireGuard, sshd) under QEMU."""
