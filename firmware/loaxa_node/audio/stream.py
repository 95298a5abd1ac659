# An RTP stream as a player source: link -> parse -> jitter buffer -> decode.
import asyncio
import time

from .. import log

POLL_MS = 5  # receive task period: well under one packet, so sockets never fill
LOW_MS = 30  # sink queue below which a stalled stream is concealed
IDLE_MS = 3000  # no packet for this long after playing started: the stream ended
CONNECT_MS = 15000  # no first packet for this long: give up


class RtpSource:
    kind = "rtp"

    def __init__(self, sess, depth_ms, arena=None, sink=None, once=False):
        """once: the link's end is the stream's end (a file the head-end
        serves), not a break to reconnect after."""
        from . import codec as audiocodec
        from . import rtp
        from .jitter import JitterBuffer
        self.sess = sess
        self.codec = sess["codec"]
        self.rate = sess["rate"]
        self.jb = JitterBuffer(audiocodec.codec_by_name(self.codec), self.rate, sess["pt"],
                               depth_ms, arena)
        self.hdr = rtp.Header()
        self.link = make_link(sess)
        self.sink = sink  # asked how much it still has queued before concealing
        self.done = False
        self.fading = False  # set by the player: always give audio to fade over
        self.error = None
        self.once = once
        self.ended = False  # once: the head-end closed the stream
        self.malformed = 0  # not RTP v2 / truncated (counted here, before the buffer)
        self._underruns = sink.underruns if sink else 0  # the sink's, seen so far
        self._t0 = time.ticks_ms()
        self._last_rx = self._t0
        self._task = asyncio.create_task(self._rx())

    async def _rx(self):
        backoff = 1
        jb, hdr, link, sink = self.jb, self.hdr, self.link, self.sink
        while True:
            try:
                link.open()
                backoff = 1
                while True:
                    n = link.poll()
                    while n:
                        now = time.ticks_ms()
                        self._last_rx = now
                        if hdr.parse(link.pkt, n):
                            self.malformed += 1
                        else:
                            # the sink's queue: the drift loop sees the level to the sample
                            jb.push(hdr, link.pkt, now, sink.queued() if sink else 0)
                        n = link.poll()
                    await asyncio.sleep_ms(POLL_MS)
            except (OSError, ValueError, EOFError) as e:
                # a file ends with its link; a live stream when the head-end ends it
                if (self.once or isinstance(e, EOFError)) and self.jb.packets:
                    self.ended = True
                    link.close()
                    return
                self.error = str(e)
                log.warn("stream: %s; retry in %d s" % (e, backoff))
                link.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)

    async def fill(self, buf, n):
        # conceal a stall only when the sink's queue is about to run out
        sink = self.sink
        k = self.jb.read(buf, n, self.fading or sink is None or sink.queued_ms() < LOW_MS,
                         time.ticks_ms())
        if sink is not None and sink.underruns != self._underruns:
            self._underruns = sink.underruns
            self.jb.disturbed()
        idle = time.ticks_diff(time.ticks_ms(), self._last_rx)
        if (self.jb.started and (idle > IDLE_MS or self.ended and self.jb.depth_ms() == 0)) \
                or (not self.jb.started and idle > CONNECT_MS):
            self.done = True  # the player fades out on what we still return
            if k == 0:
                for i in range(2 * n):
                    buf[i] = 0
                k = n
        if k == 0:
            await asyncio.sleep_ms(POLL_MS)  # nothing to play yet: let rx run
        return k

    def close(self):
        self._task.cancel()
        self.link.close()

    def stats(self):
        jb = self.jb
        return {"codec": self.codec, "rate": self.rate, "transport": self.sess["transport"],
                "depth_ms": jb.depth_ms(), "jitter_ms": jb.jitter_ms(),
                "packets": jb.packets, "lost": jb.lost, "late": jb.late,
                "dups": jb.dups, "concealed": jb.concealed, "skipped": jb.skipped,
                "drift_ppm": jb.drift_ppm(), "slips_dropped": jb.dropped,
                "slips_added": jb.added,
                "underruns": self.sink.underruns if self.sink else 0,
                "resyncs": jb.resyncs, "bad": jb.bad + self.malformed + self.link.dropped,
                "error": self.error}


def make_link(sess):
    from .jitter import MAX_PACKET
    if sess["transport"] == "http":
        from ..net.http import HttpLink
        return HttpLink(sess["url"], MAX_PACKET)
    from ..net.udp import UdpLink
    # One byte more than the longest packet accepted tells a datagram that
    # recv() cut short.
    return UdpLink(sess["addr"], sess["port"], MAX_PACKET + 1, sess.get("src"),
                   sess.get("ssrc"))
