"""Which process may deliver the outbox: one per database, whatever the number of instances.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on a connection
of its own for as long as the process is the sender. PostgreSQL lets go of it the moment
that connection ends, so when the sender's process dies (even by ``kill -9``: the kernel
closes its sockets) another instance's next try wins within its standby poll.

SQLite (one machine, development and tests): an exclusive ``flock`` on a file beside the
database file, which the kernel likewise releases when the holding process dies. An
in-memory database has one process by definition: the lock is always held.

Persistence-level plumbing only: it says who holds the lock, never what to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

#: The advisory lock's key: a constant of this application (the lock is per database).
LOCK_KEY = 0x7161_626F_7453_6E64 & 0x7FFF_FFFF_FFFF_FFFF  # "qabotSnd"
CHECK_TIMEOUT_SECONDS = 5.0


class SenderLock:
    """Try to become the outbox sender, check it is still so, let go."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        url = make_url(str(engine.url))
        self._dialect = url.get_backend_name()
        self._conn: AsyncConnection | None = None
        self._file: IO[bytes] | None = None
        self._path: str | None = None
        if self._dialect == "sqlite":
            database = url.database or ""
            if database and database != ":memory:" and not database.startswith("file::memory"):
                self._path = os.path.abspath(database) + ".sender-lock"
        self._held = False

    @property
    def held(self) -> bool:
        """True while this process believes it is the sender (see :meth:`check`)."""
        return self._held

    async def acquire(self) -> bool:
        """Become the sender if nobody else is; never waits for the holder."""
        if self._held:
            return True
        if self._dialect == "postgresql":
            self._held = await self._acquire_pg()
        elif self._dialect == "sqlite":
            self._held = self._acquire_file()
        else:  # an engine we do not know: assume one process
            self._held = True
        return self._held

    async def _acquire_pg(self) -> bool:
        conn: AsyncConnection | None = None
        try:
            conn = await self._engine.connect()
            got = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                         {"key": LOCK_KEY}))
            await conn.commit()  # the lock is the session's; leave no transaction open
        except Exception as exc:
            log.warning("could not ask for the sender lock (%s)", type(exc).__name__)
            await _close_quietly(conn)
            return False
        if not got:
            await conn.close()
            return False
        self._conn = conn
        return True

    def _acquire_file(self) -> bool:
        if self._path is None:
            return True
        handle = open(self._path, "ab")  # noqa: SIM115 - held open while the lock is
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    async def check(self) -> bool:
        """Is the lock still held? False (and let go) when its connection is gone."""
        if not self._held:
            return False
        if self._conn is None:
            return True  # a file lock (or one process) cannot be lost while we live
        try:
            await asyncio.wait_for(self._conn.scalar(text("SELECT 1")), CHECK_TIMEOUT_SECONDS)
            await self._conn.commit()
            return True
        except Exception as exc:
            log.warning("the sender lock's connection failed (%s): no longer the sender",
                        type(exc).__name__)
            await self.release()
            return False

    async def release(self) -> None:
        """Stop being the sender (idempotent)."""
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            # Discard the connection rather than pool it: ending the session is what
            # surely lets go of a session-level advisory lock.
            with contextlib.suppress(Exception):
                await conn.invalidate()
            await _close_quietly(conn)
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


async def _close_quietly(conn: Any) -> None:
    if conn is None:
        return
    try:
        await conn.close()
    except Exception:
        with contextlib.suppress(Exception):
            await conn.invalidate()
