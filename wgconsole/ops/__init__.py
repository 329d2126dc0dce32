"""Operations that change the fleet: drain, undrain, re-weight, rebalance, lb align, failover,
add and remove peers.

Three tiers, each a sub-package, kept apart by import-linter (pyproject.toml, `ops-*`):

- `procedures`: the operations themselves (drain, weight and undrain, rebalance, align,
  failover, peers); no procedure imports another;
- `hostcmd`: the commands they send to hosts (LB commands, entry sync and watch, wg0.conf
  edits, the handshake kick, client configs, keys, the drain record);
- `machinery`: what they all run on (the operation type, steps and their transaction, the
  context, the lock, the audit log and the one audited run, errors, validation, readings).

`catalog` sits on top: the operations the front ends offer. Every operation is a plan (a
preview computed from a fresh snapshot, changing nothing) and an execution in the one locked,
audited run (`machinery.run.audited_run`): a visible sequence of steps, each verified on the
hosts before the next one runs, under a lock on every load balancer, its end (success or
failure) recorded in the audit log. A peer change's steps have undos (all gateways or none), a
drain's and a re-weight's have none (a cut drain is resumed or undrained from its record) but
the drain's private sync daemon; a rebalance's undo only what a cut run must not leave (its
private sync daemon, a new gateway's keepalives): a client moved stays moved.
"""
