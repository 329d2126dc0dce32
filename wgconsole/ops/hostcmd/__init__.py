"""The commands operations send to hosts: LB (ipvsadm) commands, entry sync and watch, the
sync steps that move entries (rebalance's and the drain's), wg0.conf edits, handshake kicks,
client configs, keys, the drain record. Built on the machinery; no procedure is imported here,
and each module stands alone where it can."""
