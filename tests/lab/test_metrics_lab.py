"""`wgconsole metrics` on the real lab, scraped by a real Prometheus (Debian's), checked through
Prometheus's HTTP query API.

Both run on 127.0.0.1 only, on free ports picked at run time; Prometheus keeps its data in
the test's temporary directory, scrapes every 2 s and loads the shipped alert rules. Every
change made to the lab (a weight set with ipvsadm, a gateway's sshd stopped, a drain) is
undone in a `finally`.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.conftest import Lab
from tests.lab.helpers import (
    eventually,
    handshakes,
    kernel_dests,
    run_cli,
    settle_clients,
    start_sshd,
    stop_sshd,
)
from wgconsole.export.rules import alert_rules

pytestmark = pytest.mark.lab

SCRAPE = 2.0  # Prometheus's scrape interval, seconds
POLL = 1.0  # wgconsole's --interval: below the scrape interval
DEADLINE = 120.0  # generous bound on waiting for a condition (the machine is shared)
GW1, GW2 = "wg-gateway-01", "wg-gateway-02"
NETNS = {GW1: "gw1", GW2: "gw2"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    return eventually(condition, timeout=timeout, what=what, interval=0.5)


@dataclass
class Stack:
    exporter: subprocess.Popen[str]
    exporter_url: str
    prometheus: subprocess.Popen[bytes]
    prometheus_url: str

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.prometheus_url}{path}?{query}", timeout=30) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.api("/api/v1/query", **params)
        result: list[dict[str, Any]] = data["result"]
        return result

    def values(self, expr: str, label: str, at: float | None = None) -> dict[str, float]:
        """{the series' `label`: value} of an instant query."""
        return {r["metric"][label]: float(r["value"][1]) for r in self.query(expr, at)}

    def samples(self, expr: str) -> list[tuple[float, float]]:
        """The raw (scrape time, value) samples of a one-series range selector."""
        result = self.query(expr)
        assert len(result) == 1, result
        return [(float(t), float(v)) for t, v in result[0]["values"]]


def _stop(proc: subprocess.Popen[Any]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    return int(proc.returncode)


@pytest.fixture(scope="module")
def stack(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = shutil.which("prometheus")
    assert prometheus_bin, "prometheus is missing: `make setup` installs it (Debian package)"
    work = tmp_path_factory.mktemp("prometheus")
    exporter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wgconsole",
            "-i",
            str(lab.inventory_path),
            "metrics",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            str(POLL),
            "--timeout",
            "20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        assert exporter.stdout is not None
        line = exporter.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        if not found:
            exporter.wait(timeout=60)
            stderr = exporter.stderr.read() if exporter.stderr else ""
            raise AssertionError(f"wgconsole metrics did not start: {line!r} {stderr}")
        exporter_port = int(found.group(1))
        (work / "alert_rules.yml").write_text(alert_rules())
        config = {
            "global": {"scrape_interval": f"{SCRAPE:g}s", "evaluation_interval": "2s"},
            "rule_files": [str(work / "alert_rules.yml")],
            "scrape_configs": [
                {
                    "job_name": "wgconsole",
                    "scrape_interval": f"{SCRAPE:g}s",
                    "scrape_timeout": f"{SCRAPE:g}s",
                    "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                }
            ],
        }
        (work / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        prometheus_port = _free_port()
        log = (work / "prometheus.log").open("wb")
        prometheus = subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        stack = Stack(
            exporter,
            f"http://127.0.0.1:{exporter_port}",
            prometheus,
            f"http://127.0.0.1:{prometheus_port}",
        )

        def ready() -> bool:
            assert prometheus is not None, (work / "prometheus.log").read_text()
            assert prometheus.poll() is None, (work / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(stack.prometheus_url + "/-/ready", timeout=5) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        _wait_for(ready, "Prometheus ready")
        _wait_for(
            lambda: (
                stack.values("wgconsole_host_up", "host")
                == {h.name: 1.0 for h in lab.inventory.hosts}
            ),
            "every lab host up in Prometheus",
        )
        yield stack
    finally:
        if prometheus is not None:
            _stop(prometheus)
        if exporter.returncode is None:  # it started: SIGTERM ends it cleanly
            status = _stop(exporter)
            stderr = exporter.stderr.read() if exporter.stderr else ""
            assert status == 0, f"wgconsole metrics ended with {status}: {stderr}"


def test_prometheus_scrapes_it_and_loads_the_shipped_rules(lab: Lab, stack: Stack) -> None:
    assert stack.values('up{job="wgconsole"}', "job") == {"wgconsole": 1.0}
    with urllib.request.urlopen(stack.exporter_url + "/healthz", timeout=30) as r:
        assert r.status == 200
        assert r.read().startswith(b"ok: ")
    groups = stack.api("/api/v1/rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    shipped = yaml.safe_load(alert_rules())["groups"][0]["rules"]
    assert [r["name"] for r in rules] == [r["alert"] for r in shipped]
    assert all(r["health"] == "ok" for r in rules), rules
    # Labels from the inventory only: every client series is named as the inventory names it.
    names = {c.name for c in lab.inventory.clients}
    assert set(stack.values("wgconsole_client_info", "client")) == names


def _skew(lab: Lab, netns: str) -> tuple[float, float, dict[str, int]]:
    """The gateway's clock minus the bastion's (bounds from one read bracketed by two
    bastion times) and its latest handshakes, read in the same command."""
    before = time.time()
    clock, latest = handshakes(lab, netns)
    after = time.time()
    return clock - after, clock - before, latest


def test_handshake_ages_equal_the_gateways_own(lab: Lab, stack: Stack) -> None:
    """Each client's age from Prometheus, plus the handshake time `wg show` gives, is the
    gateway's clock during the poll that made the sample: between the poll's start and end
    (both exported) on the bastion's clock, moved by the gateway's measured skew. The
    tolerance is the poll's own duration and the skew read's bracket, nothing guessed."""
    keys = {c.public_key: c.name for c in lab.inventory.clients}
    checked: set[str] = set()

    def check() -> bool:
        at = time.time()
        ages = {
            r["metric"]["client"]: (r["metric"]["gateway"], float(r["value"][1]))
            for r in stack.query("wgconsole_client_handshake_age_seconds", at)
        }
        poll_start = stack.values("wgconsole_poll_timestamp_seconds", "job", at)["wgconsole"]
        poll_seconds = stack.values("wgconsole_poll_duration_seconds", "job", at)["wgconsole"]
        # Every value above comes from one scrape (one poll): their timestamps are equal.
        stamps = {
            float(r["value"][1])
            for expr in (
                "timestamp(wgconsole_client_handshake_age_seconds)",
                "timestamp(wgconsole_poll_timestamp_seconds)",
            )
            for r in stack.query(expr, at)
        }
        assert len(stamps) == 1, stamps
        reads = {gw: _skew(lab, ns) for gw, ns in NETNS.items()}
        for key, name in keys.items():
            if name not in ages:
                continue  # no handshake yet in that poll
            gateway, age = ages[name]
            low, high, latest = reads[gateway]
            handshake = latest.get(key, 0)
            others = [reads[g][2].get(key, 0) for g in NETNS if g != gateway]
            if handshake > poll_start + low:
                continue  # a handshake since that poll began: it may not have seen it
            # The freshest handshake is on the gateway wgconsole names.
            assert handshake >= max(others), (name, gateway, handshake, others)
            gateway_clock_at_poll = handshake + age
            assert poll_start + low - 0.01 <= gateway_clock_at_poll, (name, age, low)
            assert gateway_clock_at_poll <= poll_start + poll_seconds + high + 0.01, (
                name,
                age,
                high,
                poll_seconds,
            )
            checked.add(name)
        return checked == set(keys.values())

    _wait_for(check, "every client's age checked against its gateway's")


def test_weights_equal_the_kernels_also_after_ipvsadm_behind_its_back(
    lab: Lab, stack: Stack
) -> None:
    vip = f"{lab.meta['vip']}:{lab.meta['port']}"
    names = {
        f"{g.real_server.address}:{g.real_server.port}": g.name for g in lab.inventory.gateways
    }

    def kernel() -> dict[str, float]:
        return {names[rs]: float(w) for rs, w in kernel_dests(lab, vip)}

    def agree() -> bool:
        return stack.values('wgconsole_real_server_weight{lb="wg-lb"}', "gateway") == kernel()

    _wait_for(agree, "weights in Prometheus equal the kernel's")
    original = dict(kernel_dests(lab, vip))
    rs = next(r for r, name in names.items() if name == GW2)
    try:
        # Behind wgconsole's back: an edit keeps the kernel order; Masq as the lab has it.
        lab.ns("lb", ["ipvsadm", "-e", "-u", vip, "-r", rs, "-m", "-w", "3"])
        assert kernel()[GW2] == 3
        _wait_for(agree, "the weight set with ipvsadm in Prometheus")
        assert stack.values('wgconsole_real_server_weight{lb="wg-lb"}', "gateway")[GW2] == 3
    finally:
        lab.ns("lb", ["ipvsadm", "-e", "-u", vip, "-r", rs, "-m", "-w", str(original[rs])])
    _wait_for(agree, "the weight restored in Prometheus")


def test_a_gateway_whose_sshd_is_killed_reads_host_up_0(lab: Lab, stack: Stack) -> None:
    """Every scrape of a poll that began after the kill reads 0, and a poll is served from
    the first scrape after it ended. So 0 shows at the first scrape after the first poll
    begun after the kill: with polls of ~1 s (an idle machine), a poll every 1 s and a
    scrape every 2 s, the second scrape. How many scrapes it took is printed, not asserted:
    it counts the poll's duration, which the shared machine's load decides."""
    up = 'wgconsole_host_up{host="wg-gateway-02"}'
    try:
        sent = time.time()
        stop_sshd(lab, "gw2")  # returns once its processes are gone
        killed = time.time()  # the kill ran somewhere between `sent` and now
        _wait_for(lambda: stack.values(up, "host").get(GW2) == 0.0, "host_up 0 in Prometheus")
        _wait_for(
            lambda: stack.values("wgconsole_poll_timestamp_seconds", "job")["wgconsole"] > killed,
            "a poll begun after the kill in Prometheus",
        )
        window = f"[{int(time.time() - sent) + 10}s]"
        states = dict(stack.samples(up + window))
        polls = dict(stack.samples("wgconsole_poll_timestamp_seconds" + window))
        durations = dict(stack.samples("wgconsole_poll_duration_seconds" + window))
        after = sorted(t for t in states if t > sent)
        assert all(states[t] == 0 for t in after if polls[t] > killed), [
            (t, polls[t], states[t], killed) for t in after
        ]
        first_poll = min(polls[t] for t in after if polls[t] > killed)
        first_end = first_poll + next(durations[t] for t in after if polls[t] == first_poll)
        # Families are built and published within a moment of the poll's end.
        assert all(polls[t] >= first_poll for t in after if t > first_end + 0.5)
        # How many scrapes still read 1: counted from the kill's command being sent, and from
        # its return (the kill itself ran in between).
        from_sent = sum(1 for t in after if states[t] == 1)
        from_return = sum(1 for t in after if t > killed and states[t] == 1)
        took = statistics.median(durations[t] for t in after)
        print(
            f"host_up 0 from scrape {from_return + 1} after the kill returned "
            f"({from_sent + 1} after it was sent); scrape every {SCRAPE:g} s, a poll every "
            f"{POLL:g} s taking {took:.1f} s"
        )
    finally:
        start_sshd(lab, "gw2")
    _wait_for(lambda: stack.values(up, "host").get(GW2) == 1.0, "host_up 1 again")


def test_byte_counters_never_go_backwards_across_a_drain(
    lab: Lab, stack: Stack, tmp_path: Path
) -> None:
    settle_clients(lab, timeout=150)  # as test_ops_drain_lab's settling
    holders = [r["metric"]["lb_gateway"] for r in stack.query("wgconsole_client_info")]
    drained = max(set(holders), key=holders.count)
    netns = NETNS[drained]
    keys = [c.public_key for c in lab.inventory.clients]

    def transfer() -> dict[str, int]:
        out = lab.ns(netns, ["wg", "show", "wg0", "transfer"])
        return {k: int(rx) for k, rx, _ in (line.split() for line in out.splitlines())}

    before = transfer()
    assert any(before[k] > 0 for k in keys)
    started = time.time()
    # Commands get 120 s, not 30: on a loaded machine the emulated gateway took longer than
    # 30 s to re-create its interface.
    ops = ("--audit-log", str(tmp_path / "audit.jsonl"), "--timeout", "120")
    try:
        res = run_cli(lab.inventory_path, "drain", drained, "--yes", *ops)
        assert res.returncode == 0, res.stdout + res.stderr
        for ns in ("cl0", "cl1"):
            lab.ns(ns, ["ping", "-c", "3", "-W", "5", "10.255.0.1"], check=False)
    finally:
        res = run_cli(lab.inventory_path, "undrain", drained, "--yes", *ops)
        assert res.returncode == 0, res.stdout + res.stderr
    # Undrain re-created the drained gateway's interface: its own counters began again.
    assert all(transfer()[k] < before[k] for k in keys if before[k] > 0)
    for ns in ("cl0", "cl1"):
        lab.ns(ns, ["ping", "-c", "3", "-W", "5", "10.255.0.1"], check=False)
    # Polls after the undrain reached Prometheus (one scrape whose poll began after it).
    undrained = time.time()
    _wait_for(
        lambda: stack.values("wgconsole_poll_timestamp_seconds", "job")["wgconsole"] > undrained,
        "a poll after the undrain in Prometheus",
    )
    window = f"[{int(time.time() - started) + 30}s]"
    for direction in ("receive", "transmit"):
        metric = f"wgconsole_client_{direction}_bytes_total"
        assert stack.values(f"resets({metric}{window})", "client") == {
            c.name: 0.0 for c in lab.inventory.clients
        }
        for client in lab.inventory.clients:
            values = [v for _, v in stack.samples(f'{metric}{{client="{client.name}"}}{window}')]
            assert values == sorted(values), (client.name, direction, values)
    settle_clients(lab, timeout=150)  # as test_ops_drain_lab's settling
