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
HOG_FILE = ".hog"  # the rig's injected memory leak: KB of GC heap to leave free


class SimHal(Hal):
    name = "sim"

    def __init__(self, board):
        Hal.__init__(self, board)
        self._rtc = self._load_rtc()
        self._amp = False
        self._led = False
        self.wdt_feeds = 0
        self._modem = None
        self._hog = []  # what the injected leak holds

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
        self._leak()

    def _leak(self):
        # A leak the rig can inject and mend, as a board's firmware bug would
        # hold RAM: the heap faults of the node then do not hang on its size.
        try:
            with open(HOG_FILE) as f:
                keep = int(f.read() or 0) * 1024
        except (OSError, ValueError):
            if self._hog:
                self._hog = []
            return
        import gc
        try:
            while gc.mem_free() > keep + 1024:
                self._hog.append(bytearray(1024))
        except MemoryError:  # fragmented: what is held is the leak
            pass

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

    def host_link(self):
        return HostLink()

    # The modem (sim-lte): the rig's, on a socket; its code loads only here
    def _sim_modem(self):
        if self._modem is None:
            from .sim_modem import SimModem
            self._modem = SimModem()
        return self._modem

    def modem_uart(self, lte):
        return self._sim_modem().uart()

    def modem_pwrkey(self, lte, pressed):
        self._sim_modem().pwrkey(pressed)

    def ppp(self, uart):
        from .sim_modem import SimPpp
        return SimPpp(uart)

    def audio_sink(self):
        from ..audio.sink_wav import WavSink
        # the sink's clock error in ppm, set by the launcher (--audio-ppm)
        return WavSink(os.getenv("LOAXA_AUDIO_DIR") or "audio",
                       int(os.getenv("LOAXA_AUDIO_PPM") or 0))


class HostLink:
    """The sim's link driver (net/link.py): the host's network, which the rig
    cuts by leaving LINK_CUT_FILE in the node's directory."""

    signal = None

    async def connect(self):
        if not self.is_up():
            from ..net.link import LinkError
            raise LinkError("host network cut")
        return "127.0.0.1"

    def is_up(self):
        try:
            os.stat(LINK_CUT_FILE)
            return False
        except OSError:
            return True

    def close(self):
        pass
