# Sine generator for the speaker test (console `tone`) and alert tones.
import math

from ..compat import micropython, ptr16

KEEP = True  # viper code: never unloaded (compat.unload)

# A quarter of a sine turn, 257 points (0 to 90 degrees inclusive): the other
# three quarters are its mirror images, so the table is 514 bytes, not 2 KB
# (a 2 KB block is often not to be had in one piece on a busy heap).
_Q = 256
_TABLE = bytearray(2 * (_Q + 1))
for _i in range(_Q + 1):
    _v = int(32767 * math.sin(math.pi / 2 * _i / _Q))
    _TABLE[2 * _i] = _v & 0xFF
    _TABLE[2 * _i + 1] = _v >> 8


@micropython.viper
def _fill(buf, n: int, phase: int, inc: int, table) -> int:
    # phase is a 22-bit fraction of a turn: its top 10 bits are the point of
    # 1024 per turn, the top 2 of those the quarter
    p = ptr16(buf)
    t = ptr16(table)
    i = 0
    while i < n:
        k = (phase >> 12) & 1023
        j = k & 255
        if k & 256:
            j = 256 - j
        v = t[j]
        if k & 512:
            v = (0 - v) & 0xFFFF
        p[i] = v
        phase = (phase + inc) & 0x3FFFFF
        i += 1
    return phase


class Tone:
    def __init__(self, freq, rate):
        self.inc = int(freq * (1 << 22) / rate) & 0x3FFFFF
        self.phase = 0

    def fill(self, buf, nsamples):
        self.phase = _fill(buf, nsamples, self.phase, self.inc, _TABLE)
