"""Head-end streaming: any file or HTTP station -> RTP the nodes decode.

ffmpeg decodes and resamples whatever comes in (WAV, MP3, FLAC, OGG, a relayed
station); the payload is encoded by the firmware's own codec module
(loaxa_node.audio.codec), so the head-end sends exactly what nodes decode. One
packetizer feeds every output: UDP unicast/multicast destinations, and an
HTTP server whose GET responses carry the same packets framed per RFC 4571,
each client behind a bounded queue that drops its oldest packet when full.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loaxa_node.audio import codec as audiocodec
from loaxa_node.audio import encoder as audioenc
from loaxa_node.audio import rtp, sdp
from loaxa_node.audio.jitter import MAX_PACKET, MAX_PAYLOAD

from .errors import LoaxaError

DYNAMIC_PT = 96
CLIENT_QUEUE = 50  # packets (1 s at 20 ms) a slow HTTP client may lag before drops


@dataclass
class Format:
    codec: str = "DVI4"
    rate: int = 16000
    ptime: int = 20

    def __post_init__(self) -> None:
        try:
            s = sdp.session({"transport": "udp", "port": 1, "codec": self.codec,
                             "rate": self.rate, "pt": self.pt})
        except ValueError as e:
            raise LoaxaError(f"stream format: {e}") from None
        self.codec = s["codec"]
        c = audiocodec.codec_by_name(self.codec)
        if self.ptime < 1 or audiocodec.bytes_for(c, self.samples) > MAX_PAYLOAD:
            raise LoaxaError(f"stream format: ptime {self.ptime} ms does not fit a packet "
                             f"of {MAX_PACKET} bytes at {self.codec} {self.rate} Hz")

    @property
    def pt(self) -> int:
        c = audiocodec.codec_by_name(self.codec)
        for pt, (cc, r) in audiocodec.STATIC_PT.items():
            if (cc, r) == (c, self.rate):
                return pt
        return DYNAMIC_PT

    @property
    def samples(self) -> int:
        return self.rate * self.ptime // 1000

    def session(self, **where: object) -> dict:
        return {"codec": self.codec, "rate": self.rate, "pt": self.pt, **where}

    def sdp(self, addr: str, port: int) -> str:
        """The SDP a standard receiver (ffplay, VLC, a node) needs."""
        ttl = "/16" if rtp.is_multicast(addr) else ""
        lines = ["v=0", f"o=- 0 0 IN IP4 {addr}", "s=loaxa", f"c=IN IP4 {addr}{ttl}", "t=0 0",
                 f"m=audio {port} RTP/AVP {self.pt}",
                 f"a=rtpmap:{self.pt} {self.codec}/{self.rate}/1" if self.pt >= 96 else "",
                 f"a=ptime:{self.ptime}"]
        return "\r\n".join(x for x in lines if x) + "\r\n"


CAPTURE = ("alsa:", "pulse:")  # a sound card's input: alsa:default, pulse:default
# Where a live relay may come from (docs/headend.md, "Live relays"): a scheme and
# the protocols ffmpeg may open for it, its -protocol_whitelist, so that what the
# source leads to (an HLS playlist's segments, an RTSP session's streams) stays
# on the network too: never file:, concat:, subfile:, pipe:, data:, tcp: as a source.
LIVE_PROTOCOLS = {
    "http": "http,https,tls,tcp,crypto",  # Icecast/SHOUTcast MP3 and AAC, HLS
    "https": "http,https,tls,tcp,crypto",
    "rtsp": "rtsp,rtp,udp,tcp,tls",  # IP encoders and cameras' audio
    "rtmp": "rtmp,rtmps,tcp,tls",
    "srt": "srt,udp",  # contribution links between stations
    "rtp": "rtp,udp",  # a station's multicast on the province's network
    "udp": "udp",  # MPEG-TS over UDP (a DVB-IP or encoder's output)
}
DEVICE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:,=-")
SOURCES_HINT = ("a station's URL (" + ", ".join(f"{s}://" for s in LIVE_PROTOCOLS) +
                "), a microphone (alsa:DEVICE, pulse:DEVICE), or the name of a file in "
                "the media folder")


def live_protocols(source: str) -> str | None:
    """For a live source, the protocols ffmpeg may open for it ("" for a sound
    card's input); None for a plain name (a media file's); LoaxaError, before
    anything starts, for any other source."""
    if source.startswith(CAPTURE):
        device = source.partition(":")[2]
        if not device or len(device) > 64 or not set(device) <= DEVICE_CHARS:
            raise LoaxaError(f"bad sound card input {source!r}", "e.g. alsa:default, "
                             "alsa:hw:1,0, pulse:default")
        return ""
    scheme, sep, rest = source.partition("://")
    if sep and scheme.lower() in LIVE_PROTOCOLS and rest and source.isprintable() \
            and " " not in source:
        return LIVE_PROTOCOLS[scheme.lower()]
    if not any(c in source for c in ":/\\|,"):
        return None
    what = scheme if sep else source.partition(":")[0] if ":" in source else "a path"
    raise LoaxaError(f"a relay cannot come from {what[:20]}{':' if ':' in source else ''}",
                     SOURCES_HINT)


def is_live(source: str) -> bool:
    """A station's URL or a microphone, not a file: it plays as it comes.
    LoaxaError for a source that is neither a name nor allowed (live_protocols)."""
    return live_protocols(source) is not None


def ffmpeg_pcm(source: str, rate: int, loop: bool = False) -> subprocess.Popen:
    """Decode and resample to s16le mono at rate: a local file, or a live source
    live_protocols allows (a URL, a sound card's input as alsa:DEVICE or
    pulse:DEVICE), ffmpeg held to that source's protocols."""
    exe = shutil.which("ffmpeg")
    if not exe:
        raise LoaxaError("ffmpeg is not installed", "run `make sysdeps` (apt-get install ffmpeg)")
    if "://" not in source and not source.startswith(CAPTURE):
        if not os.path.isfile(source):
            raise LoaxaError(f"no such file: {source}")
        allow: str | None = "file"
        source = os.path.abspath(source)  # a name with a colon is no protocol
    else:
        allow = live_protocols(source)
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error"]
    if loop:
        cmd += ["-stream_loop", "-1"]
    if allow:
        cmd += ["-protocol_whitelist", allow]
    if source.startswith(CAPTURE):
        kind, _, device = source.partition(":")
        cmd += ["-f", kind]
        source = device
    cmd += ["-i", source, "-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


class Packetizer:
    """int16 samples (native bytes) -> RTP packets of one ptime each."""

    def __init__(self, fmt: Format, ssrc: int | None = None):
        self.fmt = fmt
        self.enc = audioenc.Encoder(audiocodec.codec_by_name(fmt.codec))
        self.seq = int.from_bytes(os.urandom(2), "big")  # RFC 3550 §5.1: random start
        self.ts = int.from_bytes(os.urandom(4), "big")
        self.ssrc = int.from_bytes(os.urandom(4), "big") if ssrc is None else ssrc
        self._buf = bytearray(12 + audiocodec.bytes_for(self.enc.codec, fmt.samples))
        self._mv = memoryview(self._buf)

    def packet(self, pcm: bytes, marker: int = 0) -> bytes:
        n = len(pcm) // 2
        samples = struct.unpack(f"<{n}h", pcm)
        audioenc.pack_header(self._buf, self.fmt.pt, self.seq, self.ts, self.ssrc, marker)
        size = 12 + self.enc.encode(samples, self._mv[12:])
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + n) & 0xFFFFFFFF
        return bytes(self._buf[:size])


@dataclass
class Stats:
    packets: int = 0
    seconds: float = 0.0
    late_ms: float = 0.0  # worst lag behind real time
    clients: int = 0
    dropped: int = 0  # packets dropped for slow HTTP clients
    first_send: float = 0.0  # wall clock of packet 0 (latency bench)


class HttpFanout:
    """GET <path> -> 200 and RFC 4571 frames for as long as the client stays."""

    def __init__(self, stats: Stats, path: str = "/"):
        self.stats = stats
        self.path = path
        self.queues: set[asyncio.Queue[bytes]] = set()
        self.server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self._client, host, port, ssl=tls)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            path = await request_path(r)
            if not path.startswith(self.path):
                w.write(b"HTTP/1.0 404 Not Found\r\n\r\n")
                return
            await self.attach(w)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, UnicodeDecodeError):
            pass
        finally:
            w.close()

    async def attach(self, w: asyncio.StreamWriter) -> None:
        """Answer a client that asked for this stream: frames until it or the stream ends."""
        q: asyncio.Queue[bytes] = asyncio.Queue(CLIENT_QUEUE)
        w.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Cache-Control: no-store\r\n\r\n")
        self.queues.add(q)
        self.stats.clients = len(self.queues)
        try:
            while True:
                frame = await q.get()
                if not frame:
                    break  # the stream ended
                w.write(frame)
                await w.drain()
        finally:
            self.queues.discard(q)
            self.stats.clients = len(self.queues)

    def send(self, pkt: bytes) -> None:
        frame = len(pkt).to_bytes(2, "big") + pkt  # RFC 4571 §2
        for q in self.queues:
            if q.full():
                q.get_nowait()
                self.stats.dropped += 1
            q.put_nowait(frame)

    async def close(self) -> None:
        for q in self.queues:  # the stream ended: so does every response
            if q.full():
                q.get_nowait()
            q.put_nowait(b"")
        for _ in range(200):  # up to 2 s for clients to take their last frames
            if not self.queues:
                break
            await asyncio.sleep(0.01)
        if self.server:
            self.server.close()
            await self.server.wait_closed()


async def request_path(r: asyncio.StreamReader) -> str:
    """The path of an HTTP request's first line ("" if it has none)."""
    req = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
    return req.split(b" ", 2)[1].decode() if req.count(b" ") >= 2 else ""


class OneClient:
    """One HTTP response as a Streamer output: RFC 4571 frames to one node."""

    def __init__(self, w: asyncio.StreamWriter):
        self.w = w

    def send(self, pkt: bytes) -> None:
        if self.w.is_closing():
            raise ConnectionError("the node closed the stream")
        self.w.write(len(pkt).to_bytes(2, "big") + pkt)


TOKEN_S = 6 * 3600  # a broadcast's stream token is good this long (its relay's life at most)
MAX_ENCODERS = 32  # files encoded at once; more requests wait for a 503's retry


class FileServer:
    """GET <prefix>TOKEN/NAME -> the file NAME (any extension ffmpeg reads) under
    root, as RFC 4571 RTP paced in real time, then the end of the response.
    What a node fetches for a broadcast or a schedule item `file:NAME`.
    GET /live/TOKEN/NAME -> the live relay of that name (`relays`) from where it
    is now, while it lasts. Nothing is served without a token (docs/security.md):
    grant(name) makes one for one file or relay (a broadcast's), grant("*") one
    for every file (the rules' [files] url); tokens are HMACs under secret, so
    every process holding the secret (serve, the head-end's CLI) can grant them.
    At most max_encoders files are encoded at once: beyond, 503."""

    LIVE = "/live/"

    def __init__(self, root: str | os.PathLike[str] | None, fmt: Format,
                 prefix: str = "/file/", secret: bytes | None = None,
                 max_encoders: int = MAX_ENCODERS):
        self.root = os.path.realpath(root) if root else None
        self.fmt = fmt
        self.prefix = prefix
        self.secret = secret or secrets.token_bytes(32)
        self.max_encoders = max_encoders
        self.encoders = 0  # files being encoded now
        self.served = 0  # responses that streamed a file to the end
        self.refused = {"token": 0, "busy": 0}  # requests turned away, by why
        self.static: list[str] = []  # fixed tokens for every file (`loaxa headend files`)
        self._clients: set[asyncio.Task] = set()
        self.relays: dict[str, Relay] = {}
        self.server: asyncio.base_events.Server | None = None

    def _mac(self, nonce: str, exp: int, scope: str) -> str:
        return hmac.new(self.secret, f"{nonce}.{exp}.{scope}".encode(),
                        hashlib.sha256).hexdigest()[:32]

    def grant(self, scope: str, ttl: float = TOKEN_S) -> str:
        """A token for one file or relay name (scope), or "*" for every file."""
        nonce, exp = secrets.token_hex(6), int(time.time() + ttl)
        return f"{nonce}.{exp}.{self._mac(nonce, exp, scope)}"

    def allows(self, token: str, name: str) -> bool:
        if any(hmac.compare_digest(token, t) for t in self.static):
            return True
        nonce, _, rest = token.partition(".")
        exp_s, _, mac = rest.partition(".")
        if not exp_s.isdigit() or int(exp_s) < time.time():
            return False
        exp = int(exp_s)
        return any(hmac.compare_digest(mac, self._mac(nonce, exp, scope))
                   for scope in (name, "*"))

    def find(self, name: str) -> str | None:
        if self.root is None or not name or not all(c.isalnum() or c in "-_." for c in name) \
                or ".." in name:
            return None
        for f in sorted(os.listdir(self.root)):
            if f == name or f.rpartition(".")[0] == name:
                path = os.path.realpath(os.path.join(self.root, f))
                if os.path.dirname(path) == self.root and os.path.isfile(path):
                    return path
        return None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> int:
        self.server = await asyncio.start_server(self._client, host, port, ssl=tls)
        return self.server.sockets[0].getsockname()[1]

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        proc = None
        counted = False
        task = asyncio.current_task()
        if task:
            self._clients.add(task)
        try:
            path = await request_path(r)
            live = path.startswith(self.LIVE)
            rest = path[len(self.LIVE):] if live else \
                path[len(self.prefix):] if path.startswith(self.prefix) else ""
            token, _, name = rest.partition("/")
            if not name or not self.allows(token, name):
                self.refused["token"] += 1
                w.write(b"HTTP/1.0 403 Forbidden\r\n\r\n")
                return
            relay = self.relays.get(name) if live else None
            if relay is not None:
                await relay.fan.attach(w)
                return
            f = None if live else self.find(name)
            if f is None:
                w.write(b"HTTP/1.0 404 Not Found\r\n\r\n")
                return
            if self.encoders >= self.max_encoders:
                self.refused["busy"] += 1
                w.write(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 2\r\n\r\n")
                return
            self.encoders += 1
            counted = True
            w.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"Cache-Control: no-store\r\n\r\n")
            proc = ffmpeg_pcm(f, self.fmt.rate)
            stdout = proc.stdout
            assert stdout is not None
            await Streamer(self.fmt, [], OneClient(w)).run(lambda n: stdout.read(n))
            await w.drain()
            self.served += 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError, UnicodeDecodeError):
            pass
        finally:
            if task:
                self._clients.discard(task)
            if counted:
                self.encoders -= 1
            if proc:
                proc.kill()
                proc.wait()
            w.close()

    async def close(self) -> None:
        if self.server:
            self.server.close()
            for t in list(self._clients):  # a request still on its way, a file half sent
                t.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await self.server.wait_closed()


class Relay:
    """A live source (a station's stream, the operator's microphone: anything
    ffmpeg_pcm reads) paced in real time to every node that fetches it, from
    start() until the source ends or stop(). Nodes that join late hear it from
    where it is."""

    def __init__(self, source: str, fmt: Format):
        self.source = source
        self.fmt = fmt
        self.fan = HttpFanout(Stats())
        self.proc: subprocess.Popen | None = None
        self.task: asyncio.Task | None = None
        self.ended: list[Callable[[], object]] = []  # called on the loop when it ends

    async def start(self, timeout: float = 10.0) -> None:
        """Open the source; LoaxaError, and nothing left running, if no audio
        comes from it within timeout."""
        proc = self.proc = ffmpeg_pcm(self.source, self.fmt.rate)
        assert proc.stdout is not None
        stdout = proc.stdout
        want = 2 * self.fmt.samples
        read = asyncio.get_running_loop().run_in_executor(None, stdout.read, want)
        try:
            first = await asyncio.wait_for(asyncio.shield(read), timeout)
        except TimeoutError:
            first = b""
        if len(first) < want:
            proc.kill()
            proc.wait()
            raise LoaxaError(f"no audio from {self.source}: {ffmpeg_error(proc)}",
                             "check the station's URL (or the microphone) with `ffprobe`")
        chunks = [first]

        def pcm(n: int) -> bytes:
            return chunks.pop() if chunks else stdout.read(n)
        self.task = asyncio.create_task(self._run(pcm))

    async def _run(self, pcm: Callable[[int], bytes]) -> None:
        try:
            await Streamer(self.fmt, [], self.fan, self.fan.stats).run(pcm)
        finally:
            self.stop()
            await self.fan.close()
            for f in self.ended:
                f()

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def stop(self) -> None:
        """End the relay: the source closes, then every node's response."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def ffmpeg_error(proc: subprocess.Popen) -> str:
    """The last line ffmpeg wrote to stderr, once it has exited."""
    err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    return err.splitlines()[-1] if err else "it ended without a word"


@dataclass
class Streamer:
    """Paces packets in real time from a PCM reader to every output."""

    fmt: Format
    udp: list[tuple[str, int]] = field(default_factory=list)
    http: HttpFanout | OneClient | None = None
    stats: Stats = field(default_factory=Stats)
    progress: Callable[[Stats], None] | None = None

    async def run(self, pcm_read: Callable[[int], bytes]) -> Stats:
        fmt, st = self.fmt, self.stats
        pk = Packetizer(fmt)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 16)
        want = 2 * fmt.samples
        loop = asyncio.get_running_loop()
        t0 = 0.0
        marker = 1
        try:
            while True:
                pcm = await loop.run_in_executor(None, pcm_read, want)
                if len(pcm) < want:
                    break  # the end (a partial last packet is dropped: ptime is fixed)
                if st.packets == 0:
                    t0 = time.monotonic()  # the clock starts once the decoder delivers
                due = t0 + st.packets * fmt.ptime / 1000
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    st.late_ms = max(st.late_ms, -delay * 1000)
                pkt = pk.packet(pcm, marker)
                marker = 0
                if st.packets == 0:
                    st.first_send = time.time()
                for dest in self.udp:
                    sock.sendto(pkt, dest)
                if self.http:
                    self.http.send(pkt)
                st.packets += 1
                st.seconds = st.packets * fmt.ptime / 1000
                if self.progress and st.packets % 50 == 0:
                    self.progress(st)
        finally:
            sock.close()
        return st


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """Server side of HTTPS streaming, from PEM files."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise LoaxaError(f"cannot load the TLS certificate: {e}",
                         "give --tls-cert and --tls-key as PEM files") from None
    return ctx


def parse_dest(text: str, default_port: int = 5004) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", str(default_port))
    try:
        return socket.gethostbyname(host or "127.0.0.1"), int(port)
    except (OSError, ValueError):
        raise LoaxaError(f"bad destination {text!r}", "give HOST:PORT, e.g. 239.10.0.1:5004") \
            from None


async def stream(source: str, fmt: Format, udp: list[tuple[str, int]],
                 http_port: int | None = None, http_host: str = "0.0.0.0",
                 loop: bool = False, wait_clients: int = 0, tls: ssl.SSLContext | None = None,
                 on_ready: Callable[[int | None], None] | None = None,
                 progress: Callable[[Stats], None] | None = None) -> Stats:
    """Stream source to every destination until it ends; returns the stats."""
    proc = ffmpeg_pcm(source, fmt.rate, loop)
    assert proc.stdout is not None
    stdout = proc.stdout
    st = Stats()
    fan = None
    port = None
    if http_port is not None:
        fan = HttpFanout(st)
        port = await fan.start(http_host, http_port, tls)
    if on_ready:
        on_ready(port)
    while fan and st.clients < wait_clients:
        await asyncio.sleep(0.05)
    try:
        await Streamer(fmt, udp, fan, st, progress).run(lambda n: stdout.read(n))
    finally:
        proc.kill()
        proc.wait()
        if fan:
            await fan.close()
    if st.packets == 0:
        raise LoaxaError(f"could not decode {source}: {ffmpeg_error(proc)}",
                         "check the file or station URL with `ffprobe`")
    return st
