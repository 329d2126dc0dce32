"""The procedures: drain, undrain and weight, rebalance, lb align, failover, peer add and
remove. Each is built of host commands and the machinery, and imports no other procedure."""
