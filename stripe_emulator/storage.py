"""State in one SQLite file (WAL). Every request runs in one transaction; writers take the lock up front
(`BEGIN IMMEDIATE`), so several threads and several processes can share the file without losing anything.

Objects are JSON documents in `objects`, with a few columns copied out of the document for filtering.
Meter events have their own table because they are many and aggregated by time. The lines of the invoice
previews returned lately are kept apart (`invoice_previews`): previews are not invoices.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import sqlite3
import string
import threading
import zlib
from contextlib import contextmanager

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    customer TEXT, subscription TEXT, invoice TEXT, status TEXT, test_clock TEXT,
    product TEXT, lookup_key TEXT, event_name TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_type ON objects(type, seq);
CREATE INDEX IF NOT EXISTS objects_customer ON objects(type, customer);
CREATE INDEX IF NOT EXISTS objects_subscription ON objects(type, subscription);
CREATE INDEX IF NOT EXISTS objects_invoice ON objects(type, invoice);
CREATE INDEX IF NOT EXISTS objects_clock ON objects(type, test_clock);
CREATE INDEX IF NOT EXISTS objects_lookup ON objects(type, lookup_key);
CREATE INDEX IF NOT EXISTS objects_event_name ON objects(type, event_name);
CREATE TABLE IF NOT EXISTS meter_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    identifier TEXT NOT NULL UNIQUE,
    event_name TEXT NOT NULL,
    meter TEXT NOT NULL,
    customer TEXT NOT NULL,
    value TEXT NOT NULL,
    ts INTEGER NOT NULL,
    received INTEGER NOT NULL,
    created INTEGER NOT NULL,
    payload TEXT NOT NULL,
    canceled_at INTEGER
);
CREATE INDEX IF NOT EXISTS meter_events_agg ON meter_events(meter, customer, ts);
CREATE INDEX IF NOT EXISTS meter_events_customer ON meter_events(customer, seq);
CREATE TABLE IF NOT EXISTS meter_event_errors (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    meter TEXT, event_name TEXT, identifier TEXT, code TEXT NOT NULL, message TEXT NOT NULL,
    created INTEGER NOT NULL, reported INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS invoice_previews (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    created INTEGER NOT NULL,
    lines BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS invoice_previews_customer ON invoice_previews(customer);
CREATE INDEX IF NOT EXISTS invoice_previews_created ON invoice_previews(created);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    created INTEGER NOT NULL
);
"""

# Columns copied out of an object's top-level fields when it is saved.
INDEXED = ("customer", "subscription", "invoice", "status", "test_clock", "product", "lookup_key", "event_name")

_ALPHABET = string.ascii_letters + string.digits


def _indexed_columns(obj: dict) -> tuple:
    return tuple(v if isinstance(v, str) else None for v in map(obj.get, INDEXED))


def _indexed_fields(obj: dict) -> tuple:
    """The fields behind the indexed columns, as they are: what `save` compares to tell whether a column moved.
    Cheaper than the columns themselves, and every object read pays it (a page of drafts reads thousands)."""
    return tuple(map(obj.get, INDEXED))


def new_id(prefix: str, n: int = 24) -> str:
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(n))


class Tx:
    """One transaction on one connection; the resource modules talk to the state only through this."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._read_only: dict[str, tuple[str, dict | None]] = {}  # id -> (type asked, object)
        self._fields_read: dict[str, tuple] = {}  # id -> its indexed fields as read in this transaction

    def _loaded(self, obj: dict) -> dict:
        self._fields_read[obj["id"]] = _indexed_fields(obj)
        return obj

    def lookup(self, obj_id: str, type: str) -> dict | None:
        """`get`, loaded once per transaction, for reading only (the caller must not change it): a page
        of drafts reprices hundreds of lines against the same few prices and meters."""
        cached = self._read_only.get(obj_id)
        if cached is None or cached[0] != type:
            cached = self._read_only[obj_id] = (type, self.get(obj_id, type))
        return cached[1]

    # -- objects ---------------------------------------------------------
    def get(self, obj_id: str, type: str | None = None, include_deleted=False) -> dict | None:
        row = self.conn.execute("SELECT type, deleted, data FROM objects WHERE id = ?", (obj_id,)).fetchone()
        if row is None or (type is not None and row[0] != type) or (row[1] and not include_deleted):
            return None
        return self._loaded(json.loads(row[2]))

    def is_deleted(self, obj_id: str) -> bool:
        row = self.conn.execute("SELECT deleted FROM objects WHERE id = ?", (obj_id,)).fetchone()
        return bool(row and row[0])

    def insert(self, obj: dict) -> dict:
        self._forget(obj["id"])
        cols = _indexed_columns(obj)
        self.conn.execute(
            f"INSERT INTO objects (id, type, {', '.join(INDEXED)}, data) VALUES (?, ?, {', '.join('?' * len(INDEXED))}, ?)",
            (obj["id"], obj["object"], *cols, json.dumps(obj)),
        )
        self._fields_read[obj["id"]] = _indexed_fields(obj)
        return obj

    def save(self, obj: dict) -> dict:
        self._forget(obj["id"])
        fields = _indexed_fields(obj)
        # A field that is not a string has no column (None): the same fields give the same columns. A dict
        # changed in place compares equal, but its column is None before and after.
        if self._fields_read.get(obj["id"]) == fields:
            # Only the document changed (a repriced draft, its lines): rewriting the indexed columns
            # would rewrite their seven indexes too, twice the cost of a save.
            self.conn.execute("UPDATE objects SET data = ? WHERE id = ?", (json.dumps(obj), obj["id"]))
        else:
            self.conn.execute(
                f"UPDATE objects SET {', '.join(c + ' = ?' for c in INDEXED)}, data = ? WHERE id = ?",
                (*_indexed_columns(obj), json.dumps(obj), obj["id"]),
            )
            self._fields_read[obj["id"]] = fields
        return obj

    def _forget(self, obj_id: str) -> None:
        self._read_only.pop(obj_id, None)

    def delete(self, obj_id: str, hard: bool = False):
        self._forget(obj_id)
        if hard:
            self.conn.execute("DELETE FROM objects WHERE id = ?", (obj_id,))
        else:
            self.conn.execute("UPDATE objects SET deleted = 1 WHERE id = ?", (obj_id,))

    def _where(self, type: str, filters: dict):
        where = ["type = ?", "deleted = 0"]
        args: list = [type]
        for col, val in filters.items():
            if col not in INDEXED:
                raise ValueError(col)
            if val is None:
                where.append(f"{col} IS NULL")
            elif isinstance(val, (list, tuple, set)):
                val = list(val)
                where.append(f"{col} IN ({', '.join('?' * len(val))})")
                args.extend(val)
            else:
                where.append(f"{col} = ?")
                args.append(val)
        return where, args

    def find(self, type: str, order: str = "desc", **filters) -> list[dict]:
        where, args = self._where(type, filters)
        rows = self.conn.execute(
            f"SELECT data FROM objects WHERE {' AND '.join(where)} ORDER BY seq {order}", args
        ).fetchall()
        return [self._loaded(json.loads(r[0])) for r in rows]

    def page(
        self,
        type: str,
        *,
        limit: int,
        starting_after: str | None,
        ending_before: str | None,
        order: str = "desc",
        **filters,
    ) -> tuple[list[dict], bool]:
        """One page in Stripe's order (newest first unless order='asc'), and whether more exist."""
        where, args = self._where(type, filters)
        desc = order == "desc"
        forward = ending_before is None
        cursor = starting_after if forward else ending_before
        if cursor is not None:
            row = self.conn.execute("SELECT seq FROM objects WHERE id = ?", (cursor,)).fetchone()
            if row is None:
                from .errors import missing

                raise missing("object", cursor, param="starting_after" if forward else "ending_before")
            older = forward == desc
            where.append("seq < ?" if older else "seq > ?")
            args.append(row[0])
        sql_desc = desc if forward else not desc
        rows = self.conn.execute(
            f"SELECT data FROM objects WHERE {' AND '.join(where)} ORDER BY seq {'DESC' if sql_desc else 'ASC'} LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        has_more = len(rows) > limit
        items = [self._loaded(json.loads(r[0])) for r in rows[:limit]]
        if not forward:
            items.reverse()
        return items, has_more

    # -- invoice previews --------------------------------------------------
    def keep_preview(
        self,
        preview_id: str,
        customer: str,
        lines: list[dict],
        *,
        created: int,
        expire_before: int,
        keep_per_customer: int,
    ) -> None:
        """Keep a preview's lines as returned; drop previews created before `expire_before` and all but the
        customer's newest `keep_per_customer`. Compressed: a run previews every customer's invoice."""
        self.conn.execute(
            "INSERT INTO invoice_previews (id, customer, created, lines) VALUES (?, ?, ?, ?)",
            (preview_id, customer, created, zlib.compress(json.dumps(lines).encode(), 1)),
        )
        self.conn.execute("DELETE FROM invoice_previews WHERE created < ?", (expire_before,))
        self.conn.execute(
            """DELETE FROM invoice_previews WHERE customer = ? AND rowid NOT IN
               (SELECT rowid FROM invoice_previews WHERE customer = ? ORDER BY rowid DESC LIMIT ?)""",
            (customer, customer, keep_per_customer),
        )

    def preview_lines(self, preview_id: str) -> list[dict] | None:
        row = self.conn.execute("SELECT lines FROM invoice_previews WHERE id = ?", (preview_id,)).fetchone()
        return None if row is None else json.loads(zlib.decompress(row[0]))


class Store:
    """Connection pool over one SQLite file. `transaction(write=True)` serializes writers across processes."""

    def __init__(self, path: str, pool_size: int = 16):
        self.path = os.fspath(path)
        self._pool: queue.LifoQueue = queue.LifoQueue()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        conn = self._connect()
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute("COMMIT")
        self._pool.put(conn)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
        with self._lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self, write: bool = True):
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield Tx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")
        finally:
            self._pool.put(conn)

    def close(self):
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:
                pass
