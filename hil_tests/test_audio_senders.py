"""Standard senders at their defaults, and clock drift, on simulated nodes
(issue 20): every run of ffmpeg's and GStreamer's default RTP must play
whole and aligned with the sender's own decode; a sink clock off by
+-200 ppm must be taken up one sample at a time, never with a hole.

Several sim nodes run at once to fit CI's time: the two drift nodes stream
for 2 minutes in the background while three others take the sender runs.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from loaxa.bench.drift import send_ffmpeg
from loaxa.console import NodeConsole
from loaxa.sim import SimNode
from loaxa.testsignals import (
    align,
    correlation,
    host_stalls,
    local_lags,
    read_wav,
    speech_like,
    start_stall_probe,
    write_wav,
)

pytestmark = [
    pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg not installed"),
    pytest.mark.needs("audio_capture"),
]
FF = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
RUNS = 20  # per sender
NODES = 3  # taking the sender runs at once (4 with the 2 drift nodes starved a 2-core host)
CLIP_S = 2.5
# The file a user has: its rate decides how ffmpeg cuts packets (8 kHz: 1460 + 588
# bytes every 256 ms, the pattern that once filled the arrival queue; 16 kHz:
# 1024 samples; 22.05 kHz (espeak-ng): 743; 44.1 kHz: 371)
INPUT_RATES = (8000, 16000, 22050, 44100)
SENDERS = {  # name: (ffmpeg encoder, raw format for its own decode)
    "ffmpeg-PCMU": ("pcm_mulaw", "mulaw"),
    "ffmpeg-PCMA": ("pcm_alaw", "alaw"),
    "ffmpeg-L16": ("pcm_s16be", "s16be"),
    "gstreamer-PCMU": ("", ""),
}
DRIFT_PPM = (200, -200)
DRIFT_S = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, path: Path, audio_ppm: int = 0):
        self.sim = SimNode(path, audio_ppm=audio_ppm)
        self.stalls: Path | None = None
        self.con = NodeConsole(self.sim.start(), log_path=path.parent / f"{path.name}.log")
        self.con.wait_ready(60)

    def close(self) -> None:
        self.con.close()
        self.sim.stop()

    def wavs(self) -> list[Path]:
        return sorted(self.sim.audio_dir.glob("*.wav"))

    def wait_idle(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.con.request("status")["playing"]:
            assert time.monotonic() < deadline, "node still playing"
            time.sleep(0.1)


# -- drift: two nodes at +-200 ppm, 2 minutes, started first --------------------


class DriftRun:
    """One node whose sink runs ppm off, fed 2 minutes of a relay-like stream by
    a sender in its own process (paced on this host's clock, the reference):
    ffmpeg's default RTP (1024 PCMU samples a packet) on one node, the
    head-end's own 20 ms DVI4 16 kHz on the other. (Senders as threads of the
    test process stalled behind its analysis and starved the nodes.)"""

    def __init__(self, node: Node, ppm: int, tmp: Path):
        self.ppm = ppm
        self.node = node
        x = speech_like(DRIFT_S * 16000, 16000, seed=abs(ppm) + (ppm > 0))
        self.wav = write_wav(tmp / f"drift{ppm:+d}.wav", x, 16000)
        self.port = free_port()
        if ppm > 0:
            self.rate = 8000
            self.session: dict = {"port": self.port, "codec": "PCMU", "rate": 8000}
            self.cmd = [*FF, "-re", *ffmpeg_args("pcm_mulaw", self.wav), "-f", "rtp",
                        f"rtp://127.0.0.1:{self.port}"]
            self.src = reference("ffmpeg-PCMU", self.wav, tmp)
        else:
            self.rate = 16000
            self.session = {"port": self.port, "codec": "DVI4", "rate": 16000}
            self.cmd = [str(Path(sys.executable).parent / "loaxa"), "headend", "stream",
                        str(self.wav), "--quiet", "--codec", "DVI4", "--rate", "16000",
                        "--udp", f"127.0.0.1:{self.port}"]
            self.src = x
        self.stream: dict = {}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.node.con.request("play", {"session": self.session, "volume": 100})
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

    def finish(self) -> None:
        assert self.proc is not None
        _, err = self.proc.communicate(timeout=DRIFT_S + 60)
        assert self.proc.returncode == 0, err.decode()
        time.sleep(0.8)
        self.stream = self.node.con.request("status")["stream"]
        self.node.con.request("stop")
        self.node.wait_idle()


def need_sim(request) -> None:
    if request.config.getoption("--target") != "sim":
        pytest.skip("runs several simulated nodes at once")


@pytest.fixture(scope="module")
def nodes(request, tmp_path_factory):
    """All the module's sim nodes, booted together before any stream starts: six
    VMs booting at once starve a 2-core machine for seconds, and a drift node
    already streaming then runs dry (seen: a 220 ms underrun)."""
    need_sim(request)
    tmp = tmp_path_factory.mktemp("nodes")
    probe = start_stall_probe(tmp / "stalls.log")
    specs = [(f"drift{p:+d}", p) for p in DRIFT_PPM] + [(f"n{i}", 0) for i in range(NODES)]
    with ThreadPoolExecutor(len(specs)) as pool:
        booted = list(pool.map(lambda sp: Node(tmp / sp[0], audio_ppm=sp[1]), specs))
    for n in booted:
        n.stalls = tmp / "stalls.log"
    yield booted
    for n in booted:
        n.close()
    probe.kill()
    probe.wait()


@pytest.fixture(scope="module")
def drift(nodes, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drift")
    runs = [DriftRun(node, ppm, tmp) for node, ppm in zip(nodes, DRIFT_PPM, strict=False)]
    for r in runs:
        r.start()
    yield runs
    for r in runs:
        if r.proc and r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()


# -- standard senders: 20 runs each, three nodes at once -------------------------


@pytest.fixture(scope="module")
def sender_nodes(nodes, drift):
    """Three sim nodes taking the sender runs while the drift nodes stream (CI time)."""
    return nodes[len(DRIFT_PPM):]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[int, Path]:
    tmp = tmp_path_factory.mktemp("clips")
    return {r: write_wav(tmp / f"speech{r}.wav", speech_like(int(CLIP_S * r), r, seed=r), r)
            for r in INPUT_RATES}


def ffmpeg_args(enc: str, clip: Path) -> list[str]:
    return ["-i", str(clip), "-ar", "8000", "-ac", "1", "-c:a", enc]


def gst_pipeline(clip: Path, tail: list[str]) -> list[str]:
    return ["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "wavparse", "!",
            "audioconvert", "!", "audioresample", "!", "audio/x-raw,rate=8000,channels=1", "!",
            "mulawenc", "!", *tail]


def reference(sender: str, clip: Path, tmp: Path) -> np.ndarray:
    """The sender's own decode of what it sends."""
    enc, raw = SENDERS[sender]
    if sender.startswith("gstreamer"):
        out = tmp / f"ref-{clip.stem}.wav"
        subprocess.run(gst_pipeline(clip, ["mulawdec", "!", "wavenc", "!", "filesink",
                                           f"location={out}"]), check=True)
        return read_wav(out)[1]
    coded = subprocess.run([*FF, *ffmpeg_args(enc, clip), "-f", raw, "-"], capture_output=True,
                           check=True).stdout
    return np.frombuffer(subprocess.run([*FF, "-f", raw, "-ar", "8000", "-ac", "1", "-i", "-",
                                         "-f", "s16le", "-"], input=coded, capture_output=True,
                                        check=True).stdout, "<i2")


def one_run(node: Node, sender: str, clip: Path, tmp: Path) -> dict:
    """What a user does: the sender's SDP file (ffmpeg writes it as it starts: a
    dry run gets it first), play it on the node, send with every default."""
    enc, _ = SENDERS[sender]
    port = free_port()
    if sender.startswith("gstreamer"):
        session: str | dict = {"port": port, "codec": "PCMU", "rate": 8000}
        cmd = gst_pipeline(clip, ["rtppcmupay", "!", "udpsink", "host=127.0.0.1",
                                  f"port={port}"])
    else:
        sdp = tmp / f"{port}.sdp"
        subprocess.run([*FF, *ffmpeg_args(enc, clip), "-t", "0.02", "-f", "rtp", "-sdp_file",
                        str(sdp), f"rtp://127.0.0.1:{port}"], check=True, capture_output=True)
        session = sdp.read_text()
        cmd = [*FF, "-re", *ffmpeg_args(enc, clip), "-f", "rtp", f"rtp://127.0.0.1:{port}"]
    t0 = time.time()
    node.con.request("play", {"session": session, "volume": 100})
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    time.sleep(0.7)  # the buffered tail plays out
    stream = node.con.request("status")["stream"]
    node.con.request("stop")
    node.wait_idle()
    stream["wav"] = node.wavs()[-1]
    stream["when"] = (t0, time.time())
    return stream


@pytest.mark.parametrize("sender", sorted(SENDERS))
def test_default_sender_plays_whole_and_aligned_every_run(sender, sender_nodes, clips,
                                                          tmp_path):
    if sender.startswith("gstreamer") and not shutil.which("gst-launch-1.0"):
        pytest.skip("gst-launch-1.0 not installed (scripts/sysdeps.sh)")
    rates = INPUT_RATES  # ffmpeg's L16 from an 8 kHz file too: 4 KB bursts every 256 ms
    # every node gets every input rate in turn
    jobs = [rates[(i + i // NODES) % len(rates)] for i in range(RUNS)]
    refs = {r: reference(sender, clips[r], tmp_path) for r in rates}

    def node_runs(k: int) -> list[tuple[int, dict]]:
        time.sleep(k * CLIP_S / NODES)  # staggered: senders do not all start at once
        return [(r, one_run(sender_nodes[k], sender, clips[r], tmp_path))
                for r in jobs[k::NODES]]

    with ThreadPoolExecutor(NODES) as pool:
        results = [x for rs in pool.map(node_runs, range(NODES)) for x in rs]
    assert len(results) == RUNS
    starved = []  # runs the host itself stopped for 100 ms or more (the probe saw it)
    for in_rate, st in results:
        rate, got = read_wav(st["wav"])
        assert rate == 8000
        a, b = align(refs[in_rate], got)
        a, b = a[rate // 2: -rate // 50], b[rate // 2: -rate // 50]  # after the first 0.5 s
        what = (sender, in_rate, {k: st[k] for k in ("packets", "lost", "skipped", "late",
                                                     "concealed", "underruns", "slips_dropped",
                                                     "slips_added")})
        stalls = stalls_within(sender_nodes[0], *st["when"])
        if stalls and (st["concealed"] or correlation(a, b) < 0.99):
            starved.append((what, correlation(a, b), stalls))
            continue
        assert len(a) >= (CLIP_S - 0.6) * rate, what
        assert st["lost"] == 0 and st["skipped"] == 0 and st["late"] == 0, what
        assert st["bad"] == 0 and st["concealed"] == 0, what
        assert correlation(a, b) >= 0.99, (correlation(a, b), what)
    if starved:
        pytest.xfail(f"the host stopped every process for 100 ms or more during {len(starved)} "
                     f"run(s) (a sim node then stalls; a board would not): {starved}")


HELD_S = 30
EVERY = 20  # in every 20 packets one is held back and the next lost


class HeldAndLost:
    """Passes ffmpeg's packets to dest, but in every EVERY holds one back until
    the next one sent, and loses the one between."""

    def __init__(self, dest: tuple[str, int]):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.dest = dest
        self.n = self.lost = 0
        self.held: bytes | None = None

    def send(self, p: bytes) -> None:
        self.n += 1
        if self.n % EVERY == 7:
            self.held = p
        elif self.n % EVERY == 8:
            self.lost += 1
        else:
            self.sock.sendto(p, self.dest)
            if self.held is not None:
                self.sock.sendto(self.held, self.dest)
                self.held = None


def test_a_long_packet_held_back_while_the_next_is_lost_plays_in_its_turn(sender_nodes,
                                                                          tmp_path):
    """ffmpeg's default PCMU (128 ms packets) through a network that loses and
    reorders: a packet held back until the next one sent, which comes two
    packets on because the one between is lost. The depth covers a packet that
    late: it plays in its turn, only the losses are concealed, and the capture
    never shifts against the source. (With a long packet's excess counted once
    in the depth, until 2026-12-06, the sink ran low first: 17 turns concealed
    for 12 losses, docs/audio.md.)"""
    node = sender_nodes[0]
    clip = write_wav(tmp_path / "held.wav", speech_like(HELD_S * 16000, 16000, seed=5), 16000)
    ref = reference("ffmpeg-PCMU", clip, tmp_path)
    relay = HeldAndLost(("127.0.0.1", free_port()))
    node.con.request("play", {"session": {"port": relay.dest[1], "codec": "PCMU",
                                          "rate": 8000}, "volume": 100})
    t0 = time.time()
    try:
        send_ffmpeg(clip, HELD_S, [relay])
    finally:
        relay.sock.close()
    stream = node.con.request("status")["stream"]
    node.con.request("stop")
    node.wait_idle()
    what = {k: stream[k] for k in ("packets", "lost", "late", "skipped", "concealed",
                                   "underruns", "slips_dropped", "slips_added")}
    if stalls_within(node, t0, time.time()):
        pytest.xfail(f"the host stopped every process for 100 ms or more: {what}")
    assert relay.lost >= HELD_S * 8000 // 1024 // EVERY - 1, (relay.n, relay.lost)
    assert stream["lost"] == relay.lost and stream["late"] == stream["skipped"] == 0, what
    assert stream["concealed"] <= stream["lost"], what  # the losses, no stall besides
    rate, got = read_wav(node.wavs()[-1])
    lags = local_lags(ref, got, rate)
    assert len(lags) * 0.25 >= HELD_S * 0.8, (len(lags), what)
    steps = np.abs(np.diff([lag for _, lag in lags]))
    assert steps.max() <= rate * 5 // 1000, (steps.max(), what)  # never shifted


# -- the drift verdict (placed last: by then the 2 minutes have mostly passed) ------


def stalls_within(node: Node, t0: float, t1: float, slack: float = 0.5) -> list[tuple]:
    """The probe's stalls of 100 ms or more from t0 - slack to t1 + slack."""
    if node.stalls is None:
        return []
    return [x for x in host_stalls(node.stalls, t0 - slack, t1 + slack) if x[1] >= 100]


def holes_before(r: DriftRun) -> list[str]:
    """Underruns while the stream lasted (the tail after its last packet is
    concealment fading out: a late poll there is no hole in the audio)."""
    log = (r.node.sim.audio_dir / "timing.log").read_text().splitlines()
    end = [float(ln.split()[0]) for ln in log if " close " in ln][-1] - 1.5
    return [ln for ln in log if " underrun " in ln and float(ln.split()[0]) < end]


def test_sink_clock_drift_is_taken_up_without_holes(drift):
    for r in drift:
        r.finish()
    for r in drift:
        rate = r.rate
        st = r.stream
        wav = r.node.wavs()[-1]
        _, got = read_wav(wav)
        # no underrun while the stream lasted; if there was one, name what the
        # host did meanwhile (a sim node starved of CPU runs dry; a board would not)
        holes = holes_before(r)
        # An underrun at a moment the probe itself was not run for 100 ms or more
        # is the host's (every process stopped), not the node's: the test cannot
        # judge this run. Any other underrun fails it.
        mine = [h for h in holes if not stalls_within(r.node, float(h.split()[0]),
                                                      float(h.split()[0]))]
        assert not mine, (r.ppm, mine, st, "host stalls (wall, ms):",
                          host_stalls(r.node.stalls) if r.node.stalls else "?")
        if holes:
            pytest.xfail(f"{r.ppm:+d} ppm: underruns {holes} each while the host stopped every "
                         f"process for 100 ms or more (a board would not)")
        lags = local_lags(r.src, got, rate)
        assert len(lags) * 0.25 >= DRIFT_S - 2, (r.ppm, len(lags), st)
        steps = np.diff([lag for _, lag in lags])
        # no correction longer than 5 ms, measured on the capture against the source
        assert np.max(np.abs(steps)) <= rate * 5 // 1000, (r.ppm, st)
        # latency: source sample j, sent at t_send + j/rate (the sender's pace),
        # plays as capture sample i = j + lag at t_first + i/sink rate; against
        # the latency of the first 4 s (the level the node holds), both the
        # constants cancel
        sink_rate = rate * (1 + r.ppm / 1e6)
        lat = np.array([(j + lag) / sink_rate - j / rate for j, lag in lags]) * 1000
        target = np.median(lat[: 16])
        assert np.max(np.abs(lat - target)) <= 20, (r.ppm, lat.min() - target,
                                                   lat.max() - target, st)
        assert st["lost"] == st["skipped"] == st["concealed"] == 0, (r.ppm, st)
        # the node measured the drift (the sender is slower than a fast sink) and
        # corrected it by single samples in the right direction
        assert st["drift_ppm"] * r.ppm < 0 and 100 <= abs(st["drift_ppm"]) <= 350, (r.ppm, st)
        fixed = st["slips_added"] if r.ppm > 0 else st["slips_dropped"]
        assert fixed >= DRIFT_S * abs(r.ppm) * rate // 10**6 // 2, (r.ppm, st)
