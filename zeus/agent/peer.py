"""Who is calling, and whether a process still lives (Linux: SO_PEERCRED and /proc).

A process is identified by its pid *and* its start time (clock ticks after boot, field 22 of
``/proc/<pid>/stat``): a pid can be reused by an unrelated process as soon as its owner is gone, a
(pid, start time) pair cannot. A zombie (killed, not yet reaped by its parent) counts as gone: it runs
no code and holds nothing.

Pids are those of the agent's pid namespace. A caller in a namespace the agent cannot see (a
container, with the agent not on the host's pid namespace) has pid 0 here: it may read, not lease.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Process:
    """A process that cannot be confused with a later one reusing its pid."""

    pid: int
    start_ticks: int

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.start_ticks


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a UNIX-socket connection, as the kernel reports it."""

    pid: int
    uid: int
    gid: int
    groups: frozenset[int]
    """Primary and supplementary groups."""
    start_ticks: int | None
    """None: the process is not visible from the agent (pid 0) or was already gone."""

    @property
    def process(self) -> Process | None:
        if self.pid <= 0 or self.start_ticks is None:
            return None
        return Process(self.pid, self.start_ticks)

    def describe(self) -> str:
        return f"pid {self.pid}, uid {self.uid}"

    @classmethod
    def of_socket(cls, sock: socket.socket) -> Peer:
        """The peer of a connected UNIX socket (read once per connection)."""
        pid, uid, gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
        return cls.of_process(pid, uid, gid)

    @classmethod
    def of_process(cls, pid: int, uid: int | None = None, gid: int | None = None) -> Peer:
        """A peer from its pid (uid and gid read from /proc when not given)."""
        status = _status(pid) if pid > 0 else {}
        if uid is None:
            uid = int(status.get("Uid", "-1").split()[0])
        if gid is None:
            gid = int(status.get("Gid", "-1").split()[0])
        groups = {gid} | {int(g) for g in status.get("Groups", "").split()}
        return cls(pid, uid, gid, frozenset(groups), start_ticks(pid) if pid > 0 else None)


def start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks after boot); None if it is gone or a zombie."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # The command name (field 2) may hold spaces and parentheses: parse after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # field 3: state
        return None
    return int(fields[19])  # field 22: starttime


def _status(pid: int) -> dict[str, str]:
    try:
        text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
