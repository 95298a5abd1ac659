# Volume and ramps. Volume is 0-100 %, 0.5 dB a step below full scale
# (100 % = 0 dB, 80 % = -10 dB, 0 = mute); every change ramps over RAMP_MS so
# the speaker never steps (no click on volume change, start, stop or preempt).
from ..compat import micropython, ptr16

KEEP = True  # viper code: never unloaded (compat.unload)

RAMP_MS = 20
UNITY = 32768  # Q15


def db_for_volume(v):
    return None if v <= 0 else (v - 100) * 0.5


def q15_for_volume(v):
    if v <= 0:
        return 0
    return int(UNITY * 10 ** (((v - 100) * 0.5) / 20) + 0.5)


@micropython.viper
def _apply(buf, n: int, g: int, target: int, step: int) -> int:
    p = ptr16(buf)
    i = 0
    while i < n:
        if g < target:
            g += step
            if g > target:
                g = target
        elif g > target:
            g -= step
            if g < target:
                g = target
        s = int(p[i])
        if s >= 32768:
            s -= 65536
        p[i] = ((s * g) >> 15) & 0xFFFF
        i += 1
    return g


@micropython.viper
def peak(buf, n: int) -> int:
    """Largest |sample| of n int16 samples: the level meter's input."""
    p = ptr16(buf)
    m = 0
    i = 0
    while i < n:
        s = int(p[i])
        if s >= 32768:
            s = 65536 - s
        if s > m:
            m = s
        i += 1
    return m


class Gain:
    """Scales int16 samples in place toward a target gain with a linear ramp."""

    def __init__(self, rate=16000):
        self.g = 0
        self.target = 0
        self.set_rate(rate)

    def set_rate(self, rate):
        self.step = max(1, UNITY // (rate * RAMP_MS // 1000))

    def set_volume(self, v):
        self.target = q15_for_volume(v)

    def fade_out(self):
        self.target = 0

    def silent(self):
        return self.g == 0 and self.target == 0

    def apply(self, buf, nsamples):
        self.g = _apply(buf, nsamples, self.g, self.target, self.step)
