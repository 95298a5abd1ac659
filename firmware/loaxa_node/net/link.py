# The link manager: the one owner of the node's network (DESIGN sections 7, 8).
#
# It tries the links the board declares, wired first, then Wi-Fi, then the LTE
# modem (net.type, when set, goes first); on the sim the only link is the
# host's network. A driver (hal/sim.HostLink, net/netif, net/modem: each board
# loads only its own) speaks its link assuming all is well and raises LinkError
# when it is not; this layer owns reconnect: jittered exponential back-off,
# never a reboot, never an access point. A driver has connect() -> address,
# is_up(), close() and a signal attribute.
# Consumers: node.link.is_up(), await wait_up(), on_change(cb), info().
import asyncio
import time

from .. import log
from ..compat import backoff_ms

BACKOFF_MS = (2000, 300000)  # first and longest wait after every link failed
CHECK_MS = 1000  # how often an up link is looked at
RECHECK_S = 60  # on a fallback link, how often to look whether the cable is back
# The link types, in the order the manager prefers them (DESIGN section 7: a
# wired link first); config net.type and the board files take them from here.
LINK_TYPES = ("eth", "wifi", "lte")


class LinkError(OSError):
    """A link failed: no carrier, no answer, refused, a connection lost. The one
    "link failed" error of every layer (drivers, MQTT): whoever owns the link
    or connection retries (this manager; the MQTT Client its connection)."""


def kinds(board, cfg):
    """The links to try, best first."""
    if board.get("chip") == "sim" and not board.get("net"):
        return ["host"]
    nets = board.get("net", [])
    want = cfg.get("net.type")
    out = [want] if want in nets else []
    for k in LINK_TYPES:
        if k in nets and k not in out and (k != "wifi" or cfg.get("net.ssid")):
            out.append(k)
    return out


class Link:
    def __init__(self, node):
        self.node = node
        self.kinds = kinds(node.board, node.cfg)
        self.type = None
        self.up = False
        self.addr = None
        self.signal = None
        self.error = None
        self.reconnects = 0
        self._ups = 0
        self._t_up = time.ticks_ms()
        self._drivers = {}
        self._cbs = []
        self._event = asyncio.Event()
        self._task = None

    # -- what consumers use -------------------------------------------------
    def is_up(self):
        return self.up

    async def wait_up(self):
        while not self.up:
            await self._event.wait()

    def on_change(self, cb):
        """cb(up) runs in the manager's task on every up/down change: keep it short."""
        self._cbs.append(cb)

    def info(self):
        return {"type": self.type, "up": self.up, "addr": self.addr, "signal": self.signal,
                "up_s": time.ticks_diff(time.ticks_ms(), self._t_up) // 1000
                if self.up else None,
                "reconnects": self.reconnects, "error": self.error}

    # -- the manager --------------------------------------------------------
    def start(self):
        if not self.kinds:
            self.error = "the board declares no network"
            return None
        self._task = asyncio.create_task(self._run())
        return self._task

    def _driver(self, kind):
        d = self._drivers.get(kind)
        if d is None:
            hal = self.node.hal
            # each board loads only the drivers it declares
            if kind == "host":
                d = hal.host_link()
            elif kind == "lte":
                from .modem import Modem
                d = Modem(self.node)
            else:
                from .netif import Netif
                d = Netif(kind, self.node)
            self._drivers[kind] = d
        return d

    def _set(self, up):
        if up == self.up:
            return
        self.up = up
        if up:
            self._t_up = time.ticks_ms()
            self._ups += 1
            if self._ups > 1:
                self.reconnects += 1
            self._event.set()
        else:
            self._event.clear()
        log.info("link %s %s%s" % (self.type, "up" if up else "down",
                                   " " + self.addr if up and self.addr else ""))
        for cb in self._cbs:
            try:
                cb(up)
            except Exception as e:  # a consumer's bug must not stop the network
                log.error("link callback: %r" % e)

    async def _run(self):
        fails = 0
        while True:
            for kind in self.kinds:
                self.type = kind
                t0 = time.ticks_ms()
                d = None
                try:
                    d = self._driver(kind)
                    self.addr = await d.connect()
                    self.signal = d.signal
                    self.error = None
                    log.info("link %s connected in %d ms" % (
                        kind, time.ticks_diff(time.ticks_ms(), t0)))
                    self._set(True)
                    fails = 0
                    await self._watch(d, kind)
                except LinkError as e:
                    self.error = str(e)
                    log.warn("link %s: %s" % (kind, e))
                except OSError as e:  # a port's own error from a socket or UART
                    self.error = "%s: %r" % (kind, e)
                    log.warn("link " + self.error)
                self._set(False)
                self.addr = None
                if d:
                    d.close()
                if fails == 0 and self._ups:
                    break  # a link that was up and fell: back to the best one
            fails += 1
            wait = backoff_ms(fails, *BACKOFF_MS)
            log.info("link: retry in %d ms" % wait)
            await asyncio.sleep_ms(wait)

    async def _watch(self, d, kind):
        n = 0
        while True:
            await asyncio.sleep_ms(CHECK_MS)
            if not d.is_up():
                raise LinkError("link lost")
            n += 1
            if kind != self.kinds[0] and self.kinds[0] == "eth" and n >= RECHECK_S:
                n = 0
                if self._driver("eth").nic.isconnected():
                    raise LinkError("wired link is back")

    def deinit(self):
        if self._task:
            self._task.cancel()
        for d in self._drivers.values():
            d.close()
