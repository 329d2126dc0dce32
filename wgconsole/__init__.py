"""wgconsole: an operations console for WireGuard gateways behind an IPVS load balancer."""

__version__ = "0.1.0"
