"""The poll's keepalived read trusts only the real keepalived run by root: the script itself,
run by a local sh against a fake /proc (real child processes stand in for keepalived, so that
the signal is real), then its output through the section's parser."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from wgconsole.poll.parsers.director import keepalived_report, parse_keepalived_section
from wgconsole.poll.remote_scripts import keepalived_script

KA = Path(__file__).parent / "fixtures" / "parsers" / "keepalived"
SECRET = "root:$y$j9T$notarealhash:19000:0:99999:7:::\n"
CONF = (KA / "keepalived.conf").read_text()


@dataclass
class World:
    """A fake /proc with a real keepalived binary on PATH; processes are real children."""

    base: Path
    binary: Path
    children: list[subprocess.Popen[bytes]]

    @property
    def proc(self) -> Path:
        return self.base / "proc"

    def process(self, *, exe: Path, uid: int, conf: str, dump_on_usr1: bool) -> int:
        """A process named keepalived (`-f CONF`) whose root is its own directory, with the
        config at CONF there; with `dump_on_usr1`, SIGUSR1 writes the dump into its /tmp."""
        root = self.base / f"root{len(self.children)}"
        (root / "tmp").mkdir(parents=True)
        script = "while :; do sleep 0.05; done"
        if dump_on_usr1:
            dump = root / "tmp" / "keepalived.data"
            script = f"trap 'cp {KA / 'master.data'} {dump}' USR1; {script}"
        child = subprocess.Popen(["sh", "-c", script])
        self.children.append(child)
        pid = child.pid
        entry = self.proc / str(pid)
        (entry / "ns").mkdir(parents=True)
        (entry / "ns" / "net").symlink_to("/proc/self/ns/net")
        (entry / "exe").symlink_to(exe)
        (entry / "root").symlink_to(root)
        (entry / "cmdline").write_bytes(f"keepalived\0-f\0{conf}\0".encode())
        (entry / "comm").write_text("keepalived\n")
        (entry / "status").write_text(
            f"Name:\tkeepalived\nPid:\t{pid}\nPPid:\t1\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
        )
        return pid

    def run(self, *pids: int) -> str:
        env = {**os.environ, "PATH": f"{self.binary.parent}:{os.environ['PATH']}"}
        script = keepalived_script(proc=str(self.proc), root_uid=os.geteuid())
        done = subprocess.run(
            ["sh", "-c", script, "sh", *map(str, pids)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def alive(self, pid: int) -> bool:
        return next(c for c in self.children if c.pid == pid).poll() is None


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    binary = tmp_path / "bin" / "keepalived"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "comm").write_text("init\n")
    made = World(tmp_path, binary, [])
    try:
        yield made
    finally:
        for child in made.children:
            child.kill()
            child.wait()


def _with_config(world: World, pid: int, text: str, path: str = "/etc/k.conf") -> None:
    target = Path(os.readlink(world.proc / str(pid) / "root")) / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_an_impostor_keepalived_is_neither_signalled_nor_read(world: World) -> None:
    """A user's own program named keepalived with `-f /etc/shadow` (the newest, so listed
    first) and no real one: refused, never signalled, the file never shipped."""
    fake = world.base / "home" / "keepalived"
    fake.parent.mkdir()
    fake.write_text("")
    impostor = world.process(exe=fake, uid=65534, conf="/etc/shadow", dump_on_usr1=False)
    _with_config(world, impostor, SECRET, "/etc/shadow")
    out = world.run(impostor)
    assert out.startswith("refused ")
    assert base64.b64encode(SECRET.encode()).decode()[:20] not in out
    assert f"{impostor} (uid 65534, euid 65534)" in out
    assert world.alive(impostor)
    header = parse_keepalived_section(out)
    assert header.running
    assert header.problem is not None
    assert "not trusted" in header.problem


def test_the_real_keepalived_is_read_beside_an_impostor(world: World) -> None:
    """The real binary run by root is chosen, though an impostor run by root too (another
    executable) comes first."""
    real = world.process(exe=world.binary, uid=os.geteuid(), conf="/etc/k.conf", dump_on_usr1=True)
    _with_config(world, real, CONF)
    other = world.base / "keepalived-copy"
    other.write_text("")
    impostor = world.process(exe=other, uid=os.geteuid(), conf="/etc/k.conf", dump_on_usr1=False)
    _with_config(world, impostor, SECRET)
    header = parse_keepalived_section(world.run(impostor, real))
    assert world.alive(impostor)
    assert header.config_text == CONF
    report = keepalived_report(header)
    assert [i.state for i in report.instances] == ["MASTER"]


def test_two_real_keepalived_are_not_picked_at_random(world: World) -> None:
    one = world.process(exe=world.binary, uid=os.geteuid(), conf="/etc/k.conf", dump_on_usr1=True)
    two = world.process(exe=world.binary, uid=os.geteuid(), conf="/etc/k.conf", dump_on_usr1=True)
    header = parse_keepalived_section(world.run(one, two))
    assert header.problem == (
        f"more than one real keepalived runs here (pids {one} {two}): which one to read is unknown"
    )


def test_a_symlinked_config_or_dump_is_not_read(world: World) -> None:
    real = world.process(exe=world.binary, uid=os.geteuid(), conf="/etc/k.conf", dump_on_usr1=True)
    root = Path(os.readlink(world.proc / str(real) / "root"))
    secret = world.base / "secret"
    secret.write_text(SECRET)
    (root / "etc").mkdir()
    (root / "etc" / "k.conf").symlink_to(secret)
    (root / "tmp" / "keepalived.data").symlink_to(secret)
    out = world.run(real)
    assert "notarealhash" not in out
    header = parse_keepalived_section(out)
    assert header.config_problem == "not a regular file (a symlink, FIFO or missing): not read"
    assert header.problem == (
        "keepalived's dump (/tmp/keepalived.data) is not a regular file owned by root: not read"
    )
