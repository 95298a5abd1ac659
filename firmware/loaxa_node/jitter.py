# Jitter buffer and playout for one RTP stream: packets are stored by sequence
# number in a fixed ring of slots (encoded, so a 16 kHz DVI4 stream needs ~3 KB),
# played out after `depth` of audio has gathered, decoded one packet at a time.
# Missing packets are concealed (the last packet repeated at half the level
# each time), late ones dropped and counted. Nothing here allocates after
# construction; times come from the caller (ticks_ms) so that this runs and is
# tested the same under CPython and MicroPython.
from . import audiocodec, rtp
from .compat import micropython, ptr8, ptr16

KEEP = True  # viper code: never unloaded (compat.unload)

MAX_PAYLOAD = 1460  # an Ethernet MTU minus IP, UDP and RTP headers
MAX_MISORDER = 100  # RFC 3550 A.1: older than this = the sender restarted
MAX_DROPOUT = 3000  # RFC 3550 A.1: a bigger jump forward = the sender restarted
TICKS_MASK = 0x3FFFFFFF
REBASE_MS = 600000  # keep jitter arithmetic in small ints (31 bits on ESP32)

WAIT = 0  # gathering `depth` before (re)starting playout
PLAY = 1

# push() results, also the counters they bump
STORED = 0
LATE = 1
DUP = 2
BAD = 3


@micropython.viper
def _copy8(dst, doff: int, src, soff: int, n: int):
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[doff + i] = s[soff + i]
        i += 1


@micropython.viper
def _fade(buf, n: int, g0: int, g1: int):
    # scale sample i by a gain going linearly from g0 to g1 (Q15)
    p = ptr16(buf)
    i = 0
    while i < n:
        v = int(p[i])
        if v >= 32768:
            v -= 65536
        g = g0 + (g1 - g0) * i // n
        p[i] = ((v * g) >> 15) & 0xFFFF
        i += 1


class JitterBuffer:
    def __init__(self, codec, rate, pt, depth_ms=180, ptime_ms=20, arena=None):
        """arena: a buffer allocated once at boot to hold the slots and one
        decoded packet (a fresh 10 KB block may not exist in a fragmented
        heap); the ring shrinks to fit it, and the depth with it."""
        self.codec = codec
        self.rate = rate
        self.pt = pt
        spp = rate * ptime_ms // 1000  # samples in a packet of the longest ptime
        self.slot_bytes = min(MAX_PAYLOAD, audiocodec.bytes_for(codec, spp))
        self.spp = spp  # samples in the latest packet (senders pick shorter ptimes)
        self.depth = depth_ms * rate // 1000
        depth_pk = (depth_ms + ptime_ms - 1) // ptime_ms
        n = 8
        while n < depth_pk + depth_pk // 2 + 2:  # depth plus room for reordering
            n *= 2
        pcm_bytes = 2 * audiocodec.samples_in(codec, self.slot_bytes)
        if arena is None:
            arena = bytearray(n * self.slot_bytes + pcm_bytes)
        while n > 4 and n * self.slot_bytes + pcm_bytes > len(arena):
            n //= 2
        if n * self.slot_bytes + pcm_bytes > len(arena):
            raise ValueError("stream needs more buffer than this board has")
        self.nslots = n
        mv = memoryview(arena)
        self.slots = mv[: n * self.slot_bytes]
        self.pcm = mv[n * self.slot_bytes: n * self.slot_bytes + pcm_bytes]
        self.lens = [0] * n  # payload bytes, 0 = empty
        self.seqs = [0] * n
        self.packets = 0  # stored in time
        self.lost = 0  # never arrived before their turn
        self.late = 0  # arrived after their turn (dropped)
        self.dups = 0
        self.bad = 0  # malformed, wrong payload type, oversized (dropped)
        self.concealed = 0  # packets' worth of audio made up
        self.skipped = 0  # dropped to bring latency back (sender faster than sink)
        self.resyncs = 0  # restarts: SSRC change, sequence or timestamp jump
        self.started = False
        self._ssrc_hi = -1
        self._ssrc_lo = -1
        self._jit16 = 0  # RFC 3550 A.8 interarrival jitter, ts units x16
        self.reset()

    def reset(self):
        for i in range(self.nslots):
            self.lens[i] = 0
        self.state = WAIT
        self.next_seq = -1  # first packet sets it
        self.highest = 0
        self.pcm_n = 0
        self.pcm_pos = 0
        self._last_n = 0
        self._run = 0  # consecutive concealed packets
        self._t_base = -1
        self._ts_base = 0
        self._transit = 0
        self._last_ts = 0

    def depth_ms(self):
        """Audio buffered ahead of playout, in ms."""
        if self.next_seq < 0:
            return 0
        k = rtp.seq_diff(self.highest, self.next_seq) + 1
        return (max(0, k) * self.spp + self.pcm_n - self.pcm_pos) * 1000 // self.rate

    def jitter_ms(self):
        return (self._jit16 >> 4) * 1000 // self.rate

    # -- arrival ----------------------------------------------------------------
    def push(self, h, buf, now_ms):
        """Store the packet h (parsed header) of buf; -> STORED/LATE/DUP/BAD."""
        if h.pt != self.pt or h.plen > self.slot_bytes or (
                self.codec == audiocodec.DVI4 and h.plen <= audiocodec.DVI4_HEADER):
            self.bad += 1
            return BAD
        if h.ssrc_hi != self._ssrc_hi or h.ssrc_lo != self._ssrc_lo:
            if self._ssrc_hi >= 0:
                self.resyncs += 1
                self.reset()
            self._ssrc_hi = h.ssrc_hi
            self._ssrc_lo = h.ssrc_lo
        seq = h.seq
        if self.next_seq < 0:
            self.next_seq = seq
            self.highest = seq
        d = rtp.seq_diff(seq, self.next_seq)
        if d < -MAX_MISORDER or d >= MAX_DROPOUT:
            self.resyncs += 1
            self.reset()
            self.next_seq = seq
            self.highest = seq
            d = 0
        elif d < 0:
            if self.state == WAIT and rtp.seq_diff(self.highest, seq) < self.nslots:
                self.next_seq = seq  # nothing played since: an early packet came late
            else:
                self.late += 1
                return LATE
        elif d >= self.nslots:
            self._skip_to(rtp.seq_diff(seq, self.nslots - 1))
        s = seq & (self.nslots - 1)
        if self.lens[s] and self.seqs[s] == seq:
            self.dups += 1
            return DUP
        _copy8(self.slots, s * self.slot_bytes, buf, h.off, h.plen)
        self.lens[s] = h.plen
        self.seqs[s] = seq
        self.spp = audiocodec.samples_in(self.codec, h.plen)
        if rtp.seq_diff(seq, self.highest) > 0:
            self.highest = seq
        self.packets += 1
        self._jitter(h.ts, now_ms)
        return STORED

    def _skip_to(self, seq):
        # The ring is full up to a packet we must store: the oldest turns go.
        while rtp.seq_diff(seq, self.next_seq) > 0:
            s = self.next_seq & (self.nslots - 1)
            if self.lens[s] and self.seqs[s] == self.next_seq:
                self.skipped += 1
                self.lens[s] = 0
            else:
                self.lost += 1
            self.next_seq = (self.next_seq + 1) & 0xFFFF

    def _jitter(self, ts, now_ms):
        if self._t_base < 0 or abs(rtp.ts_diff(ts, self._last_ts)) > self.rate * 10:
            # first packet or a timestamp jump (new source at the head-end):
            # measure from here instead of reporting the jump as jitter
            self._t_base = now_ms & TICKS_MASK
            self._ts_base = ts
            self._transit = 0
        self._last_ts = ts
        arr = (now_ms - self._t_base) & TICKS_MASK  # ticks_ms wraps at 2**30 on ESP32
        if arr > REBASE_MS:
            self._t_base = (self._t_base + REBASE_MS) & TICKS_MASK
            self._ts_base = (self._ts_base + REBASE_MS // 1000 * self.rate) & rtp.TS_MASK
            self._transit -= REBASE_MS // 1000 * self.rate
            arr -= REBASE_MS
        transit = arr * self.rate // 1000 - rtp.ts_diff(ts, self._ts_base)
        dd = transit - self._transit
        self._transit = transit
        if dd < 0:
            dd = -dd
        if dd < self.rate:  # ignore steps (pauses): they are not jitter
            self._jit16 += dd - ((self._jit16 + 8) >> 4)

    # -- playout ----------------------------------------------------------------
    def _target(self):
        # The sink's ring takes part of the depth as playout starts: together
        # they hold `depth`. Packets shorter than ptime: no more than the slots
        # hold, with room left for reordering.
        return min(self.depth, (self.nslots * 2 // 3) * self.spp)

    def read(self, out, n, conceal=False):
        """Write up to n samples of playout into out (int16); -> how many.
        0 before the stream has gathered its depth, and when nothing has
        arrived to play unless conceal: the caller asks for concealment only
        when the sink is about to run dry (a late burst is no loss while the
        sink's ring still plays)."""
        if self.state == WAIT:
            if self.next_seq < 0 or (rtp.seq_diff(self.highest, self.next_seq) + 1) \
                    * self.spp < self._target():
                return 0
            self.state = PLAY
            self.started = True
        i = 0
        while i < n:
            if self.pcm_pos >= self.pcm_n and not self._next_packet(conceal):
                break
            k = min(n - i, self.pcm_n - self.pcm_pos)
            _copy8(out, 2 * i, self.pcm, 2 * self.pcm_pos, 2 * k)
            i += k
            self.pcm_pos += k
        return i

    def _next_packet(self, conceal):
        """Decode (or conceal) the next turn into pcm; False if nothing to play."""
        # the sender ran ahead of our clock: drop a turn, keep latency
        while rtp.seq_diff(self.highest, self.next_seq) * self.spp > 2 * self._target():
            self._skip_to((self.next_seq + 1) & 0xFFFF)
        seq = self.next_seq
        s = seq & (self.nslots - 1)
        self.pcm_pos = 0
        if self.lens[s] and self.seqs[s] == seq:
            self.pcm_n = audiocodec.decode(self.codec, self.slots, s * self.slot_bytes,
                                           self.lens[s], self.pcm)
            self.lens[s] = 0
            self.next_seq = (seq + 1) & 0xFFFF
            self._last_n = self.pcm_n
            if self._run:  # back from concealment: ramp up from where it left off
                _fade(self.pcm, self.pcm_n, 32768 >> min(self._run, 15), 32768)
                self._run = 0
            return True
        if rtp.seq_diff(self.highest, seq) > 0:
            self.lost += 1  # later packets are here, this one is gone
            self.next_seq = (seq + 1) & 0xFFFF
        elif not conceal:
            self.pcm_n = 0
            return False
        self._conceal()
        return True

    def _conceal(self):
        # The last packet again, 6 dB softer each time (a ramp the first time,
        # so the level never steps), then silence.
        if self._last_n:
            self.concealed += 1  # audio made up (silence after it is not counted)
        self._run += 1
        n = self._last_n or self.spp
        if self._last_n and self._run > 12:
            for i in range(len(self.pcm)):
                self.pcm[i] = 0
            self._last_n = 0
        elif self._last_n:
            _fade(self.pcm, n, 32768 if self._run == 1 else 16384, 16384)
        self.pcm_n = n
