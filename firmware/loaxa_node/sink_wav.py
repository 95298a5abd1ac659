# The sim's speaker: consumes 16-bit mono samples at the real sample rate, like
# an I2S DMA ring, and records what a listener would hear into WAV files.
# When the writer falls behind, the real hardware plays silence: the sink
# writes that silence too and counts an underrun, so gaps show up in the WAV.
import asyncio
import os
import struct
import time

_BUF_MS = 100  # depth of the emulated DMA ring
_ZEROS = bytearray(512)


class WavSink:
    def __init__(self, folder):
        self.folder = folder
        self.rate = 0
        self.underruns = 0
        self.frames = 0
        self._f = None
        self._t0 = time.ticks_us()
        self._data_bytes = 0
        self._since_patch = 0
        try:
            os.mkdir(folder)
        except OSError:
            pass
        self._log = open(folder + "/timing.log", "a")

    def _event(self, what):
        self._log.write("%.3f %s\n" % (time.time(), what))
        self._log.flush()

    def _next_name(self):
        n = 0
        for name in os.listdir(self.folder):
            if name.endswith(".wav"):
                try:
                    n = max(n, int(name[:-4]) + 1)
                except ValueError:
                    pass
        return "%04d.wav" % n

    def open(self, rate):
        if self._f:
            self.close()
        self.rate = rate
        name = self._next_name()
        f = self._f = open(self.folder + "/" + name, "wb")
        self._data_bytes = 0
        self._since_patch = 0
        self._write_header(f)
        self.frames = 0
        self._event("open %s %d" % (name, rate))

    def _write_header(self, f):
        f.seek(0)
        n = self._data_bytes
        f.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt ")
        f.write(struct.pack("<IHHIIHH", 16, 1, 1, self.rate, self.rate * 2, 2, 16))
        f.write(b"data" + struct.pack("<I", n))
        f.seek(44 + n)

    def _played(self):
        return time.ticks_diff(time.ticks_us(), self._t0) * self.rate // 1000000

    def _put(self, f, buf):
        f.write(buf)
        self._data_bytes += len(buf)
        self._since_patch += len(buf)
        if self._since_patch >= self.rate * 2:  # keep the header valid each second
            self._since_patch = 0
            self._write_header(f)

    async def write(self, buf):
        """Queue len(buf)//2 samples; waits while the ring is full."""
        f = self._f
        if f is None:
            raise OSError("sink not open")
        if self.frames == 0:
            self._t0 = time.ticks_us()  # the ring starts playing with the first write
        lag = self._played() - self.frames
        if lag > 0:
            self.underruns += 1
            self._event("underrun %d" % lag)
            self.frames += lag
            lag *= 2
            while lag > 0:
                k = min(lag, len(_ZEROS))
                self._put(f, memoryview(_ZEROS)[:k])
                lag -= k
        self._put(f, buf)
        self.frames += len(buf) // 2
        ahead_us = (self.frames - self._played()) * 1000000 // self.rate
        if ahead_us > _BUF_MS * 1000:
            await asyncio.sleep_ms((ahead_us - _BUF_MS * 1000) // 1000)

    async def drain(self):
        """Wait until everything written has been played."""
        if self._f:
            ahead = self.frames - self._played()
            if ahead > 0:
                await asyncio.sleep_ms(ahead * 1000 // self.rate)

    def close(self):
        f = self._f
        if f is not None:
            self._write_header(f)
            f.close()
            self._f = None
            self._event("close %d" % self.frames)

    def deinit(self):
        self.close()
        self._log.close()
