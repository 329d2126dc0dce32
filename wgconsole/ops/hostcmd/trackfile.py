"""The switchover file (keepalived's `track_file`), read and replaced on a director as root.

Its path comes from keepalived's config, and root writes it: a symlink there, or a directory
that someone else can write (who could plant one between a check and the write), would let the
write land on any file, and the read return any file's first bytes. So both commands check, in
the same shell, before touching the file: it is not a symbolic link and, if it exists, a regular
file; its directory (symlinks resolved) and every directory above it belong to root (or the
user running the command) and nobody else can write them (a sticky directory above, as /tmp, is
allowed: others cannot rename what they do not own there, but not as the file's own
directory). The write goes to a fresh temporary in that directory (mktemp, mode 0600 until
renamed) and replaces the file in one rename. Refusals exit REFUSED, with the reason on stderr;
neither command ever prints the file's contents but for the read's 64 bytes to parse.
"""

from __future__ import annotations

from wgconsole.core.inventory import Host
from wgconsole.poll.transport.base import privileged

NO_FILE = 3  # the read: no file yet (keepalived takes it as 0)
REFUSED = 20  # either: the file or its directory is not safe to use; why, on stderr

_CHECK = f"""
f=$1
case $f in /*) ;; *) echo "not an absolute path" >&2; exit {REFUSED};; esac
name=${{f##*/}}
[ -n "$name" ] || {{ echo "no file name" >&2; exit {REFUSED}; }}
if [ -L "$f" ]; then echo "it is a symbolic link" >&2; exit {REFUSED}; fi
if [ -e "$f" ] && [ ! -f "$f" ]; then echo "it is not a regular file" >&2; exit {REFUSED}; fi
d=${{f%/*}}
d=$(cd -P -- "${{d:-/}}" 2>/dev/null && pwd -P) || {{
  echo "its directory does not exist" >&2; exit {REFUSED}; }}
me=$(id -u)
p=$d
while :; do
  s=$(stat -c '%u %a' -- "$p") || exit 1
  u=${{s% *}}; m=${{s#* }}
  if [ "$u" != 0 ] && [ "$u" != "$me" ]; then
    echo "$p belongs to uid $u: others can write there" >&2; exit {REFUSED}
  fi
  if [ $((0$m & 022)) -ne 0 ] && {{ [ "$p" = "$d" ] || [ $((0$m & 01000)) -eq 0 ]; }}; then
    echo "others can write in $p (mode $m)" >&2; exit {REFUSED}
  fi
  [ "$p" = / ] && break
  p=${{p%/*}}; p=${{p:-/}}
done
"""

_READ = (
    _CHECK
    + f"""
[ -e "$d/$name" ] || exit {NO_FILE}
head -c 64 -- "$d/$name"
"""
)

_WRITE = (
    _CHECK
    + """
t=$(mktemp "$d/.wgconsole-switchover.XXXXXX") || exit 1
if printf '%s\\n' "$2" > "$t" && chmod 0644 "$t" && mv -f -- "$t" "$d/$name"; then exit 0; fi
rm -f -- "$t"
exit 1
"""
)


def read_command(lb: Host, path: str) -> str:
    """The file's first 64 bytes; exit NO_FILE when there is none, REFUSED (why on stderr)."""
    return privileged(["sh", "-c", _READ, "sh", path], sudo=lb.ssh.sudo)


def write_command(lb: Host, path: str, value: int) -> str:
    """Replace the file with `value` in one rename; exit REFUSED (why on stderr)."""
    return privileged(["sh", "-c", _WRITE, "sh", path, str(int(value))], sudo=lb.ssh.sudo)
