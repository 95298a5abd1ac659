"""The node inventory: one SQLite file shared with the head-end.

What each node is (id, MAC, board, image, app, commune, zones, network), its
keys, and who did what to it when. Keys are encrypted at rest with AES-256-GCM
(the `cryptography` package) under a master key kept in a separate file, so
the database itself can be copied, backed up or exported without exposing
them; both files are created 0600. See docs/technician.md.
"""

from __future__ import annotations

import base64
import csv
import getpass
import io
import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import seqcounter
from .errors import LoaxaError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
  node_id TEXT PRIMARY KEY, mac TEXT, board TEXT, image_version TEXT, app TEXT,
  commune TEXT, zones TEXT, net TEXT, broker TEXT, node_key TEXT,
  created_by TEXT, created_at INTEGER, updated_by TEXT, updated_at INTEGER);
CREATE TABLE IF NOT EXISTS communes (
  commune TEXT PRIMARY KEY, commune_key TEXT, created_by TEXT, created_at INTEGER);
CREATE TABLE IF NOT EXISTS mqtt_users (
  user TEXT PRIMARY KEY, role TEXT, commune TEXT, password TEXT, updated_at INTEGER);
CREATE TABLE IF NOT EXISTS flashed (
  mac TEXT PRIMARY KEY, board TEXT, image_version TEXT, who TEXT, at INTEGER);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY, node_id TEXT, mac TEXT, action TEXT, detail TEXT,
  who TEXT, at INTEGER);
"""
PUBLIC = ("node_id", "mac", "board", "image_version", "app", "commune", "zones", "net",
          "broker", "updated_by", "updated_at")
FIELDS = ("mac", "board", "image_version", "app", "commune", "zones", "net", "broker")


def default_path() -> Path:
    env = os.environ.get("LOAXA_INVENTORY")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "loaxa" / "inventory.sqlite"


def norm_mac(mac: str) -> str:
    """'24:0A:C4:E2:95:26' (esptool) and '240ac4e29526' (the node's uid) alike."""
    return mac.replace(":", "").replace("-", "").lower()


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _private_file(path: Path) -> None:
    """Create path empty with mode 0600 if missing; tighten it if present."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    os.chmod(path, 0o600)


class Inventory:
    def __init__(self, path: str | os.PathLike | None = None,
                 key_path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_path()
        env_key = os.environ.get("LOAXA_INVENTORY_KEY")
        self.key_path = Path(key_path or env_key or self.path.with_suffix(".key"))
        try:
            _private_file(self.path)
            self.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self.db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise LoaxaError(f"cannot open the inventory {self.path}: {e}",
                             "give another place with --inventory or $LOAXA_INVENTORY") from None
        self._aead: AESGCM | None = None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Inventory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- secrets -------------------------------------------------------------
    def _cipher(self) -> AESGCM:
        if self._aead is None:
            _private_file(self.key_path)
            raw = self.key_path.read_bytes().strip()
            if not raw:
                raw = base64.b64encode(AESGCM.generate_key(256))
                self.key_path.write_bytes(raw + b"\n")
            try:
                self._aead = AESGCM(base64.b64decode(raw))
            except ValueError:
                raise LoaxaError(f"inventory key file {self.key_path} is damaged",
                                 "restore it from your backup; without it stored keys "
                                 "cannot be read") from None
        return self._aead

    def _seal(self, secret: str, label: str) -> str:
        nonce = os.urandom(12)
        ct = self._cipher().encrypt(nonce, secret.encode(), label.encode())
        return "aesgcm:" + base64.b64encode(nonce + ct).decode()

    def _open(self, sealed: str, label: str) -> str:
        blob = base64.b64decode(sealed.split(":", 1)[1])
        try:
            return self._cipher().decrypt(blob[:12], blob[12:], label.encode()).decode()
        except Exception:
            raise LoaxaError(f"cannot decrypt the key of {label}",
                             f"is {self.key_path} the key file this inventory was made "
                             "with?") from None

    def next_seq(self, sender: str) -> int:
        """The next envelope sequence of sender (`loaxa rules compile --sign`),
        strictly increasing across runs and clock steps (seqcounter.py)."""
        if self.db.in_transaction:
            self.db.commit()
        self.db.execute(seqcounter.SCHEMA)
        self.db.execute("BEGIN IMMEDIATE")
        try:
            value = seqcounter.take(self.db, sender)
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()
        return value

    def new_node_key(self, node_id: str) -> str:
        """A fresh node key, stored before it is sent so it is never lost."""
        key = secrets.token_hex(32)
        self.record(node_id, "keys", node_key=self._seal(key, "node:" + node_id))
        return key

    def node_key(self, node_id: str) -> str:
        row = self.db.execute("SELECT node_key FROM nodes WHERE node_id=?",
                              (node_id,)).fetchone()
        if not row or not row[0]:
            raise LoaxaError(f"no key stored for node {node_id}")
        return self._open(row[0], "node:" + node_id)

    # -- broker credentials ----------------------------------------------------
    def new_mqtt_password(self, user: str, role: str, commune: str) -> str:
        """A fresh broker password for user (a node id, or a head-end's user),
        stored sealed before it is sent; any older one stops working at the
        broker's next look at the inventory (docs/technician.md)."""
        pw = secrets.token_urlsafe(24)  # 32 characters, 192 bits
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO mqtt_users VALUES (?,?,?,?,?)",
                            (user, role, commune, self._seal(pw, "mqtt:" + user),
                             int(time.time())))
        return pw

    def mqtt_password(self, user: str) -> str | None:
        row = self.db.execute("SELECT password FROM mqtt_users WHERE user=?",
                              (user,)).fetchone()
        return self._open(row[0], "mqtt:" + user) if row else None

    def mqtt_users(self, commune: str | None = None) -> list[tuple[str, str, str, str]]:
        """(user, role, commune, password) of every broker user, or of one commune's."""
        rows = self.db.execute("SELECT user, role, commune, password FROM mqtt_users "
                               "ORDER BY user").fetchall()
        return [(u, r, c, self._open(p, "mqtt:" + u)) for u, r, c, p in rows
                if commune is None or c == commune]

    def headend_login(self, commune: str, user: str) -> tuple[str, str]:
        """(user, password) of one of the commune's head-end users, made on first use."""
        pw = self.mqtt_password(user)
        if pw is None:
            pw = self.new_mqtt_password(user, "headend", commune)
        return user, pw

    # -- records -------------------------------------------------------------
    def flashed(self, mac: str, board: str, image_version: str) -> None:
        """A board flashed before it has a node id; provisioning picks this up by MAC."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO flashed VALUES (?,?,?,?,?)",
                            (norm_mac(mac), board, image_version, who(), int(time.time())))

    def record(self, node_id: str, action: str, detail: str = "", **fields: object) -> None:
        """Upsert the node's fields and log the action with who and when."""
        now, by = int(time.time()), who()
        if fields.get("mac"):
            fields["mac"] = norm_mac(str(fields["mac"]))
            row = self.db.execute("SELECT board, image_version FROM flashed WHERE mac=?",
                                  (fields["mac"],)).fetchone()
            if row:  # what `loaxa flash` learnt about this board
                fields.setdefault("board", row[0])
                if fields.get("image_version") is None:
                    fields["image_version"] = row[1]
        vals = {k: (json.dumps(v) if isinstance(v, list) else v) for k, v in fields.items()
                if v is not None}
        bad = set(vals) - set(FIELDS) - {"node_key"}
        if bad:
            raise ValueError(f"unknown inventory fields {sorted(bad)}")
        with self.db:
            self.db.execute(
                "INSERT INTO nodes (node_id, created_by, created_at, updated_by, updated_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT(node_id) DO UPDATE SET updated_by=excluded."
                "updated_by, updated_at=excluded.updated_at", (node_id, by, now, by, now))
            for k, v in vals.items():
                self.db.execute(f"UPDATE nodes SET {k}=? WHERE node_id=?", (v, node_id))
            self.db.execute("INSERT INTO events (node_id, mac, action, detail, who, at) "
                            "VALUES (?,?,?,?,?,?)",
                            (node_id, fields.get("mac"), action, detail, by, now))

    def nodes(self) -> Iterator[dict]:
        cur = self.db.execute(f"SELECT {', '.join(PUBLIC)} FROM nodes ORDER BY node_id")
        for row in cur:
            d = dict(zip(PUBLIC, row, strict=True))
            d["zones"] = json.loads(d["zones"]) if d["zones"] else []
            yield d

    def events(self, node_id: str) -> list[dict]:
        cur = self.db.execute("SELECT action, detail, who, at FROM events WHERE node_id=? "
                              "ORDER BY id", (node_id,))
        return [dict(zip(("action", "detail", "who", "at"), r, strict=True)) for r in cur]

    def export(self, fmt: str = "json", with_keys: bool = False) -> str:
        rows = list(self.nodes())
        if with_keys:
            for r in rows:
                r["node_key"] = self.node_key(r["node_id"])
        if fmt == "json":
            return json.dumps(rows, indent=2, ensure_ascii=False)
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else list(PUBLIC))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "zones": " ".join(r["zones"])})
        return out.getvalue()
