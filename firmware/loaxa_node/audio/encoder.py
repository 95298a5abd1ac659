# RTP payload encoders (the head-end's side of codec.py): G.711 as in the
# public Sun g711.c, IMA ADPCM as in the IMA recommended practice, packed as
# RFC 3551 §4.5.1 DVI4. Pure Python, so the node could run them too.
from .codec import DVI4_HEADER, L16, PCMA, PCMU, STEPS


def pack_header(b, pt, seq, ts, ssrc, marker=0):
    """Write a 12-byte RTP header (RFC 3550 §5.1) at the start of b."""
    b[0] = 0x80
    b[1] = (marker << 7) | (pt & 0x7F)
    b[2] = (seq >> 8) & 0xFF
    b[3] = seq & 0xFF
    for i in range(4):
        b[4 + i] = (ts >> (24 - 8 * i)) & 0xFF
        b[8 + i] = (ssrc >> (24 - 8 * i)) & 0xFF
    return 12

_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _seg(v, ends):
    seg = 0
    while seg < 8 and v > ends[seg]:
        seg += 1
    return seg


def lin2ulaw(s):
    s >>= 2  # 14-bit
    mask = 0xFF
    if s < 0:
        s = -s
        mask = 0x7F
    s = min(s, 8159) + (0x84 >> 2)
    seg = _seg(s, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((s >> (seg + 1)) & 0xF)) ^ mask


def lin2alaw(s):
    s >>= 3  # 13-bit
    mask = 0xD5
    if s < 0:
        mask = 0x55
        s = -s - 1
    seg = _seg(s, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((s >> (1 if seg < 2 else seg)) & 0xF)) ^ mask


class Encoder:
    """Host side (head-end): int16 samples -> one payload. DVI4 keeps its
    predictor across packets and writes it into each packet's header, so a
    receiver can start at any packet."""

    def __init__(self, codec):
        self.codec = codec
        self.pred = 0
        self.idx = 0

    def encode(self, samples, out):
        """samples: sequence of ints; out: bytearray; -> payload bytes."""
        c = self.codec
        n = len(samples)
        if c == PCMU:
            for i in range(n):
                out[i] = lin2ulaw(samples[i])
            return n
        if c == PCMA:
            for i in range(n):
                out[i] = lin2alaw(samples[i])
            return n
        if c == L16:
            for i in range(n):
                v = samples[i] & 0xFFFF
                out[2 * i] = v >> 8
                out[2 * i + 1] = v & 0xFF
            return 2 * n
        return self._dvi4(samples, out)

    def _dvi4(self, samples, out):
        pred, idx = self.pred, self.idx
        out[0] = (pred >> 8) & 0xFF
        out[1] = pred & 0xFF
        out[2] = idx
        out[3] = 0
        byte = 0
        for i in range(len(samples)):
            diff = samples[i] - pred
            nib = 0
            if diff < 0:
                nib = 8
                diff = -diff
            step = STEPS[idx]
            vp = step >> 3
            if diff >= step:
                nib |= 4
                diff -= step
                vp += step
            step >>= 1
            if diff >= step:
                nib |= 2
                diff -= step
                vp += step
            step >>= 1
            if diff >= step:
                nib |= 1
                vp += step
            pred = max(-32768, pred - vp) if nib & 8 else min(32767, pred + vp)
            k = nib & 7
            idx = max(0, idx - 1) if k < 4 else min(88, idx + 2 * (k - 3))
            if i & 1:
                out[DVI4_HEADER + (i >> 1)] = byte | nib
            else:
                byte = nib << 4
        if len(samples) & 1:
            out[DVI4_HEADER + (len(samples) >> 1)] = byte
        self.pred, self.idx = pred, idx
        return DVI4_HEADER + (len(samples) + 1) // 2
