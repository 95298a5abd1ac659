# Wall clock and whether to trust it (DESIGN section 6, clock trust).
# The RTC runs on after soft resets; after a power cut it restarts in 2000 and
# the node must not believe it. Trust = a sync (SNTP, head-end hint or a
# technician's clock.set) within TRUST_S, remembered in RTC memory so a soft
# reset keeps it and a power cut drops it.
import json

from . import timeutil

TRUST_S = 24 * 3600


class Clock:
    def __init__(self, hal, tz_offset_min=timeutil.TZ_MIN):
        self.hal = hal
        self.tz_offset_min = tz_offset_min
        try:
            m = json.loads(hal.rtc_memory() or b"{}")
        except ValueError:
            m = {}
        self.synced_at = m.get("synced_at")
        self.source = m.get("source")
        self.on_set = None  # a set that moves or vouches for the time: re-plan

    def now(self):
        return self.hal.rtc_now()[0]

    def now_ms(self):
        s, ms = self.hal.rtc_now()
        return s, ms

    def local(self, t=None):
        return (self.now() if t is None else t) + self.tz_offset_min * 60

    def trusted(self):
        if self.synced_at is None:
            return False
        age = self.now() - self.synced_at
        return 0 <= age <= TRUST_S

    def set(self, t, ms=0, source="console"):
        was, was_ms = self.now_ms()
        replan = not self.trusted() or abs((t - was) * 1000 + ms - was_ms) >= 1000
        self.hal.rtc_set(t, ms)
        self.synced_at = t
        self.source = source
        self.hal.rtc_memory(json.dumps({"synced_at": t, "source": source}).encode())
        # An hourly resync moves the clock by milliseconds: no schedule changes,
        # and a re-plan loads the rules engine from flash in mid-broadcast.
        if self.on_set and replan:
            self.on_set()

    def info(self):
        t, ms = self.now_ms()
        return {
            "synced": self.trusted(),
            "source": self.source,
            "utc": timeutil.iso(t),
            "local": timeutil.iso(t, self.tz_offset_min),
            "t2k": t,
            "ms": ms,
            "since_sync_s": None if self.synced_at is None else t - self.synced_at,
        }
