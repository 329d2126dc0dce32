"""A tiny busybox initramfs that mounts the host's root over 9p and hands over to the lab script.

The distribution kernel has virtio and 9p as modules, so they (and their dependencies) are
copied in; everything else (ip_vs, wireguard, netfilter) is loaded after the switch, from the
host's /lib/modules seen through 9p.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tempfile
from pathlib import Path

BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

INIT_TEMPLATE = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in {modules}; do insmod /modules/$m.ko || echo "wglab: insmod $m failed"; done
mkdir -p /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro,cache=loose hostroot /newroot \\
    || {{ echo "wglab: cannot mount the host root"; poweroff -f; }}
# Writable places the lab needs; everything else stays the host's read-only tree. What these
# tmpfs hide of the host stays reachable under /run/wglab-host (the lab script binds back a
# project checked out under /tmp, say): one 9p export cannot be mounted twice.
mount -t tmpfs tmpfs /newroot/run
for d in tmp var/tmp var/log; do
    mkdir -p /newroot/run/wglab-host/$d
    mount --bind /newroot/$d /newroot/run/wglab-host/$d
    mount -t tmpfs tmpfs /newroot/$d
done
mkdir -p /newroot{lab_dir}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,rw,cache=none \\
    labstate /newroot{lab_dir} || echo "wglab: cannot mount the lab state"
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
exec switch_root /newroot /bin/bash {lab_dir}/guest.sh
"""


def kernel_release() -> str:
    """The newest Debian distribution kernel installed under /lib/modules."""
    candidates = sorted(
        p.name
        for p in Path("/lib/modules").iterdir()
        if (Path("/boot") / f"vmlinuz-{p.name}").exists() and (p / "kernel").is_dir()
    )
    if not candidates:
        raise RuntimeError("no distribution kernel found: install linux-image-amd64")
    return candidates[-1]


def _module_closure(release: str, names: tuple[str, ...]) -> list[tuple[str, Path]]:
    """Modules in load order (dependencies first) with their files."""
    order: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        deps = _modinfo(release, "depends", name)
        for dep in filter(None, deps.split(",")):
            visit(dep)
        path = Path(_modinfo(release, "filename", name))
        if path.suffix == ".ko":
            order.append((name, path))

    for n in names:
        visit(n)
    return order


def _modinfo(release: str, field: str, name: str) -> str:
    out = subprocess.run(
        ["modinfo", "-k", release, "-F", field, name], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def build_initramfs(dest: Path, release: str, lab_dir: Path) -> Path:
    """Write a gzip'd newc cpio to `dest` and return it."""
    with tempfile.TemporaryDirectory(prefix="wglab-initramfs-") as tmp:
        root = Path(tmp)
        for d in ("bin", "proc", "sys", "dev", "newroot", "modules"):
            (root / d).mkdir()
        shutil.copy2("/bin/busybox", root / "bin" / "busybox")
        modules = _module_closure(release, BOOT_MODULES)
        for name, path in modules:
            shutil.copy2(path, root / "modules" / f"{name}.ko")
        init = root / "init"
        init.write_text(
            INIT_TEMPLATE.format(modules=" ".join(n for n, _ in modules), lab_dir=lab_dir)
        )
        init.chmod(0o755)
        listing = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
        archive = subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"],
            cwd=root,
            input=listing,
            capture_output=True,
            check=True,
        ).stdout
    dest.write_bytes(gzip.compress(archive, compresslevel=1))
    return dest
