"""The director pair lab's setup for operations: each director's own wgconsole state
directory, and the switchover hook in its keepalived config."""

from __future__ import annotations

import re
from pathlib import Path

from wgconsole.core.lb_state import STATE_DIR, SWITCHOVER_TRACK_FILE
from wgconsole.lab import guest_script
from wgconsole.lab.topology import build_topology

LAB = Path("/var/lib/wgconsole-lab-x")


def test_each_director_has_its_own_wgconsole_state_directory() -> None:
    # The service lock and the drain records live in STATE_DIR: one directory shared by both
    # directors would make the lock taken on wg-lb-1 look held on wg-lb-2.
    topo = build_topology(2, 2, 2620, lbs=2)
    for d in topo.directors:
        inner = guest_script.director_start_command(LAB, d).split(" sh -c ", 1)[1]
        mount = f"mount -t tmpfs -o mode=0755 tmpfs {STATE_DIR}"
        assert mount in inner
        # Mounted before keepalived (its switchover file is there) and sshd start.
        assert inner.index(mount) < inner.index("keepalived") < inner.index("sshd")


def test_the_labs_keepalived_tracks_the_switchover_file() -> None:
    topo = build_topology(2, 2, 2620, lbs=2)
    for d in topo.directors:
        conf = guest_script.keepalived_config(topo, d)
        definition = (
            f"track_file {SWITCHOVER_TRACK_FILE} {{\n"
            f'    file "{guest_script.SWITCHOVER_FILE}"\n'
            "    weight 1\n"
        )
        assert definition in conf
        assert f"    track_file {{\n        {SWITCHOVER_TRACK_FILE}\n    }}\n" in conf
        # In the director's own state directory: each director has its own file.
        assert guest_script.SWITCHOVER_FILE.startswith(STATE_DIR + "/")
        # init_file without overwrite: a restart keeps the value wgconsole wrote.
        assert re.search(r"^    init_file 0$", conf, re.M)
