"""When a clock set makes the rules re-plan, identical on both interpreters."""

import json

# A set moves the clock (seconds, ms) from where it stands to where it is set;
# the answer is whether the scheduler was woken.
SCRIPT = """
import json
from loaxa_node.clock import Clock

class Rtc:
    def __init__(self):
        self.t, self.ms, self.mem = 0, 0, b""
    def rtc_now(self):
        return self.t, self.ms
    def rtc_set(self, t, ms=0):
        self.t, self.ms = t, ms
    def rtc_memory(self, data=None):
        if data is None:
            return self.mem
        self.mem = data

hal = Rtc()
c = Clock(hal)
woken = []
c.on_set = lambda: woken.append(1)
out = []
for t, ms in STEPS:
    n = len(woken)
    c.set(t, ms, "sntp")
    out.append(len(woken) > n)
print(json.dumps(out))
"""

T = 881_000_000  # 2027-12 on the 2000 epoch
STEPS = [
    (T, 0),  # the first sync after a power cut: vouches for the time
    (T, 40),  # an hourly resync, 40 ms off
    (T, 980),  # 980 ms: still no schedule moves
    (T + 2, 0),  # a clock that drifted 1 s and more
    (T - 5, 500),  # set back
]
WOKEN = [True, False, False, True, True]


def _clock(steps):
    ns: dict = {}
    exec(SCRIPT.replace("STEPS", repr(steps)).replace("print(json.dumps(out))", ""), ns)
    return ns


def test_a_sync_wakes_the_scheduler_only_when_it_moves_or_vouches_for_the_time():
    assert _clock(STEPS)["out"] == WOKEN


def test_a_resync_after_the_trust_ran_out_wakes_it():
    ns = _clock([(T, 0)])
    ns["hal"].t += 25 * 3600  # a day and more without a sync: the trust ran out
    ns["c"].set(ns["hal"].t, 0)
    assert len(ns["woken"]) == 2


def test_same_answers_under_micropython(upy):
    assert upy.json(SCRIPT.replace("STEPS", repr(STEPS))) == json.loads(json.dumps(WOKEN))
