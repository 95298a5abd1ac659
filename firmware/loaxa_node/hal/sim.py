# Simulated hardware on the MicroPython unix port, driven by `loaxa sim`.
#
# The launcher owns the emulation: it sets LOAXA_RESET_CAUSE, keeps the RTC in
# .rtc.json (kept across soft resets, reset to year 2000 on a power cut) and
# collects the audio that the sink writes into LOAXA_AUDIO_DIR.
import json
import os
import time

from . import Hal

RTC_FILE = ".rtc.json"
AMP_FAULT_FILE = ".amp-fault"  # the rig's injected amplifier fault: its kind, e.g. "short"
LINK_CUT_FILE = ".link-cut"  # present while the rig has cut the host network
PWRKEY_OFF_MS = 2500  # a press this long powers the modem off (SIM7600); shorter: on


class SimHal(Hal):
    name = "sim"

    def __init__(self, board):
        Hal.__init__(self, board)
        self._rtc = self._load_rtc()
        self._amp = False
        self._led = False
        self.wdt_feeds = 0
        self._modem = None  # the socket to the rig's modem while it is powered
        self._modem_on = True  # like a module that powers up with the board
        self._pressed = time.ticks_ms()

    def _load_rtc(self):
        try:
            with open(RTC_FILE) as f:
                r = json.loads(f.read())
            float(r["offset"])
            return r
        except (OSError, ValueError, KeyError, TypeError):
            # No launcher state: behave like an RTC after power loss.
            return {"offset": -time.time(), "ppm": 0, "t0": time.time(), "mem": ""}

    def _save_rtc(self):
        tmp = RTC_FILE + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(self._rtc))
        os.rename(tmp, RTC_FILE)

    def unique_id(self):
        return os.getenv("LOAXA_UID") or "51a0000000aa"

    def reset_cause(self):
        return os.getenv("LOAXA_RESET_CAUSE") or "power_on"

    def reset(self):
        # SIGUSR1 tells the launcher "soft reset" (RTC kept). sys.exit() would
        # only drop to the REPL, since the VM runs main.py with -i.
        os.system("kill -USR1 $PPID")
        time.sleep(5)

    def rtc_now(self):
        host = time.time()
        r = self._rtc
        t = host + r["offset"] + (host - r["t0"]) * r["ppm"] / 1e6
        s = int(t)
        return s, int((t - s) * 1000)

    def rtc_set(self, t, ms=0):
        host = time.time()
        self._rtc["offset"] = t + ms / 1000 - host
        self._rtc["t0"] = host
        self._save_rtc()

    def rtc_memory(self, data=None):
        if data is None:
            return self._rtc.get("mem", "").encode()
        self._rtc["mem"] = data.decode()
        self._save_rtc()

    def wdt_feed(self):
        self.wdt_feeds += 1

    def led(self, on):
        self._led = on

    def amp(self, on):
        self._amp = on

    def amp_on(self):
        return self._amp

    def amp_fault(self):
        # The sim senses like a board with a fault line, so the rig can break it.
        try:
            with open(AMP_FAULT_FILE) as f:
                return f.read().strip() or "fault"
        except OSError:
            return False

    def temperature(self):
        return 40.0

    def host_link_up(self):
        try:
            os.stat(LINK_CUT_FILE)
            return False
        except OSError:
            return True

    # The modem: LOAXA_MODEM=host:port is the rig's modem (loaxa.rig.modem);
    # a TCP connection is one power-on of it, so the rig sees power cycles.
    def modem_uart(self, lte):
        if self._modem is None and self._modem_on:
            import socket
            host, _, port = (os.getenv("LOAXA_MODEM") or "").rpartition(":")
            s = socket.socket()
            try:
                s.connect(socket.getaddrinfo(host, int(port))[0][-1])
            except (OSError, ValueError, IndexError):
                s.close()
                return _NoModem()
            s.setblocking(False)
            self._modem = s
        return self._modem or _NoModem()

    def modem_pwrkey(self, lte, pressed):
        if pressed:
            self._pressed = time.ticks_ms()
            return
        held = time.ticks_diff(time.ticks_ms(), self._pressed)
        if held >= PWRKEY_OFF_MS and self._modem_on:
            self._modem_on = False
            if self._modem:
                self._modem.close()
                self._modem = None
        elif held < PWRKEY_OFF_MS:
            self._modem_on = True

    def ppp(self, uart):
        return SimPpp(uart)

    def audio_sink(self):
        from ..sink_wav import WavSink
        return WavSink(os.getenv("LOAXA_AUDIO_DIR") or "audio")



class _NoModem:
    """A modem that is off or absent: the line is silent."""

    def readinto(self, buf):
        return None

    def write(self, data):
        return len(data)


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
