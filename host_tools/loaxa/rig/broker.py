"""Real MQTT brokers for the rig, each in its own process on a free loopback port,
killable and restartable on the same port: mosquitto (its state saved after every
change, so a SIGKILL loses nothing it has taken in) and the head-end's embedded
amqtt (what `loaxa headend serve` runs). Both let in only the users of an
inventory, with the commune's ACLs (loaxa.headend.access), as a commune's
broker does; `anonymous=True` only for the benches' baseline."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from loaxa_node.config import TOPIC_PREFIX

from ..errors import LoaxaError
from . import process
from .process import free_port


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class _BrokerProcess:
    what = "broker"
    start_timeout = 5.0

    def __init__(self, port: int | None = None, inventory: str | os.PathLike | None = None,
                 communes: tuple[str, ...] = (), prefix: str = TOPIC_PREFIX,
                 anonymous: bool = False):
        if inventory is None and not anonymous:
            raise ValueError("a broker lets in the users of an inventory (or anonymous=True)")
        self.inventory = Path(inventory) if inventory else None
        self.communes = list(communes)
        self.prefix = prefix
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> _BrokerProcess:
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        process.wait_listening(self.proc, self.port, self.what, self.start_timeout)
        return self

    def login(self, user: str) -> tuple[str, str]:
        """(user, password) of a head-end user of the inventory (access.HEADEND...)."""
        from ..headend.access import HEADEND
        from ..inventory import Inventory

        assert self.inventory is not None
        with Inventory(self.inventory) as inv:
            return inv.headend_login(self.communes[0], user or HEADEND.format(
                commune=self.communes[0]))

    def refresh(self) -> None:
        """Take in the inventory's users as they are now (new nodes, rotated passwords)."""

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word, as on a crash."""
        process.kill(self.proc)

    def stop(self) -> None:
        process.stop(self.proc, 5)
        self.proc = None

    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Broker(_BrokerProcess):
    what = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "",
                 inventory: str | os.PathLike | None = None, communes: tuple[str, ...] = (),
                 prefix: str = TOPIC_PREFIX, anonymous: bool = False):
        from ..headend.access import mosquitto_conf

        exe = mosquitto_path()
        if exe is None:
            raise LoaxaError("mosquitto is not installed",
                             "run `make sysdeps` or `apt-get install mosquitto`")
        super().__init__(port, inventory, communes, prefix, anonymous)
        self.exe = exe
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        self.access = self.dir / "access"
        self._write_access()
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # what `loaxa headend broker-files` writes and docs/control.md shows
            + ("allow_anonymous true\n" if anonymous else mosquitto_conf(self.access)) +
            # saved after every change (subscription, retained or queued message),
            # not on a timer: a test that kills it a second after the head-end
            # subscribed found the session gone, and the node's events with it
            f"persistence true\npersistence_location {self.dir}/\nautosave_interval 1\n"
            "autosave_on_changes true\n"
            f"log_dest file {self.dir}/mosquitto.log\nmax_queued_messages 10000\n"
            # as root it would drop to its own user, who cannot reach a private tmp dir
            + ("user root\n" if os.geteuid() == 0 else "")
            + extra_conf)

    def argv(self) -> list[str]:
        return [self.exe, "-c", str(self.conf)]

    def start(self) -> Broker:
        self._write_access()  # the inventory's users as they are now
        super().start()
        return self

    def _write_access(self) -> None:
        from ..headend.access import Access
        from ..inventory import Inventory

        if self.inventory is not None:
            with Inventory(self.inventory) as inv:
                Access.from_inventory(inv, self.prefix, self.communes).write_files(self.access)

    def refresh(self) -> None:
        """Rewrite the password and ACL files and have mosquitto read them again
        (SIGHUP), as `loaxa headend broker-files` and its reload would; returns
        once mosquitto says it did."""
        self._write_access()
        if self.proc is None or self.proc.poll() is not None:
            return
        log = self.dir / "mosquitto.log"
        before = log.read_text(errors="replace").count("Reloading config") \
            if log.exists() else 0
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if log.exists() and log.read_text(errors="replace").count(
                    "Reloading config") > before:
                return
            time.sleep(0.02)
        raise LoaxaError("mosquitto did not reload its password and ACL files")


class Amqtt(_BrokerProcess):
    """The head-end's embedded broker (loaxa.headend.server.EmbeddedBroker, the
    same amqtt set-up `serve` runs) alone in a process, so its CPU is its own and
    a test can kill it. Retained messages live in its memory only."""
    what = "amqtt"
    start_timeout = 30.0
    CODE = """
import resource, sys, threading
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
from loaxa.headend.server import EmbeddedBroker, Loop
from loaxa.headend.access import Access
port, inv, prefix, communes = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
if inv:
    from loaxa.headend.amqtt_access import InventoryAccess
    access = InventoryAccess(inv, prefix, communes)
else:
    access = None  # anonymous: the benches' baseline only
EmbeddedBroker(Loop(), "127.0.0.1", port, access).start()
threading.Event().wait()
"""

    def __init__(self, workdir: Path | None = None, port: int | None = None,
                 inventory: str | os.PathLike | None = None, communes: tuple[str, ...] = (),
                 prefix: str = TOPIC_PREFIX, anonymous: bool = False):
        super().__init__(port, inventory, communes, prefix, anonymous)

    def argv(self) -> list[str]:
        # it reads the inventory again whenever the file changes: refresh() has nothing to do
        return [sys.executable, "-c", self.CODE, str(self.port), str(self.inventory or ""),
                self.prefix, *self.communes]
