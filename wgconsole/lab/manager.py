"""`wgconsole lab up|down|status`: the seed topology on the distribution kernel under QEMU.

This machine's own kernel has neither IPVS nor WireGuard, so the lab always boots Debian's
kernel with software emulation and shares the host's root read-only over 9p: every tool the
host has installed (ip, wg, ipvsadm, sshd, python) runs inside the guest. The host is never
touched beyond the lab directory and QEMU's port forwards on 127.0.0.1.

`lab up --lbs 2` makes the LB a director pair (see guest_script): topology.json then has a
`director_pair` record (the intended master, each director's keepalived config, log, pid
files and restart command).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from wgconsole.config.paths import lab_dir
from wgconsole.lab.guest_script import (
    client_peer,
    gateway_body,
    keepalived_command,
    keepalived_config,
    keepalived_config_path,
    keepalived_log_path,
    keepalived_pid_files,
    render_guest_script,
    sshd_config,
)
from wgconsole.lab.initramfs import build_initramfs, kernel_release
from wgconsole.lab.topology import (
    KEEPALIVE,
    LB_LAN,
    LB_WAN,
    SERVICE_PORT,
    SYNC_ID,
    SYNC_INTERFACE,
    TUNNEL_GATEWAY,
    TUNNEL_NETWORK,
    VIP,
    VRRP_ADVERT_INT,
    VRRP_INSTANCE,
    VRRP_ROUTER_ID,
    Topology,
    build_topology,
    topology_dict,
)

# Debian packages the lab needs on the host (the guest runs the same binaries over 9p).
PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "busybox": "busybox-static",
    "wg": "wireguard-tools",
    "ipvsadm": "ipvsadm",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
    "iptables": "iptables",
    "nft": "nftables",  # the fence on the LBs of a gateway evicted or drained while unreachable
    "modinfo": "kmod",
    "cpio": "cpio",
    "ping": "iputils-ping",
    "hping3": "hping3",
    "sudo": "sudo",  # `sudo: true` lab tests (users made in the guest only)
    "promtool": "prometheus",  # alert rules checked and tested; the metrics lab test's server
    "keepalived": "keepalived",  # VRRP and the IPVS sync daemon of `lab up --lbs 2`
    "tcpdump": "tcpdump",  # `wgconsole trace`: the captures on the LBs and the gateways
}
KERNEL_PACKAGE = "linux-image-amd64"
# Generous: the guest is emulated and shares the machine's cores with other labs, and a
# loaded machine slows its boot severalfold (the director pair's most of all).
READY_TIMEOUT = 600.0
GUEST_MEMORY_MB = 2048


class LabError(Exception):
    pass


def ensure_packages() -> None:
    """Install the Debian packages the lab needs that are not there yet."""
    missing = sorted({pkg for tool, pkg in PACKAGES.items() if not _have_tool(tool)})
    if not any(Path("/boot").glob("vmlinuz-*")):
        missing.append(KERNEL_PACKAGE)
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise LabError(f"missing packages {', '.join(missing)} and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )


def _have_tool(tool: str) -> bool:
    return (
        any(Path(d, tool).exists() for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"))
        or shutil.which(tool) is not None
    )


def _run(*argv: str, stdin: str | None = None) -> str:
    return subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=True
    ).stdout


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _wg_keypair(private_path: Path) -> str:
    """Write a new WireGuard private key to `private_path` (0600) and return the public key."""
    private = _run("wg", "genkey")
    _write_secret(private_path, private)
    return _run("wg", "pubkey", stdin=private).strip()


def _ssh_keypair(path: Path, comment: str) -> str:
    path.unlink(missing_ok=True)
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))
    return Path(f"{path}.pub").read_text().strip()


def qemu_pid(lab: Path) -> int | None:
    """The lab's QEMU pid, if that process is alive and really is this lab's QEMU."""
    try:
        pid = int((lab / "qemu.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if not cmdline or b"qemu-system" not in cmdline[0]:
        return None
    if not any(str(lab).encode() in arg for arg in cmdline):
        return None
    return pid


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _inventory_yaml(topo: Topology, lab: Path, client_keys: dict[str, str]) -> str:
    lines = [
        "# Generated by `wgconsole lab up`: the lab's own hosts, reached through 127.0.0.1",
        "# port forwards into the QEMU guest.",
        f"service: {{protocol: udp, vip: {VIP}, port: {SERVICE_PORT}, scheduler: sh}}",
        "ssh:",
        "  user: root",
        "  port: 22",
        f"  identity_file: {lab}/id_ed25519",
        f"  known_hosts: {lab}/known_hosts",
        "  sudo: false",
        "load_balancers:",
    ]
    lines += [
        f"  - {{name: {lb.name}, host: 127.0.0.1, port: {lb.ssh_port}}}"
        for lb in topo.load_balancers
    ]
    lines.append("gateways:")
    lines += [
        f"  - {{name: {gw.name}, host: 127.0.0.1, port: {gw.ssh_port}, "
        f"real_server: {gw.real_server}}}"
        for gw in topo.gateways
    ]
    lines.append(
        f"tunnel: {{network: {TUNNEL_NETWORK}, gateway_address: {TUNNEL_GATEWAY}, "
        f"keepalive: {KEEPALIVE}}}"
    )
    if topo.clients:
        lines.append("clients:")
        lines += [
            f"  - {{name: {cl.name}, public_key: {client_keys[cl.name]}, "
            f"address: {cl.tunnel_address}}}"
            for cl in topo.clients
        ]
    return "\n".join(lines) + "\n"


def _prepare(lab: Path, topo: Topology) -> None:
    for sub in ("hostkeys", "sshd", "wg"):
        (lab / sub).mkdir(parents=True, exist_ok=True)
    for stale in ("ready", "guest.log", "console.log"):
        (lab / stale).unlink(missing_ok=True)
    (lab / "wg").chmod(0o700)
    client_pub = _ssh_keypair(lab / "id_ed25519", "wgconsole-lab")
    (lab / "authorized_keys").write_text(client_pub + "\n")
    known = []
    names = {"control": topo.control_port} | {h.netns: h.ssh_port for h in topo.ssh_hosts}
    for ns, port in names.items():
        pub = _ssh_keypair(lab / "hostkeys" / ns, f"wglab-{ns}")
        known.append(f"[127.0.0.1]:{port} {' '.join(pub.split()[:2])}")
    (lab / "known_hosts").write_text("\n".join(known) + "\n")
    (lab / "sshd" / "control.conf").write_text(sshd_config(lab, "control", "0.0.0.0"))
    for host in topo.ssh_hosts:
        (lab / "sshd" / f"{host.netns}.conf").write_text(sshd_config(lab, host.netns, host.mgmt))
    gateway_pub = _wg_keypair(lab / "wg" / "gateway.key")
    client_keys = {cl.name: _wg_keypair(lab / "wg" / f"{cl.name}.key") for cl in topo.clients}
    (lab / "wg" / "gateway-body.conf").write_text(gateway_body(topo, client_keys))
    (lab / "wg" / "client-peer.conf").write_text(client_peer(gateway_pub))
    if topo.directors:
        (lab / "keepalived").mkdir(exist_ok=True)
        for d in topo.directors:
            keepalived_config_path(lab, d).write_text(keepalived_config(topo, d))
            keepalived_log_path(lab, d).unlink(missing_ok=True)
    (lab / "guest.sh").write_text(render_guest_script(topo, lab))
    (lab / "inventory.yaml").write_text(_inventory_yaml(topo, lab, client_keys))
    meta: dict[str, object] = {
        "topology": topology_dict(topo),
        "gateway_public_key": gateway_pub,
        "client_public_keys": client_keys,
        "vip": VIP,
        "port": SERVICE_PORT,
    }
    if topo.directors:
        meta["director_pair"] = director_pair_record(topo, lab)
    (lab / "topology.json").write_text(json.dumps(meta, indent=2) + "\n")


def director_pair_record(topo: Topology, lab: Path) -> dict[str, object]:
    """What topology.json says of the pair: who starts as master, VRRP and sync settings, and
    per director where its keepalived config, log and pid files are and how to restart it."""
    return {
        "master": topo.lb.name,
        "vrrp_instance": VRRP_INSTANCE,
        "virtual_router_id": VRRP_ROUTER_ID,
        "advert_int": VRRP_ADVERT_INT,
        "virtual_addresses": {"vip": VIP, "lan": LB_LAN, "wan": LB_WAN},
        "sync_interface": SYNC_INTERFACE,
        "syncid": SYNC_ID,
        # keepalived writes it on SIGUSR1, in the director's private /tmp (see guest_script).
        "data_file": "/tmp/keepalived.data",
        "directors": [
            {
                "name": d.name,
                "netns": d.netns,
                "lan": d.lan,
                "wan": d.wan,
                "priority": d.priority,
                "initial_state": d.initial_state,
                "keepalived_conf": str(keepalived_config_path(lab, d)),
                "keepalived_log": str(keepalived_log_path(lab, d)),
                **keepalived_pid_files(d),
                "keepalived_start": keepalived_command(lab, d),
            }
            for d in topo.directors
        ],
    }


def _qemu_argv(lab: Path, topo: Topology, release: str) -> list[str]:
    ports = [topo.control_port, *(h.ssh_port for h in topo.ssh_hosts)]
    # The control port lands on the guest's own sshd (:22); the others are DNATed in the guest.
    fwds = [f"hostfwd=tcp:127.0.0.1:{topo.control_port}-:22"]
    fwds += [f"hostfwd=tcp:127.0.0.1:{p}-:{p}" for p in ports[1:]]
    return [
        "qemu-system-x86_64",
        "-name",
        "wgconsole-lab",
        "-accel",
        "tcg",  # /dev/kvm exists here but guests hang in it
        "-m",
        str(GUEST_MEMORY_MB),
        "-smp",
        "2",
        "-no-reboot",
        "-kernel",
        f"/boot/vmlinuz-{release}",
        "-initrd",
        str(lab / "initramfs.gz"),
        "-append",
        "console=ttyS0 quiet panic=-1",
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        "-virtfs",
        f"local,path={lab},mount_tag=labstate,security_model=none,multidevs=remap",
        "-netdev",
        "user,id=n0,restrict=on," + ",".join(fwds),
        "-device",
        "virtio-net-pci,netdev=n0",
        "-serial",
        f"file:{lab}/console.log",
        "-monitor",
        "none",
        "-display",
        "none",
        "-daemonize",
        "-pidfile",
        str(lab / "qemu.pid"),
    ]


def lab_up(
    gateways: int = 2,
    clients: int = 2,
    base_port: int = 2220,
    lab: Path | None = None,
    lbs: int = 1,
) -> Topology:
    lab = lab or lab_dir()
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, packages, QEMU)")
    if qemu_pid(lab) is not None:
        raise LabError(f"a lab is already running (state in {lab}); `wgconsole lab down` first")
    topo = build_topology(gateways, clients, base_port, lbs)
    busy = [
        p for p in (topo.control_port, *(h.ssh_port for h in topo.ssh_hosts)) if not _port_free(p)
    ]
    if busy:
        raise LabError(f"127.0.0.1 ports in use: {busy}; choose another --base-port")
    ensure_packages()
    lab.mkdir(parents=True, exist_ok=True)
    lab.chmod(0o700)
    _prepare(lab, topo)
    release = kernel_release()
    build_initramfs(lab / "initramfs.gz", release, lab)
    subprocess.run(_qemu_argv(lab, topo, release), check=True)
    _wait_ready(lab)
    return topo


def _wait_ready(lab: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if (lab / "ready").exists():
            return
        if qemu_pid(lab) is None:
            raise LabError(f"the lab's QEMU exited during boot; see {lab}/console.log")
        time.sleep(0.5)
    raise LabError(f"the lab was not ready after {READY_TIMEOUT:.0f} s; see {lab}/guest.log")


def lab_down(lab: Path | None = None) -> bool:
    """Stop the lab's QEMU (by its pid) and remove the lab directory. True if one was running."""
    lab = lab or lab_dir()
    pid = qemu_pid(lab)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if qemu_pid(lab) is None:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    if lab.exists():
        shutil.rmtree(lab)
    return pid is not None


def load_topology(lab: Path | None = None) -> dict[str, object]:
    lab = lab or lab_dir()
    data: dict[str, object] = json.loads((lab / "topology.json").read_text())
    return data


def lab_status(lab: Path | None = None) -> dict[str, object]:
    lab = lab or lab_dir()
    pid = qemu_pid(lab)
    status: dict[str, object] = {
        "running": pid is not None,
        "pid": pid,
        "ready": (lab / "ready").exists() and pid is not None,
        "directory": str(lab),
        "inventory": str(lab / "inventory.yaml") if (lab / "inventory.yaml").exists() else None,
    }
    if (lab / "topology.json").exists():
        topo = load_topology(lab)["topology"]
        assert isinstance(topo, dict)
        status["control_port"] = topo["control_port"]
    return status
