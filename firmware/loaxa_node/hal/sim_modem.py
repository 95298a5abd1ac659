# The sim's LTE modem (board sim-lte): LOAXA_MODEM=host:port is the rig's AT
# responder (loaxa.rig.modem). One TCP connection is one power-on of the
# modem, so the rig sees the node's power cycles through the pwrkey.
import os
import socket
import time

PWRKEY_OFF_MS = 2500  # a press this long powers the modem off (SIM7600); shorter: on


class _Silent:
    """A modem that is off or absent: the line is silent."""

    def readinto(self, buf):
        return None

    def write(self, data):
        return len(data)


class SimModem:
    def __init__(self):
        self._sock = None  # while powered and connected
        self._on = True  # like a module that powers up with the board
        self._pressed = time.ticks_ms()

    def uart(self):
        if self._sock is None and self._on:
            host, _, port = (os.getenv("LOAXA_MODEM") or "").rpartition(":")
            s = socket.socket()
            try:
                s.connect(socket.getaddrinfo(host, int(port))[0][-1])
            except (OSError, ValueError, IndexError):
                s.close()
                return _Silent()
            s.setblocking(False)
            self._sock = s
        return self._sock or _Silent()

    def pwrkey(self, pressed):
        if pressed:
            self._pressed = time.ticks_ms()
            return
        held = time.ticks_diff(time.ticks_ms(), self._pressed)
        if held < PWRKEY_OFF_MS:
            self._on = True
        elif self._on:
            self._on = False
            if self._sock:
                self._sock.close()
                self._sock = None


class SimPpp:
    """network.PPP's interface for the sim: the node's traffic goes over the
    host's network, so the data line carries nothing; what the modem says on
    it is the carrier: NO CARRIER, or the line closing (power off), take the
    link down, as a real modem's hang-up ends PPP."""

    def __init__(self, uart):
        self.uart = uart
        self._up = False
        self._buf = bytearray(32)
        self._tail = b""

    def active(self, on=None):
        if on is not None and not on:
            self._up = False
        return self._up

    def connect(self, **kw):
        self._up = True
        self._tail = b""

    def isconnected(self):
        if self._up:
            n = self.uart.readinto(self._buf)
            if n == 0:
                self._up = False  # the modem closed the line
            elif n:
                self._tail = (self._tail + bytes(self._buf[:n]))[-24:]
                if b"NO CARRIER" in self._tail:
                    self._up = False
        return self._up

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1") if self._up \
            else ("0.0.0.0",) * 4
