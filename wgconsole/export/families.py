"""The metric families of one poll: names, labels and values, without prometheus-client.

Names and labels are a contract (dashboards and alert rules use them): `FAMILIES` lists every
family with its labels, in the order they are exposed. Label values are names the inventory
gives (hosts, clients, the optional site) or values the model derived from what hosts report
in checked forms (public keys, tunnel addresses, finding codes and subjects); never a private
or preshared key, an error text, or anything else a host sends as free text.

A client is labelled by its inventory name; a peer the inventory does not name, by its public
key (44 base64 characters ending in `=`, which no inventory name contains: `client!~".*="`
selects the named clients). Peers the inventory does not name are what a hostile or broken
gateway can multiply up to its output cap, each with several series: at most MAX_UNNAMED of
them get series, chosen by public key (the same ones poll after poll: a choice that followed
the handshakes would start and end series at every rekey), and
`wgconsole_unnamed_peers_not_exported` counts the others, whose own series and findings are
left out. The bound is the size of a large fleet, so that an inventory without a client list
loses nothing in one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from wgconsole.core.findings import drained
from wgconsole.core.fleet import ClientView, Fleet, matching_service, normalize_endpoint
from wgconsole.core.inventory import Inventory
from wgconsole.core.records import GatewayObservation, IpvsDest, LbObservation
from wgconsole.probe.prober import ProbeResult

MetricKind = Literal["gauge", "counter"]


@dataclass(frozen=True, slots=True)
class FamilySpec:
    name: str  # as exposed; a counter's ends in _total
    kind: MetricKind
    labels: tuple[str, ...]
    help: str


# Peers the inventory does not name that get series of their own (see the module's doc).
MAX_UNNAMED = 10_000

# Every family the exporter can expose. A family with no sample in a poll is still listed
# (HELP and TYPE only), so a scrape always shows the whole contract.
FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec(
        "wgconsole_client_handshake_age_seconds",
        "gauge",
        ("client", "gateway"),
        "Age of the client's freshest handshake, on the gateway that has it, measured on that "
        "gateway's clock at the poll; absent for a client that never shook hands.",
    ),
    FamilySpec(
        "wgconsole_client_never_seen",
        "gauge",
        ("client",),
        "1 if no gateway has ever had a handshake from the client, else 0.",
    ),
    FamilySpec(
        "wgconsole_client_info",
        "gauge",
        ("client", "public_key", "address", "lb_gateway", "handshake_gateway"),
        "Always 1: the client's public key, tunnel address, the gateway its LB entry points to "
        "and the gateway of its freshest handshake ('' for none).",
    ),
    FamilySpec(
        "wgconsole_client_receive_bytes_total",
        "counter",
        ("client",),
        "Bytes the gateways received from the client, summed over the gateways; kept "
        "monotonic across a move between gateways and an interface re-created.",
    ),
    FamilySpec(
        "wgconsole_client_transmit_bytes_total",
        "counter",
        ("client",),
        "Bytes the gateways sent to the client, summed over the gateways; kept monotonic "
        "across a move between gateways and an interface re-created.",
    ),
    FamilySpec(
        "wgconsole_real_server_weight",
        "gauge",
        ("lb", "gateway"),
        "The gateway's weight in the LB's virtual service (kernel); absent when it is not "
        "one of its real servers.",
    ),
    FamilySpec(
        "wgconsole_real_server_connections",
        "gauge",
        ("lb", "gateway"),
        "The LB's connection entries to the gateway (IPVS ActiveConn + InActConn).",
    ),
    FamilySpec(
        "wgconsole_real_server_present",
        "gauge",
        ("lb", "gateway"),
        "1 if the gateway is a real server of the LB's virtual service, 0 if it is missing "
        "(or the service is).",
    ),
    FamilySpec(
        "wgconsole_lb_sh_fallback",
        "gauge",
        ("lb",),
        "1 if the LB's sh service has sh-fallback (a weight-0 gateway's new clients go to "
        "another gateway), 0 if not (they are dropped).",
    ),
    FamilySpec(
        "wgconsole_lb_expire_nodest_conn",
        "gauge",
        ("lb",),
        "The LB's net.ipv4.vs.expire_nodest_conn (1: flows to a deleted real server move on "
        "their next packet).",
    ),
    FamilySpec(
        "wgconsole_lb_holds_vip",
        "gauge",
        ("lb",),
        "1 if the LB (a director) has the VIP among its addresses, else 0; absent unless "
        "every answering LB's addresses were read.",
    ),
    FamilySpec(
        "wgconsole_lb_buckets_differing",
        "gauge",
        ("lb",),
        "Buckets (of 256) of the LB's sh table that send a new client to another gateway than "
        "the VIP holder's table (0 for the holder); absent when unknown.",
    ),
    FamilySpec(
        "wgconsole_host_up",
        "gauge",
        ("host", "role"),
        "1 if the host answered the latest poll, else 0.",
    ),
    FamilySpec(
        "wgconsole_host_data_age_seconds",
        "gauge",
        ("host",),
        "How old the host's data was at the latest poll (0: it answered); absent when it "
        "never answered.",
    ),
    FamilySpec(
        "wgconsole_gateway_interface_up",
        "gauge",
        ("gateway",),
        "1 if the gateway's WireGuard interface exists and is up, else 0; absent when the "
        "gateway did not answer.",
    ),
    FamilySpec(
        "wgconsole_gateway_drained",
        "gauge",
        ("gateway",),
        "1 if a finished drain took the gateway out (`wgconsole undrain` returns it), else 0.",
    ),
    FamilySpec(
        "wgconsole_finding",
        "gauge",
        ("code", "severity", "subject"),
        "1 per active finding (as `wgconsole status` lists them; one series per code, "
        "severity and subject).",
    ),
    FamilySpec(
        "wgconsole_poll_duration_seconds",
        "gauge",
        (),
        "How long the latest poll of the fleet took.",
    ),
    FamilySpec(
        "wgconsole_poll_timestamp_seconds",
        "gauge",
        (),
        "When the latest poll began (bastion clock, Unix time).",
    ),
    FamilySpec(
        "wgconsole_probe_success",
        "gauge",
        ("target",),
        "1 if the target completed a real WireGuard handshake with wgconsole's probe after the "
        "latest poll, else 0: target is a gateway's name (its real-server address) or 'vip' "
        "(through the load balancer). Absent when the exporter has no probe key.",
    ),
    FamilySpec(
        "wgconsole_probe_rtt_seconds",
        "gauge",
        ("target",),
        "The round trip of the target's handshake in the latest probe; absent when it failed.",
    ),
    FamilySpec(
        "wgconsole_unnamed_peers_not_exported",
        "gauge",
        (),
        f"Peers the inventory does not name beyond the first {MAX_UNNAMED:,} (by public key): "
        "they get no series of their own, and their findings are left out.",
    ),
)
SPECS: Mapping[str, FamilySpec] = {spec.name: spec for spec in FAMILIES}

Sample = tuple[tuple[str, ...], float]  # label values (in the spec's order), value


@dataclass(frozen=True, slots=True)
class Family:
    spec: FamilySpec
    samples: tuple[Sample, ...]


def client_label(client: ClientView) -> str:
    """The client's `client` label: its inventory name, else its public key."""
    return client.name or client.public_key


def build_families(
    inventory: Inventory,
    fleet: Fleet,
    lbs: Mapping[str, LbObservation | None],
    gateways: Mapping[str, GatewayObservation | None],
    client_bytes: Mapping[str, tuple[int, int]],
    poll_seconds: float,
    *,
    max_unnamed: int = MAX_UNNAMED,
    probes: Sequence[ProbeResult] = (),
) -> tuple[Family, ...]:
    """Every family of FAMILIES for one poll: `lbs` and `gateways` are the poll's
    observations (None: did not answer), `client_bytes` each client's (received, sent)
    totals by public key (see counters.ByteCounters); `probes` the round of probes after the
    poll (none: probing is off)."""
    samples: dict[str, list[Sample]] = {spec.name: [] for spec in FAMILIES}
    shown, left_out, subjects_left_out = _exported_clients(fleet, max_unnamed)
    _clients(shown, client_bytes, samples)
    _load_balancers(inventory, lbs, samples)
    _directors(fleet, samples)
    _hosts_and_gateways(inventory, fleet, lbs, gateways, samples)
    seen: set[tuple[str, str, str]] = set()
    for finding in fleet.findings:
        labels = (finding.code, finding.severity, finding.subject)
        if finding.subject in subjects_left_out:
            continue
        if labels not in seen:  # several messages of one code and subject: one series
            seen.add(labels)
            samples["wgconsole_finding"].append((labels, 1.0))
    for result in probes:
        samples["wgconsole_probe_success"].append(((result.target,), float(result.ok)))
        if result.ok and result.rtt_ms is not None:
            samples["wgconsole_probe_rtt_seconds"].append(((result.target,), result.rtt_ms / 1e3))
    samples["wgconsole_poll_duration_seconds"].append(((), poll_seconds))
    samples["wgconsole_poll_timestamp_seconds"].append(((), fleet.taken_at))
    samples["wgconsole_unnamed_peers_not_exported"].append(((), float(left_out)))
    return tuple(Family(spec, tuple(samples[spec.name])) for spec in FAMILIES)


def _exported_clients(fleet: Fleet, most: int) -> tuple[list[ClientView], int, set[str]]:
    """The clients that get series, how many unnamed peers do not (beyond `most`), and the
    finding subjects that are theirs alone."""
    unnamed = [c for c in fleet.clients if not c.name]
    if len(unnamed) <= most:
        return list(fleet.clients), 0, set()
    unnamed.sort(key=lambda c: c.public_key)
    kept = set(map(id, unnamed[:most]))
    shown = [c for c in fleet.clients if c.name or id(c) in kept]
    left_out = unnamed[most:]
    return shown, len(left_out), {c.label for c in left_out} - {c.label for c in shown}


def _clients(
    clients: Iterable[ClientView],
    client_bytes: Mapping[str, tuple[int, int]],
    samples: dict[str, list[Sample]],
) -> None:
    ages = samples["wgconsole_client_handshake_age_seconds"]
    never = samples["wgconsole_client_never_seen"]
    info = samples["wgconsole_client_info"]
    received = samples["wgconsole_client_receive_bytes_total"]
    sent = samples["wgconsole_client_transmit_bytes_total"]
    for client in clients:
        label = client_label(client)
        if client.handshake_age is not None and client.handshake_gateway is not None:
            ages.append(((label, client.handshake_gateway), client.handshake_age))
        never.append(((label,), 1.0 if client.status == "never" else 0.0))
        info.append(
            (
                (
                    label,
                    client.public_key,
                    client.address or "",
                    client.lb_gateway or "",
                    client.handshake_gateway or "",
                ),
                1.0,
            )
        )
        rx, tx = client_bytes.get(client.public_key, (0, 0))
        received.append(((label,), float(rx)))
        sent.append(((label,), float(tx)))


def _load_balancers(
    inventory: Inventory,
    lbs: Mapping[str, LbObservation | None],
    samples: dict[str, list[Sample]],
) -> None:
    for lb in inventory.load_balancers:
        obs = lbs.get(lb.name)
        if obs is None:
            continue
        if obs.expire_nodest_conn is not None:
            value = 1.0 if obs.expire_nodest_conn else 0.0
            samples["wgconsole_lb_expire_nodest_conn"].append(((lb.name,), value))
        service = matching_service(inventory, obs)
        dests: dict[object, IpvsDest] = {}
        if service is not None:
            if service.scheduler == "sh":
                value = 1.0 if service.sh_fallback else 0.0
                samples["wgconsole_lb_sh_fallback"].append(((lb.name,), value))
            dests = {normalize_endpoint(d.endpoint): d for d in service.dests}
        for gw in inventory.gateways:
            dest = dests.get(normalize_endpoint(gw.real_server))
            labels = (lb.name, gw.name)
            samples["wgconsole_real_server_present"].append((labels, 0.0 if dest is None else 1.0))
            if dest is None:
                continue
            samples["wgconsole_real_server_weight"].append((labels, float(dest.weight)))
            connections = float(dest.active_conns + dest.inactive_conns)
            samples["wgconsole_real_server_connections"].append((labels, connections))


def _directors(fleet: Fleet, samples: dict[str, list[Sample]]) -> None:
    answering = [view for view in fleet.load_balancers if view.reachable]
    # As the model's vip-held-twice/by-none findings: a VIP count only from every answer.
    if all(view.holds_vip is not None for view in answering):
        for view in answering:
            samples["wgconsole_lb_holds_vip"].append(((view.name,), float(bool(view.holds_vip))))
    for view in fleet.load_balancers:
        if view.buckets_differing is not None:
            differing = float(view.buckets_differing)
            samples["wgconsole_lb_buckets_differing"].append(((view.name,), differing))


def _hosts_and_gateways(
    inventory: Inventory,
    fleet: Fleet,
    lbs: Mapping[str, LbObservation | None],
    gateways: Mapping[str, GatewayObservation | None],
    samples: dict[str, list[Sample]],
) -> None:
    for host in fleet.hosts:
        samples["wgconsole_host_up"].append(((host.name, host.role), float(host.reachable)))
        if host.last_success is not None:
            age = max(0.0, fleet.taken_at - host.last_success)
            samples["wgconsole_host_data_age_seconds"].append(((host.name,), age))
    out = drained(inventory, lbs, gateways)
    for gw in fleet.gateways:
        if gw.reachable:
            up = gw.link_up is True and gw.peer_count is not None
            samples["wgconsole_gateway_interface_up"].append(((gw.name,), float(up)))
        samples["wgconsole_gateway_drained"].append(((gw.name,), float(gw.name in out)))


def families_named(families: Iterable[Family]) -> dict[str, Family]:
    return {family.spec.name: family for family in families}
