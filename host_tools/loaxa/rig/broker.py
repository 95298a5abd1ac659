"""Real MQTT brokers for the rig, each in its own process on a free loopback port,
killable and restartable on the same port: mosquitto (its state saved after every
change, so a SIGKILL loses nothing it has taken in) and the head-end's embedded
amqtt (what `loaxa headend serve` runs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import LoaxaError
from . import process
from .process import free_port


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class _BrokerProcess:
    what = "broker"
    start_timeout = 5.0

    def __init__(self, port: int | None = None):
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

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = ""):
        exe = mosquitto_path()
        if exe is None:
            raise LoaxaError("mosquitto is not installed",
                             "run `make sysdeps` or `apt-get install mosquitto`")
        super().__init__(port)
        self.exe = exe
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
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
EmbeddedBroker(Loop(), "127.0.0.1", int(sys.argv[1])).start()
threading.Event().wait()
"""

    def __init__(self, workdir: Path | None = None, port: int | None = None):
        super().__init__(port)

    def argv(self) -> list[str]:
        return [sys.executable, "-c", self.CODE, str(self.port)]
