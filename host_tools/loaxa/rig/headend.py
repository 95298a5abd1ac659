"""A commune on one machine: `loaxa headend serve` as an operator starts it, in
its own process, and simulated nodes provisioned for it. The head-end suites
(hil_tests/test_headend.py) and `make demo` set up their communes with these."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loaxa_node import timeutil

from ..console import NodeConsole
from ..errors import LoaxaError
from ..inventory import Inventory
from ..sim import SimNode
from . import process
from .process import free_port

HEAP_KB = 256  # as the control suites: link manager + MQTT client + a stream
LOAXA = str(Path(sys.executable).parent / "loaxa")  # the command operators run


class HeadendProcess:
    """`loaxa headend serve` on free ports, its store and inventory under tmp."""

    def __init__(self, tmp: Path, commune: str, broker: str | None = None,
                 lang: str = "C", broker_ca: Path | None = None):
        self.tmp = tmp
        self.commune = commune
        self.port, self.mqtt, self.files = free_port(), free_port(), free_port()
        self.broker = broker
        self.broker_ca = broker_ca
        self.data = tmp / "data"
        self.media = tmp / "media"
        self.inventory = tmp / "inv.sqlite"
        self.env = dict(os.environ, LOAXA_INVENTORY=str(self.inventory),
                        LOAXA_HEADEND=str(self.data), LANG=lang)
        self.proc: subprocess.Popen | None = None
        self.args: list[str] = []  # more of serve's options (alerts, TTS...)

    @property
    def url(self) -> str:
        """The broker nodes connect to."""
        return self.broker or f"mqtt://127.0.0.1:{self.mqtt}"

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def cli(self, *args: str, stdin: str = "") -> str:
        r = subprocess.run([LOAXA, "headend", *args], env=self.env,
                           input=stdin, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise LoaxaError(f"loaxa headend {args[0]} failed: {r.stderr.strip()}")
        return r.stdout

    def start(self) -> HeadendProcess:
        cmd = [LOAXA, "headend", "serve", "--commune", self.commune,
               "--bind", "127.0.0.1", "--port", str(self.port), "--mqtt-port", str(self.mqtt),
               "--media", str(self.media), "--files-port", str(self.files)]
        if self.broker:
            cmd += ["--broker", self.broker]
        if self.broker_ca:
            cmd += ["--broker-ca", str(self.broker_ca)]
        cmd += self.args
        self.log = open(self.tmp / "headend.log", "ab")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=self.log)
        process.wait_listening(self.proc, self.port, "the head-end", 30)
        return self

    def kill(self) -> None:
        process.kill(self.proc)

    def stop(self) -> None:
        process.stop(self.proc, 10)


def enrol(inventory: Path, commune: str, nodes: dict[str, str]) -> dict[str, dict[str, str]]:
    """Record nodes (name: zone) in the technicians' inventory, as provisioning
    does, before `serve` reads it; returns each node's keys.set fields (its
    keys and its broker password)."""
    with Inventory(inventory) as inv:
        keys = {}
        for name, zone in nodes.items():
            inv.record(name, "provision", commune=commune, zones=[zone])
            keys[name] = {"node_key": inv.new_node_key(name),
                          "mqtt_password": inv.new_mqtt_password(name, "node", commune)}
    return keys


def node_up(tmp: Path, broker: str, commune: str, name: str, zone: str,
            keys: dict[str, str], ca: bytes | None = None) -> tuple[SimNode, NodeConsole]:
    """Boot a sim node with a trusted clock and give it its keys and broker
    password (enrol's; and the broker's CA, DER), its zone and the broker, as
    provisioning does."""
    now = int(time.time()) - timeutil.UNIX_OFFSET
    sim = SimNode(tmp / name, heap_kb=HEAP_KB, uid="5a" + name.encode().hex()[:10],
                  rtc_start=now)
    con = NodeConsole(sim.start(), 115200, log_path=tmp / f"{name}.log")
    try:
        con.wait_ready(30)
        k = dict(keys)
        if ca:
            k["broker_ca"] = base64.b64encode(ca).decode()
        con.request("keys.set", k)
        con.request("clock.set", {"time": timeutil.iso(now)})
        con.request("config.set", {"node_id": name, "commune": commune, "zones": [zone],
                                   "broker.url": broker})
    except BaseException:
        con.close()
        sim.stop()
        raise
    return sim, con


def poll(what: str, fn: Callable[[], Any], timeout: float = 30) -> Any:
    """fn()'s first true answer, asked every 0.3 s."""
    deadline = time.monotonic() + timeout
    while True:
        r = fn()
        if r:
            return r
        if time.monotonic() > deadline:
            raise LoaxaError(f"timed out waiting for {what}")
        time.sleep(0.3)
