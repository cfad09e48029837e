"""Is a local process still there? (Linux /proc; elsewhere the answers are conservative.)"""

from __future__ import annotations

import os


def process_started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_alive(pid: int, started: str | None = None) -> bool:
    """Process ``pid`` runs (not ended, not a zombie). Our own exited child is reaped on the way. With ``started``
    (from :func:`process_started`), a pid now used by another process reads as gone."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child that has exited: reap it
            return False
    except ChildProcessError:
        pass  # not our child (started by another dashboard or CLI process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":  # a zombie (finished, not yet reaped)
                return False
    except (OSError, IndexError):
        return True
    return not started or process_started(pid) == started
