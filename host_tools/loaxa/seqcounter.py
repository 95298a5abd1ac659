"""Envelope sequences that survive anything (docs/envelope.md): one counter per
sender name in an SQLite file (the head-end's store, or the technicians'
inventory for `loaxa rules compile --sign`), strictly increasing across
restarts, clock steps and processes sharing the file."""

from __future__ import annotations

import sqlite3
import time

from loaxa_node import timeutil

SCHEMA = "CREATE TABLE IF NOT EXISTS seq (sender TEXT PRIMARY KEY, value INTEGER NOT NULL)"


def first() -> int:
    """Where a new counter starts: milliseconds since 2000, above every sequence
    the millisecond-clock head-end and the seconds-clock rules tool ever sent,
    so a node that kept those accepts the counter's first message."""
    return int((time.time() - timeutil.UNIX_OFFSET) * 1000)


def take(db: sqlite3.Connection, sender: str) -> int:
    """The next sequence of sender; call inside the caller's write transaction
    (BEGIN IMMEDIATE), which makes it strictly increasing across processes."""
    row = db.execute("SELECT value FROM seq WHERE sender=?", (sender,)).fetchone()
    value = row[0] + 1 if row else first()
    db.execute("INSERT INTO seq (sender, value) VALUES (?, ?) "
               "ON CONFLICT(sender) DO UPDATE SET value=excluded.value", (sender, value))
    return int(value)
