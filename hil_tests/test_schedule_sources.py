"""Schedule items play their real sources: file:NAME from the head-end's file
service, relay:NAME from the stream the rules map NAME to."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_audio_stream import captured, free_port, pytestmark  # noqa: F401
from test_node_rules import EDGE, MORNING, local_iso, provision, wait_idle

from loaxa import rules
from loaxa.testsignals import align, correlation, level_db, speech_like, write_wav
from loaxa_node.audio import gain

CLI = str(Path(sys.executable).parent / "loaxa")
RULES = 'version = "sources"' + MORNING + """[files]
url = "{files}"
codec = "DVI4"
rate = 16000
[streams.vov]
transport = "udp"
port = {udp}
codec = "DVI4"
rate = 16000
[[schedule]]
name = "item"
source = "{source}"
start = "05:30"
minutes = 2
days = "daily"
"""


def start_files(folder: Path) -> tuple[subprocess.Popen, str]:
    """`loaxa headend files` on folder, and the [files] url it prints (with its token)."""
    proc = subprocess.Popen([CLI, "headend", "files", str(folder), "--http", "0", "--bind",
                             "127.0.0.1"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = json.loads(line.split("[files]: ", 1)[1])["url"]
    return proc, url.replace("HOST", "127.0.0.1")


@pytest.mark.needs("audio_capture")
@pytest.mark.parametrize("source", ["file:news", "relay:vov"])
def test_schedule_item_plays_its_source_at_the_window_volume(node, target, tmp_path, source):
    x = speech_like(4 * 16000, seed=11)
    folder = tmp_path / "bulletins"
    folder.mkdir()
    write_wav(folder / "news.wav", x, 16000)
    files, files_url = start_files(folder)
    udp = free_port()
    relay = None
    try:
        R = rules.compile_text(RULES.format(files=files_url, udp=udp, source=source)).rules
        provision(node, body=R)
        node.request("clock.set", {"time": local_iso(EDGE - 1)})
        deadline = time.monotonic() + 5
        while not (playing := node.request("status")["playing"]):
            assert time.monotonic() < deadline, "the item never started"
            time.sleep(0.1)
        assert playing["source"] == source and playing["codec"] == "DVI4"
        if source.startswith("relay:"):  # the provincial station, relayed by the head-end
            relay = subprocess.Popen([CLI, "headend", "stream", str(folder / "news.wav"),
                                      "--quiet", "--udp", f"127.0.0.1:{udp}"],
                                     stdout=subprocess.DEVNULL)
            relay.wait(timeout=30)
        wait_idle(node, timeout=30)  # the file ends, or the relay falls silent
        stream = node.request("status")["stream"]
    finally:
        files.kill()
        files.wait()
        if relay and relay.poll() is None:
            relay.kill()
    rate, got = captured(target)
    a, b = align(x, got)
    a, b = a[1600:-1600], b[1600:-1600]
    assert len(a) > 3 * rate, "most of the 4 s was played"
    assert correlation(a, b) >= 0.99
    assert abs(level_db(b) - level_db(a) - gain.db_for_volume(60)) <= 0.5
    assert stream["lost"] == stream["late"] == stream["bad"] == 0, stream
