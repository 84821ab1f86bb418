"""A lock file that keeps two fcn-gui instances from writing one project."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .errors import ProjectError


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return os.name != "posix"  # on Windows os.kill(pid, 0) is not a probe; assume alive
    return True


class ProjectLock:
    """``.lock`` in the project folder, holding the owner's pid and host.

    A lock left by a process that no longer runs on this host is taken over.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
        self.held = False

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        for _attempt in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                same_host = owner.get("host") == me["host"]
                if owner.get("pid") == me["pid"] and same_host:
                    raise ProjectError(
                        "this project is already open in this window; close it first", self.path.parent
                    ) from None
                half_written = not owner and time.time() - self._mtime() > 5
                if half_written or (same_host and not _pid_alive(int(owner.get("pid", -1)))):
                    self.path.unlink(missing_ok=True)  # stale: its owner crashed
                    continue
                raise ProjectError(
                    f"the project is open in another fcn-gui (pid {owner.get('pid')} on "
                    f"{owner.get('host')}); close that one first, or delete {self.path} if it crashed",
                    self.path.parent,
                ) from None
            except PermissionError as exc:
                raise ProjectError(
                    "the project folder is read-only; copy the project somewhere you can write",
                    self.path.parent,
                ) from exc
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return

    def _owner(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
