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
        self._led = self._out(pins.get("led"))
        b = pins.get("button")
        self._button = None
        if b is not None:
            self._button = machine.Pin(b, machine.Pin.IN, machine.Pin.PULL_UP)
        self._wlan = None
        self._lan = None

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

    def temperature(self):
        import esp32
        f = getattr(esp32, "mcu_temperature", None)
        if f:
            return f()
        f = getattr(esp32, "raw_temperature", None)  # original ESP32: Fahrenheit
        return round((f() - 32) / 1.8, 1) if f else None

    def net_status(self):
        nets = self.board.get("net", [])
        if "eth" in nets and self._lan is not None and self._lan.isconnected():
            return {"type": "eth", "up": True, "ip": self._lan.ifconfig()[0], "signal": None}
        if "wifi" in nets and self._wlan is not None:
            up = self._wlan.isconnected()
            rssi = None
            if up:
                try:
                    rssi = self._wlan.status("rssi")
                except (OSError, ValueError):
                    pass
            return {"type": "wifi", "up": up, "signal": rssi}
        return {"type": "none", "up": False, "signal": None}

    def net_start(self, cfg):
        """Bring up the declared interface the config asks for (no waiting)."""
        import network
        kind = cfg["net.type"]
        nets = self.board.get("net", [])
        if kind not in nets:
            return False
        if kind == "wifi":
            self._wlan = network.WLAN(network.STA_IF)
            self._wlan.active(True)
            self._wlan.connect(cfg["net.ssid"], cfg["net.password"])
        elif kind == "eth":
            e = self.board["eth"]
            phy = getattr(network, "PHY_" + e["phy"])
            # The stubs lack the ESP32 port's keywords (docs: esp32 quickref, LAN).
            self._lan = network.LAN(  # type: ignore[call-arg]
                mdc=machine.Pin(e["mdc"]), mdio=machine.Pin(e["mdio"]),
                power=machine.Pin(e["power"]), phy_type=phy, phy_addr=e["phy_addr"],
                ref_clk=machine.Pin(e["ref_clk"]), ref_clk_mode=machine.Pin.OUT)
            self._lan.active(True)
        return True

    def audio_sink(self):
        kind = self.board["audio"]["sink"]
        if kind == "i2s":
            from ..sink_i2s import I2sSink
            return I2sSink(self.board["audio"])
        from ..sink_null import NullSink
        return NullSink()
