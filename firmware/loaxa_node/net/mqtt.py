# MQTT 3.1.1 client (OASIS, sections cited as [3.x]) on asyncio, after Peter
# Hinch's mqtt_as: Proto speaks the protocol over one connection assuming it
# works and raises LinkError when it does not; Client owns the connection:
# connect, subscribe, keepalive, and reconnect with jittered back-off.
#
# One receive buffer, allocated once. A packet longer than it is skipped,
# counted and logged, never buffered; a framed packet that breaks the protocol
# is dropped and counted; only lost framing (a bad length) ends the
# connection. QoS 0 and 1 both ways, never 2 (we subscribe at QoS 1 at most,
# so a broker never sends QoS 2).
#
# Pure asyncio on both interpreters: the host's control tool and the benches
# run this same client under CPython.
import asyncio
import time

from ..compat import backoff_ms, uses
from .link import LinkError  # the broker's connection failed: Client reconnects

# Resident once loaded, even when a request loaded it (config.set of the
# broker): a second copy imported later by the modules that use it would
# double its RAM.
KEEP = True

_NODE = hasattr(time, "ticks_ms")  # MicroPython


def _ms():
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000)


def _since(t):
    # ticks wrap on the node; CPython's milliseconds do not
    return time.ticks_diff(_ms(), t) if hasattr(time, "ticks_diff") else _ms() - t


MAX_PACKET = 2048  # bytes kept of one received packet: a signed rule set fits
TIMEOUT_S = 10  # connect, CONNACK, PUBACK
BACKOFF_MS = (1000, 60000)  # first and longest pause between reconnects

class Refused(LinkError):
    """The broker answered and said no: CONNACK with a code, or a SUBACK
    refusing a subscription (0x80). Not connected: Client backs off and
    retries as for any failed connect."""


def len_into(buf, i, n):
    # remaining length [2.2.3] at buf[i:]; returns the index after it
    while True:
        d = n & 0x7F
        n >>= 7
        buf[i] = d | (0x80 if n else 0)
        i += 1
        if not n:
            return i


class Proto:
    def __init__(self, max_packet=MAX_PACKET):
        self.buf = bytearray(max_packet)
        self._mv = memoryview(self.buf)
        self._hdr = bytearray(7)  # type, length, topic length of a PUBLISH
        self._pid2 = bytearray(2)
        self._ack = bytearray(4)  # PUBACK we send
        self._r = None
        self._w = None
        self._into = False  # the reader has readinto (MicroPython)
        self._pid = 0
        self.rx = 0  # packets received
        self.msgs = 0  # PUBLISH handed to on_msg
        self.tx = 0  # PUBLISH sent
        self.oversized = 0
        self.malformed = 0

    def attach(self, r, w):
        """The connection's streams, once open (mqtt_connect.py)."""
        self._r, self._w = r, w
        self._into = hasattr(r, "readinto")

    def next_pid(self):
        self._pid = self._pid % 65535 + 1
        return self._pid

    async def _read(self, n, off=0):
        """Exactly n bytes into the buffer at off."""
        end = off + n
        r = self._r
        while off < end:
            if self._into:
                k = await r.readinto(self._mv[off:end])  # type: ignore[union-attr]
                if k is None:  # TLS: a record not complete yet
                    continue
            else:
                d = await r.read(end - off)  # type: ignore[union-attr]
                k = len(d)
                self.buf[off:off + k] = d
            if not k:
                raise LinkError("broker closed the connection")
            off += k

    async def _skip(self, n):
        while n:
            k = min(n, len(self.buf))
            await self._read(k)
            n -= k

    async def packet(self):
        """Reads one packet's header and as much of its body as the buffer
        holds. Returns (first byte, remaining length); the caller skips what
        is beyond the buffer."""
        await self._read(1)
        b0 = self.buf[0]
        n = 0
        for i in range(4):
            await self._read(1)
            c = self.buf[0]
            n |= (c & 0x7F) << (7 * i)
            if not c & 0x80:
                break
        else:
            self.malformed += 1
            raise LinkError("malformed packet length: framing lost")
        await self._read(min(n, len(self.buf)))
        self.rx += 1
        return b0, n

    async def send(self, *parts):
        w = self._w
        if w is None:
            raise LinkError("not connected")
        for p in parts:
            w.write(p)
        await w.drain()

    async def _publish(self, topic, msg, retain, qos, pid):
        t = topic.encode() if isinstance(topic, str) else topic
        m = msg.encode() if isinstance(msg, str) else msg
        h = self._hdr
        h[0] = 0x30 | (qos << 1) | (1 if retain else 0)
        i = len_into(h, 1, 2 + len(t) + (2 if qos else 0) + len(m))
        h[i] = len(t) >> 8
        h[i + 1] = len(t) & 0xFF
        w = self._w
        if w is None:
            raise LinkError("not connected")
        w.write(memoryview(h)[:i + 2])
        w.write(t)
        if qos:
            self._pid2[0] = pid >> 8
            self._pid2[1] = pid & 0xFF
            w.write(self._pid2)
        w.write(m)
        await w.drain()
        self.tx += 1

    def _close(self):
        w = self._w
        self._r = self._w = None
        if w is not None:
            try:
                w.close()
            except OSError:
                pass


class Client(Proto):
    """Keeps one broker connection up. on_msg(topic bytes, payload memoryview,
    retained) is awaited by the receive loop: the payload is valid only until
    it returns, and it must not await a QoS 1 publish (its PUBACK waits for the
    same loop)."""

    def __init__(self, url, client_id, on_msg, subs=(), will=None, keepalive=60, ca=None,
                 on_up=None, on_down=None, link=None, max_packet=MAX_PACKET, user=None,
                 password=None, on_refused=None):
        Proto.__init__(self, max_packet)
        self.url = url
        self.client_id = client_id
        self.on_msg = on_msg
        self.subs = subs
        self.will = will
        self.keepalive = keepalive
        # a node starts clean (its retained rules come again); a head-end keeps its
        # session so the broker queues the events sent while it was away
        self.clean = True
        self.ca = ca  # DER bytes of the one CA the broker's certificate must chain to
        self.on_up = on_up
        self.on_down = on_down
        # called with the reason when the broker refuses us (not for a network
        # failure), once per new reason: the node turns it into an event
        self.on_refused = on_refused
        self.user = user  # MQTT user name and password sent in CONNECT [3.1.3.4-5]
        self.password = password
        self.link = link
        self.up = False
        self.up_ms = 0
        self.connects = 0
        self.error = None
        self._dead = asyncio.Event()
        self._bye = False
        self._acked = asyncio.Event()
        self._want = 0  # pid of the QoS 1 publish waiting for its PUBACK
        self._last_rx = 0
        self._lock = asyncio.Lock()
        self._task = None
        self._tasks = []

    def info(self):
        return {"url": self.url, "connected": self.up,
                "up_s": _since(self.up_ms) // 1000 if self.up else None,
                "reconnects": max(0, self.connects - 1), "error": self.error}

    def start(self):
        self._task = asyncio.create_task(self._run())
        return self._task

    def drop(self, why="reconnect asked", bye=False):
        """Drop the connection (link down, new subscriptions); safe to call
        twice, and when not connected. bye: say DISCONNECT, so the broker
        does not publish the will (the node is not going offline)."""
        if self.up:
            self.error = why
        self._bye = bye
        self._dead.set()

    async def publish(self, topic, msg, retain=False, qos=0):
        """Send one message; with qos 1 wait for its PUBACK. LinkError when
        not connected or the broker does not answer (the connection is then
        dropped and re-made)."""
        async with self._lock:
            if not self.up:
                raise LinkError("not connected to the broker")
            pid = self.next_pid() if qos else 0
            self._want = pid
            self._acked.clear()
            try:
                await self._publish(topic, msg, retain, qos, pid)
                while qos:
                    try:
                        await asyncio.wait_for(self._acked.wait(), TIMEOUT_S)
                        break
                    except asyncio.TimeoutError:
                        # the PUBACK queues behind every message the broker sent
                        # before it, and a burst of commands takes the receive loop
                        # seconds: only a broker silent for TIMEOUT_S is gone (a
                        # reconnect here dropped a message already being handled)
                        if _since(self._last_rx) >= TIMEOUT_S * 1000:
                            raise
            except (OSError, asyncio.TimeoutError) as e:
                self.drop("publish failed: %s" % (e or "no PUBACK"))
                raise LinkError("publish failed")
            if qos and self._want == pid:  # the connection ended before the PUBACK
                raise LinkError("publish failed: connection lost")

    async def _run(self):
        fails = 0  # attempts since the last connection that got its CONNACK
        while True:
            link = self.link
            if link is not None and not link.is_up():
                await link.wait_up()
            self._dead.clear()
            self._bye = False
            ok = False
            try:
                await self._connect()
                ok = True
            except Exception as e:  # OSError, TimeoutError, ssl and DNS errors
                why = "connect: %s" % (e or type(e).__name__)
                if isinstance(e, Refused) and self.on_refused and why != self.error:
                    self.on_refused(why)
                self.error = why
                self._close()
            if ok:
                self.up = True
                self.up_ms = self._last_rx = _ms()
                self.connects += 1
                self.error = None
                fails = 0
                self._tasks = [asyncio.create_task(self._receive()),
                               asyncio.create_task(self._pinger())]
                if self.on_up:
                    self.on_up()
                await self._dead.wait()
                self.up = False
                for t in self._tasks:
                    t.cancel()
                self._tasks = []
                if self._bye:
                    try:
                        await self.send(b"\xe0\x00")  # DISCONNECT [3.14]
                    except OSError:
                        pass
                self._close()
                self._acked.set()  # a waiting publish gives up at once
                if self.on_down:
                    self.on_down(self.error)
            # jittered: a commune's nodes coming back together do not reconnect in step
            fails += 1
            # a drop() (new password, CA or subscriptions) ends the pause: what
            # failed may work now
            self._dead.clear()
            try:
                await asyncio.wait_for(self._dead.wait(), backoff_ms(fails, *BACKOFF_MS) / 1000)
            except asyncio.TimeoutError:
                pass

    async def _connect(self):
        # A node loads the connect code for the connect only (its own frame:
        # nothing that lives on while connected keeps it); a host (CPython)
        # keeps it, and its module table is not the node's.
        if _NODE:
            with uses("net.mqtt_connect") as mc:
                await mc.connect(self)
        else:
            from .mqtt_connect import connect
            await connect(self)

    async def _pinger(self):
        # PINGREQ [3.12] at half the keepalive; a broker silent for 1.5 of it is gone [3.1.2.10]
        ka = self.keepalive * 1000
        try:
            while True:
                await asyncio.sleep(self.keepalive / 2)
                if _since(self._last_rx) > ka * 3 // 2:
                    self.drop("broker silent past the keepalive")
                    return
                await self.send(b"\xc0\x00")
        except OSError as e:
            self.drop("ping: %s" % e)

    async def _receive(self):
        try:
            while True:
                b0, n = await self.packet()
                self._last_rx = _ms()
                await self.handle(b0, n)
        except OSError as e:
            self.drop(str(e) or "receive failed")
        except Exception as e:  # a bug in a handler must not leave a dead connection up
            self.drop("receive: %r" % (e,))

    async def handle(self, b0, n):
        buf = self.buf
        kept = min(n, len(buf))
        t = b0 >> 4
        if t == 3:  # PUBLISH [3.3]
            qos = (b0 >> 1) & 3
            tl = (buf[0] << 8) | buf[1] if kept >= 2 else 0xFFFF
            pos = 2 + tl + (2 if qos else 0)
            if qos == 3 or n < 2 or pos > n:
                self.malformed += 1
                self._warn("malformed PUBLISH dropped")
            elif pos > kept:
                self.oversized += 1
                self._warn("PUBLISH with a %d-byte topic dropped" % tl)
            else:
                if qos:  # acknowledged even when dropped below: received, refused by policy
                    a = self._ack
                    a[0] = 0x40
                    a[1] = 2
                    a[2] = buf[pos - 2]
                    a[3] = buf[pos - 1]
                    await self.send(a)
                if n > kept:
                    self.oversized += 1
                    self._warn("message of %d bytes on %r dropped (limit %d)" % (
                        n, bytes(buf[2:min(2 + tl, 66)]), len(buf)))
                else:
                    self.msgs += 1
                    await self.on_msg(bytes(buf[2:2 + tl]), self._mv[pos:n], b0 & 1)
        elif t == 4 and n == 2:  # PUBACK [3.4]
            if self._want and (buf[0] << 8) | buf[1] == self._want:
                self._want = 0
                self._acked.set()
        elif t == 9 and n >= 3:  # SUBACK [3.9]: only the connect subscribes and reads it
            self.malformed += 1
            self._warn("unexpected SUBACK dropped")
        elif t == 13 and n == 0:  # PINGRESP
            pass
        else:  # CONNECT, SUBSCRIBE, QoS 2 flow... are never sent to a client
            self.malformed += 1
            self._warn("unexpected packet type %d (%d bytes) dropped" % (t, n))
        if n > kept:
            await self._skip(n - kept)

    def _warn(self, msg):
        from .. import log
        log.warn("mqtt: " + msg)

    def deinit(self):
        for t in self._tasks:
            t.cancel()
        if self._task:
            self._task.cancel()
        self._close()
        self.up = False
