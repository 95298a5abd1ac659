# Wi-Fi station and Ethernet link drivers for the link manager (link.py), through the port's
# network interfaces. Loaded only on boards that declare "wifi" or "eth".
# Only STA_IF is ever made: a node never opens an access point (DESIGN 8).
import asyncio

from .link import LinkError

CONNECT_S = 20


class Netif:
    def __init__(self, kind, node):
        self.kind = kind
        self.node = node
        hal = node.hal
        self.nic = hal.wlan() if kind == "wifi" else hal.lan()
        self.signal = None

    async def connect(self):
        nic = self.nic
        nic.active(True)
        if self.kind == "wifi":
            cfg = self.node.cfg
            nic.connect(cfg["net.ssid"], cfg["net.password"])
        for _ in range(CONNECT_S * 4):
            if self.is_up():
                if self.kind == "wifi":
                    try:
                        self.signal = {"dbm": nic.status("rssi")}
                    except (OSError, ValueError):
                        self.signal = None
                return nic.ifconfig()[0]
            await asyncio.sleep_ms(250)
        raise LinkError("no link within %d s" % CONNECT_S)

    def is_up(self):
        # isconnected() can be True before DHCP has given an address
        return self.nic.isconnected() and self.nic.ifconfig()[0] != "0.0.0.0"

    def close(self):
        if self.kind == "wifi":
            self.nic.disconnect()

