"""The head-end's side of the control plane (docs/control.md): sign commands and
rule sets with the node's own envelope module and publish them, and collect
what nodes report on their status and event topics.

The MQTT client is the node's own (`loaxa_node.net.mqtt`), run on an asyncio loop
in a background thread so that tests and CLIs can call this synchronously, or
on a loop the caller runs (`loaxa headend serve`: uvicorn's, docs/headend.md).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from loaxa_node import envelope, log, timeutil
from loaxa_node.config import TOPIC_PREFIX
from loaxa_node.control.protocol import CMD, EVENT, NODE_WRITES, RULES, STATUS, node_topic
from loaxa_node.net import mqtt as net_mqtt

from . import seqcounter
from .errors import LoaxaError

log.echo = False  # the node's log module would print the client's warnings


def on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the calling thread is the one running loop."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def t2k_now() -> int:
    return int(time.time()) - timeutil.UNIX_OFFSET


COMMAND_TTL_S = 300  # a command expires this long after it was signed (docs/envelope.md)


class Sender:
    """Seals envelopes for one sender name. Its sequence comes from take(name)
    (the head-end's store: strictly increasing across restarts and clock
    steps); without one, from a counter of this process started at
    milliseconds since 2000."""

    def __init__(self, name: str = "headend", take: Callable[[str], int] | None = None,
                 ttl: int = COMMAND_TTL_S):
        self.name = name
        self.take = take
        self.ttl = ttl
        self.seq = 0
        self.ts_offset = 0  # seconds added to this machine's clock for `ts`
        self._lock = threading.Lock()

    def next_seq(self) -> int:
        if self.take is not None:
            return self.take(self.name)
        with self._lock:
            self.seq = self.seq + 1 if self.seq else seqcounter.first()
            return self.seq

    def stamp(self, kind: str, seq: int | None = None, ts: int | None = None,
              exp: int | None = None) -> tuple[int, int, int]:
        """(seq, ts, exp) of one message (one broadcast: every node gets the same)."""
        seq = self.next_seq() if seq is None else seq
        ts = t2k_now() + self.ts_offset if ts is None else ts
        if exp is None:
            exp = 0 if kind == "rules" else ts + self.ttl
        return seq, ts, exp

    def seal(self, key: bytes, kind: str, to: str, body: dict, seq: int | None = None,
             ts: int | None = None, exp: int | None = None) -> dict:
        seq, ts, exp = self.stamp(kind, seq, ts, exp)
        return envelope.seal(key, kind, self.name, to, seq, ts, exp, body)


def topic(prefix: str, commune: str, node: str, channel: str) -> str:
    """A node's topic; channel: cmd, rules, status, event. Nothing is sent to a
    zone or to the commune as such: every node gets its own message."""
    if not node or "/" in node or "+" in node or "#" in node:
        raise LoaxaError(f"bad node id {node!r}")
    return node_topic(prefix, commune, node, channel)


class Controller:
    """One connection to the broker as the head-end."""

    def __init__(self, url: str, commune: str, node_keys: dict[str, bytes] | None = None,
                 zones: dict[str, list[str]] | None = None, prefix: str = TOPIC_PREFIX,
                 sender: str = "headend", client_id: str | None = None, ca: bytes | None = None,
                 timeout: float = 10.0,
                 on_doc: Callable[[str, str, bytes, float], Any] | None = None,
                 keep: bool = True, persistent: bool = True,
                 take: Callable[[str], int] | None = None, user: str | None = None,
                 password: str | None = None, loop: asyncio.AbstractEventLoop | None = None):
        """node_keys: every node this controller may command, with its own key;
        zones: node -> its zones (the inventory's), to address a zone.
        on_doc(channel, node, payload, rx) is called for every status and event
        as it came, bytes unchecked (the head-end checks them); an exception it
        raises is logged, never let reach the MQTT client, whose connection it
        would drop (docs/headend.md); if it returns an awaitable, the client
        awaits it before it reads the next message; keep=False keeps no history
        here (a long-running head-end keeps it in its store instead);
        persistent=False for a short-lived client (one CLI call) whose session
        the broker need not keep;
        take(sender) gives the next sequence (the store's counter);
        loop: the client runs on this loop, which the caller runs, instead of a
        thread of its own; the blocking calls (publish, command, rules, close)
        then come from other threads: on the loop itself they would wait for
        themselves, and are refused."""
        self.url = url
        self.on_doc = on_doc
        self.keep = keep
        self.commune = commune
        self.prefix = prefix
        self.node_keys = node_keys or {}
        self.zones = zones or {}
        self.sender = Sender(sender, take)
        self.status: dict[str, dict] = {}  # node id -> last status (retained)
        self.events: list[dict] = []
        self.received: list[tuple[float, str, bytes]] = []  # (time, topic, payload) of all
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        if loop is not None:
            self._loop = loop
        else:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="control",
                                            daemon=True)
            self._thread.start()
        self.client = net_mqtt.Client(url, client_id or f"headend-{id(self):x}", self._on_msg,
                                      [node_topic(prefix, commune, "+", c) for c in NODE_WRITES],
                                      ca=ca,
                                      user=user, password=password)
        # events sent while we reconnect wait at the broker
        self.client.clean = not persistent
        self._call(self._start())
        try:
            self.wait(lambda: self.client.up, timeout)
        except AssertionError:
            why = self.client.error  # what the last attempt met: refused, a certificate...
            self.close()
            hint = ("the broker does not know the head-end's user or password: for "
                    "mosquitto run `loaxa headend broker-files` and reload it "
                    "(docs/control.md)" if why and "refused the connection" in why else
                    "is the broker running, and for mqtts:// is --broker-ca the CA "
                    "that signed its certificate?")
            raise LoaxaError(f"no connection to the broker at {url}" + (f": {why}" if why
                                                                         else ""),
                             hint) from None

    async def _start(self) -> None:
        self.client.start()

    def _call(self, coro: Any, timeout: float = 15.0) -> Any:
        if on_loop(self._loop):
            coro.close()
            raise RuntimeError("a blocking call of the controller on its own loop "
                               "would wait for itself: call it from a worker thread")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _on_msg(self, t: bytes, payload: memoryview, retained: int) -> None:
        name = t.decode()
        data = bytes(payload)
        rx = time.time()
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        parts = name.split("/")
        if self.on_doc and len(parts) >= 2:
            try:
                filed = self.on_doc(parts[-1], parts[-2], data, rx)
                if inspect.isawaitable(filed):
                    await filed
            except Exception:  # a bug or a full disk: this message lost, not the connection
                logging.getLogger("loaxa.control").exception("filing %s", name)
        with self._cond:
            if self.keep:
                self.received.append((rx, name, data))
            if isinstance(doc, dict) and len(parts) >= 2:
                if parts[-1] == STATUS:
                    self.status[parts[-2]] = doc
                elif parts[-1] == EVENT and self.keep:
                    doc["_rx"] = rx
                    self.events.append(doc)
            self._cond.notify_all()

    # -- waiting ----------------------------------------------------------------
    def wait(self, pred: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                r = pred()
                if r:
                    return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what or pred}")
                self._cond.wait(min(left, 0.1))

    def wait_event(self, timeout: float = 10.0, **match: Any) -> dict:
        """The first event whose fields equal match (e.g. type="ack", seq=5)."""
        def find() -> dict | None:
            for e in self.events:
                if all(e.get(k) == v for k, v in match.items()):
                    return e
            return None
        return self.wait(find, timeout, f"event {match}")

    def events_of(self, node: str, kind: str | None = None) -> list[dict]:
        with self._cond:
            return [e for e in self.events if e.get("node") == node
                    and (kind is None or e.get("type") == kind)]

    # -- sending ----------------------------------------------------------------
    def targets(self, target: str | list[str]) -> list[str]:
        """The nodes target means: 'all' (every node with a key), 'zone:NAME'
        or 'zone:A,B' (those of the zones), 'node:ID' or a list of node ids."""
        if isinstance(target, list):
            nodes = list(target)
        elif target == "all":
            nodes = sorted(self.node_keys)
        elif target.startswith("zone:") and target[5:]:  # zone:a or zone:a,b
            want = set(target[5:].split(","))
            nodes = sorted(n for n in self.node_keys if want & set(self.zones.get(n, ())))
        elif target.startswith("node:") and target[5:]:
            nodes = [target[5:]]
        else:
            raise LoaxaError(f"unknown target {target!r}", "use all, zone:NAME or node:ID")
        missing = [n for n in nodes if n not in self.node_keys]
        if missing:
            raise LoaxaError(f"no key for {', '.join(missing)}",
                             "provision the node (loaxa provision) so that the inventory "
                             "holds its key")
        if not nodes:
            raise LoaxaError(f"no node to send to for {target}",
                             "enrol nodes in the inventory with their zones")
        return nodes

    def publish(self, topic_name: str, payload: bytes | str, retain: bool = False,
                qos: int = 1) -> float:
        """Publish raw bytes; returns the time it was handed to the broker."""
        t = time.time()
        self._call(self.client.publish(topic_name, payload, retain, qos))
        return t

    def publish_many(self, msgs: list[tuple[str, bytes, bool]], qos: int = 1) -> float:
        """Publish (topic, payload, retain) in order, on the loop in one go;
        returns when the broker has the last (QoS 1: its PUBACK)."""
        async def run() -> None:
            for name, payload, retain in msgs:
                await self.client.publish(name, payload, retain, qos)
        self._call(run(), 15.0 + len(msgs) * 0.05)
        return time.time()

    def _fan_out(self, kind: str, target: str | list[str], body: dict, retain: bool,
                 **stamp: Any) -> dict:
        nodes = self.targets(target)
        seq, ts, exp = self.sender.stamp(kind, **stamp)
        envs = {n: envelope.seal(self.node_keys[n], kind, self.sender.name, n, seq, ts, exp,
                                 body) for n in nodes}
        t0 = time.time()
        done = self.publish_many([(topic(self.prefix, self.commune, n, kind),
                                   envelope.canonical(envs[n]), retain) for n in nodes])
        return {"seq": seq, "ts": ts, "exp": exp, "from": self.sender.name, "to": nodes,
                "envs": envs, "_sent": t0, "_done": done}

    def command(self, target: str | list[str], body: dict, **stamp: Any) -> dict:
        """Sign body as a command for every node target means, each with its own
        key and name, and publish each on its node's cmd topic. Returns
        {seq, ts, exp, from, to: [nodes], envs: {node: envelope}, _sent, _done}."""
        return self._fan_out(CMD, target, body, False, **stamp)

    def rules(self, target: str | list[str], rules: dict, retain: bool = True,
              **stamp: Any) -> dict:
        """The rule set for every node target means, retained on each node's
        rules topic (a node that reconnects gets its own at once)."""
        return self._fan_out(RULES, target, rules, retain, **stamp)

    def close(self) -> None:
        async def stop() -> None:
            self.client.deinit()
        try:
            self._call(stop(), 5)
        finally:
            if self._thread is not None:  # its own loop; a caller's runs on
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(5)

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
