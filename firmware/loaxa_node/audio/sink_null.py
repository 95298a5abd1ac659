# The counting null sink (QEMU boards: no I2S to emulate). It consumes samples
# at the real sample rate, like an I2S DMA ring, so pacing and underruns are
# the same as on hardware; WavSink builds on it to also record what it plays.
import asyncio
import time

_BUF_MS = 100  # depth of the emulated DMA ring


class NullSink:
    def __init__(self, ppm=0):
        """ppm: the clock's error (the sim's sink, `loaxa sim --audio-ppm`):
        +100 plays 100 ppm faster than the nominal rate, as a real I2S clock
        off by that much would."""
        self.ppm = int(ppm)
        self.rate = 0
        self.underruns = 0
        self.frames = 0  # samples written since open, silence of underruns included
        self.is_open = False
        self._t0 = time.ticks_us()  # when the ring started, moved on a whole second at a time
        self._base = 0  # samples (at the nominal rate) played up to _t0

    def open(self, rate):
        if self.is_open:
            self.close()
        self.rate = rate
        self.frames = 0
        self.is_open = True

    def _played(self):
        # ticks_us wraps (after about 9 minutes of ticks_diff on the ESP32 port):
        # the start moves on by whole seconds, whose samples go to _base, so
        # only a difference of under a second or so is ever taken. Small ints.
        us = time.ticks_diff(time.ticks_us(), self._t0)
        if us >= 1000000:
            s = us // 1000000
            self._t0 = time.ticks_add(self._t0, s * 1000000)
            self._base += s * self.rate
            us -= s * 1000000
        rate = self.rate
        n = self._base + (us // 1000 * rate + us % 1000 * rate // 1000) // 1000
        if self.ppm:
            n += n // 1000000 * self.ppm + n % 1000000 * self.ppm // 1000000
        return n

    def queued_ms(self):
        """Audio written but not yet played."""
        if not self.is_open or not self.frames:
            return 0
        return self.queued() * 1000 // self.rate

    def queued(self):
        """The same in samples: to the sample, as an I2S DMA position would say."""
        if not self.is_open or not self.frames:
            return 0
        return max(0, self.frames - self._played())

    def _put(self, buf):
        pass  # a null sink plays into the void

    def _silence(self, nsamples):
        pass  # what the hardware plays when the writer falls behind

    async def write(self, buf):
        """Queue len(buf)//2 samples; waits while the ring is full."""
        if not self.is_open:
            raise OSError("sink not open")
        if self.frames == 0:
            self._t0 = time.ticks_us()  # the ring starts playing with the first write
            self._base = 0
        lag = self._played() - self.frames
        if lag > 0:
            self.underruns += 1
            self._silence(lag)
            self.frames += lag
        self._put(buf)
        self.frames += len(buf) // 2
        ahead_us = (self.frames - self._played()) * 1000000 // self.rate
        if ahead_us > _BUF_MS * 1000:
            await asyncio.sleep_ms((ahead_us - _BUF_MS * 1000) // 1000)

    async def drain(self):
        """Wait until everything written has been played."""
        if self.is_open:
            ahead = self.frames - self._played()
            if ahead > 0:
                await asyncio.sleep_ms(ahead * 1000 // self.rate)

    def close(self):
        self.is_open = False

    def deinit(self):
        self.close()
