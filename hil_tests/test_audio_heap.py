"""The audio path at the board's heap cap: streaming does not grow the heap."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_audio_stream import free_port, headend, pytestmark  # noqa: F401

from loaxa.streamer import Format
from loaxa.testsignals import host_stalls, speech_like, start_stall_probe, write_wav


@pytest.mark.needs("audio_capture")
def test_streaming_16k_dvi4_does_not_grow_the_heap(node, target, tmp_path):
    """Under the board's heap cap: live objects after warm-up stay put (the
    status command collects garbage before it reports heap.alloc)."""
    seconds = 40  # `make bench` runs this for minutes
    fmt = Format("DVI4", 16000)
    src = write_wav(tmp_path / "loop.wav", speech_like(5 * 16000, seed=9), 16000)
    port = free_port()
    stalls = tmp_path / "stalls.log"
    probe = start_stall_probe(stalls)
    node.request("play", {"session": fmt.session(addr="127.0.0.1", port=port), "volume": 70})
    proc = headend(tmp_path, src, "--udp", f"127.0.0.1:{port}", "--loop")
    try:
        time.sleep(8)  # warm-up: first packets, modules imported, buffers settled
        samples = []
        for _ in range(seconds // 4):
            time.sleep(4)
            st = node.request("status")
            samples.append(st["heap"]["alloc"])
        stream = st["stream"]
    finally:
        proc.kill()
        proc.wait()
        probe.kill()
        probe.wait()
    node.request("stop")
    assert stream["packets"] > (seconds + 8) * 40 and stream["lost"] == 0
    assert max(samples) - samples[0] <= 512, f"heap alloc after warm-up: {samples}"
    # An underrun is the node's unless another process on this host woke late at
    # the same moment: then every process stopped (a sim node is a process and
    # runs dry; a board's DMA would not). Seen once in a clean-clone CI run.
    log = (Path(target.audio_dir) / "timing.log").read_text().splitlines()
    dry = [float(ln.split()[0]) for ln in log if " underrun " in ln]
    mine = [t for t in dry if not host_stalls(stalls, t - 0.5, t + 0.5)]
    assert not mine, (mine, host_stalls(stalls))
    if dry:
        pytest.xfail(f"underruns at {dry}, each while the host stopped every process: "
                     f"{host_stalls(stalls)}")


@pytest.mark.needs("audio_capture")
def test_sessions_and_requests_give_their_heap_back(node, tmp_path):
    """Command modules load per request and a stream's code lives only as long
    as the stream: repeated sessions and requests leave the heap where the
    first one left it (a module loaded twice, or a reference kept, shows here)."""
    fmt = Format("DVI4", 16000)
    src = write_wav(tmp_path / "s.wav", speech_like(2 * 16000, seed=4), 16000)
    after = []
    for _ in range(3):
        port = free_port()
        node.request("play", {"session": fmt.session(addr="127.0.0.1", port=port)})
        proc = headend(tmp_path, src, "--udp", f"127.0.0.1:{port}")
        proc.wait(timeout=30)
        node.request("stop")
        for cmd in ("log", "config.get", "clock.get", "rules.get", "rules.eval", "version"):
            node.request(cmd)
        st = node.request("status")
        assert st["stream"]["packets"] >= 90, st["stream"]
        after.append(st["heap"]["alloc"])
    assert max(after) - min(after) <= 512, f"heap alloc after each session: {after}"
