"""The lock that keeps two fcn-gui instances from writing one project.

``.lock`` is an OS file lock (``filelock``): the operating system releases it when its process
ends, even by a crash or ``kill -9``, so there is no stale lock to detect or delete by hand.
``.lock.owner`` names the holder (pid, host) for the message another instance shows.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from core.base.errors import ProjectError


class ProjectLock:
    """Held from ``acquire`` to ``release`` (or until the process ends)."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
        self.owner_path = root / ".lock.owner"
        self._lock = FileLock(self.path, thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> None:
        """Take the lock at once, or raise ``ProjectError`` naming who holds it."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise ProjectError(self._held_by(), self.path.parent) from None
        except OSError as exc:
            raise ProjectError(
                f"cannot lock the project ({exc.strerror}); if the folder is read-only, "
                "copy the project somewhere you can write",
                self.path.parent,
            ) from exc
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        try:
            self.owner_path.write_text(json.dumps(me))  # advisory: a torn read only blurs the message
        except OSError as exc:  # the folder is read-only (the lock file itself was already there)
            self._lock.release()
            raise ProjectError(
                f"cannot write in the project folder ({exc.strerror}); copy the project somewhere "
                "you can write (it is read-only here)",
                self.path.parent,
            ) from exc

    def _held_by(self) -> str:
        try:
            owner = json.loads(self.owner_path.read_text())
        except (OSError, ValueError):
            owner = {}
        if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            return "this project is already open in this window; close it first"
        who = f"pid {owner['pid']} on {owner.get('host')}" if "pid" in owner else "starting up"
        return f"the project is open in another fcn-gui ({who}); close that one first"

    def release(self) -> None:
        if self.held:
            self.owner_path.unlink(missing_ok=True)
            self._lock.release()
