# RTP audio payloads of RFC 3551 that a node decodes: PCMU, PCMA, L16 mono and
# DVI4 (IMA ADPCM). Decoders write native int16 samples into a caller's buffer
# and allocate nothing (viper loops, tables built once at import). The
# encoders are in encoder.py: the head-end needs them, the node does not.
from array import array

from ..compat import micropython, ptr8, ptr16

KEEP = True  # viper code: never unloaded (compat.unload)

PCMU = 0
PCMA = 1
L16 = 2
DVI4 = 3
NAMES = ("PCMU", "PCMA", "L16", "DVI4")

# Static payload types (RFC 3551 §6): pt -> (codec, rate). L16 at other rates
# and mono 44.1 kHz use dynamic types announced by SDP (a=rtpmap).
STATIC_PT = {0: (PCMU, 8000), 8: (PCMA, 8000), 5: (DVI4, 8000), 6: (DVI4, 16000),
             11: (L16, 44100)}
RATES = {PCMU: (8000,), PCMA: (8000,), DVI4: (8000, 16000),
         L16: (8000, 16000, 22050, 44100, 48000)}
DVI4_HEADER = 4  # RFC 3551 §4.5.1: predicted value (int16, network order), index, reserved


def codec_by_name(name):
    name = name.upper()
    for i in range(len(NAMES)):
        if NAMES[i] == name:
            return i
    return -1


def bytes_for(codec, nsamples):
    if codec == L16:
        return 2 * nsamples
    if codec == DVI4:
        return DVI4_HEADER + (nsamples + 1) // 2
    return nsamples


def samples_in(codec, nbytes):
    """Samples a payload of nbytes carries (0 when it cannot be valid)."""
    if codec == L16:
        return nbytes >> 1
    if codec == DVI4:
        return 2 * (nbytes - DVI4_HEADER) if nbytes > DVI4_HEADER else 0
    return nbytes


# -- G.711 (ITU-T G.711; bit manipulations as in the public Sun g711.c) --------
def _ulaw2lin(u):
    u = ~u & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def _alaw2lin(a):
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


_tables = [None, None]  # type: list  # PCMU, PCMA: built on first use, one in RAM


def _table(codec):
    t = _tables[codec]
    if t is None:
        f = _ulaw2lin if codec == PCMU else _alaw2lin
        t = array("h", bytes(512))
        for i in range(256):
            t[i] = f(i)
        _tables[codec] = t
    return t

# -- IMA ADPCM (DVI4) -----------------------------------------------------------
STEPS = array("h", (
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45,
    50, 55, 60, 66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230,
    253, 279, 307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796, 876, 963,
    1060, 1166, 1282, 1411, 1552, 1707, 1878, 2066, 2272, 2499, 2749, 3024, 3327,
    3660, 4026, 4428, 4871, 5358, 5894, 6484, 7132, 7845, 8630, 9493, 10442,
    11487, 12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794,
    32767))


@micropython.viper
def _g711(src, off: int, n: int, dst, doff: int, table) -> int:
    s = ptr8(src)
    d = ptr16(dst)
    t = ptr16(table)
    i = 0
    while i < n:
        d[doff + i] = t[s[off + i]]
        i += 1
    return n


@micropython.viper
def _l16(src, off: int, n: int, dst, doff: int) -> int:
    # network byte order -> native int16
    s = ptr8(src)
    d = ptr16(dst)
    i = 0
    while i < n:
        d[doff + i] = (s[off + 2 * i] << 8) | s[off + 2 * i + 1]
        i += 1
    return n


@micropython.viper
def _dvi4(src, off: int, nbytes: int, dst, doff: int, steps, state: int) -> int:
    # nbytes of 4-bit codes (no header) from the decoder state
    # (pred & 0xFFFF) << 7 | index; -> the state after them
    s = ptr8(src)
    d = ptr16(dst)
    st = ptr16(steps)
    pred = state >> 7
    if pred >= 32768:
        pred -= 65536
    idx = state & 127
    n = 2 * nbytes
    i = 0
    while i < n:
        b = int(s[off + (i >> 1)])
        # RFC 3551 §4.5.1: first sample in the four most significant bits
        nib = (b >> 4) if (i & 1) == 0 else (b & 15)
        step = int(st[idx])
        diff = step >> 3
        if nib & 4:
            diff += step
        if nib & 2:
            diff += step >> 1
        if nib & 1:
            diff += step >> 2
        if nib & 8:
            pred -= diff
            if pred < -32768:
                pred = -32768
        else:
            pred += diff
            if pred > 32767:
                pred = 32767
        k = nib & 7
        if k < 4:
            idx -= 1
            if idx < 0:
                idx = 0
        else:
            idx += 2 * (k - 3)
            if idx > 88:
                idx = 88
        d[doff + i] = pred & 0xFFFF
        i += 1
    return ((pred & 0xFFFF) << 7) | idx


def dvi4_state(b0, b1, b2):
    """Decoder state from the first three bytes of a DVI4 packet's header."""
    return (((b0 << 8) | b1) << 7) | min(b2, 88)


def decode_run(codec, src, off, nbytes, dst, doff, state):
    """Decode nbytes of coded samples at src[off:] into dst[doff:] (int16),
    continuing from state (DVI4: dvi4_state of the packet's header, then what
    the previous run returned; ignored by the stateless codecs); -> state.
    Lets a long packet play out in short runs from a ring."""
    if codec == PCMU or codec == PCMA:
        _g711(src, off, nbytes, dst, doff, _table(codec))
    elif codec == L16:
        _l16(src, off, nbytes >> 1, dst, doff)
    else:
        return _dvi4(src, off, nbytes, dst, doff, STEPS, state)
    return 0


def decode(codec, src, off, nbytes, dst):
    """Decode the payload src[off:off+nbytes] into dst (int16); -> samples."""
    if codec == DVI4:
        if nbytes <= DVI4_HEADER:
            return 0
        decode_run(codec, src, off + DVI4_HEADER, nbytes - DVI4_HEADER, dst, 0,
                   dvi4_state(src[off], src[off + 1], src[off + 2]))
    else:
        decode_run(codec, src, off, nbytes, dst, 0, 0)
    return samples_in(codec, nbytes)
