"""``project.db``: a project's images, classes and settings in one SQLite file.

One row per image, indexed for what the app asks (state, name, confidence, order); classes
and settings in their own tables. The journal is WAL, so readers (the window) never wait for
the writer (the saver), and ``synchronous=FULL``: a commit is on disk when it returns, so it
survives a power cut, not only a crash. Commits are few (one per save of the staged edits,
one per thousand images found while scanning), so the flush each costs is not felt.

This object is the one owner of the file: each read or write borrows an idle connection from
its small pool (any thread may use any connection, one at a time), so a reader never waits for
a writer's commit; writes go one at a time through ``write()``. Opening takes a rolling
backup (SQLite's backup API, the newest ``BACKUPS`` kept in ``backups/``), so a damaged file
can be replaced by one that is at most a session old.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from core.base.errors import ProjectError

DATABASE = "project.db"
SCHEMA = 2  # project.json was format 1
BACKUPS = 3
BACKUP_FOLDER = "backups"
POOL = 4  # idle connections kept

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS classes (
    idx INTEGER PRIMARY KEY CHECK (idx BETWEEN 0 AND 254),
    name TEXT NOT NULL UNIQUE,
    r INTEGER NOT NULL CHECK (r BETWEEN 0 AND 255),
    g INTEGER NOT NULL CHECK (g BETWEEN 0 AND 255),
    b INTEGER NOT NULL CHECK (b BETWEEN 0 AND 255)
);
CREATE TABLE IF NOT EXISTS images (
    row INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'predicted', 'edited', 'reviewed')),
    checkpoint TEXT,
    modified TEXT,
    changed_fraction REAL,
    confidence REAL,
    width INTEGER,
    height INTEGER,
    missing INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS images_by_state ON images (state, row);
CREATE INDEX IF NOT EXISTS images_by_confidence ON images (state, confidence);
CREATE INDEX IF NOT EXISTS images_by_review ON images (state, modified);
"""


class ProjectDatabase:
    """The SQLite file of one project; ``read`` and ``write`` from any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()  # the pool
        self._writing = threading.Lock()  # one writer at a time, in this process

    @classmethod
    def create(
        cls, path: Path, meta: dict[str, str], fill: Callable[[sqlite3.Connection], None] | None = None
    ) -> ProjectDatabase:
        """A new database at ``path`` with ``meta`` and what ``fill`` inserts, all written under a
        temporary name that takes ``path``'s only when complete (a crash leaves no half database)."""
        tmp = path.with_name(f".{path.name}.new")
        tmp.unlink(missing_ok=True)
        db = cls(tmp)
        try:
            with db._connection() as con:
                con.executescript(TABLES)  # commits by itself: before the transaction
            with db.write() as con:
                con.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", str(SCHEMA)), *meta.items()])
                if fill is not None:
                    fill(con)
            with db._connection() as con:
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the file itself
        finally:
            db.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        tmp.replace(path)
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> ProjectDatabase:
        """Open ``path`` and check it; ``ProjectError`` naming the newest backup when it is damaged."""
        db = cls(path)
        try:
            if db.value("PRAGMA quick_check") != "ok":
                raise damaged(path, "the integrity check failed")
            schema = db.meta("schema")
        except ProjectError:
            db.close()
            raise
        if schema is None or not schema.isdigit():
            db.close()
            raise damaged(path, "it has no schema version")
        if int(schema) > SCHEMA:
            db.close()
            raise ProjectError(
                f"the project was saved by a newer fcn-gui (format {schema}, this one reads {SCHEMA}); "
                "update fcn-gui to open it",
                path,
            )
        return db

    # --- connections ---------------------------------------------------------------------
    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """An idle connection of the pool (a new one when all are in use), returned afterwards."""
        with self._guard:
            con = self._idle.pop() if self._idle else None
        if con is None:
            con = self._connect()
        try:
            yield con
        finally:
            with self._guard:
                if len(self._idle) < POOL and con in self._all:
                    self._idle.append(con)
                    con = None
            if con is not None:
                with contextlib.suppress(sqlite3.Error):
                    con.close()

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error:
            con.close()
            raise
        with self._guard:
            self._all.append(con)
        return con

    def read(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        """The rows of one query."""
        try:
            with self._connection() as con:
                return con.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise damaged(self.path, exc) from exc

    def value(self, sql: str, args: tuple | list = ()) -> object:
        """The first column of the first row, or ``None``."""
        rows = self.read(sql, args)
        return rows[0][0] if rows else None

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self._writing, self._connection() as con:
            try:
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise damaged(self.path, exc) from exc
            except sqlite3.Error as exc:
                raise ProjectError(f"cannot write the project database ({exc})", self.path) from exc
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            try:
                con.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise ProjectError(
                    f"cannot save to the project database ({exc}); free disk space or check permissions "
                    "(your edit is still in memory)",
                    self.path,
                ) from exc

    def meta(self, key: str) -> str | None:
        value = self.value("SELECT value FROM meta WHERE key = ?", (key,))
        return None if value is None else str(value)

    def set_meta(self, con: sqlite3.Connection, key: str, value: str | None) -> None:
        """Inside ``write()``: set (``None``: remove) one setting."""
        if value is None:
            con.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- backups -------------------------------------------------------------------------
    def backup(self) -> Path:
        """A copy of the database as it is now in ``backups/``; only the newest ``BACKUPS`` stay."""
        folder = self.path.parent / BACKUP_FOLDER
        folder.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = folder / f"project-{stamp}.db"
        n = 2
        while target.exists():
            target, n = folder / f"project-{stamp}-{n}.db", n + 1
        tmp = folder / f".{target.name}.tmp"
        dest = sqlite3.connect(tmp)
        try:
            with self._connection() as con:
                con.backup(dest)
        finally:
            dest.close()
        tmp.replace(target)
        for old in backups(self.path.parent)[BACKUPS:]:
            old.unlink(missing_ok=True)
        return target

    def close(self) -> None:
        """Close every connection (the project is done with)."""
        with self._guard:
            connections, self._all, self._idle = self._all, [], []
        for con in connections:
            with contextlib.suppress(sqlite3.Error):
                con.close()


def backups(root: Path) -> list[Path]:
    """The project's database backups, newest first."""
    folder = root / BACKUP_FOLDER
    found = folder.glob("project-*.db") if folder.is_dir() else []
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def damaged(path: Path, why: object) -> ProjectError:
    """The message for a database that cannot be read: what to do, with the newest backup named."""
    saved = backups(path.parent)
    if saved:
        fix = (
            f"the newest backup is {saved[0]}: close fcn-gui and copy it over {path.name} to go back to "
            "that moment (nothing here was changed)"
        )
    else:
        fix = "there is no backup of it (backups/ is empty); nothing here was changed"
    return ProjectError(f"the project database is damaged ({why}); {fix}", path)
