# Plays one source at a time: source -> gain (volume, ramps) -> sink, and
# powers the amplifier only while something plays plus a hold time.
# A source is an object with `rate`, `done` and `async fill(buf, n) -> samples`
# writing int16 mono into buf; the player sets `fading` when it fades it out
# (a stream then makes up audio rather than stop in the middle of the fade).
# A source that reaches its end sets `done` and keeps producing, so the player
# can fade out on real audio instead of cutting.
import asyncio
import time

from .. import log
from ..compat import const
from .gain import Gain, peak

FRAME = const(320)  # samples per sink write: 20 ms at 16 kHz
LEVEL_FRAMES = const(25)  # the level is the peak of this many frames (0.5 s at 16 kHz)


class ToneSource:
    kind = "tone"
    codec = "sine"

    def __init__(self, freq, seconds, rate=16000):
        from .tone import Tone
        self.rate = rate
        self._tone = Tone(freq, rate)
        self._left = int(seconds * rate)
        self.done = False

    async def fill(self, buf, n):
        self._tone.fill(buf, n)
        self._left -= n
        if self._left <= 0:
            self.done = True
        return n


def tone_maker(freq, seconds):
    """The arbiter's make() for a tone. Factories live beside their source: one
    defined in a request's module would keep that module's code in RAM for as
    long as the arbiter holds it (the whole broadcast)."""
    return lambda: ToneSource(freq, seconds)


def stream_maker(sess, depth_ms, player, once=False):
    """The arbiter's make() for an RTP stream; its code loads when it is made.
    once: the end of the link ends the play (a file), not a break to rejoin."""
    def make():
        from .stream import RtpSource
        return RtpSource(sess, depth_ms, player.arena(), player.sink, once=once)
    return make


class Player:
    def __init__(self, hal, hold_s=5, arena_kb=4):
        self.hal = hal
        self.sink = hal.audio_sink()
        self.hold_s = hold_s
        self.gain = Gain()
        # Stream buffers (encoded payloads, 20 ms of decoded audio): taken at
        # boot, before anything can fragment the heap, and kept for good.
        self._arena = bytearray(arena_kb * 1024)
        self._buf = bytearray(2 * FRAME)
        self._mv = memoryview(self._buf)
        self._task = None
        self._amp_task = None
        self.amp = False  # amplifier powered (status shows it)
        self._stopping = False
        self.now = None  # what plays: dict for status, or None
        self.source = None  # the playing source
        self._last_stats = None  # counters of the last stream, kept for status
        self.volume = 0
        # on_end(info, outcome, stats, ms played): the arbiter resumes and logs
        self.on_end = None
        self.level = 0  # peak |sample| sent to the amplifier lately (status, meters)
        self._pk = 0
        self._frames = 0

    def arena(self):
        return self._arena

    def stream_stats(self):
        """Counters of the stream playing now, else of the last one (or None)."""
        stats = getattr(self.source, "stats", None)
        return stats() if stats else self._last_stats

    def playing(self):
        return self._task is not None

    async def play(self, source, volume, info):
        """Start source, fading out whatever plays now first (preemption)."""
        await self.stop()
        self.volume = volume
        self.now = info
        self.source = source
        self._stopping = False
        self._task = asyncio.create_task(self._run(source))

    def set_volume(self, volume):
        self.volume = volume
        if not self._stopping:
            self.gain.set_volume(volume)

    async def stop(self):
        t = self._task
        if t is None:
            return
        self._stopping = True
        self.gain.fade_out()
        src = self.source
        if src is not None:
            src.fading = True  # a stream conceals rather than stop mid-fade
        try:
            await t
        except asyncio.CancelledError:
            pass

    async def _run(self, source):
        sink, gain, buf, mv = self.sink, self.gain, self._buf, self._mv
        if self._amp_task:
            self._amp_task.cancel()
            self._amp_task = None
        self.hal.amp(True)
        self.amp = True
        sink.open(source.rate)
        gain.set_rate(source.rate)
        gain.g = 0
        gain.set_volume(self.volume)
        outcome = "done"
        idle = 0
        # the play log's duration counts from the first sample out: a stream's
        # connect and jitter-buffer fill are not air time
        t0 = None
        try:
            while True:
                n = await source.fill(buf, FRAME)
                if source.done and not self._stopping:
                    self._stopping = True
                    gain.fade_out()
                    source.fading = True
                if n:
                    if t0 is None:
                        t0 = time.ticks_ms()
                    gain.apply(buf, n)
                    self._meter(n)
                    # a slice is a new object: only cut when the frame is short
                    await sink.write(mv if n == FRAME else mv[: 2 * n])
                # a source with nothing to give twice while fading is gone:
                # stop there (once may be a fill that began before the fade)
                idle = idle + 1 if not n else 0
                if self._stopping and (gain.silent() or idle > 1):
                    if not source.done:
                        outcome = "stopped"
                    break
            await sink.drain()
        except Exception as e:
            outcome = "error"
            log.error("player: %r" % (e,))
        finally:
            sink.close()
            if hasattr(source, "close"):
                source.close()
            # Keep the counters, not the source: a stream's buffers and code
            # give their RAM back when it ends.
            self._last_stats = source.stats() if hasattr(source, "stats") else None
            self.source = None
            info = self.now
            self.now = None
            self._task = None
            self._amp_task = asyncio.create_task(self._amp_off_later())
            self.level = self._pk = self._frames = 0
            if info is not None:
                log.info("played %s %s" % (info.get("source"), outcome))
                if self.on_end:
                    self.on_end(info, outcome, self._last_stats, 0 if t0 is None else
                                time.ticks_diff(time.ticks_ms(), t0))

    def _meter(self, n):
        pk = peak(self._buf, n)
        if pk > self._pk:
            self._pk = pk
        self._frames += 1
        if self._frames >= LEVEL_FRAMES:
            self.level, self._pk, self._frames = self._pk, 0, 0

    async def _amp_off_later(self):
        await asyncio.sleep(self.hold_s)
        self.hal.amp(False)
        self.amp = False
        self._amp_task = None
