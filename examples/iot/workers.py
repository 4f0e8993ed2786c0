"""Workers: AMQP consumers (pika) sharing the ``iot.telemetry`` queue, storing readings in SQLite.

* Fair dispatch: ``basic_qos(prefetch_count=1)`` makes the broker hand a worker
  its next reading only once it acknowledged the last, so a busy (or slow)
  worker is not given a backlog while another one idles.
* At least once: a worker acks a reading after the row is committed.  If it dies
  before, the broker redelivers the reading to another worker; the reading's id
  is the table's primary key, so a redelivery is stored once (INSERT OR IGNORE).
* A worker logs in as ``iot-worker``, which may only read that queue: the queue
  and its binding (``devices.*.telemetry`` on ``amq.topic``, where MQTT
  publishes go) were made by the setup step, so a worker declares nothing.
"""
from __future__ import annotations

import json
import sqlite3
import time

import pika

from setup_broker import QUEUE

SCHEMA = """CREATE TABLE IF NOT EXISTS readings (
    id TEXT PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, temperature REAL, humidity REAL,
    at TEXT, worker TEXT NOT NULL, stored_at REAL NOT NULL)"""


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30)  # several workers write: wait for the lock rather than fail
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(SCHEMA)
    db.commit()
    return db


class Worker:
    def __init__(self, url: str, name: str, db_path: str, work_seconds: float = 0.0, say=print):
        self.name = name
        self.work_seconds = work_seconds  # the time "processing" a reading takes (a stand-in for real work)
        self.say = say
        self.stored = 0
        self.db_path = db_path
        self.db = None  # opened by run(), in the thread that uses it (sqlite3 connections belong to one thread)
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()
        self.ch.basic_qos(prefetch_count=1)  # fair dispatch
        self.ch.basic_consume(QUEUE, self.on_reading)  # manual acks (auto_ack=False)

    def on_reading(self, ch, method, properties, body):
        device = method.routing_key.split(".")[1]  # devices.<id>.telemetry
        r = json.loads(body)
        time.sleep(self.work_seconds)
        self.db.execute("INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (r["id"], device, r["seq"], r.get("temperature"), r.get("humidity"), r.get("at"),
                         self.name, time.time()))
        self.db.commit()
        ch.basic_ack(method.delivery_tag)  # only now: the reading is on disk
        self.stored += 1
        self.say(f"{self.name}: stored {device} #{r['seq']} ({r.get('temperature')} °C)")

    def run(self) -> None:
        """Consume until stop() (from another thread) or Ctrl-C."""
        self.db = open_db(self.db_path)
        try:
            self.ch.start_consuming()
        except KeyboardInterrupt:
            pass
        self.conn.close()
        self.db.close()

    def stop(self) -> None:
        """Callable from any thread (a pika connection belongs to the thread that runs it)."""
        self.conn.add_callback_threadsafe(self.ch.stop_consuming)


def summary(db_path: str) -> list[tuple[str, str, int]]:
    """(device, worker, readings stored) for every pair, from the database."""
    db = open_db(db_path)
    try:
        return db.execute("SELECT device, worker, COUNT(*) FROM readings GROUP BY device, worker "
                          "ORDER BY device, worker").fetchall()
    finally:
        db.close()
