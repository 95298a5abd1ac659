# RTP fixed header (RFC 3550 §5.1) parsed into preallocated fields, and the
# sequence and timestamp arithmetic the jitter buffer needs. The sender's side
# (pack_header) is in encoder.py: the node never sends.
#
# 32-bit fields are kept as small ints so that parsing allocates nothing on a
# 32-bit port (small ints hold 31 bits there): the timestamp keeps its low 30
# bits (only differences are used) and the SSRC is split in two halves.

OK = 0
SHORT = 1  # shorter than its header, CSRC list, extension or padding says
VERSION = 2  # not RTP version 2
PADDING = 3  # padding count of zero or longer than the payload
EMPTY = 4  # no payload
REASONS = ("ok", "short", "version", "padding", "empty")

TS_MASK = 0x3FFFFFFF
SEQ_MOD = 0x10000


class Header:
    def __init__(self):
        self.pt = 0
        self.marker = 0
        self.seq = 0
        self.ts = 0
        self.ssrc_hi = 0
        self.ssrc_lo = 0
        self.off = 0  # payload offset in the packet
        self.plen = 0  # payload length

    def ssrc(self):
        return (self.ssrc_hi << 16) | self.ssrc_lo

    def parse(self, b, n):
        """Parse packet b[:n]; -> OK or the reason it is invalid."""
        if n < 12:
            return SHORT
        b0 = b[0]
        if b0 >> 6 != 2:
            return VERSION
        off = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:  # header extension: 4 bytes + length in 32-bit words
            if off + 4 > n:
                return SHORT
            off += 4 + 4 * ((b[off + 2] << 8) | b[off + 3])
        end = n
        if b0 & 0x20:
            pad = b[n - 1]
            if pad == 0 or pad > n - off:
                return PADDING
            end -= pad
        if off > end:
            return SHORT
        if off == end:
            return EMPTY
        self.marker = b[1] >> 7
        self.pt = b[1] & 0x7F
        self.seq = (b[2] << 8) | b[3]
        self.ts = ((b[4] & 0x3F) << 24) | (b[5] << 16) | (b[6] << 8) | b[7]
        self.ssrc_hi = (b[8] << 8) | b[9]
        self.ssrc_lo = (b[10] << 8) | b[11]
        self.off = off
        self.plen = end - off
        return OK


def seq_diff(a, b):
    """a - b in sequence space: -32768..32767."""
    d = (a - b) & 0xFFFF
    return d - SEQ_MOD if d >= 0x8000 else d


def ts_diff(a, b):
    """a - b for 30-bit timestamps, signed."""
    d = (a - b) & TS_MASK
    return d - (TS_MASK + 1) if d > (TS_MASK >> 1) else d


def is_multicast(addr):
    """True for an IPv4 multicast group (224.0.0.0/4)."""
    try:
        return 224 <= int(addr.split(".")[0]) <= 239
    except ValueError:
        return False
