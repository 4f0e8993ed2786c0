"""Durable definitions in SQLite: vhosts, users, permissions, topic permissions, exchanges, queues, bindings, policies, operator policies, limits, parameters, global parameters.

Theory of operation: the broker reports every change to a durable definition
(:class:`~.base.Definitions` methods named after the change); each is one SQLite
transaction, so the database always holds a consistent set.  Inside
:meth:`SQLiteDefinitions.batch` (a definitions import) each change is a savepoint
of one transaction committed at the end: one fsync for thousands of queues.
Bindings are indexed by their destination (a bind's duplicate check and a queue's
deletion find theirs without a scan of every binding).  Argument tables
are stored as AMQP field-table bytes (the codec keeps integer widths, so what
comes back is exactly what was declared).  At start, :meth:`SQLiteDefinitions.load`
returns everything for the broker to rebuild its vhosts before messages are
recovered into the queues (queues carry the integer id the message store uses).
Non-durable and exclusive entities are never written.  A database written by an
older version is brought up to date when opened (``_migrate``: the users'
``hashing_algorithm`` column, the vhosts' metadata columns; new tables are
created by the schema's ``IF NOT EXISTS``).  Runtime parameters and global
parameters are stored as JSON text.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3

from ..protocol.codec import decode_table, encode_table
from .base import Definitions
from .files import FILE_MODE, secure_dir, secure_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS vhosts (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, password_hash BLOB NOT NULL, tags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS permissions (user TEXT, vhost TEXT, configure TEXT, write TEXT, read TEXT,
                                        PRIMARY KEY (user, vhost));
CREATE TABLE IF NOT EXISTS exchanges (vhost TEXT, name TEXT, type TEXT, auto_delete INTEGER, internal INTEGER,
                                      arguments BLOB, PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS queues (id INTEGER PRIMARY KEY AUTOINCREMENT, vhost TEXT, name TEXT,
                                   auto_delete INTEGER, arguments BLOB, UNIQUE (vhost, name));
CREATE TABLE IF NOT EXISTS bindings (vhost TEXT, source TEXT, destination TEXT, destination_kind TEXT,
                                     routing_key TEXT, arguments BLOB);
CREATE INDEX IF NOT EXISTS bindings_by_destination ON bindings (vhost, destination, source);
CREATE TABLE IF NOT EXISTS policies (vhost TEXT, name TEXT, pattern TEXT, apply_to TEXT, priority INTEGER,
                                     definition TEXT, PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS topic_permissions (user TEXT, vhost TEXT, exchange TEXT, write TEXT, read TEXT,
                                              PRIMARY KEY (user, vhost, exchange));
CREATE TABLE IF NOT EXISTS limits (kind TEXT, name TEXT, definition TEXT, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS operator_policies (vhost TEXT, name TEXT, pattern TEXT, apply_to TEXT, priority INTEGER,
                                              definition TEXT, PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS parameters (component TEXT, vhost TEXT, name TEXT, value TEXT,
                                       PRIMARY KEY (component, vhost, name));
CREATE TABLE IF NOT EXISTS global_parameters (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS mqtt_retained (vhost TEXT, topic TEXT, packet BLOB, PRIMARY KEY (vhost, topic));
"""


def _table(blob) -> dict:
    if not blob:
        return {}
    return decode_table(bytes(blob), 0)[0]


class SQLiteDefinitions(Definitions):
    def __init__(self, path: str):
        secure_dir(os.path.dirname(path) or ".")
        secure_file(path)  # 0640 before SQLite opens it: SQLite gives its -wal and -shm the same mode
        self.path = path
        self._batch = False  # inside batch(): each change is a savepoint of one transaction
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self._migrate()
        for side in (path + "-wal", path + "-shm"):
            try:
                if os.stat(side).st_mode & 0o7777 != FILE_MODE:
                    os.chmod(side, FILE_MODE)
            except FileNotFoundError:
                pass

    def _migrate(self) -> None:
        columns = [r[1] for r in self.db.execute("PRAGMA table_info(users)")]
        if "hashing_algorithm" not in columns:
            self.db.execute("ALTER TABLE users ADD COLUMN hashing_algorithm TEXT NOT NULL "
                            "DEFAULT 'rabbit_password_hashing_sha256'")
        columns = [r[1] for r in self.db.execute("PRAGMA table_info(vhosts)")]
        if "description" not in columns:
            self.db.execute("ALTER TABLE vhosts ADD COLUMN description TEXT NOT NULL DEFAULT ''")
            self.db.execute("ALTER TABLE vhosts ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'")
            self.db.execute("ALTER TABLE vhosts ADD COLUMN default_queue_type TEXT")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def batch(self):
        """One transaction (one fsync) for every change made inside, each change a savepoint in it: what a
        definitions import makes (thousands of queues) is written at once.  What was changed is committed
        even when the block raises (the broker keeps those changes too)."""
        if self._batch:
            yield
            return
        self.db.execute("BEGIN")
        self._batch = True
        try:
            yield
        finally:
            self._batch = False
            self.db.execute("COMMIT")

    def _begin(self) -> None:
        self.db.execute("SAVEPOINT change" if self._batch else "BEGIN")

    def _commit(self) -> None:
        self.db.execute("RELEASE change" if self._batch else "COMMIT")

    def _rollback(self) -> None:
        if self._batch:
            self.db.execute("ROLLBACK TO change")
            self.db.execute("RELEASE change")
        else:
            self.db.execute("ROLLBACK")

    def _tx(self, *statements) -> None:
        db = self.db
        self._begin()
        try:
            for sql, args in statements:
                db.execute(sql, args)
        except BaseException:
            self._rollback()
            raise
        self._commit()

    # ------------------------------------------------------------- changes
    def vhost_added(self, name: str) -> None:
        self._tx(("INSERT OR IGNORE INTO vhosts (name) VALUES (?)", (name,)))

    def vhost_metadata_set(self, name: str, description: str, tags: list, default_queue_type: str | None) -> None:
        self._tx(("UPDATE vhosts SET description=?, tags=?, default_queue_type=? WHERE name=?",
                  (description, json.dumps(list(tags)), default_queue_type, name)))

    def vhost_deleted(self, name: str) -> None:
        self._tx(("DELETE FROM vhosts WHERE name=?", (name,)),
                 ("DELETE FROM exchanges WHERE vhost=?", (name,)),
                 ("DELETE FROM queues WHERE vhost=?", (name,)),
                 ("DELETE FROM bindings WHERE vhost=?", (name,)),
                 ("DELETE FROM permissions WHERE vhost=?", (name,)),
                 ("DELETE FROM topic_permissions WHERE vhost=?", (name,)),
                 ("DELETE FROM policies WHERE vhost=?", (name,)),
                 ("DELETE FROM operator_policies WHERE vhost=?", (name,)),
                 ("DELETE FROM parameters WHERE vhost=?", (name,)),
                 ("DELETE FROM limits WHERE kind='vhost' AND name=?", (name,)),
                 ("DELETE FROM mqtt_retained WHERE vhost=?", (name,)))

    def user_saved(self, name: str, password_hash: bytes, tags: list,
                   hashing_algorithm: str = "rabbit_password_hashing_sha256") -> None:
        # an upsert, not INSERT OR REPLACE: the user keeps its rowid (load order is creation order)
        self._tx(("INSERT INTO users (name, password_hash, tags, hashing_algorithm) VALUES (?, ?, ?, ?) "
                  "ON CONFLICT(name) DO UPDATE SET password_hash=excluded.password_hash, tags=excluded.tags, "
                  "hashing_algorithm=excluded.hashing_algorithm",
                  (name, bytes(password_hash), json.dumps(list(tags)), hashing_algorithm)))

    def user_deleted(self, name: str) -> None:
        self._tx(("DELETE FROM users WHERE name=?", (name,)), ("DELETE FROM permissions WHERE user=?", (name,)),
                 ("DELETE FROM topic_permissions WHERE user=?", (name,)),
                 ("DELETE FROM limits WHERE kind='user' AND name=?", (name,)))

    def permission_set(self, user: str, vhost: str, configure: str, write: str, read: str) -> None:
        self._tx(("INSERT OR REPLACE INTO permissions VALUES (?, ?, ?, ?, ?)", (user, vhost, configure, write, read)))

    def permission_cleared(self, user: str, vhost: str) -> None:
        self._tx(("DELETE FROM permissions WHERE user=? AND vhost=?", (user, vhost)))

    def topic_permission_set(self, user: str, vhost: str, exchange: str, write: str, read: str) -> None:
        self._tx(("INSERT OR REPLACE INTO topic_permissions VALUES (?, ?, ?, ?, ?)",
                  (user, vhost, exchange, write, read)))

    def topic_permission_cleared(self, user: str, vhost: str, exchange: str) -> None:
        self._tx(("DELETE FROM topic_permissions WHERE user=? AND vhost=? AND exchange=?", (user, vhost, exchange)))

    def exchange_declared(self, vhost: str, ex) -> None:
        self._tx(("INSERT OR REPLACE INTO exchanges VALUES (?, ?, ?, ?, ?, ?)",
                  (vhost, ex.name, ex.type, int(ex.auto_delete), int(ex.internal), encode_table(ex.arguments))))

    def exchange_deleted(self, vhost: str, name: str) -> None:
        self._tx(("DELETE FROM exchanges WHERE vhost=? AND name=?", (vhost, name)),
                 ("DELETE FROM bindings WHERE vhost=? AND (source=? OR (destination=? AND destination_kind='e'))",
                  (vhost, name, name)))

    def queue_declared(self, vhost: str, q) -> int:
        """Store a durable queue; return its id (the message store's queue id)."""
        db = self.db
        self._begin()
        try:
            db.execute("INSERT OR REPLACE INTO queues (vhost, name, auto_delete, arguments) VALUES (?, ?, ?, ?)",
                       (vhost, q.name, int(q.auto_delete), encode_table(q.arguments)))
            qid = db.execute("SELECT id FROM queues WHERE vhost=? AND name=?", (vhost, q.name)).fetchone()[0]
        except BaseException:
            self._rollback()
            raise
        self._commit()
        return qid

    def queue_deleted(self, vhost: str, name: str) -> None:
        self._tx(("DELETE FROM queues WHERE vhost=? AND name=?", (vhost, name)),
                 ("DELETE FROM bindings WHERE vhost=? AND destination=? AND destination_kind='q'", (vhost, name)))

    def binding_added(self, vhost: str, source: str, dest: str, kind: str, key: str, arguments) -> None:
        args = encode_table(arguments or {})
        self._tx(("DELETE FROM bindings WHERE vhost=? AND source=? AND destination=? AND destination_kind=? "
                  "AND routing_key=? AND arguments=?", (vhost, source, dest, kind, key, args)),
                 ("INSERT INTO bindings VALUES (?, ?, ?, ?, ?, ?)", (vhost, source, dest, kind, key, args)))

    def binding_removed(self, vhost: str, source: str, dest: str, kind: str, key: str, arguments) -> None:
        self._tx(("DELETE FROM bindings WHERE vhost=? AND source=? AND destination=? AND destination_kind=? "
                  "AND routing_key=? AND arguments=?", (vhost, source, dest, kind, key, encode_table(arguments or {}))))

    def policy_set(self, vhost: str, name: str, pattern: str, apply_to: str, priority: int, definition: dict) -> None:
        self._tx(("INSERT OR REPLACE INTO policies VALUES (?, ?, ?, ?, ?, ?)",
                  (vhost, name, pattern, apply_to, priority, json.dumps(definition))))

    def policy_cleared(self, vhost: str, name: str) -> None:
        self._tx(("DELETE FROM policies WHERE vhost=? AND name=?", (vhost, name)))

    def operator_policy_set(self, vhost: str, name: str, pattern: str, apply_to: str, priority: int,
                            definition: dict) -> None:
        self._tx(("INSERT OR REPLACE INTO operator_policies VALUES (?, ?, ?, ?, ?, ?)",
                  (vhost, name, pattern, apply_to, priority, json.dumps(definition))))

    def operator_policy_cleared(self, vhost: str, name: str) -> None:
        self._tx(("DELETE FROM operator_policies WHERE vhost=? AND name=?", (vhost, name)))

    def parameter_set(self, component: str, vhost: str, name: str, value) -> None:
        # an upsert: the parameter keeps its rowid (load order is creation order)
        self._tx(("INSERT INTO parameters VALUES (?, ?, ?, ?) ON CONFLICT(component, vhost, name) "
                  "DO UPDATE SET value=excluded.value", (component, vhost, name, json.dumps(value))))

    def parameter_cleared(self, component: str, vhost: str, name: str) -> None:
        self._tx(("DELETE FROM parameters WHERE component=? AND vhost=? AND name=?", (component, vhost, name)))

    def global_parameter_set(self, name: str, value) -> None:
        self._tx(("INSERT INTO global_parameters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                  (name, json.dumps(value))))

    def global_parameter_cleared(self, name: str) -> None:
        self._tx(("DELETE FROM global_parameters WHERE name=?", (name,)))

    def limits_set(self, kind: str, name: str, limits: dict) -> None:
        if limits:
            self._tx(("INSERT OR REPLACE INTO limits VALUES (?, ?, ?)", (kind, name, json.dumps(limits))))
        else:
            self._tx(("DELETE FROM limits WHERE kind=? AND name=?", (kind, name)))

    def retained_set(self, vhost: str, topic: str, packet: bytes) -> None:
        self._tx(("INSERT INTO mqtt_retained VALUES (?, ?, ?) ON CONFLICT(vhost, topic) DO UPDATE SET "
                  "packet=excluded.packet", (vhost, topic, packet)))

    def retained_cleared(self, vhost: str, topic: str) -> None:
        self._tx(("DELETE FROM mqtt_retained WHERE vhost=? AND topic=?", (vhost, topic)))

    def load_retained(self) -> list:
        return [(v, t, bytes(p)) for v, t, p in self.db.execute("SELECT * FROM mqtt_retained ORDER BY rowid")]

    # --------------------------------------------------------------- loading
    def load(self) -> dict:
        db = self.db
        return {
            "vhosts": [r[0] for r in db.execute("SELECT name FROM vhosts ORDER BY rowid")],
            "users": [(n, bytes(h), json.loads(t), a) for n, h, t, a in
                      db.execute("SELECT name, password_hash, tags, hashing_algorithm FROM users ORDER BY rowid")],
            "permissions": list(db.execute("SELECT user, vhost, configure, write, read FROM permissions "
                                           "ORDER BY rowid")),
            "topic_permissions": list(db.execute("SELECT user, vhost, exchange, write, read FROM topic_permissions "
                                                 "ORDER BY rowid")),
            "exchanges": [(v, n, t, bool(a), bool(i), _table(args)) for v, n, t, a, i, args in
                          db.execute("SELECT * FROM exchanges ORDER BY rowid")],
            "queues": [(qid, v, n, bool(a), _table(args)) for qid, v, n, a, args in
                       db.execute("SELECT id, vhost, name, auto_delete, arguments FROM queues ORDER BY id")],
            "bindings": [(v, s, d, k, rk, _table(args)) for v, s, d, k, rk, args in
                         db.execute("SELECT * FROM bindings ORDER BY rowid")],
            "policies": [(v, n, p, a, pr, json.loads(d)) for v, n, p, a, pr, d in
                         db.execute("SELECT * FROM policies ORDER BY rowid")],
            "limits": [(k, n, json.loads(d)) for k, n, d in db.execute("SELECT * FROM limits ORDER BY rowid")],
            "vhost_metadata": [(n, d, json.loads(t), q) for n, d, t, q in
                               db.execute("SELECT name, description, tags, default_queue_type FROM vhosts "
                                          "ORDER BY rowid")],
            "operator_policies": [(v, n, p, a, pr, json.loads(d)) for v, n, p, a, pr, d in
                                  db.execute("SELECT * FROM operator_policies ORDER BY rowid")],
            "parameters": [(c, v, n, json.loads(x)) for c, v, n, x in
                           db.execute("SELECT * FROM parameters ORDER BY rowid")],
            "global_parameters": [(n, json.loads(x)) for n, x in
                                  db.execute("SELECT * FROM global_parameters ORDER BY rowid")],
        }
