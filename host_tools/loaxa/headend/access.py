"""Who may do what on the commune's broker (DESIGN section 5, docs/control.md,
"Broker credentials and ACLs"): one place for the rules, which the embedded
broker applies itself and which `loaxa headend broker-files` writes out for
mosquitto.

- Every node is a user named by its node id, with the random password
  provisioning gave it. It publishes only `P/C/node/<own id>/status` and
  `.../event` and reads only `P/C/node/<own id>/cmd` and `.../rules`.
- Each commune has two head-end users, `headend.<commune>` (`serve`) and
  `headend-cli.<commune>` (the operator CLI), that read and write everything
  under `P/C/`. Two, because a session is its user's (below) and the CLI must
  not take over `serve`'s.
- Nobody else: no anonymous client, no user outside the inventory.
- A session belongs to its user: the broker names the session by the user name,
  whatever client id the CONNECT says (mosquitto's `use_username_as_clientid`),
  so a connect with a node's client id and other credentials, or none, cannot
  end that node's session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from loaxa_node.config import TOPIC_PREFIX
from loaxa_node.control.protocol import NODE_READS, NODE_WRITES, node_topic

HEADEND = "headend.{commune}"
CLI = "headend-cli.{commune}"
PBKDF2_ROUNDS = 101  # mosquitto_passwd's default for $7$ (PBKDF2-SHA512)


@dataclass
class Access:
    """The broker users of the communes served and what each may do."""
    prefix: str = TOPIC_PREFIX
    # user -> (password, role "node" or "headend", commune)
    users: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    @classmethod
    def from_inventory(cls, inv, prefix: str = TOPIC_PREFIX,
                       communes: Iterable[str] | None = None) -> Access:
        """The users of the given communes (every commune if None); the head-end
        users of each given commune are made now if they are not yet."""
        wanted = set(communes) if communes is not None else None
        for c in wanted or ():
            inv.headend_login(c, HEADEND.format(commune=c))
            inv.headend_login(c, CLI.format(commune=c))
        users = {u: (pw, role, c) for u, role, c, pw in inv.mqtt_users()
                 if wanted is None or c in wanted}
        return cls(prefix, users)

    def communes(self) -> list[str]:
        return sorted({c for _, _, c in self.users.values()})

    def check(self, user: str | None, password: str | None) -> bool:
        """True for a known user with its password; compared in constant time."""
        if not user or password is None:
            return False
        known = self.users.get(user)
        if known is None:
            hmac.compare_digest(password.encode(), password.encode())  # same work either way
            return False
        return hmac.compare_digest(known[0].encode(), password.encode())

    def allowed(self, user: str | None, action: str, topic: str) -> bool:
        """action: "publish" (a topic name), "subscribe" (a filter) or "receive"
        (a topic name). A node's topics are exact names, no wildcard; a
        head-end's are any topic or filter under its own commune's tree."""
        known = self.users.get(user or "")
        if known is None or not topic:
            return False
        _, role, commune = known
        base = f"{self.prefix}/{commune}/"
        if role == "headend":
            return topic.startswith(base) and len(topic) > len(base)
        if role != "node":
            return False
        ends = NODE_WRITES if action == "publish" else NODE_READS
        return any(topic == node_topic(self.prefix, commune, user, e) for e in ends)

    # -- mosquitto (and brokers that read its files) -------------------------------
    def password_file(self, salt: Callable[[int], bytes] = os.urandom) -> str:
        """mosquitto_passwd's format: `user:$7$101$<salt>$<PBKDF2-SHA512>` lines."""
        out = []
        for user in sorted(self.users):
            out.append(f"{user}:{passwd_hash(self.users[user][0], salt(12))}\n")
        return "".join(out)

    def acl_file(self) -> str:
        """mosquitto's ACL: `pattern` lines (%u: the user name) for the nodes of
        every commune served, and the head-end users' own trees."""
        p = self.prefix
        out = ["# written by `loaxa headend broker-files` from the inventory: do not edit\n",
               "# nodes: their own status and events out, their own commands and rules in\n"]
        for c in self.communes():
            out += [f"pattern write {node_topic(p, c, '%u', e)}\n" for e in NODE_WRITES]
            out += [f"pattern read {node_topic(p, c, '%u', e)}\n" for e in NODE_READS]
        for user in sorted(self.users):
            _, role, c = self.users[user]
            if role == "headend":
                out += [f"\nuser {user}\n", f"topic readwrite {p}/{c}/#\n"]
        return "".join(out)

    def write_files(self, folder: str | os.PathLike) -> tuple[Path, Path]:
        """passwd and acl in folder, 0600, each replaced atomically."""
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        paths = d / "passwd", d / "acl"
        for path, text in zip(paths, (self.password_file(), self.acl_file()), strict=True):
            tmp = path.with_name(path.name + ".tmp")
            fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        return paths


def passwd_hash(password: str, salt: bytes, rounds: int = PBKDF2_ROUNDS) -> str:
    h = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    return f"$7${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(h).decode()}"


def mosquitto_conf(folder: str | os.PathLike) -> str:
    """The lines of mosquitto.conf that use the files (docs/control.md)."""
    d = Path(folder).resolve()
    return ("allow_anonymous false\n"
            "per_listener_settings false\n"
            # the session is the user's: another user cannot take over a node's
            "use_username_as_clientid true\n"
            f"password_file {d / 'passwd'}\n"
            f"acl_file {d / 'acl'}\n")
