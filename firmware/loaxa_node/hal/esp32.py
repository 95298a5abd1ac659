# ESP32 hardware: machine, network and esp32 modules. Only what the board
# declares is touched (QEMU crashes on an undeclared radio or MAC).
import binascii

import machine

from .. import timeutil
from . import Hal

_CAUSES = {
    machine.PWRON_RESET: "power_on",
    machine.HARD_RESET: "hard",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deepsleep",
    machine.SOFT_RESET: "soft",
}


class Esp32Hal(Hal):
    name = "esp32"

    def __init__(self, board):
        Hal.__init__(self, board)
        pins = board.get("pins", {})
        self._rtc = machine.RTC()
        self._wdt = None
        self._amp = self._out(pins.get("amp_enable"))
        f = pins.get("amp_fault")  # an open-drain FAULT output (TPA31xx), low = fault
        self._fault = None if f is None else machine.Pin(f, machine.Pin.IN, machine.Pin.PULL_UP)
        self._led = self._out(pins.get("led"))
        b = pins.get("button")
        self._button = None
        if b is not None:
            self._button = machine.Pin(b, machine.Pin.IN, machine.Pin.PULL_UP)
        self._uart = None
        self._pwrkey = None

    @staticmethod
    def _out(n):
        if n is None:
            return None
        p = machine.Pin(n, machine.Pin.OUT)
        p.value(0)
        return p

    def unique_id(self):
        return binascii.hexlify(machine.unique_id()).decode()

    def reset_cause(self):
        return _CAUSES.get(machine.reset_cause(), "unknown")

    def reset(self):
        machine.reset()

    def rtc_now(self):
        # From the calendar fields, not time.time(): the port's epoch is not ours.
        y, mo, d, _, hh, mi, ss, us = self._rtc.datetime()
        return timeutil.t2k(y, mo, d, hh, mi, ss), us // 1000

    def rtc_set(self, t, ms=0):
        y, mo, d, hh, mi, ss, wd = timeutil.civil(t)
        self._rtc.datetime((y, mo, d, wd, hh, mi, ss, ms * 1000))

    def rtc_memory(self, data=None):
        if data is None:
            return self._rtc.memory()
        self._rtc.memory(data)

    def wdt_start(self, timeout_ms):
        self._wdt = machine.WDT(timeout=timeout_ms)

    def wdt_feed(self):
        if self._wdt:
            self._wdt.feed()

    def led(self, on):
        if self._led:
            self._led.value(1 if on else 0)

    def amp(self, on):
        if self._amp:
            self._amp.value(1 if on else 0)

    def button(self):
        return self._button is not None and self._button.value() == 0

    def amp_fault(self):
        if self._fault is None:
            return None
        return "fault" if self._fault.value() == 0 else False

    def temperature(self):
        import esp32
        f = getattr(esp32, "mcu_temperature", None)
        if f:
            return f()
        f = getattr(esp32, "raw_temperature", None)  # original ESP32: Fahrenheit
        return round((f() - 32) / 1.8, 1) if f else None

    def wlan(self):
        import network
        return network.WLAN(network.STA_IF)  # never AP_IF (DESIGN section 8)

    def lan(self):
        import network
        e = self.board["eth"]
        phy = getattr(network, "PHY_" + e["phy"])
        # The stubs lack the ESP32 port's keywords (docs: esp32 quickref, LAN).
        return network.LAN(  # type: ignore[call-arg]
            mdc=machine.Pin(e["mdc"]), mdio=machine.Pin(e["mdio"]),
            power=machine.Pin(e["power"]), phy_type=phy, phy_addr=e["phy_addr"],
            ref_clk=machine.Pin(e["ref_clk"]), ref_clk_mode=machine.Pin.OUT)

    def modem_uart(self, lte):
        if self._uart is None:
            # timeout 0: reads return at once (None when empty); the PPP task
            # reads in bursts, so a roomy receive buffer (IDF heap, not GC)
            self._uart = machine.UART(lte["uart"], lte["baud"], tx=lte["tx"], rx=lte["rx"],
                                      timeout=0, rxbuf=2048)
        return self._uart

    def modem_pwrkey(self, lte, pressed):
        # through the usual NPN stage: GPIO high pulls the modem's PWRKEY low
        if self._pwrkey is None:
            self._pwrkey = self._out(lte["pwrkey"])
        self._pwrkey.value(1 if pressed else 0)

    def ppp(self, uart):
        import network
        return network.PPP(uart)

    def audio_sink(self):
        kind = self.board["audio"]["sink"]
        if kind == "i2s":
            from ..audio.sink_i2s import I2sSink
            return I2sSink(self.board["audio"])
        from ..audio.sink_null import NullSink
        return NullSink()
