"""Clock drift and long streams (issue 20): a soak of relay-like streams on sim
nodes whose sink clocks are off, and what the drift correction costs.

`make bench ARGS="drift --soak-min 60"` for the hour the issue asks for (the
default is 5 minutes a case). Cases: ffmpeg's default PCMU (1024 samples a
packet) and the head-end's own 20 ms DVI4 16 kHz; sink at -100, 0, +100 ppm
(three nodes a case); 0 % loss, and 5 % loss with 5 % reordering. The four
cases stream at once (twelve sim nodes, each its own process), so the hour
takes an hour.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from loaxa import FIRMWARE
from loaxa.bench import Table
from loaxa.console import NodeConsole
from loaxa.sim import SimNode, micropython_cmd
from loaxa.streamer import Format, Packetizer
from loaxa.testsignals import (
    host_stalls,
    local_lags,
    read_wav,
    speech_like,
    start_stall_probe,
    write_wav,
)

FF = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
PPMS = (-100, 0, 100)
CLIP_S = 10  # the source: a 10 s clip of speech-like audio, looped

# Runs on the VM: the playout path over 20 s of 20 ms DVI4 16 kHz with the drift
# loop on and off (time per second of audio), then bytes allocated per packet
# with the loop forced to correct at 1000 ppm (a slip every 62 ms).
UPY_COST = """
import gc, json, time
from loaxa_node.audio import codec as ac, encoder as audioenc, rtp
from loaxa_node.audio.jitter import JitterBuffer, _slip
enc = audioenc.Encoder(ac.DVI4)
b = bytearray(400)
plen = enc.encode([(k * 37 % 2000 - 1000) * 9 for k in range(320)], memoryview(b)[12:])
p = bytearray(b[:12 + plen])  # one packet, its header rewritten: the loop allocates nothing
h = rtp.Header()
out = bytearray(642)

def play(seconds, adjust, force_ppm=0):
    jb = JitterBuffer(ac.DVI4, 16000, 6, 180, bytearray(6144))
    jb.adjust = adjust
    t_us = 0
    a = 0
    n = seconds * 50
    for i in range(n):
        audioenc.pack_header(p, 6, i & 0xFFFF, i * 320, 7)
        h.parse(p, len(p))
        jb.push(h, p, i * 20)
        if i == 300:  # settled (4 s): force the loop's drift estimate
            jb._i16 = force_ppm << 16
            gc.collect()
            gc.disable()
            a = gc.mem_alloc()
        t = time.ticks_us()
        jb.read(out, 320, True)
        t_us += time.ticks_diff(time.ticks_us(), t)
    used = gc.mem_alloc() - a
    gc.enable()
    return t_us, used / (n - 300), jb.dropped + jb.added

# the least of 5 runs of 20 s each way: this host's other work only adds
on = min(play(20, True)[0] for _ in range(5)) * 3
off = min(play(20, False)[0] for _ in range(5)) * 3
_, per_packet, slips = play(80, True, 1000)  # the estimate's windows close too
pcm = bytearray(642)
t = time.ticks_us()
for i in range(1000):
    _slip(pcm, 320, i & 1)
slip_us = time.ticks_diff(time.ticks_us(), t) / 1000
print(json.dumps({"on_us": on, "off_us": off, "alloc": per_packet, "slips": slips,
                  "slip_us": slip_us}))
"""


def cost_table() -> Table:
    env = dict(os.environ, MICROPYPATH=f".frozen:{FIRMWARE}")
    r = subprocess.run([*micropython_cmd(), "-X", "heapsize=4096k", "-c", UPY_COST],
                       capture_output=True, env=env, timeout=600, check=True)
    d = json.loads(r.stdout.decode().splitlines()[-1])
    loop = (d["on_us"] - d["off_us"]) / 60
    return Table("Drift correction cost on the MicroPython VM (unix, this machine; DVI4 16 kHz)",
                 ["playout us per s of audio, loop off", "loop on", "loop cost us/s",
                  "one slip us", "cost at 200 ppm us/s", "bytes alloc/packet (1000 ppm)",
                  "slips in that run"],
                 [[round(d["off_us"] / 60), round(d["on_us"] / 60), round(loop, 1),
                   round(d["slip_us"], 1), round(loop + 3.2 * d["slip_us"], 1),
                   round(d["alloc"], 2), d["slips"]]],
                 note="Loop cost: 20 s of playout with the loop on and off, the least of 5 runs "
                 "each, per second of audio (timer noise remains; it can come out "
                 "negative). A slip at 200 ppm comes 3.2 times a second at 16 kHz. The "
                 "allocation run forces the loop to 1000 ppm after it has settled, so "
                 "slips happen in the measured part.")


# -- the soak ----------------------------------------------------------------


class Lossy:
    """Forwards packets to a node, dropping and reordering them (seeded)."""

    def __init__(self, port: int, loss: float, seed: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.dest = ("127.0.0.1", port)
        self.loss = loss
        self.rnd = random.Random(seed)
        self.held: bytes | None = None
        self.t_first = 0.0

    def send(self, p: bytes) -> None:
        if not self.t_first:
            self.t_first = time.time()
        if self.loss and self.rnd.random() < self.loss:
            return
        if self.loss and self.held is None and self.rnd.random() < self.loss:
            self.held = p  # goes out after the next one: reordered
            return
        self.sock.sendto(p, self.dest)
        if self.held is not None:
            self.sock.sendto(self.held, self.dest)
            self.held = None

    def close(self) -> None:
        self.sock.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _send_dvi4(clip: np.ndarray, seconds: float, outs: list[Lossy]) -> None:
    """The head-end's 20 ms DVI4 (its own packetizer), the clip looped, paced."""
    fmt = Format("DVI4", 16000, 20)
    pk = Packetizer(fmt, ssrc=0x50AC)
    n = fmt.samples
    loop = [pk.packet(clip[i: i + n].astype("<i2").tobytes()) for i in range(0, len(clip), n)]
    t0 = time.monotonic()
    for i in range(int(seconds * 50)):
        b = bytearray(loop[i % len(loop)])
        b[2:4] = (i & 0xFFFF).to_bytes(2, "big")
        b[4:8] = (i * n & 0xFFFFFFFF).to_bytes(4, "big")
        delay = t0 + i * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for o in outs:
            o.send(bytes(b))


class Relay(Protocol):
    def send(self, p: bytes) -> None: ...


def send_ffmpeg(clip_file: Path, seconds: float, outs: Sequence[Relay]) -> None:
    """ffmpeg's default RTP muxer (-re, no -ptime) into a relay that fans out,
    each out deciding what it passes on (also the sender tests')."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    port = rx.getsockname()[1]
    p = subprocess.Popen([*FF, "-re", "-stream_loop", "-1", "-i", str(clip_file), "-t",
                          str(seconds), "-ar", "8000", "-ac", "1", "-c:a", "pcm_mulaw",
                          "-f", "rtp", f"rtp://127.0.0.1:{port}"], stdout=subprocess.DEVNULL)
    try:
        while True:
            try:
                pkt = rx.recv(2048)
            except TimeoutError:
                break
            for o in outs:
                o.send(pkt)
    finally:
        p.kill()
        p.wait()
        rx.close()


def _ffmpeg_reference(clip_file: Path, seconds: float) -> np.ndarray:
    coded = subprocess.run([*FF, "-stream_loop", "-1", "-i", str(clip_file), "-t", str(seconds),
                            "-ar", "8000", "-ac", "1", "-c:a", "pcm_mulaw", "-f", "mulaw", "-"],
                           capture_output=True, check=True).stdout
    return np.frombuffer(subprocess.run([*FF, "-f", "mulaw", "-ar", "8000", "-ac", "1", "-i",
                                         "-", "-f", "s16le", "-"], input=coded,
                                        capture_output=True, check=True).stdout, "<i2")


class Case:
    """One sender into three nodes (-100, 0, +100 ppm), its loss and the stream's end state."""

    def __init__(self, sender: str, loss: float, tmp: Path):
        self.sender = sender
        self.loss = loss
        self.tmp = tmp
        self.rate = 8000 if sender == "ffmpeg" else 16000
        self.nodes: list[tuple[int, SimNode, NodeConsole]] = []
        self.outs: list[Lossy] = []
        self.stats: list[dict] = []
        tmp.mkdir(parents=True, exist_ok=True)

    def boot(self) -> None:
        for ppm in PPMS:
            node = SimNode(self.tmp / f"n{ppm}", audio_ppm=ppm)
            con = NodeConsole(node.start())
            con.wait_ready(120)
            self.nodes.append((ppm, node, con))

    def stream(self, clip16: np.ndarray, clip_file: Path, seconds: float) -> None:
        for i, (_, _, con) in enumerate(self.nodes):
            port = _free_port()
            fmt = Format("PCMU", 8000, 128) if self.sender == "ffmpeg" else Format("DVI4", 16000)
            con.request("play", {"session": fmt.session(addr="127.0.0.1", port=port),
                                 "volume": 100})
            self.outs.append(Lossy(port, self.loss, 100 + i))
        if self.sender == "ffmpeg":
            send_ffmpeg(clip_file, seconds, self.outs)
        else:
            _send_dvi4(clip16, seconds, self.outs)
        time.sleep(1.0)
        self.stats = [con.request("status")["stream"] for _, _, con in self.nodes]
        for _, _, con in self.nodes:
            con.request("stop")
        time.sleep(1.0)

    def close(self) -> None:
        for _, node, con in self.nodes:
            con.close()
            node.stop()
        for o in self.outs:
            o.close()

    def rows(self, src: np.ndarray, seconds: float, stalls_log: Path) -> list[list[object]]:
        rows = []
        rate = self.rate
        hours = seconds / 3600
        for (ppm, node, _), st, out in zip(self.nodes, self.stats, self.outs, strict=True):
            _, got = read_wav(sorted(node.audio_dir.glob("*.wav"))[-1])
            log = (node.audio_dir / "timing.log").read_text().splitlines()
            first = [float(ln.split()[0]) for ln in log if ln.endswith(" first")][-1]
            lags = local_lags(src, got, rate)
            sink_rate = rate * (1 + ppm / 1e6)
            end = first + (len(src) + (lags[-1][1] if lags else 0)) / sink_rate
            underruns = sum(1 for ln in log if " underrun " in ln and float(ln.split()[0]) < end)
            stalls = [ms for _, ms in host_stalls(stalls_log, first, end) if ms >= 100]
            steps = np.abs(np.diff([lag for _, lag in lags])) if len(lags) > 1 else np.array([0])
            lat = np.array([first + (j + lag) / sink_rate - (out.t_first + j / rate)
                            for j, lag in lags]) * 1000
            rows.append([self.sender if self.sender == "ffmpeg" else "head-end DVI4",
                         f"{self.loss:.0%}", ppm, f"{seconds / 60:.1f}",
                         round(underruns / hours, 1), round(st["skipped"] / hours, 1),
                         round(st["lost"] / hours, 1), round(st["late"] / hours, 1),
                         round(st["concealed"] / hours, 1),
                         round(float(steps.max()) * 1000 / rate, 2),
                         f"{lat.min():.0f}..{lat.max():.0f}" if len(lat) else "-",
                         st["drift_ppm"], st["slips_dropped"], st["slips_added"],
                         f"{len(stalls)} (max {max(stalls, default=0)})"])
        return rows


def soak_table(minutes: float) -> Table:
    """All four cases (12 nodes) stream at once: an hour a case fits in an
    hour. Each node is its own process; the senders are threads here (a
    packet every 20 or 128 ms: light), the analysis comes after."""
    seconds = minutes * 60
    loads: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip16 = speech_like(CLIP_S * 16000, 16000, seed=11)
        clip_file = write_wav(tmp / "clip.wav", clip16, 16000)
        cases = [Case(sender, loss, tmp / f"{sender}{loss}")
                 for sender in ("ffmpeg", "dvi4") for loss in (0.0, 0.05)]
        probe = start_stall_probe(tmp / "stalls.log")
        stop = threading.Event()

        def sample_load() -> None:
            while not stop.wait(30):
                loads.append(os.getloadavg()[0])

        sampler = threading.Thread(target=sample_load, daemon=True)
        try:
            for c in cases:
                c.boot()  # one at a time: booting twelve at once starves them
            sampler.start()
            threads = [threading.Thread(target=c.stream, args=(clip16, clip_file, seconds))
                       for c in cases]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        finally:
            stop.set()
            for c in cases:
                c.close()
            probe.kill()
            probe.wait()
        rows: list[list[object]] = []
        for c in cases:
            if c.sender == "ffmpeg":
                src = _ffmpeg_reference(clip_file, seconds)
            else:
                src = np.tile(clip16, int(seconds // CLIP_S) + 1)[: int(seconds * c.rate)]
            rows += c.rows(src, seconds, tmp / "stalls.log")
            print(Table("Soak (so far)", HEADERS, rows[-3:]).render(), flush=True)
    load = (f"{min(loads):.1f} / {sum(loads) / len(loads):.1f} / {max(loads):.1f}"
            if loads else "-")
    return Table(f"Soak: relay-like streams on sim nodes, {minutes:g} min a case (counts per hour)",
                 HEADERS, rows,
                 note="All four cases stream at once: twelve sim nodes, three (-100, 0, +100 "
                 "ppm) a case taking the same stream. Host load average (1 min) while they "
                 f"streamed, min / mean / max: {load}. Largest "
                 "step: of the capture's lag against the source between 0.25 s blocks (blocks "
                 "hit by a concealed loss left out); a drift correction is one sample "
                 "(0.06-0.12 ms), anything longer is a stall whose audio came late (a reordered "
                 "128 ms packet the depth cannot cover) or an underrun, whose delay the loop "
                 "then drains. Latency: from the "
                 "sender's first packet (this host's clock) to the sink playing each block "
                 "(the sink's clock). 5 % loss: each packet dropped with p=0.05, and with p=0.05 "
                 "one is held back behind the next. drift_ppm: the node's estimate at the end "
                 "(+: sender faster; a sink at +100 ppm should read -100). Host stalls: a probe "
                 "process on the same host woke up that late (a sim node is a process: such a "
                 "stall can empty its sink).")


HEADERS = ["sender", "loss+reorder", "sink ppm", "minutes", "underruns/h", "skipped/h",
           "lost/h", "late/h", "concealed/h", "largest step ms", "latency ms (min..max)",
           "drift_ppm", "slips dropped", "slips added", "host stalls >=100 ms"]


def run(argv: list[str]) -> list[Table]:
    minutes = 5.0
    if "--soak-min" in argv:
        minutes = float(argv[argv.index("--soak-min") + 1])
    return [cost_table(), soak_table(minutes)]
