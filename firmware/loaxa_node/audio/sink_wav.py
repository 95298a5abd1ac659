# The sim's speaker: the paced null sink that also records what a listener
# would hear into WAV files, with a timing log of wall-clock events (open,
# close, underruns) that tests and `make bench` read.
import os
import struct
import time

from .sink_null import NullSink

_ZEROS = bytearray(512)


class WavSink(NullSink):
    def __init__(self, folder, ppm=0):
        NullSink.__init__(self, ppm)
        self.folder = folder
        self._f = None
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
        NullSink.open(self, rate)
        name = self._next_name()
        self._f = open(self.folder + "/" + name, "wb")
        self._data_bytes = 0
        self._since_patch = 0
        self._write_header()
        self._event("open %s %d" % (name, rate))

    def _write_header(self):
        f = self._f
        if f is None:
            return
        f.seek(0)
        n = self._data_bytes
        f.write(b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt ")
        f.write(struct.pack("<IHHIIHH", 16, 1, 1, self.rate, self.rate * 2, 2, 16))
        f.write(b"data" + struct.pack("<I", n))
        f.seek(44 + n)

    def _put(self, buf):
        f = self._f
        if f is None:
            return
        if self.frames == 0:
            self._event("first")  # wall clock of the first sample (latency bench)
        f.write(buf)
        self._data_bytes += len(buf)
        self._since_patch += len(buf)
        if self._since_patch >= self.rate * 2:  # keep the header valid each second
            self._since_patch = 0
            self._write_header()

    def _silence(self, nsamples):
        self._event("underrun %d" % nsamples)
        n = 2 * nsamples
        while n > 0:
            k = min(n, len(_ZEROS))
            self._put(memoryview(_ZEROS)[:k])
            n -= k

    def close(self):
        if self._f:
            self._write_header()
            self._f.close()
            self._f = None
            self._event("close %d" % self.frames)
        NullSink.close(self)

    def deinit(self):
        self.close()
        self._log.close()
