"""The control plane (docs/control.md), against a real mosquitto on loopback.

* command -> first audible sample: a signed MQTT `tone` command against the
  same request typed on the console (the reference), 100 each, on one sim node;
  the sim's speaker logs the wall clock of each playback's first sample;
* heartbeat load: N lightweight nodes (the node's own MQTT client, net_mqtt, on
  CPython asyncio: CONNECT with the will, SUBSCRIBE to the node's topics, a
  retained QoS 1 status every PERIOD_S), up to 10,000, against one broker
  (mosquitto here; bench/headend.py runs the same load against the head-end's
  embedded amqtt), with a head-end subscribed to every status: broker and
  client CPU, the publish -> receive latency and the statuses lost;
* the node's heap: booted, with MQTT connected, and connected while streaming.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from loaxa_node.config import TOPIC_PREFIX
from loaxa_node.control.protocol import node_topic

from ..console import NodeConsole
from ..control import Controller, t2k_now
from ..rig.broker import Broker
from ..sim import SimNode
from . import Table

COMMUNE = "bench"
NODE_KEY = "11" * 32
PERIOD_S = 10  # status period of the simulated nodes (a node's is 60 s: 6x the load)
LOAD_S = 20
DRAIN_S = 5  # after the last beat, for statuses still on their way to the head-end
HEAP_KB = 256  # see docs/control.md, "Heap"


def _first_times(sim: SimNode) -> list[float]:
    log = sim.audio_dir / "timing.log"
    return [float(line.split()[0]) for line in log.read_text().splitlines()
            if line.split()[1:2] == ["first"]] if log.exists() else []


def _wait_first(sim: SimNode, n: int, timeout: float = 5.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = _first_times(sim)
        if len(t) >= n:
            return t[n - 1]
        time.sleep(0.002)
    raise TimeoutError("no first sample")


def _node(tmp: Path, broker: Broker) -> tuple[SimNode, NodeConsole]:
    sim = SimNode(tmp / "node", heap_kb=HEAP_KB)
    con = NodeConsole(sim.start(), 115200, log_path=tmp / "node.log")
    con.wait_ready(30)
    con.request("keys.set", {"node_key": NODE_KEY})
    con.request("clock.set", {"time": t2k_now() + 946684800})
    con.request("config.set", {"node_id": "n1", "commune": COMMUNE, "broker.url": broker.url})
    return sim, con


def latency(n: int = 100) -> Table:
    with tempfile.TemporaryDirectory() as d, Broker(Path(d) / "broker", anonymous=True) as broker:
        sim, con = _node(Path(d), broker)
        ctl = Controller(broker.url, COMMUNE, {"n1": bytes.fromhex(NODE_KEY)})
        try:
            ctl.wait(lambda: ctl.status.get("n1", {}).get("state") == "online", 20, "online")
            rows = []
            for label in ("console (reference)", "MQTT signed command"):
                lat = []
                for _ in range(n):
                    k = len(_first_times(sim)) + 1
                    args = {"freq": 700, "seconds": 1}
                    if label.startswith("MQTT"):
                        t0 = ctl.command("node:n1", {"cmd": "tone", **args})["_sent"]
                    else:
                        t0 = time.time()
                        con.request("tone", args)
                    lat.append((_wait_first(sim, k) - t0) * 1000)
                    time.sleep(1.2)  # the tone ends: each command starts from idle
                rows.append([label, n, statistics.median(lat), max(lat)])
            ref = rows[0][2]
            for r in rows:
                r.append(r[2] / ref)
        finally:
            ctl.close()
            con.close()
            sim.stop()
    return Table("command -> first audible sample (sim node, loopback broker)",
                 ["transport", "commands", "median ms", "worst ms", "median vs console"], rows,
                 "first sample = the sim speaker's first write of the playback; the console "
                 "request includes its reply")


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(url: str, n: int, broker_cpu: Callable[[], float]) -> dict:
    """broker_cpu() reads the broker's CPU seconds so far: its connect cost and
    its cost under load are counted apart."""
    from loaxa_node.net import mqtt as net_mqtt
    lat: list[float] = []
    acked: set[tuple[str, int]] = set()  # (node, beat) the broker PUBACKed: owed to the head-end
    got: set[tuple[str, int]] = set()
    refused = [0]  # publishes that got no PUBACK in time (the node would retry)
    c0 = broker_cpu()

    async def on_head(t: bytes, p: memoryview, r: int) -> None:
        d = json.loads(bytes(p))
        if not r and "sent" in d:  # not a will: a node that lost its connection
            lat.append((time.time() - d["sent"]) * 1000)
            got.add((d["node"], d["beat"]))

    async def ignore(t: bytes, p: memoryview, r: int) -> None:
        pass

    head = net_mqtt.Client(url, "headend", on_head,
                           [node_topic(TOPIC_PREFIX, COMMUNE, "+", "status")])
    head.start()
    clients: list[net_mqtt.Client] = []
    for i in range(n):
        me = node_topic(TOPIC_PREFIX, COMMUNE, f"s{i}")
        c = net_mqtt.Client(url, f"loaxa-s{i}", ignore,
                            [me + "cmd", me + "rules", f"loaxa/{COMMUNE}/all/cmd",
                             f"loaxa/{COMMUNE}/all/rules"],
                            (me + "status", '{"state": "offline"}', True, 1), max_packet=2048)
        clients.append(c)
        c.start()
        if i % 250 == 249 or i == n - 1:  # in batches, as a commune's nodes boot
            deadline = time.monotonic() + 15
            while sum(x.up for x in clients[-250:]) < len(clients[-250:]) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
    deadline = time.monotonic() + 10
    while not head.up and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    up = sum(c.up for c in clients)
    lat.clear()
    got.clear()

    async def beat(i: int, c: net_mqtt.Client) -> None:
        await asyncio.sleep(PERIOD_S * i / n)
        k = 0
        while True:
            now = time.time()
            k += 1
            doc = {"state": "online", "node": f"s{i}", "sent": now, "beat": k,
                   "counters": {"cmd_ok": 0, "cmd_refused": 0}, "volume": 70,
                   "play": "stopped", "net": {"type": "host", "up": True}}
            try:
                await c.publish(node_topic(TOPIC_PREFIX, COMMUNE, f"s{i}", "status"),
                                json.dumps(doc), True, 1)
                acked.add((f"s{i}", k))
            except OSError:
                refused[0] += 1
            await asyncio.sleep(PERIOD_S)

    c1 = broker_cpu()
    tasks = [asyncio.create_task(beat(i, c)) for i, c in enumerate(clients)]
    t0 = time.process_time()
    await asyncio.sleep(LOAD_S)
    cpu = time.process_time() - t0
    c2 = broker_cpu()
    for t in tasks:
        t.cancel()
    deadline = time.monotonic() + DRAIN_S
    while not acked <= got and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for c in clients:
        c.deinit()
    head.deinit()
    return {"cpu": cpu, "lat": lat, "up": up, "lost": len(acked - got),
            "unacked": refused[0], "broker_connect": c1 - c0, "broker_load": c2 - c1}


def mosquitto(workdir: Path) -> Broker:
    # without credentials: brokerauth.py measures what they cost
    return Broker(workdir, extra_conf="max_connections -1\n", anonymous=True)


def load(ns: tuple[int, ...] = (10, 100, 1000, 10000),
         broker: Callable[[Path], AbstractContextManager[Any]] = mosquitto,
         name: str = "mosquitto") -> Table:
    """broker(workdir) is a context manager giving a running broker with .url
    and .pid() (the process whose CPU is counted). A broker that could not take
    every node of one N is not tried with more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * max(ns) + 1000), hard))
    rows: list[list[object]] = []
    for n in ns:
        with tempfile.TemporaryDirectory() as d, broker(Path(d) / "broker") as b:
            r = asyncio.run(_load(b.url, n, lambda: _cpu_of(b.pid() or 0)))
        lat = sorted(r["lat"])
        p99 = lat[int(len(lat) * 0.99)] if lat else float("nan")
        rows.append([n, r["up"], len(lat), r["lost"], r["unacked"], len(lat) / LOAD_S,
                     r["broker_connect"], 100 * r["broker_load"] / LOAD_S,
                     100 * r["cpu"] / LOAD_S, statistics.median(lat) if lat else float("nan"),
                     p99, max(lat) if lat else float("nan")])
        if r["up"] < n:
            break
    return Table(f"heartbeat load on {name}: N simulated nodes, a retained QoS 1 status "
                 f"every {PERIOD_S} s",
                 ["N", "connected", "statuses", "lost", "unacked", "per s",
                  "broker CPU s connecting", "broker CPU %", "clients CPU %", "median ms",
                  "p99 ms", "worst ms"], rows,
                 f"one {name} and one CPython process for all clients, loopback; broker CPU % "
                 f"over the {LOAD_S} s of load, after the connects; latency = publish by a node "
                 "-> receipt by the head-end; lost = PUBACKed by the broker, not received "
                 f"within {DRAIN_S} s of the last beat; unacked = publishes without a PUBACK in "
                 "time (a node sends them again)")


def heap() -> Table:
    from ..streamer import Format, Packetizer
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as d, Broker(Path(d) / "broker", anonymous=True) as broker:
        sim, con = _node(Path(d), broker)
        try:
            time.sleep(2)
            rows.append(["MQTT connected, idle", *_heap(con)])
            import socket
            fmt = Format("DVI4", 16000)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            con.request("play", {"session": fmt.session(addr="127.0.0.1", port=port)})
            pk = Packetizer(fmt)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                t0 = time.monotonic()
                for i in range(150):
                    s.sendto(pk.packet(bytes(2 * fmt.samples)), ("127.0.0.1", port))
                    time.sleep(max(0, t0 + (i + 1) * 0.02 - time.monotonic()))
                    if i == 120:
                        rows.append(["MQTT connected, streaming 16 kHz DVI4", *_heap(con)])
        finally:
            con.close()
            sim.stop()
    with tempfile.TemporaryDirectory() as d:
        sim = SimNode(Path(d) / "node", heap_kb=HEAP_KB)
        con = NodeConsole(sim.start(), 115200, log_path=Path(d) / "node.log")
        try:
            con.wait_ready(30)
            rows.insert(0, ["booted, no broker (reference)", *_heap(con)])
        finally:
            con.close()
            sim.stop()
    ref = float(rows[0][1])  # type: ignore[arg-type]
    for r in rows:
        r.append(float(r[1]) - ref)  # type: ignore[arg-type]
    return Table(f"node heap with MQTT (sim, x64 VM, {HEAP_KB} KB cap)",
                 ["state", "allocated KB", "free KB", "vs booted KB"], rows,
                 "the sim's usual cap is 128 KB (2x the 64 KB budget): docs/control.md")


def _heap(con: NodeConsole) -> list[float]:
    h = con.request("status")["heap"]
    return [h["alloc"] / 1024, h["free"] / 1024]


def run(args: list[str]) -> list[Table]:
    return [heap(), latency(), load()]
