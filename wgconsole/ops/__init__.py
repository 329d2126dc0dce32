"""Operations that change the fleet: drain, undrain, re-weight, add and remove peers.

Every operation is a plan (a preview computed from a fresh snapshot, changing nothing) and an
execution: a visible sequence of steps, each verified on the hosts before the next one runs,
recorded in the audit log, under a lock on every load balancer.
"""
