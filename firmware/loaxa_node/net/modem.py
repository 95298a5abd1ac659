# LTE modem link: AT dialogue on a UART, then PPP (network.PPP, v1.23 API).
# Loaded only on boards that declare "lte". A link driver for the link manager (link.py): it
# assumes a good modem and raises LinkError on the first thing that is not;
# the link manager owns retries and back-off.
#
#   AT (probe; silent -> power cycle on the pwrkey) -> ATE0 -> AT+CPIN? (SIM)
#   -> AT+CSQ (signal) -> AT+CEREG?/AT+CREG? (registered) -> AT+CGDCONT (APN)
#   -> ATD*99# (CONNECT) -> PPP until the address is there.
#
# The HAL gives the UART (machine.UART; on the sim a socket to the rig's
# modem), drives the pwrkey pin and makes the PPP interface.
import asyncio
import time

from .. import log
from .link import LinkError

CMD_MS = 2000  # a modem answers a plain command within this
DIAL_MS = 30000
PPP_MS = 30000  # CONNECT -> IP address
REG_S = 60  # registration may take this long after power-on
BOOT_S = 15  # power-on -> answers AT (SIM7600: about 12 s)
PWRKEY_OFF_MS = 3000  # SIM7600 hardware design: >= 2.5 s low powers it off,
PWRKEY_ON_MS = 600  # >= 0.5 s powers it on
GUARD_MS = 1100  # silence around "+++" (escape to command mode)
LINE_MAX = 120


def csq_signal(rssi):
    """AT+CSQ rssi (3GPP TS 27.007 section 8.5) -> {"csq", "dbm"}; 99 = unknown."""
    if not 0 <= rssi <= 31:
        return None
    return {"csq": rssi, "dbm": -113 + 2 * rssi}


def _field(lines, prefix, i):
    """Integer field i of the line that starts with prefix ("+CSQ: 20,99")."""
    for ln in lines:
        if ln.startswith(prefix):
            try:
                return int(ln[len(prefix):].split(",")[i])
            except (ValueError, IndexError):
                return None
    return None


class Modem:
    def __init__(self, node):
        self.node = node  # node.cfg["net.apn"] is read at each dial: a change needs no restart
        self.hal = node.hal
        self.lte = node.board["lte"]
        self.uart = self.hal.modem_uart(self.lte)
        self.ppp = None
        self._ppp_uart = None
        self._ppp_on = False
        self.signal = None
        self.power_cycles = 0
        self._online = False  # the modem may still be in data mode
        self._buf = bytearray(64)
        self._line = bytearray()
        self._lines = []

    # -- lines --------------------------------------------------------------
    def _feed(self, n):
        b = self._buf
        ln = self._line
        for i in range(n):
            c = b[i]
            if c == 10:
                if ln:
                    self._lines.append(ln.decode())
                    ln = self._line = bytearray()
            elif 32 <= c < 127 and len(ln) < LINE_MAX:  # PPP bytes and noise dropped
                ln.append(c)

    async def _readline(self, timeout_ms):
        t0 = time.ticks_ms()
        while not self._lines:
            n = self.uart.readinto(self._buf)
            if n:
                self._feed(n)
                continue
            if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
                return None
            await asyncio.sleep_ms(10)
        return self._lines.pop(0)

    def _drain(self):
        while self.uart.readinto(self._buf):
            pass
        self._lines = []
        self._line = bytearray()

    async def cmd(self, at, want="OK", timeout_ms=CMD_MS):
        """Send one command; the lines it answered before `want`. A refusal
        (ERROR, +CME ERROR, NO CARRIER...) or silence raises LinkError."""
        self._drain()
        self.uart.write(at + "\r")
        t0 = time.ticks_ms()
        got = []
        while True:
            ln = await self._readline(timeout_ms - time.ticks_diff(time.ticks_ms(), t0))
            if ln is None:
                raise LinkError("modem: no answer to " + at)
            if ln == at:
                continue  # the modem's echo (before ATE0)
            if ln.startswith(want):
                got.append(ln)
                return got
            if ln in ("ERROR", "NO CARRIER", "BUSY", "NO DIALTONE", "NO ANSWER") or \
                    ln.startswith("+CME ERROR"):
                raise LinkError("modem: %s -> %s" % (at, ln))
            got.append(ln)

    async def _probe(self, tries=3):
        for _ in range(tries):
            try:
                await self.cmd("AT", timeout_ms=1000)
                return True
            except LinkError:
                pass
        return False

    # -- power --------------------------------------------------------------
    async def _press(self, ms):
        self.hal.modem_pwrkey(self.lte, True)
        await asyncio.sleep_ms(ms)
        self.hal.modem_pwrkey(self.lte, False)

    async def power_cycle(self):
        """Off and on again through the pwrkey pin, then wait for it to answer."""
        if self.lte.get("pwrkey") is None:
            raise LinkError("modem not answering (the board has no pwrkey to power-cycle it)")
        self.close()
        self.power_cycles += 1
        log.warn("modem not answering: power cycle #%d" % self.power_cycles)
        await self._press(PWRKEY_OFF_MS)
        await asyncio.sleep_ms(PWRKEY_OFF_MS)
        await self._press(PWRKEY_ON_MS)
        self.uart = self.hal.modem_uart(self.lte)
        self._online = False
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < BOOT_S * 1000:
            if await self._probe(1):
                return
        raise LinkError("modem not answering after a power cycle")

    # -- the link driver interface -----------------------------------------
    async def connect(self):
        ok = await self._probe()
        if not ok and self._online:
            # still in data mode after a PPP session: escape (Hayes "+++")
            await asyncio.sleep_ms(GUARD_MS)
            self.uart.write(b"+++")
            await asyncio.sleep_ms(GUARD_MS)
            ok = await self._probe()
        if not ok:
            await self.power_cycle()
        self._online = False
        await self.cmd("ATE0")
        try:
            lines = await self.cmd("AT+CPIN?")
        except LinkError as e:  # +CME ERROR: 10 not inserted, 13 failure (TS 27.007 9.2)
            raise LinkError("SIM not ready (%s)" % str(e).rpartition("-> ")[2])
        if "+CPIN: READY" not in lines:  # e.g. "+CPIN: SIM PIN": locked
            raise LinkError("SIM not ready (%s)" % " ".join(lines))
        rssi = _field(await self.cmd("AT+CSQ"), "+CSQ: ", 0)
        self.signal = csq_signal(rssi) if rssi is not None else None
        await self._registered()
        await self.cmd('AT+CGDCONT=1,"IP","%s"' % self.node.cfg["net.apn"])
        await self.cmd("ATD*99#", "CONNECT", DIAL_MS)
        self._online = True
        return await self._ppp_up()

    async def _registered(self):
        t0 = time.ticks_ms()
        while True:
            for q in ("AT+CEREG?", "AT+CREG?"):  # LTE first, then circuit-switched
                try:
                    st = _field(await self.cmd(q), q[2:-1] + ": ", 1)
                except LinkError:
                    continue  # a modem without this query
                if st in (1, 5):  # home, roaming
                    return
                if st == 3:
                    raise LinkError("registration denied (%s)" % q[3:-1])
            if time.ticks_diff(time.ticks_ms(), t0) > REG_S * 1000:
                raise LinkError("not registered after %d s" % REG_S)
            await asyncio.sleep_ms(1000)

    async def _ppp_up(self):
        if self.ppp is None or self._ppp_uart is not self.uart:
            self.ppp = self.hal.ppp(self.uart)
            self._ppp_uart = self.uart
        ppp = self.ppp
        ppp.active(True)
        self._ppp_on = True
        ppp.connect()
        t0 = time.ticks_ms()
        # isconnected() is briefly True with an all-zero address while IPCP
        # fails (shared/qemu facts): the address is what counts
        while not self.is_up():
            if time.ticks_diff(time.ticks_ms(), t0) > PPP_MS:
                raise LinkError("PPP: no address within %d s" % (PPP_MS // 1000))
            await asyncio.sleep_ms(50)
        return ppp.ifconfig()[0]

    def is_up(self):
        p = self.ppp
        return p is not None and self._ppp_on and p.isconnected() and \
            p.ifconfig()[0] != "0.0.0.0"

    def close(self):
        p = self.ppp
        if p is not None and self._ppp_on:
            self._ppp_on = False
            p.active(False)
