"""Storage of users, friends, blocks, call history, kept notices and recordings.

:class:`SqliteStore` is the embedded default (one file in the data
directory, nothing else to start); :class:`PostgresStore` keeps the same
tables in PostgreSQL so that every node of a multi-node deployment sees the
same users.  Both are synchronous and are called from one worker thread by
the adapter; the SQL is shared, only the placeholder style differs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Any

__all__ = ["Store", "SqliteStore", "PostgresStore", "open_store"]

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS users (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS friends (
        a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b))""",
    """CREATE TABLE IF NOT EXISTS friend_requests (
        from_user TEXT NOT NULL, to_user TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (from_user, to_user))""",
    """CREATE TABLE IF NOT EXISTS blocks (
        blocker TEXT NOT NULL, blocked TEXT NOT NULL, PRIMARY KEY (blocker, blocked))""",
    """CREATE TABLE IF NOT EXISTS calls (
        call_id TEXT PRIMARY KEY, kind TEXT NOT NULL, participants TEXT NOT NULL,
        topology TEXT NOT NULL, reason TEXT NOT NULL, answered INTEGER NOT NULL,
        duration DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION NOT NULL)""",
    # messages for users who were offline (recording.ready), delivered at their next login; ref makes a
    # repeated notice (a recorder that resends after a lost ack) one row
    """CREATE TABLE IF NOT EXISTS notices (
        username TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL, payload TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (username, kind, ref))""",
    # the recordings each user took part in (from recording.ready), for recording.list; ref is the
    # sidecar's location, so a resent notification is one row
    """CREATE TABLE IF NOT EXISTS recordings (
        username TEXT NOT NULL, ref TEXT NOT NULL, room_id TEXT NOT NULL, started DOUBLE PRECISION NOT NULL,
        payload TEXT NOT NULL, PRIMARY KEY (username, ref))""",
    # which files of those a user may fetch: name -> where the worker put it
    """CREATE TABLE IF NOT EXISTS recording_files (
        username TEXT NOT NULL, name TEXT NOT NULL, location TEXT NOT NULL, PRIMARY KEY (username, name))""",
]


class Store:
    """The queries; subclasses provide ``_execute`` for their driver."""

    placeholder = "?"

    def _execute(self, sql: str, args: tuple = (), fetch: bool = False) -> list[tuple]:
        raise NotImplementedError

    def _q(self, sql: str, *args: Any, fetch: bool = False) -> list[tuple]:
        return self._execute(sql.replace("?", self.placeholder), args, fetch)

    def create_schema(self) -> None:
        for statement in SCHEMA:
            self._q(statement)

    # users
    def create_user(self, username: str, password_hash: str, now: float) -> bool:
        """Insert a user; False if the name is taken."""
        rows = self._q(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT (username) DO NOTHING RETURNING username",
            username, password_hash, now, fetch=True,
        )
        return bool(rows)

    def password_hash(self, username: str) -> str | None:
        rows = self._q("SELECT password_hash FROM users WHERE username = ?", username, fetch=True)
        return rows[0][0] if rows else None

    def user_exists(self, username: str) -> bool:
        return bool(self._q("SELECT 1 FROM users WHERE username = ?", username, fetch=True))

    # relations
    def relations(self, username: str) -> tuple[set[str], set[str]]:
        """(friends, users this user blocks)."""
        friends = {r[0] for r in self._q("SELECT b FROM friends WHERE a = ?", username, fetch=True)}
        blocked = {r[0] for r in self._q("SELECT blocked FROM blocks WHERE blocker = ?", username, fetch=True)}
        return friends, blocked

    def are_friends(self, a: str, b: str) -> bool:
        return bool(self._q("SELECT 1 FROM friends WHERE a = ? AND b = ?", a, b, fetch=True))

    def blocks(self, blocker: str, blocked: str) -> bool:
        return bool(self._q("SELECT 1 FROM blocks WHERE blocker = ? AND blocked = ?", blocker, blocked, fetch=True))

    def add_request(self, from_user: str, to_user: str, now: float) -> None:
        self._q("INSERT INTO friend_requests (from_user, to_user, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (from_user, to_user) DO NOTHING", from_user, to_user, now)

    def has_request(self, from_user: str, to_user: str) -> bool:
        return bool(self._q("SELECT 1 FROM friend_requests WHERE from_user = ? AND to_user = ?",
                            from_user, to_user, fetch=True))

    def incoming_requests(self, username: str) -> list[str]:
        return [r[0] for r in self._q("SELECT from_user FROM friend_requests WHERE to_user = ? "
                                      "ORDER BY created_at", username, fetch=True)]

    def delete_requests(self, a: str, b: str) -> None:
        self._q("DELETE FROM friend_requests WHERE (from_user = ? AND to_user = ?) "
                "OR (from_user = ? AND to_user = ?)", a, b, b, a)

    def add_friendship(self, a: str, b: str) -> None:
        for x, y in ((a, b), (b, a)):
            self._q("INSERT INTO friends (a, b) VALUES (?, ?) ON CONFLICT (a, b) DO NOTHING", x, y)
        self.delete_requests(a, b)

    def remove_friendship(self, a: str, b: str) -> None:
        self._q("DELETE FROM friends WHERE (a = ? AND b = ?) OR (a = ? AND b = ?)", a, b, b, a)

    def add_block(self, blocker: str, blocked: str) -> None:
        self._q("INSERT INTO blocks (blocker, blocked) VALUES (?, ?) ON CONFLICT (blocker, blocked) DO NOTHING",
                blocker, blocked)

    def remove_block(self, blocker: str, blocked: str) -> None:
        self._q("DELETE FROM blocks WHERE blocker = ? AND blocked = ?", blocker, blocked)

    def blocked_by(self, username: str) -> list[str]:
        return [r[0] for r in self._q("SELECT blocked FROM blocks WHERE blocker = ? ORDER BY blocked",
                                      username, fetch=True)]

    # history
    def record_call(self, call_id: str, kind: str, participants: tuple[str, ...], topology: str,
                    reason: str, answered: bool, duration: float, ended_at: float) -> None:
        self._q("INSERT INTO calls (call_id, kind, participants, topology, reason, answered, duration, ended_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING",
                call_id, kind, json.dumps(list(participants)), topology, reason, int(answered), duration, ended_at)

    def call_history(self, username: str, limit: int = 50) -> list[dict]:
        # participants is a JSON list: match the quoted name, with LIKE's wildcards escaped
        escaped = username.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._q("SELECT call_id, kind, participants, topology, reason, answered, duration, ended_at "
                       "FROM calls WHERE participants LIKE ? ESCAPE '\\' ORDER BY ended_at DESC LIMIT ?",
                       f'%"{escaped}"%', limit, fetch=True)
        keys = ("call_id", "kind", "participants", "topology", "reason", "answered", "duration", "ended_at")
        out = [dict(zip(keys, row)) for row in rows]
        for entry in out:
            entry["participants"] = json.loads(entry["participants"])
            entry["answered"] = bool(entry["answered"])
        return out

    # notices kept for offline users
    def add_notice(self, username: str, kind: str, ref: str, payload: dict, now: float) -> None:
        self._q("INSERT INTO notices (username, kind, ref, payload, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (username, kind, ref) DO NOTHING", username, kind, ref, json.dumps(payload), now)

    def take_notices(self, username: str) -> list[tuple[str, dict]]:
        """The user's kept notices, oldest first, removed as they are handed out."""
        rows = self._q("SELECT kind, ref, payload FROM notices WHERE username = ? ORDER BY created_at",
                       username, fetch=True)
        for kind, ref, _ in rows:
            self._q("DELETE FROM notices WHERE username = ? AND kind = ? AND ref = ?", username, kind, ref)
        return [(kind, json.loads(payload)) for kind, _, payload in rows]

    # recordings the user took part in
    def add_recording(self, username: str, ref: str, room_id: str, started: float, payload: dict,
                      files: list[tuple[str, str]]) -> None:
        """Keep one recording for ``username`` (once per ``ref``) and the (name, location) of its files."""
        self._q("INSERT INTO recordings (username, ref, room_id, started, payload) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (username, ref) DO NOTHING", username, ref, room_id, started, json.dumps(payload))
        for name, location in files:
            self._q("INSERT INTO recording_files (username, name, location) VALUES (?, ?, ?) "
                    "ON CONFLICT (username, name) DO NOTHING", username, name, location)

    def recordings(self, username: str, limit: int = 50) -> list[dict]:
        """The user's recordings, newest first."""
        rows = self._q("SELECT payload FROM recordings WHERE username = ? ORDER BY started DESC LIMIT ?",
                       username, limit, fetch=True)
        return [json.loads(row[0]) for row in rows]

    def recording_file(self, username: str, name: str) -> str | None:
        """Where file ``name`` of one of the user's recordings is, or None (not theirs, or none)."""
        rows = self._q("SELECT location FROM recording_files WHERE username = ? AND name = ?",
                       username, name, fetch=True)
        return rows[0][0] if rows else None

    def close(self) -> None:
        pass


class SqliteStore(Store):
    """The embedded default: ``signal.db`` in the data directory (WAL mode)."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self.create_schema()

    def _execute(self, sql: str, args: tuple = (), fetch: bool = False) -> list[tuple]:
        with self._lock:
            cursor = self._db.execute(sql, args)
            return cursor.fetchall() if fetch else []

    def close(self) -> None:
        self._db.close()


class PostgresStore(Store):
    """Shared users and friends for several nodes (``--database postgresql://...``)."""

    placeholder = "%s"

    def __init__(self, url: str) -> None:
        import psycopg

        self._lock = threading.Lock()
        self._db = psycopg.connect(url, autocommit=True)
        with self._lock:
            # Several nodes may start at once: serialize schema creation.
            self._db.execute("SELECT pg_advisory_lock(7281)")
            try:
                self.create_schema()
            finally:
                self._db.execute("SELECT pg_advisory_unlock(7281)")

    def _execute(self, sql: str, args: tuple = (), fetch: bool = False) -> list[tuple]:
        with self._lock:
            cursor = self._db.execute(sql, args)
            return cursor.fetchall() if fetch else []

    def create_schema(self) -> None:
        for statement in SCHEMA:
            self._db.execute(statement)

    def close(self) -> None:
        self._db.close()


def open_store(database: str | None, data_dir: str) -> Store:
    """PostgreSQL for a ``postgresql://`` URL, else SQLite in ``data_dir``."""
    if database and database.startswith(("postgresql://", "postgres://")):
        return PostgresStore(database)
    os.makedirs(data_dir, exist_ok=True)
    return SqliteStore(database or os.path.join(data_dir, "signal.db"))
