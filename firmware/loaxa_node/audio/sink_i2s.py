# I2S output on ESP32 (machine.I2S, MicroPython >= 1.17): non-blocking writes
# with a completion IRQ, so the player's task never blocks the event loop.
# The DMA buffer (ibuf) is sized from the board's audio.dma_ms budget; the
# driver copies each frame into it, so one staging buffer is enough.
import asyncio
import time

from machine import I2S, Pin

_FRAME_BYTES = 1280  # the player's largest write (320 samples of int16)


class I2sSink:
    def __init__(self, audio):
        self.cfg = audio["i2s"]
        self.dma_ms = audio.get("dma_ms", 120)
        self.rate = 0
        self.underruns = 0
        self.frames = 0
        self.is_open = False
        self._i2s = None
        self._buf = bytearray(_FRAME_BYTES)
        self._mv = memoryview(self._buf)
        self._done = asyncio.ThreadSafeFlag()
        self._busy = False
        self._idle_since = time.ticks_ms()
        self._end = time.ticks_ms()  # when what is queued will have played

    def _irq(self, _):
        # IRQ context: only record and signal (the task does the rest)
        self._busy = False
        self._idle_since = time.ticks_ms()
        self._done.set()

    def open(self, rate):
        if self.is_open:
            self.close()
        c = self.cfg
        self._i2s = I2S(c["id"], sck=Pin(c["sck"]), ws=Pin(c["ws"]), sd=Pin(c["sd"]),
                        mode=I2S.TX, bits=16, format=I2S.MONO, rate=rate,
                        ibuf=max(2048, rate * 2 * self.dma_ms // 1000))
        self._i2s.irq(self._irq)
        self.rate = rate
        self.frames = 0
        self._busy = False
        self.is_open = True

    async def write(self, buf):
        i2s = self._i2s
        if i2s is None:
            raise OSError("sink not open")
        while self._busy:
            await self._done.wait()
        n = len(buf)
        if self.frames and time.ticks_diff(time.ticks_ms(), self._idle_since) > self.dma_ms:
            self.underruns += 1  # the DMA ring ran dry before this write
        self._mv[:n] = buf
        self._busy = True
        i2s.write(self._mv[:n])
        self.frames += n // 2
        now = time.ticks_ms()
        if time.ticks_diff(self._end, now) < 0:
            self._end = now
        self._end = time.ticks_add(self._end, n * 500 // self.rate)

    def queued_ms(self):
        """Audio written but not yet played (estimated from the rate)."""
        return max(0, time.ticks_diff(self._end, time.ticks_ms()))

    def queued(self):
        """The same in samples (the drift loop's level and estimate)."""
        return self.queued_ms() * self.rate // 1000

    async def drain(self):
        while self._busy:
            await self._done.wait()
        await asyncio.sleep_ms(self.dma_ms)  # what is queued in DMA still plays

    def close(self):
        if self._i2s:
            self._i2s.deinit()
            self._i2s = None
        self.is_open = False

    def deinit(self):
        self.close()
