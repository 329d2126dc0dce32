"""What a table row is about: its subject, typed, carried by the row from where it is built.

The console acts on what is selected: Enter opens a row's subject, and the operation keys act
on it (drain a gateway, remove a client). Each row says what it is about here, where the rows
are built (wgconsole.view.rows, view.directors), so the console finds the subject of the row
under the cursor with one lookup: never by which table it is in, nor by parsing its key.

A row without a subject (a peer in a gateway's detail, a drift, a field) is about nothing the
console acts on. Rows stay keyed by identity (wgconsole.view.rows.Row.key): the subject is
what the row means, the key what keeps the cursor on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from wgconsole.core.fleet import Severity


@dataclass(frozen=True, slots=True)
class GatewaySubject:
    """A gateway of the inventory, by name (a real server row, a gateway's host row)."""

    name: str


@dataclass(frozen=True, slots=True)
class ClientSubject:
    """A client, by its peer public key (a Clients row)."""

    public_key: str


@dataclass(frozen=True, slots=True)
class DirectorSubject:
    """A load balancer (an IPVS director), by name: a Directors row, an LB's host row."""

    name: str


@dataclass(frozen=True, slots=True)
class LbEntrySubject:
    """An entry of the LB's connection table, and the client known behind it (None: no
    client's LB entry is this one)."""

    client: ClientSubject | None


@dataclass(frozen=True, slots=True)
class FindingSubject:
    """A finding, and what it is about: a client or a gateway the console can open (None:
    only its text says); `group`: it stands for many clients' findings of its code."""

    code: str
    severity: Severity
    message: str
    about: GatewaySubject | ClientSubject | None = None
    group: bool = False


Subject = GatewaySubject | ClientSubject | DirectorSubject | LbEntrySubject | FindingSubject
