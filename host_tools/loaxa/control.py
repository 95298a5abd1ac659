"""The head-end's side of the control plane (docs/control.md): sign commands and
rule sets with the node's own envelope module and publish them, and collect
what nodes report on their status and event topics.

The MQTT client is the node's own (`loaxa_node.net_mqtt`), run on an asyncio loop
in a background thread so that tests and CLIs can call this synchronously.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from loaxa_node import envelope, log, net_mqtt, timeutil

from .errors import LoaxaError

log.echo = False  # the node's log module would print the client's warnings


def t2k_now() -> int:
    return int(time.time()) - timeutil.UNIX_OFFSET


class Sender:
    """Seals envelopes for one sender: sequences grow strictly (milliseconds
    since 2000, or one more than the last when called faster)."""

    def __init__(self, name: str = "headend"):
        self.name = name
        self.seq = 0
        self.ts_offset = 0  # seconds added to this machine's clock for `ts`
        self._lock = threading.Lock()

    def next_seq(self) -> int:
        with self._lock:
            self.seq = max(self.seq + 1, int((time.time() - timeutil.UNIX_OFFSET) * 1000))
            return self.seq

    def seal(self, key: bytes, kind: str, body: dict, seq: int | None = None,
             ts: int | None = None) -> dict:
        return envelope.seal(key, kind, self.name, self.next_seq() if seq is None else seq,
                             t2k_now() + self.ts_offset if ts is None else ts, body)


def topic(prefix: str, commune: str, target: str, channel: str) -> str:
    """target: 'all', 'zone:NAME' or 'node:ID'; channel: cmd, rules, status, event."""
    base = f"{prefix}/{commune}"
    if target == "all":
        return f"{base}/all/{channel}"
    kind, _, name = target.partition(":")
    if kind not in ("zone", "node") or not name:
        raise LoaxaError(f"unknown target {target!r}", "use all, zone:NAME or node:ID")
    return f"{base}/{kind}/{name}/{channel}"


class Controller:
    """One connection to the broker as the head-end."""

    def __init__(self, url: str, commune: str, commune_key: bytes | None = None,
                 node_keys: dict[str, bytes] | None = None, prefix: str = "loaxa",
                 sender: str = "headend", client_id: str | None = None, ca: bytes | None = None,
                 timeout: float = 10.0,
                 on_doc: Callable[[str, str, bytes, float], None] | None = None,
                 keep: bool = True, persistent: bool = True):
        """on_doc(channel, node, payload, rx) is called for every status and event
        as it came, bytes unchecked (the head-end checks them); an exception it
        raises is logged, never let reach the MQTT client, whose connection it
        would drop (docs/headend.md); keep=False keeps no history here (a long-running head-end
        keeps it in its store instead); persistent=False for a short-lived
        client (one CLI call) whose session the broker need not keep."""
        self.url = url
        self.on_doc = on_doc
        self.keep = keep
        self.commune = commune
        self.prefix = prefix
        self.commune_key = commune_key
        self.node_keys = node_keys or {}
        self.sender = Sender(sender)
        self.status: dict[str, dict] = {}  # node id -> last status (retained)
        self.events: list[dict] = []
        self.received: list[tuple[float, str, bytes]] = []  # (time, topic, payload) of all
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="control",
                                        daemon=True)
        self._thread.start()
        base = f"{prefix}/{commune}/node/+/"
        self.client = net_mqtt.Client(url, client_id or f"headend-{id(self):x}", self._on_msg,
                                      [base + "status", base + "event"], ca=ca)
        # events sent while we reconnect wait at the broker
        self.client.clean = not persistent
        self._call(self._start())
        try:
            self.wait(lambda: self.client.up, timeout)
        except AssertionError:
            why = self.client.error  # what the last attempt met: refused, a certificate...
            self.close()
            raise LoaxaError(f"no connection to the broker at {url}" + (f": {why}" if why
                                                                         else ""),
                             "is the broker running, and for mqtts:// is --broker-ca the CA "
                             "that signed its certificate?") from None

    async def _start(self) -> None:
        self.client.start()

    def _call(self, coro: Any, timeout: float = 15.0) -> Any:
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
                self.on_doc(parts[-1], parts[-2], data, rx)
            except Exception:  # a bug or a full disk: this message lost, not the connection
                logging.getLogger("loaxa.control").exception("filing %s", name)
        with self._cond:
            if self.keep:
                self.received.append((rx, name, data))
            if isinstance(doc, dict) and len(parts) >= 2:
                if parts[-1] == "status":
                    self.status[parts[-2]] = doc
                elif parts[-1] == "event" and self.keep:
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
    def key_for(self, target: str) -> bytes:
        if target.startswith("node:"):
            k = self.node_keys.get(target[5:])
        else:
            k = self.commune_key
        if k is None:
            raise LoaxaError(f"no key to sign for {target}",
                             "give the commune key (zone and all) or the node's key")
        return k

    def publish(self, topic_name: str, payload: bytes | str, retain: bool = False,
                qos: int = 1) -> float:
        """Publish raw bytes; returns the time it was handed to the broker."""
        t = time.time()
        self._call(self.client.publish(topic_name, payload, retain, qos))
        return t

    def command(self, target: str, body: dict, **seal: Any) -> dict:
        """Sign body as a command for target and publish it; returns the envelope."""
        env = self.sender.seal(self.key_for(target), "cmd", body, **seal)
        env["_sent"] = self.publish(topic(self.prefix, self.commune, target, "cmd"),
                                    envelope.canonical({k: v for k, v in env.items()
                                                        if k != "_sent"}))
        return env

    def rules(self, target: str, rules: dict, retain: bool = True, **seal: Any) -> dict:
        env = self.sender.seal(self.key_for(target), "rules", rules, **seal)
        self.publish(topic(self.prefix, self.commune, target, "rules"),
                     envelope.canonical(env), retain=retain)
        return env

    def close(self) -> None:
        async def stop() -> None:
            self.client.deinit()
        try:
            self._call(stop(), 5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
