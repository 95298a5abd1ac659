# RTP over a node-initiated HTTP(S) GET whose body is RFC 4571 framed RTP
# (2-byte length, then the packet): works through carrier NAT on 4G, and over
# TLS. Same link interface as udp.UdpLink.
import socket


def split_url(url):
    """'http[s]://host[:port]/path' -> (tls, host, port, path)"""
    tls = url.startswith("https://")
    rest = url[8:] if tls else url[7:]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    if not host:
        raise ValueError("url has no host")
    return tls, host, int(port) if port else (443 if tls else 80), "/" + path


CA_FILE = "ca.der"  # the one CA (provisioned, docs/control.md) streams must chain to too


def _tls(s, host):
    """s wrapped in TLS whose server certificate must chain to the pinned CA
    (as the MQTT client checks the broker's): a node plays streams from the
    head-end only, never from a server that merely answers on its address."""
    import ssl

    from .. import log, storage
    try:
        with open(storage.path(CA_FILE), "rb") as f:
            ca = f.read()
    except OSError:
        ca = None
    if not ca:
        s.close()
        log.error("https stream from %s refused: no CA pinned on this node (provision one "
                  "with --broker-ca)" % host)
        raise OSError("https: no CA pinned")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]
    ctx.load_verify_locations(cadata=ca)
    try:
        return ctx.wrap_socket(s, server_hostname=host)
    except Exception as e:  # OSError (mbedTLS), ssl.SSLError (CPython), ValueError
        s.close()
        log.error("https stream from %s refused: its certificate does not chain to the "
                  "pinned CA (%s)" % (host, e))
        raise OSError("https: certificate not accepted")


class HttpLink:
    """GET url; the response body is RFC 4571 frames: 2-byte length + packet.
    Stream reads fill exactly the asked bytes, so this path allocates nothing
    per packet."""

    def __init__(self, url, max_pkt):
        self.url = url
        self.max_pkt = max_pkt
        self.pkt = bytearray(max_pkt)
        self._mv = memoryview(self.pkt)
        self._len = bytearray(2)
        self._need = 0  # body bytes of the frame being read, 0 = reading length
        self._got = 0
        self.sock = None
        self.dropped = 0  # a zero-length or too long frame breaks the stream instead

    def open(self):
        tls, host, port, path = split_url(self.url)
        ai = socket.getaddrinfo(host, port)[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        self.sock = s
        s.settimeout(5)
        s.connect(ai[-1])
        if tls:
            s = _tls(s, host)
            self.sock = s
        s.write(b"GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: loaxa-node\r\n\r\n" % (
            path.encode(), host.encode()))
        status = s.readline()
        if not status or b" 200 " not in status:
            raise OSError("http: " + (status.decode().strip() if status else "no answer"))
        while True:
            line = s.readline()
            if not line or line == b"\r\n":
                break
        s.setblocking(False)
        self._need = 0
        self._got = 0

    def _read(self, buf, mv, want):
        # fill buf[_got:want]; returns True when complete
        got = self._got
        s = self.sock
        if s is None:
            raise OSError("http: not connected")
        r = s.readinto(buf if got == 0 else mv[got:], want - got)
        if r is None:
            return False
        if r == 0:
            if got == 0 and self._need == 0:
                # between frames: the head-end ended the response, as HTTP ends a
                # body; a broken link times out or cuts a frame instead
                raise EOFError("http: the stream ended")
            raise OSError("http: stream closed mid-frame")
        self._got = got + r
        return self._got == want

    def poll(self):
        if self._need == 0:
            if not self._read(self._len, memoryview(self._len) if self._got else None, 2):
                return 0
            n = (self._len[0] << 8) | self._len[1]
            if n == 0 or n > self.max_pkt:
                raise OSError("http: bad frame length %d" % n)
            self._need = n
            self._got = 0
        if not self._read(self.pkt, self._mv, self._need):
            return 0
        n = self._need
        self._need = 0
        self._got = 0
        return n

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None
