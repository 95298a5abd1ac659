# The node on the commune's MQTT network (docs/control.md): its topics, the
# broker connection, the retained status heartbeat and the bounded event
# queue. Loaded once a broker is configured, with its topics (setup.py) and
# status document (status.py): together 1 KB on a 32-bit heap, less than the
# 1 KB that unloading them would give back (docs/architecture.md). Each
# message is handled by commands.py, which loads for that message only.
import asyncio
import gc
import json
import time

from .. import VERSION, log, storage

try:
    from typing import Any  # noqa: F401  (type comments only)
except ImportError:
    pass
from ..compat import const, uses
from ..net.mqtt import LinkError
from .protocol import EVENT, HEARTBEAT_S, STATUS
from .setup import configure as set_up
from .status import status as status_doc

QUEUE = const(16)  # events kept while the broker is away; ~150 B each
# The queue on flash while it holds events the broker has not taken, one JSON
# text a line: a power cut then loses none of them (written only when an event
# cannot go out at once, so a connected node does not wear its flash per event).
EVENTS_FILE = "events.txt"
# A message that finds the heap short (fragmented for a moment, a stream being
# built) is tried again after a collection, every SHORT_MS for SHORT_TRIES
# tries: the broker has had its PUBACK, so a message given up is lost.
SHORT_TRIES = const(20)
SHORT_MS = const(500)


async def again_if_short(fn):
    """await fn(); again after a collection while it raises MemoryError."""
    for i in range(SHORT_TRIES):
        try:
            return await fn()
        except MemoryError:
            if i == SHORT_TRIES - 1:
                raise
            gc.collect()
            await asyncio.sleep_ms(SHORT_MS)


class Control:
    def __init__(self, node):
        self.node = node
        self._q = [None] * QUEUE  # type: list  # ring of event JSON texts, oldest at _qh
        self._qh = 0
        self._qn = 0
        self.dropped = 0
        self._n = 0
        self._saved = False  # EVENTS_FILE holds the queue
        for text in storage.read_lines(EVENTS_FILE):  # what a power cut left unsent
            self._put(text)
        self._saved = self._qn > 0
        self.ok = 0  # commands and rule sets acted on
        self.refused = 0
        self.seq, _ = storage.read_json("cmdseq.json", {})  # sender -> last command seq
        self._wake = asyncio.Event()  # wakes the sender: something to publish
        self._tasks = []
        self._last = None  # what the last status published said, to see a change
        self.client = None  # type: Any  # net/mqtt.Client, made by setup.py
        self.me = ""  # the node's topic folder (setup.py)
        node.link.on_change(self._link)
        self.event("boot", {"reset_cause": node.reset_cause, "fw": VERSION,
                            "boots": node.boot["boots"], "safe_mode": node.safe_mode})
        log.on_error = self._error  # type: ignore[assignment]

    def configure(self):
        """(Re)build topics and subscriptions from the config (setup.py)."""
        set_up(self)

    def start(self):
        self.configure()
        self._tasks = [self.client.start(), asyncio.create_task(self._sender()),
                       asyncio.create_task(self._heartbeat())]
        return self._tasks

    def deinit(self):
        for t in self._tasks:
            t.cancel()
        if self.client:
            self.client.deinit()
        log.on_error = None

    # -- state --------------------------------------------------------------
    def info(self):
        """status["broker"] (INTERFACES: url, connected, up_s, reconnects,
        error, queued_events, dropped_events) plus our counters."""
        c = self.client
        out = c.info()
        out.update({"queued_events": self._qn, "dropped_events": self.dropped,
                    "cmd_ok": self.ok, "cmd_refused": self.refused,
                    "messages": c.msgs, "oversized": c.oversized, "malformed": c.malformed})
        return out

    def _signature(self):
        node = self.node
        p = node.player
        now = p.now if p else None
        return (now and now.get("source"), now and now.get("priority"),
                p.volume if p else None, node.arb.held is not None, node.cfg["volume"],
                node.link.is_up(),
                node.rules.R.get("ver") if node.rules else None,
                node.hal.amp_fault())  # a fault reaches the head-end within a second

    # -- events -------------------------------------------------------------
    def event(self, kind, fields):
        """Queue an event for the node's event topic; oldest dropped when full."""
        node = self.node
        self._n += 1
        fields["type"] = kind
        fields["node"] = node.cfg["node_id"]
        fields["boot"] = node.boot["boots"]
        fields["n"] = self._n
        fields["t"] = node.clock.now() if node.clock.trusted() else None
        fields["ms"] = time.ticks_diff(time.ticks_ms(), node._t0)
        self._put(json.dumps(fields))
        c = self.client
        if c is None or not c.up:
            self._save()
        self._wake.set()

    def _put(self, text):
        if self._qn == QUEUE:
            self._q[self._qh] = None
            self._qh = (self._qh + 1) % QUEUE
            self._qn -= 1
            self.dropped += 1
        self._q[(self._qh + self._qn) % QUEUE] = text
        self._qn += 1

    def _save(self):
        try:
            storage.write_parts(EVENTS_FILE, self._lines())
            self._saved = True
        except OSError as e:  # a full flash must not stop the node: the queue is still in RAM
            log.warn("events not saved: %r" % (e,))

    def _lines(self):
        for i in range(self._qn):
            yield self._q[(self._qh + i) % QUEUE]
            yield b"\n"

    def refuse(self, code, msg, topic, env=None, reason=None):
        self.refused += 1
        f = {"code": code, "msg": msg, "topic": topic}
        if isinstance(env, dict):
            for k in ("seq", "from"):
                if k in env:
                    f[k] = env[k]
        if reason is not None:
            f["reason"] = reason
        log.warn("mqtt: refused %s: %s" % (code, msg))
        self.event("refused", f)

    def _error(self, msg):
        self.event("error", {"msg": msg[:200]})

    async def _sender(self):
        while True:
            await self._wake.wait()
            self._wake.clear()
            c = self.client
            while self._qn and c.up:
                text = self._q[self._qh]
                try:
                    await c.publish(self.me + EVENT, text, False, 1)
                except LinkError:
                    self._save()
                    break  # kept; sent after the reconnect
                if self._qn and self._q[self._qh] is text:  # not dropped meanwhile
                    self._q[self._qh] = None
                    self._qh = (self._qh + 1) % QUEUE
                    self._qn -= 1
            # At least once: a power cut before this resends what went out (the
            # head-end dedups on boot + n).
            if self._saved and not self._qn:
                storage.remove(EVENTS_FILE)
                self._saved = False

    async def _heartbeat(self):
        age = 0
        while True:
            c = self.client
            sig = self._signature()
            if c.up and (sig != self._last or age >= HEARTBEAT_S):
                doc = json.dumps(status_doc(self))
                try:
                    await c.publish(self.me + STATUS, doc, True, 1)
                    self._last = sig
                    age = 0
                except LinkError:
                    pass
            await asyncio.sleep(1)
            age += 1

    # -- broker and link ------------------------------------------------------
    def _up(self):
        self._last = None  # a fresh status right away: the will may have said offline
        self._wake.set()
        self.event("broker", {"up": True, "reconnects": max(0, self.client.connects - 1)})
        log.info("mqtt: connected to " + self.client.url)

    def _refused(self, why):
        # the broker said no (credentials, an ACL): once per new reason, not per
        # retry, so a refusing broker does not fill the queue or wear the flash
        self.event("broker", {"up": False, "error": why, "refused": True})
        log.warn("mqtt: " + why)

    def _down(self, error):
        self.event("broker", {"up": False, "error": error})
        log.warn("mqtt: disconnected: %s" % error)

    def _link(self, up):
        self.event("link", {"up": up, "info": self.node.link.info()})
        if not up and self.client:
            self.client.drop("link down")

    async def _msg(self, topic, payload, retained):
        async def handle():
            with uses("control.commands") as commands:
                await commands.handle(self, topic, payload, retained)
        try:
            await again_if_short(handle)
        except Exception as e:  # a bug in a handler must not take the node down
            log.error("control: %r" % (e,))
