"""What broker credentials and ACLs cost (issue 18; docs/control.md, "Broker
credentials and ACLs"): N nodes (the node's own MQTT client, net_mqtt, on
CPython asyncio) connect with CONNECT + will + SUBSCRIBE to their own topics,
to the embedded amqtt and to mosquitto, each with the commune's users and ACLs
from an inventory and, beside it, anonymous as before: broker CPU and wall
time per node connect, and the time for the whole commune to be connected.
"""

from __future__ import annotations

import asyncio
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loaxa_node.config import TOPIC_PREFIX
from loaxa_node.control.protocol import node_topic

from ..headend.access import Access
from ..inventory import Inventory
from ..rig.broker import Amqtt, Broker
from . import Table
from .mqtt import _cpu_of

COMMUNE = "bench"
BATCH = 250  # nodes connecting at once, as a commune's nodes boot


def _inventory(path: Path, n: int) -> dict[str, str]:
    """n nodes with broker passwords (and the head-end's users); node -> password."""
    pws = {}
    with Inventory(path) as inv:
        for i in range(n):
            pws[f"s{i}"] = inv.new_mqtt_password(f"s{i}", "node", COMMUNE)
        Access.from_inventory(inv, "loaxa", [COMMUNE])
    return pws


async def _connect(url: str, n: int, pws: dict[str, str] | None,
                   cpu: Callable[[], float]) -> dict:
    from loaxa_node.net import mqtt as net_mqtt

    async def ignore(t: bytes, p: memoryview, r: int) -> None:
        pass

    clients: list[Any] = []
    c0, t0 = cpu(), time.monotonic()
    for i in range(n):
        me = node_topic(TOPIC_PREFIX, COMMUNE, f"s{i}")
        c = net_mqtt.Client(url, f"loaxa-s{i}", ignore, [me + "cmd", me + "rules"],
                            (me + "status", '{"state": "offline"}', True, 1),
                            user=f"s{i}", password=pws[f"s{i}"] if pws else None)
        clients.append(c)
        c.start()
        if i % BATCH == BATCH - 1 or i == n - 1:
            deadline = time.monotonic() + 30
            while sum(x.up for x in clients[-BATCH:]) < len(clients[-BATCH:]) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
    wall = time.monotonic() - t0
    c1 = cpu()
    up = sum(c.up for c in clients)
    errors = {c.error for c in clients if not c.up}
    for c in clients:
        c.deinit()
    await asyncio.sleep(0.1)
    return {"up": up, "wall": wall, "cpu": c1 - c0, "errors": sorted(e for e in errors if e)}


def _broker(kind: str, tmp: Path, auth: bool) -> Any:
    inv = tmp / "inv.sqlite"
    if kind == "amqtt":
        return Amqtt(inventory=inv if auth else None, communes=(COMMUNE,), anonymous=not auth)
    return Broker(tmp / "mosq", extra_conf="max_connections -1\n",
                  inventory=inv if auth else None, communes=(COMMUNE,), anonymous=not auth)


def connect_cost(ns: tuple[int, ...] = (100, 1000)) -> Table:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * max(ns) + 1000), hard))
    rows: list[list[object]] = []
    for kind in ("amqtt", "mosquitto"):
        for n in ns:
            base = None
            for auth in (False, True):
                with tempfile.TemporaryDirectory() as d:
                    pws = _inventory(Path(d) / "inv.sqlite", n) if auth else None
                    with _broker(kind, Path(d), auth) as b:
                        r = asyncio.run(_connect(b.url, n, pws, lambda: _cpu_of(b.pid() or 0)))
                per_cpu = 1000 * r["cpu"] / max(1, r["up"])
                per_wall = 1000 * r["wall"] / max(1, n)
                if base is None:
                    base = per_cpu
                rows.append([kind, n, "user + ACL" if auth else "anonymous", r["up"],
                             r["wall"], per_wall, r["cpu"], per_cpu,
                             per_cpu / base if base else float("nan"),
                             "; ".join(r["errors"])[:60]])
    return Table("connect cost with and without credentials: N nodes connect (CONNECT with "
                 "will, SUBSCRIBE own topics, SUBACK)",
                 ["broker", "N", "clients", "connected", "all up s", "wall ms/node",
                  "broker CPU s", "broker CPU ms/node", "CPU vs anonymous", "errors"], rows,
                 f"loopback, {os.cpu_count()} cores, nodes connect in batches of {BATCH}; "
                 "broker CPU from /proc (the broker's own process); user + ACL: the "
                 "inventory's users (mosquitto: passwd with PBKDF2-SHA512 $7$ hashes and an "
                 "acl file, amqtt: the embedded broker's own check from the inventory)")


def run(args: list[str]) -> list[Table]:
    return [connect_cost()]
