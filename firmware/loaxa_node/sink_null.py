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
        self._t0 = time.ticks_us()

    def open(self, rate):
        if self.is_open:
            self.close()
        self.rate = rate
        self.frames = 0
        self.is_open = True

    def _played(self):
        us = time.ticks_diff(time.ticks_us(), self._t0)
        n = us * self.rate // 1000000
        if self.ppm:
            n += us * self.rate // 1000000 * self.ppm // 1000000
        return n

    def queued_ms(self):
        """Audio written but not yet played."""
        if not self.is_open or not self.frames:
            return 0
        return max(0, self.frames - self._played()) * 1000 // self.rate

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
