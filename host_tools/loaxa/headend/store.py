"""The head-end's state in one SQLite file (docs/headend.md, "Store").

Numbered migrations (PRAGMA user_version) bring any older file up to date at
open. WAL with synchronous=FULL and one transaction per call, committed before
the call returns: what the API or CLI acknowledged survives a SIGKILL or a
power cut. Safe to share between threads (one connection behind a lock) and
between processes (SQLite's own locking: the CLI and `serve` open it together).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .. import seqcounter
from ..errors import LoaxaError
from .checks import ZONES, check_event, check_status
from .roles import ROLES

SESSION_S = 12 * 3600

# Append only: a released migration is never edited, the next one fixes it.
MIGRATIONS = (
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE nodes (
      node_id TEXT PRIMARY KEY, commune TEXT, zones TEXT NOT NULL DEFAULT '[]',
      state TEXT NOT NULL DEFAULT 'unknown', last_seen REAL, status TEXT);
    CREATE TABLE users (
      name TEXT PRIMARY KEY, pw_hash TEXT NOT NULL, role TEXT NOT NULL,
      created_by TEXT NOT NULL, created_at REAL NOT NULL);
    CREATE TABLE sessions (
      token TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
      expires REAL NOT NULL);
    CREATE TABLE audit (
      id INTEGER PRIMARY KEY, at REAL NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
      detail TEXT NOT NULL, result TEXT NOT NULL);
    CREATE TABLE broadcasts (
      id INTEGER PRIMARY KEY, at REAL NOT NULL, who TEXT NOT NULL, kind TEXT NOT NULL,
      target TEXT NOT NULL, body TEXT NOT NULL, seq INTEGER, state TEXT NOT NULL);
    CREATE TABLE events (
      id INTEGER PRIMARY KEY, node TEXT NOT NULL, boot INTEGER, n INTEGER, type TEXT,
      rx REAL NOT NULL, doc TEXT NOT NULL, UNIQUE (node, boot, n));
    CREATE INDEX events_type ON events (type, node);
    CREATE TABLE status (
      id INTEGER PRIMARY KEY, node TEXT NOT NULL, rx REAL NOT NULL, state TEXT,
      doc TEXT NOT NULL);
    CREATE INDEX status_node ON status (node, rx);
    """,
    """
    CREATE TABLE scheduled (
      id INTEGER PRIMARY KEY, at REAL NOT NULL, who TEXT NOT NULL, due REAL NOT NULL,
      body TEXT NOT NULL, state TEXT NOT NULL, broadcast INTEGER, note TEXT);
    CREATE INDEX scheduled_due ON scheduled (state, due);
    """,
    # Only the inventory's nodes are known (a status no longer adds one); an event
    # is named by its node, boot, number and content, so a forged event that takes
    # a node's next numbers first cannot make the node's own be dropped as a copy.
    """
    ALTER TABLE nodes ADD COLUMN known INTEGER NOT NULL DEFAULT 0;
    UPDATE nodes SET known = 1 WHERE commune IS NOT NULL;
    CREATE TABLE events_v3 (
      id INTEGER PRIMARY KEY, node TEXT NOT NULL, boot INTEGER, n INTEGER, type TEXT,
      rx REAL NOT NULL, doc TEXT NOT NULL, digest TEXT NOT NULL,
      UNIQUE (node, boot, n, digest));
    INSERT INTO events_v3 SELECT id, node, boot, n, type, rx, doc, 'old-' || id FROM events;
    DROP TABLE events;
    ALTER TABLE events_v3 RENAME TO events;
    CREATE INDEX events_type ON events (type, node);
    """,
    # envelope sequences: one counter per sender name (seqcounter.py)
    seqcounter.SCHEMA,
    # alerts (alerts.py); IF NOT EXISTS: a head-end before this migration made it itself
    """
    CREATE TABLE IF NOT EXISTS alerts (
      id INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, node TEXT,
      key TEXT NOT NULL, detail TEXT NOT NULL, cleared REAL, acked_by TEXT, acked_at REAL,
      sent TEXT NOT NULL DEFAULT '{}')
    """,
)


def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's current recommended cost


class Store:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._known: set[str] | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            self.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                      isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (OSError, sqlite3.Error) as e:
            raise LoaxaError(f"cannot open the head-end store {self.path}: {e}",
                             "give another folder with --data") from None

    def _migrate(self) -> None:
        with self.tx() as db:
            have = db.execute("PRAGMA user_version").fetchone()[0]
            if have > len(MIGRATIONS):
                raise LoaxaError(f"{self.path} was written by a newer head-end "
                                 f"(schema {have}, this one knows {len(MIGRATIONS)})",
                                 "upgrade loaxa")
            for i in range(have, len(MIGRATIONS)):
                for stmt in MIGRATIONS[i].split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                db.execute(f"PRAGMA user_version={i + 1}")

    def _read(self, q: str, args: tuple | list = ()) -> list[tuple]:
        """Reads take the lock too: another thread's open transaction is not theirs."""
        with self._lock:
            return self.db.execute(q, args).fetchall()

    @property
    def version(self) -> int:
        return int(self._read("PRAGMA user_version")[0][0])

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction, committed (and on disk) when the block ends."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # -- settings ---------------------------------------------------------------
    def set_setting(self, key: str, value: Any) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES (?,?)", (key, json.dumps(value)))

    def setting(self, key: str, default: Any = None) -> Any:
        rows = self._read("SELECT value FROM settings WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def stream_secret(self) -> bytes:
        """The key the stream server's tokens are made with, made on first use."""
        with self.tx() as db:
            row = db.execute("SELECT value FROM settings WHERE key='stream_secret'").fetchone()
            if row:
                return bytes.fromhex(json.loads(row[0]))
            key = secrets.token_bytes(32)
            db.execute("INSERT INTO settings VALUES ('stream_secret', ?)", (json.dumps(key.hex()),))
            return key

    def next_seq(self, sender: str) -> int:
        """The next envelope sequence of sender, on disk before it is used."""
        with self.tx() as db:
            return seqcounter.take(db, sender)

    # -- users and sessions -------------------------------------------------------
    def add_user(self, name: str, password: str, role: str, by: str, keep: str = "") -> None:
        """Add a user or set their password and role; their sessions end, except
        `keep` (the session of an admin who changed their own password)."""
        if role not in ROLES:
            raise LoaxaError(f"unknown role {role!r}", "one of " + ", ".join(ROLES))
        if not name or not name.isprintable() or len(name) > 64:
            raise LoaxaError(f"bad user name {name!r}")
        if len(password) < 8:
            raise LoaxaError("the password is shorter than 8 characters")
        pw = _hasher().hash(password)
        with self.tx() as db:
            had = db.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone()
            db.execute("INSERT INTO users VALUES (?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
                       "pw_hash=excluded.pw_hash, role=excluded.role",
                       (name, pw, role, by, time.time()))
            ended = db.execute("DELETE FROM sessions WHERE user=? AND token<>?",
                               (name, keep)).rowcount if had \
                else 0  # a new password or role: whoever held a session logs in again
            self._audit(db, by, "user.set", {"user": name, "role": role,
                                             "sessions_ended": ended}, "ok")

    def remove_user(self, name: str, by: str) -> None:
        """The user and their sessions go; the audit log keeps what they did."""
        with self.tx() as db:
            if db.execute("DELETE FROM users WHERE name=?", (name,)).rowcount != 1:
                raise LoaxaError(f"no user {name!r}")
            db.execute("DELETE FROM sessions WHERE user=?", (name,))
            self._audit(db, by, "user.remove", {"user": name}, "ok")

    def users(self) -> list[dict]:
        return [{"name": r[0], "role": r[1], "created_by": r[2], "created_at": r[3]}
                for r in self._read("SELECT name, role, created_by, created_at FROM users "
                                    "ORDER BY name")]

    def role_of(self, name: str) -> str | None:
        rows = self._read("SELECT role FROM users WHERE name=?", (name,))
        return rows[0][0] if rows else None

    def login(self, name: str, password: str, addr: str = "") -> tuple[str, str] | None:
        """(session token, role), or None for a wrong name or password (audited)."""
        rows = self._read("SELECT pw_hash, role FROM users WHERE name=?", (name,))
        row = rows[0] if rows else None
        ok = False
        if row is None:
            _hasher().hash(password)  # the same cost as a wrong password: no user probing
        else:
            try:
                ok = _hasher().verify(row[0], password)
            except (VerificationError, InvalidHashError):
                pass
        detail = {"addr": addr} if addr else {}
        if not ok or row is None:
            self.audit(name[:64], "login", detail, "refused: wrong name or password")
            return None
        token = secrets.token_urlsafe(32)
        with self.tx() as db:
            db.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),))
            db.execute("INSERT INTO sessions VALUES (?,?,?)",
                       (token, name, time.time() + SESSION_S))
            self._audit(db, name, "login", detail, "ok")
        return token, row[1]

    # -- lockouts (headend/guard.py) ---------------------------------------------
    def lockout(self, name: str) -> float | None:
        """Until when a user name is locked out, if it is."""
        v = self.setting("lockout:" + name)
        return float(v["until"]) if isinstance(v, dict) else None

    def lock_out(self, name: str, until: float, addr: str, failures: int) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES (?,?)",
                       ("lockout:" + name, json.dumps({"until": until, "addr": addr})))
            self._audit(db, name[:64], "login.lockout",
                        {"failures": failures, "until": until, "addr": addr}, "locked")

    def lockouts(self) -> list[dict]:
        now = time.time()
        out = []
        for k, v in self._read("SELECT key, value FROM settings WHERE key LIKE 'lockout:%'"):
            d = _json(v)
            if isinstance(d, dict) and isinstance(d.get("until"), int | float) and \
                    d["until"] > now:
                out.append({"user": k[8:], "until": d["until"], "addr": d.get("addr")})
        return out

    def unlock(self, name: str, by: str) -> bool:
        """Lift a lockout (audited); False if there was none."""
        with self.tx() as db:
            gone = db.execute("DELETE FROM settings WHERE key=?", ("lockout:" + name,)).rowcount
            if gone:
                self._audit(db, by, "login.unlock", {"user": name}, "ok")
        return bool(gone)

    def session(self, token: str) -> tuple[str, str] | None:
        """(user, role) of a live session."""
        rows = self._read(
            "SELECT s.user, u.role FROM sessions s JOIN users u ON u.name = s.user "
            "WHERE s.token=? AND s.expires >= ?", (token, time.time()))
        return (rows[0][0], rows[0][1]) if rows else None

    def logout(self, token: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM sessions WHERE token=?", (token,))

    # -- audit ------------------------------------------------------------------
    @staticmethod
    def _audit(db: sqlite3.Connection, who: str, action: str, detail: dict,
               result: str) -> None:
        db.execute("INSERT INTO audit (at, who, action, detail, result) VALUES (?,?,?,?,?)",
                   (time.time(), who, action, json.dumps(detail, ensure_ascii=False), result))

    def audit(self, who: str, action: str, detail: dict, result: str) -> None:
        with self.tx() as db:
            self._audit(db, who, action, detail, result)

    def audit_log(self, limit: int = 100) -> list[dict]:
        cur = self._read("SELECT at, who, action, detail, result FROM audit "
                         "ORDER BY id DESC LIMIT ?", (limit,))
        return [{"at": r[0], "who": r[1], "action": r[2], "detail": json.loads(r[3]),
                 "result": r[4]} for r in cur]

    # -- nodes ------------------------------------------------------------------
    def sync_nodes(self, nodes: list[dict]) -> None:
        """The technicians' inventory is the source of node identities: these
        are the nodes known, any other is not (no longer) shown or believed."""
        with self.tx() as db:
            db.execute("UPDATE nodes SET known = 0")
            for n in nodes:
                db.execute("INSERT INTO nodes (node_id, commune, zones, known) VALUES (?,?,?,1) "
                           "ON CONFLICT(node_id) DO UPDATE SET commune=excluded.commune, "
                           "zones=excluded.zones, known=1",
                           (n["node_id"], n.get("commune"), json.dumps(n.get("zones") or [])))
        self._known = None

    def known(self, node: str) -> bool:
        """A node of the inventory (kept in memory: asked for every message)."""
        if self._known is None:
            self._known = {r[0] for r in self._read("SELECT node_id FROM nodes WHERE known=1")}
        return node in self._known

    def nodes(self) -> list[dict]:
        """The known nodes, each with its last status as checked now: a row an older
        head-end stored unchecked shows no status rather than failing a page."""
        cur = self._read("SELECT node_id, commune, zones, state, last_seen, status "
                         "FROM nodes WHERE known=1 ORDER BY node_id")
        out = []
        for r in cur:
            zones = _json(r[2])
            status = check_status(r[0], _json(r[5]))[0] if r[5] else None
            state = r[3] if r[3] in ("online", "offline") else "unknown"
            out.append({"node_id": r[0], "commune": r[1],
                        "zones": zones if ZONES(zones) is None else [], "state": state,
                        "last_seen": r[4] if isinstance(r[4], int | float) else None,
                        "status": status})
        return out

    def zones(self) -> set[str]:
        return {z for n in self.nodes() for z in n["zones"]}

    # -- what nodes report --------------------------------------------------------
    def ingest_status(self, node: str, doc: dict, rx: float) -> None:
        """A status checked by checks.check_status, of a known node."""
        state = str(doc.get("state", "unknown"))
        text = json.dumps(doc, ensure_ascii=False)
        with self.tx() as db:
            db.execute("INSERT INTO status (node, rx, state, doc) VALUES (?,?,?,?)",
                       (node, rx, state, text))
            db.execute("UPDATE nodes SET state=?, last_seen=?, status=? WHERE node_id=?",
                       (state, rx, text, node))

    def ingest_event(self, node: str, doc: dict, rx: float) -> str:
        """An event checked by checks.check_event, of a known node: "new", "copy"
        (events are sent at least once: the same boot, n and content) or "clash"
        (kept, but another event of other content holds its boot and n)."""
        text = json.dumps(doc, ensure_ascii=False, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        with self.tx() as db:
            had = [r[0] for r in db.execute("SELECT digest FROM events WHERE node=? AND boot=? "
                                            "AND n=?", (node, doc["boot"], doc["n"]))]
            if digest in had:
                return "copy"
            db.execute("INSERT INTO events (node, boot, n, type, rx, doc, digest) "
                       "VALUES (?,?,?,?,?,?,?)",
                       (node, doc["boot"], doc["n"], doc["type"], rx, text, digest))
            db.execute("UPDATE nodes SET last_seen=? WHERE node_id=?", (rx, node))
        return "clash" if had else "new"

    def status_history(self, node: str, t0: float, t1: float) -> list[tuple[float, str]]:
        """(rx, state) of the node's statuses in [t0, t1), led by the last one before
        t0 (the state the period starts in)."""
        before = self._read("SELECT rx, state FROM status WHERE node=? AND rx < ? "
                            "ORDER BY rx DESC LIMIT 1", (node, t0))
        return before + self._read("SELECT rx, state FROM status WHERE node=? AND rx >= ? "
                                   "AND rx < ? ORDER BY rx", (node, t0, t1))

    def events(self, type_: str | None = None, node: str | None = None,
               since: float = 0) -> list[dict]:
        q = "SELECT node, doc, rx FROM events WHERE rx >= ?"
        args: list[Any] = [since]
        if type_:
            q += " AND type=?"
            args.append(type_)
        if node:
            q += " AND node=?"
            args.append(node)
        out = []
        for nid, d, rx in self._read(q + " ORDER BY id", args):
            doc = check_event(nid, _json(d))[0]  # rows stored before events were checked
            if doc is not None and isinstance(rx, int | float):
                out.append({**doc, "_rx": rx})
        return out

    # -- alerts (alerts.py) ---------------------------------------------------------
    def raise_alert(self, kind: str, node: str | None, key: str, detail: dict) -> int | None:
        """A new alert of this cause (audited), or None while one is not yet over
        or not yet acknowledged: checked and written in one transaction."""
        with self.tx() as db:
            if db.execute("SELECT 1 FROM alerts WHERE key=? AND (cleared IS NULL OR "
                          "acked_by IS NULL)", (key,)).fetchone():
                return None
            cur = db.execute("INSERT INTO alerts (at, kind, node, key, detail) "
                             "VALUES (?,?,?,?,?)", (time.time(), kind, node, key,
                                                    json.dumps(detail, ensure_ascii=False)))
            aid = int(cur.lastrowid or 0)
            self._audit(db, "headend", "alert", {"id": aid, "kind": kind, "node": node,
                                                 **detail}, "raised")
            return aid

    def clear_alert(self, key: str) -> None:
        """Its cause is over (it stays shown until acknowledged)."""
        with self.tx() as db:
            db.execute("UPDATE alerts SET cleared=? WHERE key=? AND cleared IS NULL",
                       (time.time(), key))

    def alerts(self, limit: int = 100, open_only: bool = False) -> list[dict]:
        """Newest first; times as Unix times."""
        q = ("SELECT id, at, kind, node, detail, cleared, acked_by, acked_at, sent "
             "FROM alerts")
        if open_only:
            q += " WHERE acked_by IS NULL"
        return [{"id": r[0], "at": r[1], "kind": r[2], "node": r[3],
                 "detail": json.loads(r[4]), "cleared": r[5], "acked_by": r[6],
                 "acked_at": r[7], "sent": json.loads(r[8])}
                for r in self._read(q + " ORDER BY id DESC LIMIT ?", (limit,))]

    def ack_alert(self, aid: int, who: str) -> bool:
        """Acknowledged (audited); False if there is no such alert waiting for it."""
        with self.tx() as db:
            n = db.execute("UPDATE alerts SET acked_by=?, acked_at=? WHERE id=? AND "
                           "acked_by IS NULL", (who, time.time(), aid)).rowcount
            if n:
                self._audit(db, who, "alert.ack", {"alert": aid}, "ok")
        return bool(n)

    def alert_sent(self, aid: int, sent: dict) -> None:
        """How the alert went out (e-mail, webhook)."""
        with self.tx() as db:
            db.execute("UPDATE alerts SET sent=? WHERE id=?", (json.dumps(sent), aid))

    # -- broadcasts -------------------------------------------------------------
    def begin_broadcast(self, who: str, kind: str, target: str, body: dict) -> int:
        """Recorded before it is published: after a crash a row still `sending`
        names a command that may or may not have reached the broker."""
        with self.tx() as db:
            cur = db.execute("INSERT INTO broadcasts (at, who, kind, target, body, state) "
                             "VALUES (?,?,?,?,?, 'sending')",
                             (time.time(), who, kind, target,
                              json.dumps(body, ensure_ascii=False)))
            return int(cur.lastrowid or 0)

    def end_broadcast(self, bid: int, seq: int | None, state: str, who: str, action: str,
                      detail: dict, settings: dict | None = None) -> None:
        """settings are written in the same transaction: the rules in force change
        exactly when their push is marked sent."""
        with self.tx() as db:
            db.execute("UPDATE broadcasts SET seq=?, state=? WHERE id=?", (seq, state, bid))
            for k, v in (settings or {}).items():
                db.execute("INSERT OR REPLACE INTO settings VALUES (?,?)", (k, json.dumps(v)))
            self._audit(db, who, action, {**detail, "broadcast": bid}, state)

    def interrupt_sending(self, who: str) -> list[dict]:
        """At a start: the commands a crash left `sending` (recorded, maybe published,
        never acknowledged) become `interrupted`, each said in the audit log."""
        with self.tx() as db:
            rows = db.execute("SELECT id, kind, body FROM broadcasts WHERE state='sending'"
                              ).fetchall()
            for bid, kind, body in rows:
                db.execute("UPDATE broadcasts SET state='interrupted' WHERE id=?", (bid,))
                self._audit(db, who, "interrupted", {"broadcast": bid, "kind": kind,
                                                     **json.loads(body)}, "interrupted")
        return [{"id": r[0], "kind": r[1]} for r in rows]

    # -- scheduled broadcasts ----------------------------------------------------
    def schedule(self, who: str, due: float, body: dict) -> int:
        with self.tx() as db:
            cur = db.execute("INSERT INTO scheduled (at, who, due, body, state) "
                             "VALUES (?,?,?,?, 'pending')",
                             (time.time(), who, due, json.dumps(body, ensure_ascii=False)))
            sid = int(cur.lastrowid or 0)
            self._audit(db, who, "broadcast.schedule", {**body, "due": due, "scheduled": sid},
                        "scheduled")
            return sid

    def scheduled(self, sid: int | None = None, limit: int = 100) -> list[dict]:
        q = "SELECT id, at, who, due, body, state, broadcast, note FROM scheduled"
        rows = self._read(q + " WHERE id=?", (sid,)) if sid is not None else \
            self._read(q + " ORDER BY due DESC LIMIT ?", (limit,))
        return [{"id": r[0], "at": r[1], "who": r[2], "due": r[3], **json.loads(r[4]),
                 "state": r[5], "broadcast": r[6], "note": r[7]} for r in rows]

    def due(self, now: float) -> list[dict]:
        """Pending scheduled broadcasts whose time has come, oldest first."""
        ids = self._read("SELECT id FROM scheduled WHERE state='pending' AND due <= ? "
                         "ORDER BY due", (now,))
        return [self.scheduled(i[0])[0] for i in ids]

    def settle(self, sid: int, frm: str, to: str, who: str, action: str | None,
               broadcast: int | None = None, note: str | None = None) -> bool:
        """Move one scheduled broadcast from state frm to to (audited as action, if
        one); False if it was not in frm (fired, cancelled or claimed meanwhile:
        two callers cannot both win)."""
        with self.tx() as db:
            cur = db.execute("UPDATE scheduled SET state=?, broadcast=?, note=? "
                             "WHERE id=? AND state=?", (to, broadcast, note, sid, frm))
            if cur.rowcount != 1:
                return False
            if action:
                self._audit(db, who, action, {"scheduled": sid, "broadcast": broadcast,
                                              "note": note}, to)
            return True

    def broadcasts(self, limit: int = 100) -> list[dict]:
        cur = self._read("SELECT id, at, who, kind, target, body, seq, state FROM "
                         "broadcasts ORDER BY id DESC LIMIT ?", (limit,))
        return [{"id": r[0], "at": r[1], "who": r[2], "kind": r[3], "target": r[4],
                 "body": json.loads(r[5]), "seq": r[6], "state": r[7]} for r in cur]


def _json(text: Any) -> Any:
    """A stored JSON text, or None if it is not one."""
    try:
        return json.loads(text) if isinstance(text, str | bytes) else None
    except (ValueError, RecursionError):
        return None
