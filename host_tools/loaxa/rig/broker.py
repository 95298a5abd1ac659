"""A real mosquitto for the rig: started on a free loopback port, killable and
restartable on the same port, retained messages persisted (saved every second,
so a SIGKILL loses at most the last second, as a broker's crash would)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import LoaxaError
from . import process
from .process import free_port


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class Broker:
    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = ""):
        exe = mosquitto_path()
        if exe is None:
            raise LoaxaError("mosquitto is not installed",
                             "run `make sysdeps` or `apt-get install mosquitto`")
        self.exe = exe
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.dir}/\nautosave_interval 1\n"
            f"log_dest file {self.dir}/mosquitto.log\nmax_queued_messages 10000\n"
            # as root it would drop to its own user, who cannot reach a private tmp dir
            + ("user root\n" if os.geteuid() == 0 else "")
            + extra_conf)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 5.0) -> Broker:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        process.wait_listening(self.proc, self.port, "mosquitto", timeout)
        return self

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word, as on a crash."""
        process.kill(self.proc)

    def stop(self) -> None:
        process.stop(self.proc, 5)
        self.proc = None

    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
