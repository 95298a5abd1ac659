# Jitter buffer and playout for one RTP stream. Payloads of any length up to
# the MTU are kept encoded, back to back in one byte ring (the arena), in the
# order they arrive; a small table indexed by sequence number says where each
# one is. Playout starts once `depth` of audio has gathered and decodes 20 ms
# at a time, so a 128 ms packet (ffmpeg's default) needs no 128 ms of PCM.
# The memory is bounded by time: the arena holds a few hundred ms whatever
# the packet size. Missing audio is concealed (the last 20 ms repeated at half
# the level each time) for as long as it lasted, late packets dropped and
# counted. Clock drift between sender and sink is taken up one sample at a
# time (a loop on the buffer's level, fed the drift measured from arrival
# times against the sink's clock, docs/audio.md). Nothing here
# allocates after construction; times come from the caller (ticks_ms) so that
# this runs and is tested the same under CPython and MicroPython.
from array import array

from ..compat import micropython, ptr8, ptr16
from . import codec as audiocodec
from . import rtp

KEEP = True  # viper code: never unloaded (compat.unload)

MAX_PACKET = 1500  # an Ethernet MTU: the longest RTP packet accepted
MAX_PAYLOAD = MAX_PACKET - 12
ENTRIES = 32  # packets buffered at most (power of two): 640 ms of 20 ms packets
ORDER = 2 * ENTRIES  # arrivals remembered: the sequence window is 2 x ENTRIES wide
CUR = 255  # arrival of the packet now playing (its table entry is free again)
GONE = 254  # arrival of a packet played out: its ring space is free
CHUNK_MS = 20  # decoded (and concealed) at a time
MAX_MISORDER = 100  # RFC 3550 A.1: older than this = the sender restarted
MAX_DROPOUT = 3000  # RFC 3550 A.1: a bigger jump forward = the sender restarted
TICKS_MASK = 0x3FFFFFFF
REBASE_MS = 600000  # keep jitter arithmetic in small ints (31 bits on ESP32)

# Drift: a PI loop keeps the buffer's level where it settled at the start by
# dropping or repeating single samples (never more at once), at most MAX_PPM.
CTL_MS = 20  # the loop runs once per this much audio played
SETTLE = 200  # steps (4 s) over which the level to hold is measured, no correction
DEAD_US = 5000  # a level within 5 ms of it is left alone (packet bursts, jitter)
MAX_PPM = 2000  # fastest correction: 2 ms a second, one sample at a time
INT_US = 20000  # the drift estimate learns only while the level is within 20 ms
CALM = 1500  # ...and 30 s (steps) after a stall whose audio came late: its delay is no drift
ERR_US = 200000  # error clamp (small ints on ESP32)
# The drift itself: how fast RTP time runs against the sink's clock, from the
# packets that came soonest (the largest RTP time - sink time in each window).
# A late packet, a stall, a reordering only lower the others: the estimate does
# not see them, as a level-driven integral does (docs/audio.md).
EST_S = 20  # window, seconds of sink time
EST_N = 16  # windows kept: the slope is fitted over up to 320 s
EST_MIN = 3  # windows before it is used (60 s); until then the PI integral learns
NONE = -0x3FFFFFFF

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


@micropython.viper
def _slip(buf, n: int, add: int) -> int:
    # Drop (add=0) or repeat (add=1) one sample of n, where the signal is
    # quietest (near a zero crossing a one-sample splice is least audible);
    # a repeated sample is the mean of its neighbours. buf has room for n+1.
    p = ptr16(buf)
    best = 1
    m = 65536
    i = 1
    while i < n - 1:
        v = int(p[i])
        if v >= 32768:
            v = 65536 - v
        if v < m:
            m = v
            best = i
        i += 1
    if add:
        j = n
        while j > best:
            p[j] = p[j - 1]
            j -= 1
        a = int(p[best - 1])
        if a >= 32768:
            a -= 65536
        b = int(p[best + 1])
        if b >= 32768:
            b -= 65536
        p[best] = ((a + b) >> 1) & 0xFFFF
        return n + 1
    j = best
    while j < n - 1:
        p[j] = p[j + 1]
        j += 1
    return n - 1


class JitterBuffer:
    def __init__(self, codec, rate, pt, depth_ms=180, arena=None):
        """arena: a buffer allocated once at boot (a fresh 6 KB block may not
        exist in a fragmented heap) holding 20 ms of decoded audio and the
        ring of encoded payloads; a small arena lowers the depth."""
        self.codec = codec
        self.rate = rate
        self.pt = pt
        self.chunk = min(320, rate * CHUNK_MS // 1000) & ~1  # even: whole DVI4 bytes
        self.depth = depth_ms * rate // 1000
        pcm_bytes = 2 * self.chunk + 2  # a chunk and the sample a slip may add
        if arena is None:
            arena = bytearray(pcm_bytes + 2 * audiocodec.bytes_for(codec, self.depth)
                              + 2 * MAX_PAYLOAD)
        # even, so L16 samples never split; offsets are 16 bit
        self.size = min(len(arena) - pcm_bytes, 0xFFFE) & ~1
        if self.size < 2 * MAX_PAYLOAD + 2:
            raise ValueError("stream needs more buffer than this board has")
        mv = memoryview(arena)
        self.pcm = mv[:pcm_bytes]
        self.ring = mv[pcm_bytes:pcm_bytes + self.size]
        # per entry (seq & mask): where its payload is; len 0 = empty
        self.offs = array("H", bytes(2 * ENTRIES))
        self.lens = array("H", bytes(2 * ENTRIES))
        self.seqs = array("H", bytes(2 * ENTRIES))
        self.tss = array("H", bytes(2 * ENTRIES))  # low 16 bits of each timestamp
        # arrival order (entry, seq): the ring is freed from its oldest arrival
        self.ord_e = array("B", bytes(ORDER))
        self.ord_q = array("H", bytes(2 * ORDER))
        self.packets = 0  # stored in time
        self.lost = 0  # never arrived before their turn
        self.late = 0  # arrived after their turn (dropped)
        self.dups = 0
        self.bad = 0  # malformed, wrong payload type, oversized, empty (dropped)
        self.concealed = 0  # turns of audio made up
        self.skipped = 0  # dropped to bring latency back (sender faster than sink)
        self.resyncs = 0  # restarts: SSRC change, sequence or timestamp jump
        self.dropped = 0  # single samples dropped to keep the level (sender faster)
        self.added = 0  # single samples repeated (sender slower)
        self.adjust = True  # drift correction on (the bench turns it off to time it)
        self.started = False
        self.spp = 0  # samples in the longest packet of this stream
        self._ssrc_hi = -1
        self._ssrc_lo = -1
        self._jit16 = 0  # RFC 3550 A.8 interarrival jitter, ts units x16
        self._em = array("i", bytes(4 * EST_N))  # each window's largest RTP - sink time
        self.reset()

    def reset(self):
        for i in range(ENTRIES):
            self.lens[i] = 0
        self.state = WAIT
        self._t_wait = -1  # when the first packet came (ticks_ms), while gathering
        self.next_seq = -1  # first packet sets it
        self.highest = 0
        self.buffered = 0  # samples stored and not yet played
        self.wp = 0  # ring write position
        self.oh = 0  # oldest arrival in ord_*
        self.oc = 0  # arrivals in ord_*
        self.cur_off = 0  # the packet being decoded: ring offset, bytes left
        self.cur_len = 0
        self._dvi = 0  # its DVI4 decoder state
        self._gap = 0  # samples of a missing packet still to conceal
        self.pcm_n = 0
        self.pcm_pos = 0
        self._last_n = 0  # samples in pcm that concealment may repeat
        self._last_pk = 0  # samples in the last packet played
        self._run = 0  # consecutive concealed chunks
        self._t_base = -1
        self._ts_base = 0
        self._transit = 0
        self._last_ts = 0
        self._exp_ts = -1  # timestamp (16 bits) due after the packet played, -1: unknown
        self._stall = 0  # chunks made up in a stall, counted once audio comes back
        self._stall_n = 0  # ...and their samples: they stood in for a missing turn
        # drift loop (small ints: levels in samples, errors in us, rates in ppm)
        self._ctl_n = 0  # samples played since the last step
        self._ctl_k = 0  # steps taken
        self._arr_sum = 0  # levels seen at arrivals since the last step, and how many
        self._arr_n = 0
        self._lvl = -1  # the level at arrivals, last step's (-1: none yet)
        self._lvl_sum = 0  # summed over the settling steps
        self._lvl_n = 0
        self._lvl_set = 0  # the level to hold
        self._lvl_f = 0  # the level filtered (x512, 10 s)
        self._calm = CALM  # steps since a stall ended in late audio (CALM: none)
        self._i16 = 0  # integral term = the measured drift, ppm x 65536
        self._u = 0  # correction now, ppm (+: dropping)
        self._acc = 0  # ppm x samples toward the next slip
        self._e_ok = False  # the estimate below is set
        self._e_ppm16 = 0  # drift from the slope of the windows' maxima, ppm x 16
        self._est_restart()

    def _est_restart(self):
        # new windows (a stall of the sink shifts its time against what it was given)
        self._e_ts = -1  # RTP time where sink time is 0 (-1: not anchored yet)
        self._e_out = 0  # samples given to the sink since then (sink time = this - queued)
        self._e_max = NONE  # this window's largest RTP time - sink time
        self._e_k = 0  # windows closed

    def depth_ms(self):
        """Audio buffered ahead of playout, in ms."""
        return (self.buffered + self.pcm_n - self.pcm_pos) * 1000 // self.rate

    def jitter_ms(self):
        return (self._jit16 >> 4) * 1000 // self.rate

    def disturbed(self):
        """The sink ran dry (its silence delays all that follows, as a stall's
        late audio does): the loop drains it but does not learn it as drift."""
        self._calm = 0
        self._est_restart()

    def drift_ppm(self):
        """The sender's clock against the sink's as the loop measured it
        (+: the sender is faster, samples are dropped)."""
        return self._i16 >> 16

    # -- arrival ----------------------------------------------------------------
    def push(self, h, buf, now_ms, queued=0):
        """Store the packet h (parsed header) of buf; -> STORED/LATE/DUP/BAD.
        queued: samples the sink has yet to play (the drift loop's level)."""
        plen = h.plen
        if self.codec == audiocodec.L16:
            plen &= ~1  # half a sample is no audio
        if h.pt != self.pt or plen == 0 or plen > MAX_PAYLOAD or (
                self.codec == audiocodec.DVI4 and plen <= audiocodec.DVI4_HEADER):
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
            if self.state == WAIT and rtp.seq_diff(self.highest, seq) < ENTRIES:
                self.next_seq = seq  # nothing played since: an early packet came late
            else:
                self.late += 1
                return LATE
        elif d >= ENTRIES:
            self._skip_to(rtp.seq_diff(seq, ENTRIES - 1))
        e = seq & (ENTRIES - 1)
        if self.lens[e] and self.seqs[e] == seq:
            self.dups += 1
            return DUP
        # room in the ring: the oldest turns go if the sender ran far ahead
        while self._free() <= plen and rtp.seq_diff(seq, self.next_seq) > 0:
            self._skip_to((self.next_seq + 1) & 0xFFFF)
        if self._free() <= plen or self.oc == ORDER:
            self.skipped += 1  # only the packet playing is left, and it is long
            return LATE
        wp = self.wp
        n1 = min(plen, self.size - wp)
        _copy8(self.ring, wp, buf, h.off, n1)
        _copy8(self.ring, 0, buf, h.off + n1, plen - n1)  # wrapped around
        self.wp = (wp + plen) % self.size
        self.offs[e] = wp
        self.lens[e] = plen
        self.seqs[e] = seq
        self.tss[e] = h.ts & 0xFFFF
        i = (self.oh + self.oc) & (ORDER - 1)
        self.ord_e[i] = e
        self.ord_q[i] = seq
        self.oc += 1
        k = audiocodec.samples_in(self.codec, plen)
        self.buffered += k
        if k > self.spp:
            self.spp = k
        if rtp.seq_diff(seq, self.highest) > 0:
            self.highest = seq
        self.packets += 1
        if self._t_wait < 0:
            self._t_wait = now_ms & TICKS_MASK
        self._jitter(h.ts, now_ms)
        if self.state == PLAY:
            # The drift loop's level: all audio ahead of the speaker as this
            # packet arrives (before it), down to the sample with the sink's
            # queue. Taken at arrivals it has no sawtooth whatever the packet
            # sizes, and it moves with the clocks' difference sample by sample
            # (what is buffered alone moves a whole packet at a time).
            self._arr_sum += self.buffered - k + self.pcm_n - self.pcm_pos + queued
            self._arr_n += 1
            self._estimate(h.ts, queued)
        return STORED

    def _slope(self, k):
        # least squares over the last n windows' maxima (once a window, not per
        # packet): slope = 2 sum(c y) / sum(c c), c = 2i - (n-1); y from the oldest
        n = min(k, EST_N)
        y0 = self._em[(k - n) % EST_N]
        num = 0
        den = 0
        for i in range(n):
            c = 2 * i - n + 1
            num += c * (self._em[(k - n + i) % EST_N] - y0)
            den += c * c
        w = EST_S * self.rate
        s16 = 32 * num // den  # samples a window, x 16
        # ppm x 16 = s16 / w x 1e6 (64 x 15625 = 10**6, small ints). No clock is
        # off by more than a correction can go: timestamps injected into a UDP
        # session (docs/security.md) pull it no further, and the level's term
        # then holds the buffer against it.
        e = s16 * 15625 // (w >> 6)
        self._e_ppm16 = max(-16 * MAX_PPM, min(16 * MAX_PPM, e))
        self._e_ok = True

    def _estimate(self, ts, queued):
        # per packet: small ints, no allocation
        w = EST_S * self.rate
        if self._e_ts < 0:
            self._e_ts = ts
            self._e_out = queued  # sink time 0 now
        sp = self._e_out - queued
        if sp >= w:
            m = self._e_max
            if m == NONE or sp >= 2 * w:
                self._est_restart()  # nothing arrived in a window: start again
                return
            k = self._e_k
            self._em[k % EST_N] = m
            self._e_k = k + 1
            # the anchors move on a window: RTP - sink time stays as it was
            self._e_ts = (self._e_ts + w) & rtp.TS_MASK
            self._e_out -= w
            sp -= w
            self._e_max = NONE
            if k + 1 >= EST_MIN:
                self._slope(k + 1)
        v = rtp.ts_diff(ts, self._e_ts) - sp
        if self._e_k and abs(v - self._em[(self._e_k - 1) % EST_N]) > self.rate:
            self._est_restart()  # a timestamp jump (a new source): not drift
            return
        if v > self._e_max:
            self._e_max = v

    def _free(self):
        # ring bytes free behind the oldest payload still needed
        while self.oc:
            e = self.ord_e[self.oh]
            if e == CUR:
                if self.cur_len:
                    return self.size - (self.wp - self.cur_off) % self.size
            elif e != GONE and self.lens[e] and self.seqs[e] == self.ord_q[self.oh]:
                return self.size - (self.wp - self.offs[e]) % self.size
            self.oh = (self.oh + 1) & (ORDER - 1)
            self.oc -= 1
        self.wp = 0
        return self.size

    def _drop(self, e):
        self.buffered -= audiocodec.samples_in(self.codec, self.lens[e])
        self.lens[e] = 0

    def _skip_to(self, seq):
        # Turns before seq go unplayed (the ring or the table is full).
        while rtp.seq_diff(seq, self.next_seq) > 0:
            e = self.next_seq & (ENTRIES - 1)
            if self.lens[e] and self.seqs[e] == self.next_seq:
                self.skipped += 1
                self._drop(e)
            else:
                self.lost += 1
            self.next_seq = (self.next_seq + 1) & 0xFFFF
            self._exp_ts = -1

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
    def _wanted(self):
        # Audio arrives a packet at a time: a packet longer than 20 ms adds its
        # length to what must be buffered before playout (the sink's ring takes
        # part of it, together they hold it), and its length once more because
        # a loss or a reordering delays the next arrival by a whole packet:
        # with the excess counted once, ffmpeg's 128 ms packets through 5 %
        # loss and 5 % reordering met a sink about to run dry, stalls whose
        # delay the loop then drained (815 samples dropped in 3 minutes; 2
        # with this). 20 ms packets keep the depth as it is.
        return self.depth + 2 * max(0, self.spp - self.chunk)

    def _target(self):
        # What _wanted asks, no more than the ring keeps with two packets'
        # room to spare, nor than the table holds of the stream's packets
        # with room left for reordering.
        room = audiocodec.samples_in(self.codec, self.size
                                     - 2 * audiocodec.bytes_for(self.codec, self.spp))
        return min(self._wanted(), room, (ENTRIES * 2 // 3) * self.spp)

    def read(self, out, n, conceal=False, now_ms=-1):
        """Write up to n samples of playout into out (int16); -> how many.
        0 before the stream has gathered its depth, and when nothing has
        arrived to play unless conceal: the caller asks for concealment only
        when the sink is about to run dry (a late burst is no loss while the
        sink's ring still plays). now_ms: ticks_ms, for the start rule."""
        if self.state == WAIT:
            t = self._target()
            if self.next_seq < 0 or self.buffered < t:
                return 0
            if now_ms >= 0 and t < self._wanted() and \
                    (now_ms - self._t_wait) & TICKS_MASK < t * 1000 // self.rate:
                # The depth is capped by the ring (packets too long for it):
                # a sender's burst fills it at once, and starting on that would
                # leave no margin when the next burst comes (ffmpeg's L16 from
                # an 8 kHz file: 256 ms every 256 ms). The capped depth is
                # waited out in time from the first packet instead.
                return 0
            self.state = PLAY
            self.started = True
        i = 0
        while i < n:
            if self.pcm_pos >= self.pcm_n and not self._next_chunk(conceal):
                break
            k = min(n - i, self.pcm_n - self.pcm_pos)
            _copy8(out, 2 * i, self.pcm, 2 * self.pcm_pos, 2 * k)
            i += k
            self.pcm_pos += k
        self._e_out += i
        return i

    def _next_chunk(self, conceal):
        """Decode (or conceal) the next 20 ms into pcm; False if nothing to play."""
        self.pcm_pos = 0
        while not self.cur_len and not self._gap:
            # the sender ran ahead of our clock: drop a turn, keep latency
            while self.buffered > 2 * self._target():
                self._skip_to((self.next_seq + 1) & 0xFFFF)
            seq = self.next_seq
            e = seq & (ENTRIES - 1)
            if self.lens[e] and self.seqs[e] == seq:
                # a stall that late audio ended: the loop drains the delay it
                # added, but that is no clock drift: the estimate waits
                self.concealed += self._stall
                if self._stall_n:
                    self._calm = 0
                self._stall = self._stall_n = 0
                self._start(e)
            elif rtp.seq_diff(self.highest, seq) > 0:
                self.lost += 1  # later packets are here, this one is gone
                if self._last_n:
                    self.concealed += 1
                self.concealed += self._stall
                self._stall = 0
                # A stall may have made up part of the missing audio already
                # (a lost long packet stalls playout): only the rest now, so
                # what follows stays aligned; none left: on to the next turn.
                g = self._missing(seq)
                k = min(g, self._stall_n)
                self._stall_n -= k
                self._gap = g - k
                self.next_seq = (seq + 1) & 0xFFFF
            elif not conceal:
                self.pcm_n = 0
                return False
            else:
                # a stall, the sink about to run dry: counted as concealed
                # only if audio comes back (else it was the stream's end)
                if self._last_n:
                    self._stall += 1
                self._conceal()
                self._stall_n += self.pcm_n
                return True
        if self._gap:
            n = min(self._gap, self._last_n or self.chunk)
            self._gap -= n
            self._conceal()
            self.pcm_n = n  # exactly the missing length
            return True
        self._decode()
        return True

    def _missing(self, seq):
        # Samples the missing turn seq lasted: the gap in timestamps up to the
        # next packet here, shared among the turns missing before it (ffmpeg's
        # packets come in two sizes); the last packet's length when unknown.
        guess = self._last_pk or self.chunk
        if self._exp_ts < 0:
            return guess
        m = 1
        s = (seq + 1) & 0xFFFF
        while m < ENTRIES:
            e = s & (ENTRIES - 1)
            if self.lens[e] and self.seqs[e] == s:
                gap = (self.tss[e] - self._exp_ts) & 0xFFFF
                if 0 < gap <= 4 * m * max(self.spp, self.chunk):
                    n = gap // m
                    self._exp_ts = (self._exp_ts + n) & 0xFFFF
                    return n
                break  # a timestamp jump: the sender restarted its clock
            m += 1
            s = (s + 1) & 0xFFFF
        self._exp_ts = -1
        return guess

    def _start(self, e):
        # the packet's arrival now stands for the part of it not yet decoded
        # (the one played before is done with: its arrival no longer holds
        # ring space; left as CUR, one stale mark a packet piled up until the
        # arrival queue was full and packets were refused, issue 20)
        seq = self.seqs[e]
        for k in range(self.oc):
            i = (self.oh + k) & (ORDER - 1)
            if self.ord_e[i] == CUR:
                self.ord_e[i] = GONE
            elif self.ord_e[i] == e and self.ord_q[i] == seq:
                self.ord_e[i] = CUR
        self.next_seq = (seq + 1) & 0xFFFF
        o, n = self.offs[e], self.lens[e]
        self.lens[e] = 0
        self._last_pk = audiocodec.samples_in(self.codec, n)
        self._exp_ts = (self.tss[e] + self._last_pk) & 0xFFFF
        if self.codec == audiocodec.DVI4:
            r = self.ring
            self._dvi = audiocodec.dvi4_state(r[o], r[(o + 1) % self.size],
                                              r[(o + 2) % self.size])
            o = (o + audiocodec.DVI4_HEADER) % self.size
            n -= audiocodec.DVI4_HEADER
        self.cur_off = o
        self.cur_len = n

    def _samples(self, nbytes):
        # samples in nbytes of coded audio (no DVI4 header)
        return 2 * nbytes if self.codec == audiocodec.DVI4 else \
            audiocodec.samples_in(self.codec, nbytes)

    def _decode(self):
        # the next 20 ms of the packet playing, freed from the ring as it goes
        c, o = self.codec, self.cur_off
        nb = min(self.cur_len, self.chunk // 2 if c == audiocodec.DVI4
                 else audiocodec.bytes_for(c, self.chunk))
        n1 = min(nb, self.size - o)
        st = audiocodec.decode_run(c, self.ring, o, n1, self.pcm, 0, self._dvi)
        if nb > n1:  # the run wraps around the end of the ring
            st = audiocodec.decode_run(c, self.ring, 0, nb - n1, self.pcm,
                                       self._samples(n1), st)
        self._dvi = st
        self.cur_off = (o + nb) % self.size
        self.cur_len -= nb
        k = self._samples(nb)
        self.buffered -= k
        if self.adjust:
            k = self._control(k)
        self.pcm_n = k
        self._last_n = k
        if self._run:  # back from concealment: ramp up from where it left off
            _fade(self.pcm, k, 32768 >> min(self._run, 15), 32768)
            self._run = 0

    def _control(self, k):
        """The drift loop, given k samples just decoded into pcm: -> how many
        to play (k, or k-1/k+1 when a sample is dropped or repeated)."""
        self._ctl_n += k
        step = self.rate * CTL_MS // 1000
        if self._ctl_n >= step:
            self._ctl_n -= step
            if self._arr_n:
                self._lvl = self._arr_sum // self._arr_n
                self._arr_sum = self._arr_n = 0
            lvl = self._lvl
            if lvl < 0:
                return k  # nothing arrived since playing started
            if self._ctl_k < SETTLE:
                # the level to hold: where it settles once playing, whatever
                # the sender's packet sizes and bursts
                self._ctl_k += 1
                self._lvl_sum += lvl
                self._lvl_n += 1
                if self._ctl_k == SETTLE:
                    self._lvl_set = self._lvl_sum // self._lvl_n
                    self._lvl_f = self._lvl_set << 9
                return k
            self._lvl_f += lvl - (self._lvl_f >> 9)
            e = (self._lvl_f >> 9) - self._lvl_set
            # the error in us (rate>>6: 64 x 15625 = 10**6, small ints throughout)
            eu = max(-ERR_US, min(ERR_US, e * 15625 // (self.rate >> 6)))
            eu = eu - DEAD_US if eu > DEAD_US else eu + DEAD_US if eu < -DEAD_US else 0
            u = (eu >> 4) + (self._i16 >> 16)  # P: 1/16 per s; I below: 1/1024 per s^2
            if self._e_ok:
                self._i16 = self._e_ppm16 << 12  # measured, not learnt from the level
            elif self._calm < CALM:
                self._calm += 1
            elif -INT_US < eu < INT_US and (-MAX_PPM < u < MAX_PPM or (u > 0) != (eu > 0)):
                self._i16 += eu * 64 // (1000 // CTL_MS)
            self._u = max(-MAX_PPM, min(MAX_PPM, u))
        if self._ctl_k < SETTLE:
            return k
        self._acc += self._u * k
        if self._acc >= 1000000 and k > 2:
            self._acc -= 1000000
            self.dropped += 1
            return _slip(self.pcm, k, 0)
        if self._acc <= -1000000 and k > 2:
            self._acc += 1000000
            self.added += 1
            return _slip(self.pcm, k, 1)
        return k

    def _conceal(self):
        # The last 20 ms again, 6 dB softer each time (a ramp the first time,
        # so the level never steps), then silence.
        self._run += 1
        if self._last_n and self._run <= 12:
            _fade(self.pcm, self._last_n, 32768 if self._run == 1 else 16384, 16384)
            self.pcm_n = self._last_n
        else:
            self._last_n = 0
            _fade(self.pcm, self.chunk, 0, 0)  # silence
            self.pcm_n = self.chunk
