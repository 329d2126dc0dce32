"""The Prometheus exporter (`wgconsole metrics`): the fleet model of each poll as metrics.

`families` makes the metric families of one poll (their names and labels are a contract:
`FAMILIES`), `counters` keeps each client's byte counters monotonic across polls, `exposition`
renders them with prometheus-client, `server` polls in a background thread and serves the
latest exposition over HTTP (`/metrics`, `/healthz`), and `rules` reads the shipped alert rules
(`alert_rules.yml`, package data).

May import `poll`, `config` and `core`; never `ops`, `view`, `lab`, the front ends, or
Textual. It never changes anything: its collector is read-only.
"""
