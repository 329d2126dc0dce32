"""The commands operations send to hosts: LB (ipvsadm) commands, entry sync and watch,
wg0.conf edits, handshake kicks, client configs, keys, the drain record. Built on the
machinery; no procedure is imported here, and each module stands alone where it can."""
