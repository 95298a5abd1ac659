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


class SimHal(Hal):
    name = "sim"

    def __init__(self, board):
        Hal.__init__(self, board)
        self._rtc = self._load_rtc()
        self._amp = False
        self._led = False
        self.wdt_feeds = 0

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

    def temperature(self):
        return 40.0

    def net_status(self):
        return {"type": "sim", "up": True, "signal": None}

    def audio_sink(self):
        from ..sink_wav import WavSink
        return WavSink(os.getenv("LOAXA_AUDIO_DIR") or "audio")

