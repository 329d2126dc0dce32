"""Operations that change the fleet: drain, undrain, re-weight, rebalance, add and remove peers.

Every operation is a plan (a preview computed from a fresh snapshot, changing nothing) and an
execution: a visible sequence of steps, each verified on the hosts before the next one runs,
recorded in the audit log, under a lock on every load balancer. The steps are `steps.Step`s run
by a `steps.Transaction`: a peer change's steps have undos (all gateways or none), a drain's
and a re-weight's have none (a cut drain is resumed or undrained from its record); a
rebalance's undo only what a cut run must not leave (its private sync daemon, a new gateway's
keepalives): a client moved stays moved.
"""
