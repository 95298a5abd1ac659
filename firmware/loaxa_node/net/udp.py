# RTP over UDP, unicast or multicast (DESIGN §4), for LANs.
#
# A link (this one and http.HttpLink) speaks its protocol assuming a good
# network and raises OSError when it fails; the stream above owns reconnect
# and back-off. poll() returns the length of one packet now in link.pkt
# (0: none waiting) and never blocks, so one task drains a link between sink
# writes. Only the link a session needs is imported.
import select
import socket

from ..audio.rtp import is_multicast


class UdpLink:
    def __init__(self, addr, port, max_pkt, src=None, ssrc=None):
        """src, ssrc: when the session names them, only RTP from that IPv4
        source address and with that SSRC is taken; the rest is counted in
        dropped (docs/security.md: what this does not stop on a LAN)."""
        self.addr = addr
        self.port = port
        self.src = src
        self._src4 = bytes(int(x) for x in src.split(".")) if src else b""
        self.ssrc = None if ssrc is None else bytes(
            [(ssrc >> 24) & 0xFF, (ssrc >> 16) & 0xFF, (ssrc >> 8) & 0xFF, ssrc & 0xFF])
        # recv() allocates what it is asked for before trimming: asking for
        # about one expected packet keeps that churn (and fragmentation) small
        self.max_pkt = max_pkt
        self.pkt = b""
        self.sock = None
        self.dropped = 0  # empty or longer than max_pkt

    def open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock = s
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo("0.0.0.0", self.port)[0][-1])
        if is_multicast(self.addr):
            group = bytes([int(x) for x in self.addr.split(".")])
            s.setsockopt(getattr(socket, "IPPROTO_IP", 0), socket.IP_ADD_MEMBERSHIP,
                         group + b"\0\0\0\0")
        s.setblocking(False)
        self._poll = select.poll()
        self._poll.register(s, select.POLLIN)

    def poll(self):
        # A stream read (readinto) would join queued datagrams, so datagrams
        # come through recv(): the one allocation per packet that MicroPython's
        # socket API leaves (measured in `make bench`).
        # ipoll first: an EAGAIN exception would allocate on every empty poll.
        s = self.sock
        while s:
            ready = False
            for _ in self._poll.ipoll(0):
                ready = True
            if not ready:
                return 0
            if self.src is None:
                p = s.recv(self.max_pkt)
            else:  # one tuple more per packet, only for sessions that name a source
                p, a = s.recvfrom(self.max_pkt)
                if not self._from_src(a):
                    self.dropped += 1  # another sender: counted as bad
                    continue
            sc = self.ssrc
            if sc is not None and (len(p) < 12 or p[8] != sc[0] or p[9] != sc[1]
                                   or p[10] != sc[2] or p[11] != sc[3]):
                self.dropped += 1  # another stream
                continue
            if p and len(p) < self.max_pkt:
                self.pkt = p
                return len(p)
            self.dropped += 1  # empty, or truncated by recv: counted as bad
        return 0

    def _from_src(self, a):
        # recvfrom gives (ip, port) on lwIP ports, a raw sockaddr_in (family,
        # port, 4 address bytes) on the unix port; compared without allocating
        if isinstance(a, tuple):
            return a[0] == self.src
        s4 = self._src4
        return len(a) >= 8 and a[4] == s4[0] and a[5] == s4[1] and a[6] == s4[2] \
            and a[7] == s4[3]

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None
