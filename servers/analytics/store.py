"""The aggregates: SQLite by default, PostgreSQL for a ``postgresql://`` URL.

Tables: ``events`` (every accepted record, keyed by its id), ``rejects``
(malformed and unknown records, keyed by where they were read), ``calls``
and ``allocations`` (one row each, folded from all their events), and the
rollups ``hours``, ``users``, ``nodes`` (folded from calls and allocations).
``dirty`` lists rollup keys to refresh and ``offsets`` where each JSON lines
file was read to.

:meth:`Store.ingest` runs one batch in one transaction: insert the events
(a known id is a no-op), re-fold every call and allocation the batch
touched, mark their hours, users and nodes dirty, and (for files) move the
offsets.  :meth:`Store.refresh` re-folds the dirty rollups.  Writers are
serialized (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock), so two
workers never fold a call from two halves of its events.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sqlite3
from typing import Any, Iterable, Iterator

from .aggregate import (ALLOCATION_COLUMNS, CALL_COLUMNS, HOUR_COLUMNS, NODE_COLUMNS, USER_COLUMNS,
                        fold_allocation, fold_call, rollup_hour, rollup_node, rollup_user)

__all__ = ["Store", "open_store", "TABLES"]

_TEXT = {"call_id", "kind", "node", "caller", "callee", "participants", "outcome", "path_up", "path_down",
         "allocation_id", "user_name", "reason"}
_REAL = {"started_at", "ended_at", "answer_time", "connect_time", "setup_time", "duration", "relay_share",
         "loss", "rtt_ms", "jitter_ms", "mos", "granted_at", "deleted_at", "minutes"}
TABLES = {"calls": CALL_COLUMNS, "allocations": ALLOCATION_COLUMNS, "hours": HOUR_COLUMNS,
          "users": USER_COLUMNS, "nodes": NODE_COLUMNS}
_CHUNK = 400


def _column_type(name: str) -> str:
    return "TEXT" if name in _TEXT else "DOUBLE PRECISION" if name in _REAL else "BIGINT"


def _schema() -> list[str]:
    statements = [
        """CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, event TEXT NOT NULL, call_id TEXT,
            allocation_id TEXT, node TEXT NOT NULL, time DOUBLE PRECISION NOT NULL, body TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS events_call ON events (call_id)",
        "CREATE INDEX IF NOT EXISTS events_allocation ON events (allocation_id)",
        "CREATE TABLE IF NOT EXISTS rejects (key TEXT PRIMARY KEY, kind TEXT NOT NULL, reason TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS call_users (call_id TEXT NOT NULL, user_name TEXT NOT NULL, "
        "PRIMARY KEY (call_id, user_name))",
        "CREATE INDEX IF NOT EXISTS call_users_user ON call_users (user_name)",
        "CREATE TABLE IF NOT EXISTS dirty (kind TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (kind, key))",
        "CREATE TABLE IF NOT EXISTS offsets (source TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    ]
    for table, columns in TABLES.items():
        body = ", ".join(f"{c} {_column_type(c)}" for c in columns)
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({body}, PRIMARY KEY ({columns[0]}))")
    statements += ["CREATE INDEX IF NOT EXISTS calls_hour ON calls (hour)",
                   "CREATE INDEX IF NOT EXISTS calls_node ON calls (node)",
                   "CREATE INDEX IF NOT EXISTS allocations_hour ON allocations (hour)",
                   "CREATE INDEX IF NOT EXISTS allocations_user ON allocations (user_name)",
                   "CREATE INDEX IF NOT EXISTS allocations_node ON allocations (node)"]
    return statements


def _chunks(keys: Iterable[Any]) -> Iterator[list[Any]]:
    keys = list(keys)
    for i in range(0, len(keys), _CHUNK):
        yield keys[i:i + _CHUNK]


class Store:
    """The queries; the subclasses open the connection and lock for writing."""

    placeholder = "?"

    def __init__(self, connection: Any) -> None:
        self.db = connection
        with self.transaction():
            for statement in _schema():
                self._x(statement)

    # --- driver shims ---------------------------------------------------------

    def _x(self, sql: str, args: Iterable = ()) -> Any:
        return self.db.execute(sql.replace("?", self.placeholder), tuple(args))

    def _many(self, sql: str, rows: list[tuple]) -> None:
        if rows:
            cursor = self.db.cursor()
            cursor.executemany(sql.replace("?", self.placeholder), rows)

    def rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        cursor = self._x(sql, args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def _in(self, sql: str, keys: Iterable[Any]) -> list[dict]:
        """``sql`` with ``IN ({})`` filled for every chunk of ``keys``."""
        out: list[dict] = []
        for chunk in _chunks(keys):
            out += self.rows(sql.format(", ".join("?" * len(chunk))), chunk)
        return out

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError

    def close(self) -> None:
        self.db.close()

    # --- writing -----------------------------------------------------------

    def _upsert(self, table: str, rows: list[dict]) -> None:
        columns = TABLES[table]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
               f"ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}")
        self._many(sql, [tuple(r[c] for c in columns) for r in rows])

    def _mark(self, kind: str, keys: Iterable[Any]) -> None:
        self._many("INSERT INTO dirty (kind, key) VALUES (?, ?) ON CONFLICT (kind, key) DO NOTHING",
                   [(kind, str(k)) for k in keys if k is not None])

    def ingest(self, records: list[tuple[dict, str]], rejects: list[tuple[str, str, str]],
               offsets: dict[str, int] | None = None) -> None:
        """One batch: accepted (record, its JSON text), rejects as (key, kind, reason), file offsets reached."""
        with self.transaction():
            self._many("INSERT INTO events (id, event, call_id, allocation_id, node, time, body) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                       [(r["id"], r["event"], r.get("call_id"), r.get("allocation_id"), r["node"], r["time"], text)
                        for r, text in records])
            self._many("INSERT INTO rejects (key, kind, reason) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
                       rejects)
            self._fold_calls({r["call_id"] for r, _ in records if "call_id" in r})
            self._fold_allocations({r["allocation_id"] for r, _ in records if "allocation_id" in r})
            for source, position in (offsets or {}).items():
                self._x("INSERT INTO offsets (source, position) VALUES (?, ?) "
                        "ON CONFLICT (source) DO UPDATE SET position = excluded.position", (source, position))

    def _events_of(self, column: str, keys: set[str]) -> dict[str, list[dict]]:
        grouped: dict[str, list[dict]] = {}
        for row in self._in(f"SELECT {column} AS k, body FROM events WHERE {column} IN ({{}})", keys):
            grouped.setdefault(row["k"], []).append(json.loads(row["body"]))
        return grouped

    def _fold_calls(self, call_ids: set[str]) -> None:
        if not call_ids:
            return
        old = self._in("SELECT call_id, hour, node, participants FROM calls WHERE call_id IN ({})", call_ids)
        rows = [fold_call(cid, events) for cid, events in self._events_of("call_id", call_ids).items()]
        self._upsert("calls", rows)
        self._many("DELETE FROM call_users WHERE call_id = ?", [(cid,) for cid in call_ids])
        self._many("INSERT INTO call_users (call_id, user_name) VALUES (?, ?)",
                   [(r["call_id"], u) for r in rows for u in r["participants"].split(",") if u])
        self._mark("hour", {r["hour"] for r in old + rows})
        self._mark("node", {r["node"] for r in old + rows})
        self._mark("user", {u for r in old + rows for u in (r["participants"] or "").split(",") if u})

    def _fold_allocations(self, allocation_ids: set[str]) -> None:
        if not allocation_ids:
            return
        old = self._in("SELECT hour, node, user_name FROM allocations WHERE allocation_id IN ({})", allocation_ids)
        rows = [fold_allocation(aid, events) for aid, events in self._events_of("allocation_id", allocation_ids).items()]
        self._upsert("allocations", rows)
        self._mark("hour", {r["hour"] for r in old + rows})
        self._mark("node", {r["node"] for r in old + rows})
        self._mark("user", {r["user_name"] for r in old + rows})

    def refresh(self) -> int:
        """Re-fold every dirty rollup; the number refreshed."""
        with self.transaction():
            dirty = self.rows("SELECT kind, key FROM dirty")
            keys: dict[str, set[str]] = {"hour": set(), "user": set(), "node": set()}
            for d in dirty:
                keys[d["kind"]].add(d["key"])
            hours = {int(h) for h in keys["hour"]}
            self._refresh("hours", hours, "hour", rollup_hour,
                          "SELECT * FROM calls WHERE hour IN ({})", "SELECT * FROM allocations WHERE hour IN ({})")
            self._refresh("users", keys["user"], "user_name", rollup_user,
                          "SELECT call_users.user_name AS member, calls.* FROM calls JOIN call_users "
                          "ON calls.call_id = call_users.call_id WHERE call_users.user_name IN ({})",
                          "SELECT * FROM allocations WHERE user_name IN ({})", call_key="member")
            self._refresh("nodes", keys["node"], "node", rollup_node,
                          "SELECT * FROM calls WHERE node IN ({})", "SELECT * FROM allocations WHERE node IN ({})")
            self._x("DELETE FROM dirty")
        return len(dirty)

    def _refresh(self, table: str, keys: set, column: str, fold, calls_sql: str, allocations_sql: str,
                 call_key: str | None = None) -> None:
        calls: dict[Any, list[dict]] = {k: [] for k in keys}
        allocations: dict[Any, list[dict]] = {k: [] for k in keys}
        for row in self._in(calls_sql, keys):
            calls[row[call_key or column]].append(row)
        for row in self._in(allocations_sql, keys):
            allocations[row[column]].append(row)
        rows = [fold(k, calls[k], allocations[k]) for k in keys]
        empty = [r for r in rows if not r["calls"] and not r["allocations"]]
        self._many(f"DELETE FROM {table} WHERE {column} = ?", [(r[column],) for r in empty])
        self._upsert(table, [r for r in rows if r["calls"] or r["allocations"]])

    # --- reading -----------------------------------------------------------

    def offset(self, source: str) -> int:
        found = self.rows("SELECT position FROM offsets WHERE source = ?", (source,))
        return found[0]["position"] if found else 0

    def table(self, name: str, order: str | None = None) -> list[dict]:
        columns = TABLES.get(name) or {"rejects": ("key",), "events": ("id",)}[name]
        return self.rows(f"SELECT * FROM {name} ORDER BY {order or columns[0]}")

    def counts(self) -> dict[str, int]:
        """Events kept, and rejects by kind (malformed, unknown)."""
        out = {"events": self.rows("SELECT COUNT(*) AS n FROM events")[0]["n"], "malformed": 0, "unknown": 0}
        for row in self.rows("SELECT kind, COUNT(*) AS n FROM rejects GROUP BY kind"):
            out[row["kind"]] = row["n"]
        return out


class SqliteStore(Store):
    """One file; writers of several processes take turns on a lock file first.

    SQLite's own busy handler polls with growing sleeps, so a waiting worker
    often sleeps through the moment the other commits; a blocking ``flock``
    hands the turn over as soon as it is released.
    """

    def __init__(self, path: str) -> None:
        self._lock = open(path + ".lock", "a")
        # Switching a new file to WAL takes the turn too: two workers starting on a new file would
        # race for it, and SQLite may answer that race "database is locked" at once, without its
        # busy handler. The schema is then created in a transaction, which takes its own turn.
        with self._turn():
            db = sqlite3.connect(path, isolation_level=None, timeout=60)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        super().__init__(db)

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """This process's turn to write (not re-entrant: ``flock`` on one descriptor does not count)."""
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._turn():
            self.db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def close(self) -> None:
        super().close()
        self._lock.close()


class PostgresStore(Store):
    placeholder = "%s"

    def __init__(self, url: str) -> None:
        import psycopg

        super().__init__(psycopg.connect(url, autocommit=True))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(7282)")  # one writer at a time, across workers
            yield


def open_store(database: str) -> Store:
    """PostgreSQL for a ``postgresql://`` URL, else an SQLite file at that path."""
    if database.startswith(("postgresql://", "postgres://")):
        return PostgresStore(database)
    return SqliteStore(database)
