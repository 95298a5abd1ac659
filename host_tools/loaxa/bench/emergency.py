"""How fast `POST /api/emergency` answers while the head-end is attacked
(docs/headend.md, "Measurements"): `loaxa headend serve` (embedded broker) in
its own process, an operator alternating emergency start and stop, idle and
during each flood, the flood made by this process:

* logins: 100 a second with wrong passwords, from one address (the throttle
  answers 429 after ten) and from a new loopback address every nine logins (a
  botnet the address throttle cannot stop: every login costs its argon2 hash);
* malformed MQTT: 1,000 a second, events of a known node with fields of the
  wrong type (each once dropped the head-end's MQTT connection), QoS 0.

The reference is the idle head-end, in the same run. `make bench ARGS=emergency`.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

import httpx

from loaxa_node.config import TOPIC_PREFIX
from loaxa_node.control.protocol import node_topic

from ..rig.headend import HeadendProcess, enrol
from . import Table

COMMUNE = "an-phu"
SAMPLES = 20  # emergencies per condition, 0.25 s apart
WARMUP_S = 2.0  # the flood runs this long before the first sample
TIMEOUT_S = 10.0  # an emergency not answered by then counts as not answered


class _Flood:
    """Calls _one(i) rate times a second on a thread of its own, from the start
    of a `with` to its end (late calls are not made up)."""

    def __init__(self, rate: float):
        self.rate = rate
        self.stop = threading.Event()
        self.pacer = threading.Thread(target=self._pace, daemon=True)

    def _one(self, i: int) -> None:
        raise NotImplementedError

    def _pace(self) -> None:
        t0, i = time.monotonic(), 0
        while not self.stop.is_set():
            due = t0 + i / self.rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            elif now - due > 1:  # fell behind: skip ahead
                t0, i = now, 0
            self._one(i)
            i += 1

    def __enter__(self) -> Self:
        self.pacer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.pacer.join(10)


class LoginFlood(_Flood):
    def __init__(self, base: str, rate: float, spread: bool):
        super().__init__(rate)
        self.base, self.spread = base, spread
        self.codes: dict[int, int] = {}
        self.clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def _client(self, i: int) -> httpx.Client:
        k = i // 9 if self.spread else 0  # nine failures: under the address throttle (10)
        addr = f"127.{1 + k // 62500}.{k // 250 % 250}.{k % 250 + 1}" if self.spread \
            else "127.0.0.1"
        with self._lock:
            if addr not in self.clients:
                self.clients[addr] = httpx.Client(
                    base_url=self.base, timeout=30,
                    transport=httpx.HTTPTransport(local_address=addr))
            return self.clients[addr]

    def _one(self, i: int) -> None:
        def go() -> None:
            try:
                r = self._client(i).post("/api/login", json={"user": f"guess-{i % 50}",
                                                             "password": f"p-{i}-xxxxxxx"})
                code = r.status_code
            except (httpx.HTTPError, RuntimeError):  # RuntimeError: closed at the end
                code = 0
            with self._lock:
                self.codes[code] = self.codes.get(code, 0) + 1
        th = threading.Thread(target=go, daemon=True)  # each on its own: a flood does not wait
        th.start()
        self.threads.append(th)

    def __exit__(self, *exc: object) -> None:
        super().__exit__()
        for th in self.threads:
            th.join(30)
        for c in self.clients.values():
            c.close()

    def said(self) -> str:
        return ", ".join(f"{n} × {c or 'failed'}" for c, n in sorted(self.codes.items()))


class MqttFlood(_Flood):
    def __init__(self, url: str, rate: float, password: str):
        from loaxa_node.net import mqtt as net_mqtt

        from ..headend.server import Loop

        super().__init__(rate)
        # with node n1's own credentials: the broker lets nobody else write its
        # events, and a node may subscribe to nothing of other nodes' (a plain
        # client, not a Controller, which reads every node's status)
        self.io = Loop()

        async def nothing(*_: object) -> None:
            pass

        self.client = net_mqtt.Client(url, "n1", nothing, [], user="n1", password=password)

        async def go() -> None:
            self.client.start()
        self.io.run(go())
        deadline = time.monotonic() + 10
        while not self.client.up:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the flood's client did not connect: {self.client.error}")
            time.sleep(0.05)
        self.sent = 0
        self.t = 0.0

    def _one(self, i: int) -> None:
        doc = {"type": "play", "node": "n1", "boot": [i], "n": {"n": i}, "duration_ms": "x"}
        self.io.run(self.client.publish(node_topic(TOPIC_PREFIX, COMMUNE, "n1", "event"),
                                        json.dumps(doc), False, 0))
        self.sent += 1

    def __enter__(self) -> Self:
        self.t = time.monotonic()
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        super().__exit__()
        self.t = time.monotonic() - self.t

        async def down() -> None:
            self.client.deinit()
        self.io.run(down())
        self.io.stop()

    def said(self) -> str:
        return f"{self.sent / self.t:.0f} messages/s sent"


def _emergencies(oper: httpx.Client) -> tuple[list[float], int]:
    """The answer times, and how many were not answered 200 within TIMEOUT_S."""
    took, failed = [], 0
    for k in range(SAMPLES):
        t0 = time.monotonic()
        try:
            r = oper.post("/api/emergency", json={"action": "stop" if k % 2 else "start"},
                          timeout=TIMEOUT_S)
            failed += r.status_code != 200
        except httpx.HTTPError:
            failed += 1
        took.append(time.monotonic() - t0)
        time.sleep(0.25)
    return took, failed


def run(argv: list[str]) -> list[Table]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "media").mkdir()
        he = HeadendProcess(tmp, COMMUNE)
        keys = enrol(he.inventory, COMMUNE, {"n1": "thon-1", "n2": "thon-2"})
        he.cli("user", "oanh", "--role", "operator", stdin="oanh-secret\n")
        he.start()
        base = he.web.rstrip("/")
        table = Table("POST /api/emergency while the head-end is flooded "
                      f"({SAMPLES} emergencies each, `loaxa headend serve`, embedded broker)",
                      ["condition", "median ms", "worst ms", "not answered",
                       "what the flood got"])
        try:
            oper = httpx.Client(base_url=base, timeout=30)
            oper.post("/api/login", json={"user": "oanh", "password": "oanh-secret"}
                      ).raise_for_status()
            took, failed = _emergencies(oper)
            table.rows.append(["idle", 1000 * statistics.median(took), 1000 * max(took), failed,
                               "-"])
            for name, flood in (
                    ("100 logins/s, one address", lambda: LoginFlood(base, 100, False)),
                    ("100 logins/s, a new address every 9", lambda: LoginFlood(base, 100, True)),
                    ("1,000 malformed MQTT events/s",
                     lambda: MqttFlood(he.url, 1000, keys["n1"]["mqtt_password"]))):
                with flood() as f:
                    time.sleep(WARMUP_S)
                    took, failed = _emergencies(oper)
                table.rows.append([name, 1000 * statistics.median(took), 1000 * max(took),
                                   failed, f.said()])
            oper.close()
        finally:
            he.stop()
    table.note = ("An emergency is recorded (SQLite, synchronous=FULL), published QoS 1 "
                  f"and answered once the broker has it; not answered: no 200 within "
                  f"{TIMEOUT_S:g} s (counted as that long).")
    return [table]
