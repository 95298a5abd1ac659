"""Streams from the head-end only (docs/security.md): a UDP session takes RTP
from the sender it names alone (address and SSRC), on the MicroPython VM; the
stream server serves nothing without a valid token and runs a bounded number of
encoders."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import subprocess

import pytest

from loaxa import FIRMWARE
from loaxa.streamer import FileServer, Format
from loaxa.testsignals import speech_like, write_wav
from loaxa_node.audio import sdp


def rtp(ssrc: int, seq: int = 1) -> bytes:
    return struct.pack(">BBHII", 0x80, 0, seq, 160 * seq, ssrc) + b"\x7f" * 160


# what the receiving side prints: packet lengths taken, and how many it dropped
RECEIVE = """
import json, time
from loaxa_node.net.udp import UdpLink
l = UdpLink("0.0.0.0", PORT, 1500, SRC, SSRC)
l.open()
print("ready")
got = []
t0 = time.time()
while time.time() - t0 < 0.8:
    n = l.poll()
    if n:
        got.append(l.pkt[11])
print(json.dumps({"got": got, "dropped": l.dropped}))
"""


def send_all(port: int) -> None:
    """From 127.0.0.1: SSRC 7 (the named one), SSRC 8; from 127.0.0.2: SSRC 7.
    The last byte of the SSRC says which packet arrived."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.bind(("127.0.0.2", 0))  # another host on the LAN, as far as the node can tell
    for i in range(3):
        a.sendto(rtp(7, i + 1), ("127.0.0.1", port))
        a.sendto(rtp(8, i + 1), ("127.0.0.1", port))
        b.sendto(rtp(0x0107, i + 1), ("127.0.0.1", port))  # same stream, spoofable SSRC
    a.close()
    b.close()


def free_udp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("src,ssrc,want", [
    ("127.0.0.1", 7, [7, 7, 7]),          # the named sender and stream only
    ("127.0.0.1", None, [7, 8] * 3),      # address only
    (None, None, [7, 8, 7] * 3),          # a session that names no sender: anyone
])
def test_udp_session_takes_rtp_only_from_the_source_it_names(upy, src, ssrc, want):
    # on the MicroPython VM, the node's interpreter (UdpLink polls with
    # MicroPython's ipoll; its recvfrom gives a raw sockaddr there, lwIP's a tuple)
    port = free_udp()
    code = (RECEIVE.replace("PORT", str(port)).replace("SSRC", repr(ssrc))
            .replace("SRC", repr(src)))
    p = subprocess.Popen([*upy.cmd, "-c", code], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "MICROPYPATH": f".frozen:{FIRMWARE}"})
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    send_all(port)
    out = json.loads(p.stdout.readline())
    p.wait(5)
    assert out == {"got": [w & 0xFF for w in want], "dropped": 9 - len(want)}


def test_session_names_its_sender_in_json_or_sdp():
    s = sdp.session({"transport": "udp", "port": 5004, "codec": "PCMU", "rate": 8000,
                     "src": "10.0.0.2", "ssrc": 4000000000})
    assert (s["src"], s["ssrc"]) == ("10.0.0.2", 4000000000)
    text = ("v=0\nc=IN IP4 239.1.1.1/16\nm=audio 5004 RTP/AVP 0\n"
            "a=source-filter: incl IN IP4 239.1.1.1 10.0.0.9\na=ssrc:1234 cname:hq\n")
    s = sdp.session({"sdp": text})
    assert (s["addr"], s["src"], s["ssrc"]) == ("239.1.1.1", "10.0.0.9", 1234)
    for bad, msg in (({"src": "10.0.0"}, "src must be"), ({"src": "10.0.0.300"}, "src must"),
                     ({"ssrc": 1 << 32}, "ssrc must"), ({"ssrc": "7"}, "ssrc must")):
        with pytest.raises(ValueError, match=msg):
            sdp.session({"transport": "udp", "port": 5004, "codec": "PCMU", "rate": 8000,
                         **bad})


async def _get(port: int, path: str) -> tuple[bytes, int]:
    """The status line of GET path and how many body bytes came in 1 s."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    status = (await r.readuntil(b"\r\n\r\n")).split(b"\r\n")[0]
    body = 0
    try:
        while True:
            chunk = await asyncio.wait_for(r.read(4096), 1.0)
            if not chunk:
                break
            body += len(chunk)
    except TimeoutError:
        pass
    w.close()
    return status.strip(), body


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="the file server encodes with ffmpeg")
def test_stream_server_serves_nothing_without_a_valid_token_and_caps_encoders(tmp_path):
    write_wav(tmp_path / "news.wav", speech_like(3 * 8000, seed=3), 8000)
    write_wav(tmp_path / "other.wav", speech_like(3 * 8000, seed=4), 8000)

    async def run() -> dict:
        srv = FileServer(tmp_path, Format("PCMU", 8000), max_encoders=1)
        port = await srv.start("127.0.0.1", 0)
        good = srv.grant("news")
        other = FileServer(tmp_path, Format("PCMU", 8000)).grant("news")  # another secret
        nonce, exp, mac = good.split(".")
        out = {
            "none": await _get(port, "/file/news"),
            "empty": await _get(port, "/file//news"),
            "junk": await _get(port, "/file/x.y.z/news"),
            "forged": await _get(port, f"/file/{other}/news"),
            "longer": await _get(port, f"/file/{nonce}.{int(exp) + 9999}.{mac}/news"),
            "expired": await _get(port, f"/file/{srv.grant('news', -1)}/news"),
            "other_file": await _get(port, f"/file/{good}/other"),
            "live": await _get(port, f"/live/{good}/news"),
        }
        # one encoder at a time: a second request while the first plays gets 503
        first = asyncio.ensure_future(_get(port, f"/file/{good}/news"))
        await asyncio.sleep(0.3)
        out["busy"] = await _get(port, f"/file/{srv.grant('*')}/other")
        out["good"] = await first
        out["refused"] = dict(srv.refused)
        await srv.close()
        return out

    out = asyncio.run(run())
    for k in ("none", "empty", "junk", "forged", "longer", "expired", "other_file"):
        assert out[k] == (b"HTTP/1.0 403 Forbidden", 0), k
    assert out["live"] == (b"HTTP/1.0 404 Not Found", 0)  # a good token, no such relay
    assert out["busy"][0].startswith(b"HTTP/1.0 503")
    assert out["good"][0] == b"HTTP/1.0 200 OK" and out["good"][1] > 1000
    assert out["refused"] == {"token": 7, "busy": 1}
