# Sine generator for the speaker test (console `tone`) and alert tones.
import math

from .compat import micropython, ptr16

KEEP = True  # viper code: never unloaded (compat.unload)

_TABLE_BITS = 10
_TABLE = bytearray(2 << _TABLE_BITS)
for _i in range(1 << _TABLE_BITS):
    _v = int(32767 * math.sin(2 * math.pi * _i / (1 << _TABLE_BITS)))
    _TABLE[2 * _i] = _v & 0xFF
    _TABLE[2 * _i + 1] = (_v >> 8) & 0xFF


@micropython.viper
def _fill(buf, n: int, phase: int, inc: int, table) -> int:
    # phase is a 22-bit fraction of a turn: top 10 bits index the table
    p = ptr16(buf)
    t = ptr16(table)
    i = 0
    while i < n:
        p[i] = t[(phase >> 12) & 1023]
        phase = (phase + inc) & 0x3FFFFF
        i += 1
    return phase


class Tone:
    def __init__(self, freq, rate):
        self.inc = int(freq * (1 << 22) / rate) & 0x3FFFFF
        self.phase = 0

    def fill(self, buf, nsamples):
        self.phase = _fill(buf, nsamples, self.phase, self.inc, _TABLE)
