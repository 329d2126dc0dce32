"""Command lines that change a load balancer's IPVS service, built from validated values only."""

from __future__ import annotations

from wgconsole.core.inventory import Host, Service
from wgconsole.core.records import Endpoint, IpvsService
from wgconsole.poll.transport.base import privileged

PROTOCOL_OPTION = {"udp": "-u", "tcp": "-t", "sctp": "--sctp-service"}
FORWARD_OPTION = {"masq": "-m", "route": "-g", "tunnel": "-i"}
EXPIRE_NODEST = "net.ipv4.vs.expire_nodest_conn"


def _service_args(service: Service) -> list[str]:
    return [PROTOCOL_OPTION[service.protocol], f"{service.vip}:{service.port}"]


def _forward(forward: str | None) -> str:
    # Edits must restate the forwarding method: ipvsadm would otherwise reset it to DR.
    return FORWARD_OPTION.get(forward or "masq", "-m")


def set_sched_flags(lb: Host, service: Service, current: IpvsService, flags: list[str]) -> str:
    """`ipvsadm -E` restating scheduler and persistence, which -E would otherwise reset."""
    argv = ["ipvsadm", "-E", *_service_args(service), "-s", current.scheduler]
    if flags:
        argv += ["-b", ",".join(flags)]
    if current.timeout:
        argv += ["-p", str(current.timeout)]
    return privileged(argv, sudo=lb.ssh.sudo)


def set_weight(lb: Host, service: Service, dest: Endpoint, forward: str | None, w: int) -> str:
    argv = ["ipvsadm", "-e", *_service_args(service), "-r", str(dest), _forward(forward)]
    return privileged([*argv, "-w", str(w)], sudo=lb.ssh.sudo)


def delete_dest(lb: Host, service: Service, dest: Endpoint) -> str:
    return privileged(["ipvsadm", "-d", *_service_args(service), "-r", str(dest)], sudo=lb.ssh.sudo)


def add_dest(lb: Host, service: Service, dest: Endpoint, forward: str | None, w: int) -> str:
    argv = ["ipvsadm", "-a", *_service_args(service), "-r", str(dest), _forward(forward)]
    return privileged([*argv, "-w", str(w)], sudo=lb.ssh.sudo)


def set_expire_nodest(lb: Host, *, value: bool) -> str:
    return privileged(["sysctl", "-qw", f"{EXPIRE_NODEST}={int(value)}"], sudo=lb.ssh.sudo)
