"""An emergency to "all" as one signed message per node (docs/control.md,
"Fan-out"), on mosquitto and on the head-end's embedded amqtt, both on loopback:

* the head-end's time to sign and publish it (QoS 1, each PUBACK awaited, the
  node's own MQTT client as `serve` runs it) for N = 50, 1,000 and 5,000 nodes;
  nobody subscribes, so this is the head-end's and the broker's share alone;
* command -> first audible sample on 3 sim nodes: `make bench ARGS=fanout`
  sends an emergency siren to all 3 (signed for each), ROUNDS times, and reads
  when each node's speaker wrote its first sample (the sim's timing log).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..console import NodeConsole
from ..control import Controller, t2k_now
from ..rig.broker import Amqtt, Broker
from ..sim import SimNode
from . import Table
from .mqtt import HEAP_KB, _first_times

COMMUNE = "bench"
NS = (50, 1000, 5000)
ROUNDS = 20
SIREN = {"cmd": "emergency", "action": "start", "tone": 1200, "title": "bench"}
STOP = {"cmd": "emergency", "action": "stop"}
BROKERS: dict[str, Callable[[Path], AbstractContextManager[Any]]] = {
    # without credentials, as before them: brokerauth.py measures what they cost
    "mosquitto": lambda d: Broker(d / "broker", anonymous=True),
    "amqtt (embedded)": lambda d: Amqtt(anonymous=True),
}


def publish_times(ns: tuple[int, ...] = NS) -> Table:
    rows = []
    for name, make in BROKERS.items():
        with tempfile.TemporaryDirectory() as d, make(Path(d)) as broker:
            for n in ns:
                keys = {f"n{i:05d}": os.urandom(32) for i in range(n)}
                with Controller(broker.url, COMMUNE, keys, client_id="bench-headend") as ctl:
                    t0 = time.perf_counter()
                    env = ctl.command("all", SIREN)
                    total = time.perf_counter() - t0
                    pub = env["_done"] - env["_sent"]  # the rest: signing
                    sign = total - pub
                    rows.append([name, n, sign * 1000, pub * 1000, total * 1000,
                                 total / n * 1e6])
    return Table("emergency to 'all': the head-end signs one message per node and publishes "
                 "each (QoS 1)", ["broker", "nodes", "sign ms", "publish ms", "total ms",
                                  "us per node"], rows,
                 "one CPython process (the head-end's Controller), loopback broker, no "
                 "subscribers; total = what the operator's click waits for")


def _node(tmp: Path, url: str, name: str) -> tuple[SimNode, NodeConsole]:
    sim = SimNode(tmp / name, heap_kb=HEAP_KB)
    con = NodeConsole(sim.start(), 115200, log_path=tmp / f"{name}.log")
    con.wait_ready(30)
    con.request("config.set", {"node_id": name, "commune": COMMUNE, "broker.url": url})
    con.request("keys.set", {"node_key": (name.encode().hex() * 32)[:64]})
    con.request("clock.set", {"time": t2k_now() + 946684800})
    return sim, con


def _online(ctl: Controller, n: str) -> None:
    ctl.wait(lambda: ctl.status.get(n, {}).get("state") == "online", 20, f"{n} online")


def audible(rounds: int = ROUNDS) -> Table:
    rows = []
    names = ["n1", "n2", "n3"]
    for bname, make in BROKERS.items():
        with tempfile.TemporaryDirectory() as d, make(Path(d)) as broker:
            nodes = [_node(Path(d), broker.url, n) for n in names]
            keys = {n: bytes.fromhex((n.encode().hex() * 32)[:64]) for n in names}
            ctl = Controller(broker.url, COMMUNE, keys, client_id="bench-headend")
            lat: list[float] = []
            try:
                for n in names:
                    _online(ctl, n)
                for _ in range(rounds):
                    had = [len(_first_times(sim)) for sim, _ in nodes]
                    t0 = ctl.command("all", SIREN)["_sent"]
                    for (sim, _), k in zip(nodes, had, strict=True):
                        deadline = time.monotonic() + 5
                        while len(_first_times(sim)) <= k:
                            if time.monotonic() > deadline:
                                raise TimeoutError("no first sample")
                            time.sleep(0.002)
                        lat.append((_first_times(sim)[k] - t0) * 1000)
                    ctl.command("all", STOP)
                    time.sleep(0.8)
            finally:
                ctl.close()
                for sim, con in nodes:
                    con.close()
                    sim.stop()
            rows.append([bname, rounds, len(lat), statistics.median(lat), max(lat)])
    return Table("emergency to 'all' (3 sim nodes, one signed message each) -> each node's "
                 "first audible sample", ["broker", "emergencies", "samples", "median ms",
                                          "worst ms"], rows,
                 "from the head-end handing the first message to the broker to the sim "
                 "speaker's first write on each node")


def run(args: list[str]) -> list[Table]:
    return [publish_times(), audible()]
