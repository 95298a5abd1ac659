"""Audio path measurements: decode speed on the MicroPython VM next to ffmpeg,
bytes allocated per packet, heap while streaming, head-end -> sink latency, and
how many nodes one head-end process feeds in real time.

`make bench ARGS=audio` (add `--minutes N` for the long heap soak).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from loaxa import FIRMWARE
from loaxa.bench import Table
from loaxa.console import NodeConsole
from loaxa.sim import SimNode, micropython_cmd
from loaxa.streamer import Format, Packetizer, Stats, Streamer, stream
from loaxa.testsignals import speech_like, write_wav

FF = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
# (codec, rate, ptime ms): the head-end's 20 ms, and ffmpeg's default PCMU packet
PAYLOADS = [("PCMU", 8000, 20), ("PCMA", 8000, 20), ("L16", 16000, 20), ("DVI4", 8000, 20),
            ("DVI4", 16000, 20), ("PCMU", 8000, 128)]

# Runs on the VM: decode every packet `reps` times, then the receive path
# (parse + jitter buffer + decode) with gc disabled to count bytes allocated.
UPY_DECODE = """
import gc, json, sys, time
from loaxa_node.audio import codec as ac, rtp
from loaxa_node.audio.jitter import JitterBuffer
d = json.loads(sys.stdin.read())
codec = ac.codec_by_name(d["codec"])
pkts = [bytes.fromhex(p) for p in d["pkts"]]
out = bytearray(4096)
h = rtp.Header()
reps = d["reps"]
plen = len(pkts[0]) - 12
t = time.ticks_us()
for _ in range(reps):
    for p in pkts:
        ac.decode(codec, p, 12, plen, out)
dt = time.ticks_diff(time.ticks_us(), t)
jb = JitterBuffer(codec, d["rate"], d["pt"], 180)
t = time.ticks_us()
for i in range(len(pkts)):  # the whole receive path per packet, once
    p = pkts[i]
    h.parse(p, len(p)); jb.push(h, p, i * 20); jb.read(out, len(out) // 2)
path_us = time.ticks_diff(time.ticks_us(), t) / len(pkts)
jb = JitterBuffer(codec, d["rate"], d["pt"], 180)
for p in pkts[:20]:  # warm-up: first-use allocations are not per packet
    h.parse(p, len(p)); jb.push(h, p, 0); jb.read(out, 320)
gc.collect(); gc.disable()
a = gc.mem_alloc()
for i in range(20, len(pkts)):
    p = pkts[i]
    h.parse(p, len(p)); jb.push(h, p, i * 20); jb.read(out, len(out) // 2)
per = (gc.mem_alloc() - a) / (len(pkts) - 20)
gc.enable()
print(json.dumps({"us": dt, "path_us": path_us, "alloc_per_packet": per}))
"""

# Runs on the VM: UdpLink.poll() draining packets already queued on its socket.
UPY_UDP = """
import gc, json, socket, sys
from loaxa_node.net.udp import UdpLink
import time
link = UdpLink("127.0.0.1", PORT, 164 + 12 + 64 + 1)
link.open()
print("ready")
time.sleep(1.5)
gc.collect(); gc.disable()
a = gc.mem_alloc(); n = 0
while link.poll():
    n += 1
per = (gc.mem_alloc() - a) / max(1, n)
gc.enable()
print(json.dumps({"n": n, "alloc_per_packet": per}))
"""


def _packets(codec: str, rate: int, seconds: float, ptime: int = 20) -> list[bytes]:
    fmt = Format(codec, rate, ptime)
    pk = Packetizer(fmt)
    x = speech_like(int(seconds * rate), rate)
    n = fmt.samples
    return [pk.packet(x[i: i + n].astype("<i2").tobytes()) for i in range(0, len(x) - n + 1, n)]


def _upy(code: str, stdin: str = "", heap_kb: int = 16384) -> dict:
    env = dict(os.environ, MICROPYPATH=f".frozen:{FIRMWARE}")
    r = subprocess.run([*micropython_cmd(), "-X", f"heapsize={heap_kb}k", "-c", code],
                       input=stdin.encode(), capture_output=True, env=env, timeout=600,
                       check=True)
    return json.loads(r.stdout.decode().splitlines()[-1])


def _ffmpeg_speed(codec: str, rate: int, seconds: float, tmp: Path) -> float:
    """x real time of ffmpeg decoding the same payload (DVI4: its IMA ADPCM WAV)."""
    src = write_wav(tmp / "src.wav", speech_like(int(seconds * rate), rate), rate)
    enc = {"PCMU": ("pcm_mulaw", "mulaw"), "PCMA": ("pcm_alaw", "alaw"),
           "L16": ("pcm_s16be", "s16be"), "DVI4": ("adpcm_ima_wav", "wav")}[codec]
    coded = tmp / f"coded.{enc[1]}"
    subprocess.run([*FF, "-y", "-i", str(src), "-c:a", enc[0], "-f", enc[1], str(coded)],
                   check=True)
    inp = ["-f", enc[1], "-ar", str(rate), "-ac", "1"] if enc[1] != "wav" else []
    t = time.perf_counter()
    subprocess.run([*FF, *inp, "-i", str(coded), "-f", "null", "-"], check=True)
    return seconds / (time.perf_counter() - t)


def decode_tables() -> list[Table]:
    speed = Table("Decode speed, x real time (one core)",
                  ["payload", "MicroPython VM decode (viper)", "ffmpeg", "VM / ffmpeg",
                   "VM parse+jitter+decode us/packet", "bytes alloc/packet"],
                  note="ffmpeg timed as a whole process on 600 s of audio (start-up included); "
                  "DVI4's ffmpeg column decodes the same audio as IMA ADPCM WAV (ffmpeg has "
                  "no RTP DVI4 depayloader).")
    with tempfile.TemporaryDirectory() as d:
        for codec, rate, ptime in PAYLOADS:
            pkts = _packets(codec, rate, 20, ptime)
            fmt = Format(codec, rate, ptime)
            reps = 50
            r = _upy(UPY_DECODE, json.dumps({"codec": codec, "rate": rate, "pt": fmt.pt,
                                             "reps": reps, "pkts": [p.hex() for p in pkts]}))
            vm = 20 * reps / (r["us"] / 1e6)
            ff = _ffmpeg_speed(codec, rate, 600, Path(d))
            speed.rows.append([f"{codec} {rate // 1000} kHz, {ptime} ms", round(vm), round(ff),
                               f"{vm / ff:.3f}", round(r["path_us"], 1),
                               round(r["alloc_per_packet"], 1)])
    return [speed]


def udp_alloc_table() -> list[Table]:
    port = _free_port()
    pkts = _packets("DVI4", 16000, 4)
    env = dict(os.environ, MICROPYPATH=f".frozen:{FIRMWARE}")
    p = subprocess.Popen([*micropython_cmd(), "-c", UPY_UDP.replace("PORT", str(port))],
                         stdout=subprocess.PIPE, env=env)
    assert p.stdout is not None
    p.stdout.readline()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for pkt in pkts:
            s.sendto(pkt, ("127.0.0.1", port))
    r = json.loads(p.stdout.read().decode().splitlines()[-1])
    p.wait()
    return [Table("Receive link allocation (MicroPython VM)", ["link", "packets",
                                                              "bytes alloc/packet"],
                  [["UDP (recv)", r["n"], round(r["alloc_per_packet"], 1)]],
                  note="UDP: MicroPython sockets have no recvfrom_into and a stream readinto "
                  "joins datagrams, so each datagram is one bytes object (payload + header); "
                  "the HTTP link reads frames with readinto into one buffer.")]


def _free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_tables(minutes: float) -> list[Table]:
    """Latency and heap with the real firmware on the sim at the board's heap cap."""
    lat = Table("Head-end send -> sink first write (sim node, LAN loopback)",
                ["payload", "jitter_ms", "latency ms", "underruns"],
                note="Latency is the jitter depth plus transport; the sink's ring then holds "
                "up to 100 ms of it (not added).")
    heap = Table(f"Heap while streaming {minutes:g} min (sim, heap cap 128 KB = 2 x 64 KB)",
                 ["payload", "alloc after warm-up KB", "max alloc KB", "growth bytes",
                  "packets", "lost"])
    with tempfile.TemporaryDirectory() as d:
        src = write_wav(Path(d) / "s.wav", speech_like(5 * 16000), 16000)
        for codec, rate, jit in [("DVI4", 16000, 180), ("DVI4", 16000, 60), ("PCMU", 8000, 180),
                                 ("L16", 8000, 180)]:
            node = SimNode(Path(d) / f"n{codec}{jit}")
            c = NodeConsole(node.start())
            try:
                c.wait_ready()
                c.request("config.set", {"jitter_ms": jit})
                fmt = Format(codec, rate)
                port = _free_port()
                c.request("play", {"session": fmt.session(addr="127.0.0.1", port=port),
                                   "volume": 70})
                soak = minutes * 60 if (codec, jit) == ("DVI4", 180) else 0
                st = asyncio.run(_stream_for(str(src), fmt, port, soak, c, heap))
                time.sleep(0.5)
                first = [float(ln.split()[0]) for ln in
                         (node.audio_dir / "timing.log").read_text().splitlines()
                         if ln.endswith(" first")]
                status = c.request("status")
                lat.rows.append([f"{codec} {rate // 1000} kHz", jit,
                                 round((first[0] - st.first_send) * 1000),
                                 status["counters"]["underruns"]])
            finally:
                c.close()
                node.stop()
    return [lat, heap]


async def _stream_for(src: str, fmt: Format, port: int, soak_s: float, c: NodeConsole,
                      heap: Table) -> Stats:
    if not soak_s:
        return await stream(src, fmt, [("127.0.0.1", port)])
    proc = subprocess.Popen([*FF, "-stream_loop", "-1", "-i", src, "-ac", "1", "-ar",
                             str(fmt.rate), "-f", "s16le", "-"], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = proc.stdout
    st = Stats()
    streamer = Streamer(fmt, [("127.0.0.1", port)], None, st)
    task = asyncio.create_task(streamer.run(out.read))
    await asyncio.sleep(10)
    samples = []
    loop = asyncio.get_running_loop()
    t_end = time.monotonic() + soak_s
    while time.monotonic() < t_end:
        s = await loop.run_in_executor(None, c.request, "status")
        samples.append(s["heap"]["alloc"])
        await asyncio.sleep(5)
    s = await loop.run_in_executor(None, c.request, "status")
    task.cancel()
    proc.kill()
    proc.wait()
    heap.rows.append([f"{fmt.codec} {fmt.rate // 1000} kHz", round(samples[0] / 1024, 1),
                      round(max(samples) / 1024, 1), max(samples) - samples[0],
                      s["stream"]["packets"], s["stream"]["lost"]])
    return st


# A swarm of HTTP clients in its own process: each GETs the stream and counts
# the RFC 4571 frames it receives.
SWARM = """
import asyncio, sys, json
async def client(port, counts, i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET / HTTP/1.0\\r\\n\\r\\n"); await w.drain()
    await r.readuntil(b"\\r\\n\\r\\n")
    try:
        while True:
            n = int.from_bytes(await r.readexactly(2), "big")
            await r.readexactly(n)
            counts[i] += 1
    except Exception:
        pass
async def main(port, n):
    counts = [0] * n
    await asyncio.gather(*(client(port, counts, i) for i in range(n)))
    print(json.dumps(counts))
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def fanout_table() -> list[Table]:
    t = Table("Nodes one head-end process serves in real time (HTTP/RFC 4571, DVI4 16 kHz)",
              ["nodes", "seconds", "worst lag ms", "dropped packets", "min frames/node",
               "sent"],
              note="Clients run in a separate process on the same machine; real time = lag "
              "stays below one packet (20 ms) and nothing is dropped.")
    with tempfile.TemporaryDirectory() as d:
        src = write_wav(Path(d) / "s.wav", speech_like(10 * 16000), 16000)
        for n in (10, 100, 500, 1000):
            port = _free_port(socket.SOCK_STREAM)
            st, counts = asyncio.run(_fanout(str(src), port, n))
            t.rows.append([n, 10, round(st.late_ms, 1), st.dropped,
                           min(counts) if counts else 0, st.packets])
    return [t]


async def _fanout(src: str, port: int, n: int) -> tuple[Stats, list[int]]:
    swarm: dict[str, list[int]] = {}

    def clients() -> None:
        r = subprocess.run([sys.executable, "-c", SWARM, str(port), str(n)],
                           capture_output=True, timeout=120)
        swarm["counts"] = json.loads(r.stdout or b"[]")

    th = threading.Thread(target=clients)

    def ready(_: int | None) -> None:
        th.start()

    st = await stream(src, Format("DVI4", 16000), [], port, "127.0.0.1", False, n, None, ready)
    th.join()
    return st, swarm.get("counts", [])


def run(argv: list[str]) -> list[Table]:
    minutes = 1.0
    if "--minutes" in argv:
        minutes = float(argv[argv.index("--minutes") + 1])
    return [*decode_tables(), *udp_alloc_table(), *node_tables(minutes), *fanout_table()]
