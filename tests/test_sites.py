"""Many sites in one process (issue #20, first slice): `-i` repeated or a directory, site
names and their clashes, and `--site` for what acts on one site."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakeworld import GW1, GW2, LB, NORMAL
from tests.sites_support import GW1_PORT, Sites, make_sites, site_inventory
from wgconsole.cli import main as cli
from wgconsole.config.inventory_file import InventoryError, load_inventory
from wgconsole.config.sites import choose_site, load_sites
from wgconsole.core.fleet import Fleet
from wgconsole.export.exposition import render
from wgconsole.export.server import Exporter
from wgconsole.export.sites import SitesExporter
from wgconsole.ops.machinery.audit import AuditLog
from wgconsole.ops.machinery.lock import _held
from wgconsole.poll.collector import FleetCollector
from wgconsole.poll.parsers.op_records import parse_lock_owner
from wgconsole.poll.sites import SiteCollectors, SiteResult, SiteRunner
from wgconsole.tui.options import ConsoleOptions


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


# --- inventories and names ------------------------------------------------------------------


def test_each_inventory_is_a_site_named_by_its_site_key_or_its_file_name(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", site_inventory("eu-west", 0))
    b = _write(tmp_path / "us-east-1.yaml", site_inventory(None, 1))
    sites = load_sites([a, b])
    assert [(s.name, s.named_by, s.path) for s in sites] == [
        ("eu-west", "site-key", a),
        ("us-east-1", "file-name", b),
    ]
    # Among several, each inventory says its site (the exporter's label), and so do the
    # operations' records.
    assert [s.inventory.site for s in sites] == ["eu-west", "us-east-1"]
    assert [s.label for s in sites] == ["eu-west", "us-east-1"]


def test_one_inventory_is_loaded_as_it_always_was(tmp_path: Path) -> None:
    path = _write(tmp_path / "inventory.yaml", site_inventory(None, 0))
    (site,) = load_sites([path])
    assert site.name == "inventory"
    assert site.inventory.site is None  # no label where the file sets none
    assert site.label is None  # nor a site in previews, locks and audit records


def test_a_directory_gives_its_yaml_files_sorted(tmp_path: Path) -> None:
    d = tmp_path / "sites"
    _write(d / "b.yaml", site_inventory(None, 1))
    _write(d / "a.yaml", site_inventory(None, 0))
    _write(d / ".hidden.yaml", "not: read\n")
    _write(d / "notes.txt", "not an inventory\n")
    (d / "dir.yaml").mkdir()
    extra = _write(tmp_path / "c.yaml", site_inventory(None, 2))
    assert [s.name for s in load_sites([str(d), extra])] == ["a", "b", "c"]


def test_two_sites_of_one_name_are_refused_naming_both_files(tmp_path: Path) -> None:
    a = _write(tmp_path / "one" / "eu.yaml", site_inventory(None, 0))
    b = _write(tmp_path / "two.yaml", site_inventory("eu", 1))
    with pytest.raises(InventoryError) as caught:
        load_sites([a, b])
    text = str(caught.value)
    assert a in text
    assert b in text
    assert "'eu'" in text


def test_the_same_file_twice_is_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", site_inventory(None, 0))
    with pytest.raises(InventoryError, match="given twice"):
        load_sites([str(tmp_path), a])


def test_an_empty_directory_and_a_file_name_that_is_no_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InventoryError, match=r"no \*\.yaml inventory"):
        load_sites([str(tmp_path / "empty")])
    a = _write(tmp_path / "a.yaml", site_inventory(None, 0))
    odd = _write(tmp_path / "my site!.yaml", site_inventory(None, 1))
    with pytest.raises(InventoryError, match="give it a `site:` key"):
        load_sites([a, odd])
    # Alone, its name is never a label: it loads.
    assert load_sites([odd])[0].name == "my site!"


def test_choose_site_names_the_candidates(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", site_inventory(None, 0))
    b = _write(tmp_path / "b.yaml", site_inventory(None, 1))
    sites = load_sites([a, b])
    with pytest.raises(InventoryError) as caught:
        choose_site(sites, None, what="wgconsole drain")
    assert str(caught.value) == (
        f"wgconsole drain acts on one site and 2 are loaded: give --site NAME, one of: "
        f"a ({a}), b ({b})"
    )
    assert choose_site(sites, "b", what="x").name == "b"
    with pytest.raises(InventoryError, match="--site 'c': no such site"):
        choose_site(sites, "c", what="x")


def test_inventory_options_before_and_after_the_command() -> None:
    args = cli._parser().parse_args(["-i", "a.yaml", "-i", "b", "status", "--site", "x"])
    assert (args.inventories, args.site) == (["a.yaml", "b"], "x")
    # Given after the command, they replace those given before, as any global option does.
    args = cli._parser().parse_args(["-i", "a.yaml", "status", "-i", "b", "-i", "c"])
    assert (args.inventory, args.inventories) == ("c", ["b", "c"])


# --- --site for what acts on one site -------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["drain", GW2, "--yes"],
        ["undrain", GW2, "--yes"],
        ["weight", GW2, "3", "--yes"],
        ["rebalance", "--yes"],
        ["lb", "align", "--yes"],
        ["failover", "--yes"],
        ["peer", "add", "x", "--yes"],
        ["peer", "remove", "wg-client-0", "--yes"],
        ["probe", "setup", "--yes"],
        ["whereis", "10.0.0.1"],
        ["trace", "wg-client-0"],
        ["console"],
    ],
)
def test_what_acts_on_one_site_is_refused_without_site_listing_the_candidates(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    given = ["-i", str(sites.path("eu.yaml")), "-i", str(sites.path("us.yaml"))]
    assert cli.main([*argv, *given]) == 2
    err = capsys.readouterr().err
    assert "acts on one site and 2 are loaded: give --site NAME, one of: eu (" in err
    assert "us (" in err
    assert "Traceback" not in err
    assert [w.sent for w in sites.worlds] == [[], []]  # nothing was asked of any host


def test_site_names_the_one_an_operation_acts_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    argv = ["drain", GW2, "--dry-run", "-i", str(sites.path(""))]
    assert cli.main([*argv, "--site", "us"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("site: us\n")  # the preview says which site it changes
    assert sites.worlds[0].sent == []
    assert sites.worlds[1].sent
    assert cli.main([*argv, "--site", "asia"]) == 2
    assert "--site 'asia': no such site; the sites are: eu (" in capsys.readouterr().err


def test_the_console_on_a_site_among_several_carries_its_site_into_operations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`wgconsole -i DIR --site us`: the console's operations lock and audit as `us`."""
    from wgconsole.tui import app as tui_app

    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    started: list[tuple[ConsoleOptions, str]] = []
    monkeypatch.setattr(
        tui_app, "run_console", lambda options, inv: (started.append((options, inv.path)), 0)[1]
    )
    assert cli.main(["-i", str(sites.path("")), "--site", "us"]) == 0
    [(options, path)] = started
    assert options.site == "us"
    assert path == str(sites.path("us.yaml"))
    app = tui_app.ConsoleApp(load_inventory(path), sites.worlds[1].collector(), site=options.site)
    assert app.op_context(lambda _: None).site == "us"


def test_one_site_needs_no_site_and_takes_its_own_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = make_sites(tmp_path, monkeypatch, [None], files=["inventory.yaml"])
    argv = ["drain", GW2, "--dry-run", "-i", str(sites.path("inventory.yaml"))]
    assert cli.main(argv) == 0
    plain = capsys.readouterr().out
    assert not plain.startswith("site:")  # a preview as it always was
    assert cli.main([*argv, "--site", "inventory"]) == 0
    assert capsys.readouterr().out == plain
    assert cli.main([*argv, "--site", "other"]) == 2


def test_the_lab_inventory_is_unchanged_by_the_support() -> None:
    # The sites' inventories are the lab's, moved: site 0's is the lab's own.
    assert site_inventory(None, 0) == (NORMAL / "inventory.yaml").read_text()


# --- polling: each site its own collector, deadline and thread ------------------------------


def _collectors(sites: Sites, paths: list[str], **kwargs: Any) -> SiteCollectors:
    return SiteCollectors(
        (
            s.name,
            FleetCollector(
                s.inventory,
                read_only=True,
                transport_factory=lambda h: sites.transport(h, read_only=True),
                **kwargs,
            ),
        )
        for s in load_sites(paths)
    )


_VOLATILE = {"taken_at", "last_success", "last_success_age", "handshake_age", "clock_skew"}


def _exact(data: Any) -> Any:
    """A fleet's JSON without what the clock alone changes between two readings."""
    if isinstance(data, dict):
        return {k: _exact(v) for k, v in data.items() if k not in _VOLATILE}
    if isinstance(data, list):
        return [_exact(v) for v in data]
    return data


def test_a_hung_site_never_delays_nor_blanks_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    paths = [str(sites.path("eu.yaml")), str(sites.path("us.yaml"))]
    alone = _collectors(sites, paths[:1], timeout=4.0)
    expected = _exact(alone.read_fleets()["eu"].value.to_json())  # type: ignore[union-attr]
    alone.close()
    sites.hung_ports.add(sites.lb_port(1))  # us's LB: every command hangs
    both = _collectors(sites, paths, timeout=4.0)
    arrived: dict[str, float] = {}
    started = time.monotonic()

    def arrives(reading: SiteResult[Fleet]) -> None:
        arrived.setdefault(reading.site, time.monotonic() - started)

    readings = both.read_fleets(on_reading=arrives)
    both.close()
    eu, us = readings["eu"], readings["us"]
    assert eu.value is not None
    assert us.value is not None
    # eu's reading was handed on before us's (which waited for its deadline: a bound from
    # below, whatever the machine's load), and is what eu alone reads.
    assert list(arrived) == ["eu", "us"]
    assert arrived["us"] >= 3.5
    assert all(h.reachable for h in eu.value.hosts)
    assert _exact(eu.value.to_json()) == expected
    # us: its LB lost within its own deadline, its gateways read.
    lb = next(h for h in us.value.hosts if h.role == "lb")
    assert not lb.reachable
    assert "no answer" in (lb.error or "")
    assert [h.reachable for h in us.value.hosts if h.role == "gateway"] == [True, True]


def test_a_host_listed_by_two_sites_is_polled_once_per_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"], gw1_port=GW1_PORT)
    collectors = _collectors(sites, [str(sites.path("eu.yaml")), str(sites.path("us.yaml"))])
    shared = sites.made[GW1_PORT]
    assert len(shared) == 2  # one connection per site
    assert shared[0] is not shared[1]
    readings = collectors.read_fleets()
    assert sites.sent_to(0, GW1) == 2  # once by each site's collector
    assert sites.sent_to(1, GW1) == 0
    assert [r.error for r in readings.values()] == [None, None]
    memos = [c.parse_memos for c in collectors.collectors.values()]
    assert memos[0] is not memos[1]  # nothing shared between the sites


def test_a_site_whose_reading_fails_is_that_site_s_error_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    collectors = _collectors(sites, [str(sites.path("eu.yaml")), str(sites.path("us.yaml"))])

    def broken() -> Fleet:
        raise ValueError("a parser bug")

    monkeypatch.setattr(collectors.collectors["eu"], "read_fleet", broken)
    readings = collectors.read_fleets()
    assert readings["eu"].value is None
    assert readings["eu"].error == "its reading failed (ValueError: a parser bug)"
    assert readings["us"].error is None
    assert readings["us"].value is not None


def test_a_site_still_reading_past_its_bound_is_not_read_twice() -> None:
    release = threading.Event()
    calls: list[str] = []

    def slow() -> str:
        calls.append("slow")
        release.wait(10)
        return "late"

    runner: SiteRunner[str] = SiteRunner()
    work = {"slow": slow, "quick": lambda: "now"}
    first = runner.run(work, {"slow": 0.2, "quick": 5.0})
    assert (first["quick"].value, first["slow"].value) == ("now", None)
    assert (first["slow"].error or "").startswith("no reading within")
    second = runner.run(work, {"slow": 0.2, "quick": 5.0})
    assert (second["slow"].error or "").startswith("its previous reading is still running")
    assert calls == ["slow"]
    release.set()
    time.sleep(0.2)
    assert runner.run(work, {"slow": 5.0, "quick": 5.0})["slow"].value == "late"


# --- status -----------------------------------------------------------------------------------


def _status(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["status", "--timeout", "4", *argv])
    return code, capsys.readouterr().out


def test_status_json_of_two_sites_is_one_object_per_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    eu_alone = _status(["--json", "-i", str(sites.path("eu.yaml"))], capsys)
    us_alone = _status(["--json", "-i", str(sites.path("us.yaml"))], capsys)
    code, out = _status(["--json", "-i", str(sites.path(""))], capsys)
    assert (eu_alone[0], us_alone[0], code) == (0, 0, 0)
    data = json.loads(out)
    assert list(data) == ["sites"]
    assert [s["site"] for s in data["sites"]] == ["eu", "us"]
    for site, (_, alone) in zip(data["sites"], (eu_alone, us_alone), strict=True):
        one = json.loads(alone)
        assert list(site) == ["site", *one]  # the one-site object, its site first
        assert _exact({k: v for k, v in site.items() if k != "site"}) == _exact(one)


def test_status_exit_is_the_worst_over_the_sites_and_a_dead_one_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    sites.worlds[1].down.add(LB)
    code, out = _status(["-i", str(sites.path(""))], capsys)
    assert code == 2
    lines = out.splitlines()
    assert lines[0] == "sites (2)"
    assert lines[1].startswith("eu  hosts 3/3  VIP wg-lb  gateways 2 in service, 0 drained, ")
    assert "clients 0/2 connected" in lines[1]
    assert lines[1].endswith("data 0s old")
    assert lines[2].startswith("us  hosts 2/3  VIP -  ")
    assert "✖ host-unreachable wg-lb  data: wg-lb never answered" in lines[2]
    # Then each site with findings in full, under its name.
    assert out.index("── site eu ──") < out.index("── site us ──")
    assert "timed out connecting (injected)" in out
    code, out = _status(["--json", "-i", str(sites.path(""))], capsys)
    assert code == 2
    us = json.loads(out)["sites"][1]
    assert [h["reachable"] for h in us["hosts"]] == [False, True, True]


def test_status_of_one_site_is_as_it_always_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    eu = str(sites.path("eu.yaml"))
    for form in (["--json"], []):
        plain = _status([*form, "-i", eu], capsys)
        # --site picks one of several: that site's output, as if it were alone.
        picked = _status([*form, "-i", str(sites.path("")), "--site", "eu"], capsys)
        assert plain[0] == picked[0] == 0
        if form:
            assert _exact(json.loads(plain[1])) == _exact(json.loads(picked[1]))
            assert "sites" not in json.loads(plain[1])
        else:
            assert not plain[1].startswith("sites")
            assert plain[1] == picked[1]  # the fake world's ages do not move: 'never', 'now'


# --- operations: the site in the lock and the audit record ------------------------------------


def test_an_operation_among_sites_locks_and_records_its_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    audit = tmp_path / "audit.jsonl"
    argv = ["weight", GW2, "2", "--yes", "--audit-log", str(audit), "-i", str(sites.path(""))]
    assert cli.main([*argv, "--site", "us"]) == 0
    assert capsys.readouterr().out.startswith("site: us\n")
    (entry,) = AuditLog(audit).entries()
    assert (entry["action"], entry["target"], entry["site"]) == ("weight", GW2, "us")
    locks = [s.command for s in sites.worlds[1].sent if "/lock-udp-" in s.command]
    assert '"site": "us"' in locks[0]  # the lock's owner says the site
    assert sites.worlds[0].sent == []  # eu was never asked anything

    def weights(index: int) -> list[int]:
        return [d["w"] for d in sites.worlds[index].state()["lb"]["dests"]]

    assert (weights(0), weights(1)) == ([1, 1], [2, 1])


def test_an_operation_on_the_only_site_records_no_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu"])
    audit = tmp_path / "audit.jsonl"
    argv = ["weight", GW2, "2", "--yes", "--audit-log", str(audit)]
    assert cli.main([*argv, "-i", str(sites.path("eu.yaml"))]) == 0
    (entry,) = AuditLog(audit).entries()
    assert "site" not in entry
    assert not any('"site"' in s.command for s in sites.worlds[0].sent)


def test_a_lock_held_by_another_site_s_operation_says_the_site() -> None:
    owner = '{"operator": "ops@bastion", "action": "drain gw", "since": 1, "site": "us"}'
    record = parse_lock_owner(owner)
    assert (record.site, record.problem) == ("us", None)
    assert "for 'drain gw' on site 'us'" in _held(record)
    assert parse_lock_owner(owner.replace('"us"', "7")).problem == "site 7 is not text"


# --- metrics: every site from one exporter ----------------------------------------------------


def _families(body: bytes) -> dict[str, list[Any]]:
    families = list(text_string_to_metric_families(body.decode()))
    names = [f.name for f in families]
    assert len(names) == len(set(names))  # each family once, whatever the sites
    return {f.name: f.samples for f in families}


def test_metrics_once_serves_every_site_each_with_its_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    sites.worlds[1].down.add(LB)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "no-probe-key"))
    assert cli.main(["metrics", "--once", "--timeout", "4", "-i", str(sites.path(""))]) == 0
    samples = _families(capsys.readouterr().out.encode())
    up = {(s.labels["site"], s.labels["host"]): s.value for s in samples["wgconsole_host_up"]}
    assert up == {
        ("eu", LB): 1.0,
        ("eu", GW1): 1.0,
        ("eu", GW2): 1.0,
        ("us", LB): 0.0,
        ("us", GW1): 1.0,
        ("us", GW2): 1.0,
    }
    for family in samples.values():
        assert all(s.labels.get("site") in ("eu", "us") for s in family)


def test_one_site_s_exposition_is_as_it_always_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = make_sites(tmp_path, monkeypatch, [None], files=["inventory.yaml"])
    (site,) = load_sites([str(sites.path("inventory.yaml"))])
    collector = FleetCollector(
        site.inventory,
        read_only=True,
        transport_factory=lambda h: sites.transport(h, read_only=True),
    )
    latest = Exporter(collector, 2.0).poll_once()
    assert latest.site is None
    assert latest.body() == render(latest.families, None)
    assert b'site="' not in latest.body()


def test_a_hung_site_never_delays_the_others_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = make_sites(tmp_path, monkeypatch, ["eu", "us"])
    sites.hung_ports.add(sites.lb_port(1))
    exporters = [
        Exporter(
            FleetCollector(
                s.inventory,
                read_only=True,
                # us's hung LB holds its poll this long: eu's, from a fake world, is served
                # long before it, however loaded the machine.
                timeout=10.0,
                transport_factory=lambda h: sites.transport(h, read_only=True),
            ),
            10.0,
        )
        for s in load_sites([str(sites.path(""))])
    ]
    served = SitesExporter(exporters)
    stop = threading.Event()
    started = time.monotonic()
    threading.Thread(target=served.run, args=(stop,), daemon=True).start()
    try:
        while served.latest is None and time.monotonic() - started < 60:
            time.sleep(0.05)
        early = served.latest
        assert early is not None
        samples = _families(early.body())["wgconsole_host_up"]
        assert {s.labels["site"] for s in samples} == {"eu"}
        assert served.health()[0] == 503  # us has no poll yet: said, by name
        assert "us: no poll has finished yet" in served.health()[1]
        while len(served.latest.latests) < 2 and time.monotonic() - started < 60:  # type: ignore[union-attr]
            time.sleep(0.05)
        both = _families(served.latest.body())["wgconsole_host_up"]  # type: ignore[union-attr]
        up = {(s.labels["site"], s.labels["host"]): s.value for s in both}
        assert (up[("eu", LB)], up[("us", LB)], up[("us", GW1)]) == (1.0, 0.0, 1.0)
        assert served.health()[0] == 200
    finally:
        stop.set()
        for e in exporters:
            e.collector.close()
