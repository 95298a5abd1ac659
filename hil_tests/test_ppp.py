"""IP over the LTE modem path on the emulated ESP32: the stock v1.23 image's
network.PPP (lwIP) on UART1, the node's own net/modem dialogue with the rig's
modem (loaxa.rig.modem), which hands the line to slirp after CONNECT.

The node is 10.0.2.15, the host 10.0.2.2 (slirp relays it to 127.0.0.1).
Streams go both ways a commune's nodes get them: the node fetches the
head-end's HTTP stream (RFC 4571) from 10.0.2.2, and UDP reaches the node
through a slirp redirect, as through a port forward on the LTE router.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from test_link import wait_net
from test_sntp import SntpServer

from loaxa import streamer
from loaxa.console import NodeConsole
from loaxa.rig.modem import GUEST, HOST, RigModem
from loaxa.rig.process import free_port
from loaxa.rig.strategy import NodeStrategy
from loaxa.rig.targets import QemuTarget, Unavailable
from loaxa.testsignals import speech_like, write_wav

# one emulated boot serves the module; on a busy host it takes minutes
pytestmark = pytest.mark.timeout(1800)
BOARD = "esp32-qemu"
RTP_PORT = 5004  # the node's UDP port for the redirected stream
STREAM_S = 10  # of DVI4 16 kHz: 500 packets of 20 ms
# a first play imports the stream's modules from the slow emulated flash:
# 20-60 s on a board's scale of 3 s per boot (stretched by the console's slowdown)
PLAY_S = 30


@pytest.fixture(scope="module")
def rig(tmp_path_factory, request):
    """One emulated node for the module (a boot is slow under emulation) with the
    rig's modem on its UART1 and an SNTP server on the host."""
    if request.config.getoption("--target") != "qemu":
        pytest.skip("PPP runs on the emulated ESP32 (--target qemu); the sim's modem "
                    "tests are in test_link.py")
    tmp = tmp_path_factory.mktemp("ppp")
    udp_port = free_port()
    ntp = SntpServer(offset=0.0)
    modem = None
    try:
        modem = RigModem(ppp=True, redirects=[("udp", udp_port, RTP_PORT)],
                         log_path=tmp / "modem.log")
        t = QemuTarget(tmp, BOARD, config={"ntp.server": f"{HOST}:{ntp.port}"},
                       extra_args=("-serial", f"tcp:{modem.address}"))  # UART1: the modem
    except Unavailable as e:
        if modem:
            modem.stop()
        ntp.close()
        pytest.skip(f"qemu: {e.msg}")
    # console timeouts stretch by the first boot's time, as the hil fixtures' do
    s = NodeStrategy(t, lambda url: NodeConsole(url, log_path=tmp / "console.log",
                                                slowdown=t.slowdown))
    t0 = time.monotonic()
    node = s.transition("app", timeout=900)  # a loaded host makes an emulated boot slow
    yield node, modem, ntp, t0, udp_port
    s.transition("off")
    t.close()
    modem.stop()
    ntp.close()


@pytest.mark.qemu
def test_ppp_comes_up_through_the_modem_dialogue_and_sntp_syncs_over_it(rig):
    node, modem, ntp, t0, _ = rig
    n = wait_net(node, lambda n: n["up"], 120, "PPP up")
    print(f"PPP up {time.monotonic() - t0:.1f} s after power-on")
    assert n["type"] == "lte" and n["addr"] == "10.0.2.15"
    assert n["signal"] == {"csq": 20, "dbm": -73}
    assert modem.commands[:3] == ["AT", "ATE0", "AT+CPIN?"] and modem.dials == 1
    assert wait_synced(node)["source"] == "sntp"
    assert ntp.requests >= 1


def wait_synced(node, timeout=60):
    deadline = time.monotonic() + timeout
    while not (c := node.request("status", timeout=60)["clock"])["synced"]:
        assert time.monotonic() < deadline, f"no SNTP sync over PPP: {c}"
        time.sleep(1)
    return c



def _head_end(wav: Path, fmt: streamer.Format, **outputs) -> tuple[threading.Thread, dict]:
    """The head-end's streamer on the host, in a thread; its Stats land in the dict."""
    out: dict = {}

    def run() -> None:
        out["stats"] = asyncio.run(streamer.stream(str(wav), fmt, **outputs))

    th = threading.Thread(target=run, name="head-end", daemon=True)
    th.start()
    return th, out


@pytest.mark.qemu
@pytest.mark.parametrize("transport", ["http", "udp"])
def test_a_file_streams_over_ppp_and_nothing_is_lost(rig, tmp_path, transport):
    """What the LTE path must carry: a 10 s file from the head-end, every packet
    played, none lost or late, on a link with no loss."""
    node, _, _, _, udp_port = rig
    wait_net(node, lambda n: n["up"], 120, "PPP up")
    # as a node runs: a first sync mid-stream re-plans the rules, which loads
    # their engine from the slow emulated flash while the stream waits
    wait_synced(node)
    fmt = streamer.Format("DVI4", 16000)
    wav = write_wav(tmp_path / "speech.wav", speech_like(STREAM_S * 16000, seed=9), 16000)
    t1 = time.monotonic()
    if transport == "http":  # node-initiated: the way through a carrier's NAT
        port = free_port()
        th, out = _head_end(wav, fmt, udp=[], http_port=port, http_host="127.0.0.1",
                            wait_clients=1)
        node.request("play", {"session": fmt.session(transport="http",
                                                     url=f"http://{HOST}:{port}/")},
                     timeout=PLAY_S)
    else:
        node.request("play", {"session": fmt.session(addr=GUEST, port=RTP_PORT)},
                     timeout=PLAY_S)
        # the answer comes before the stream's task binds its socket; the next
        # answer comes after (one event loop): no packet goes to a closed port
        node.request("version")
        th, out = _head_end(wav, fmt, udp=[("127.0.0.1", udp_port)])
    answered = time.monotonic() - t1
    th.join(STREAM_S * 10)
    sent = out["stats"]
    deadline = time.monotonic() + 120
    while (st := node.request("status"))["playing"]:  # ends 3 s after the last packet
        assert time.monotonic() < deadline, f"still playing: {st['stream']}"
        time.sleep(1)
    s = st["stream"]
    print(f"{transport}: play answered in {answered:.1f} s; sent {sent.packets} "
          f"(dropped for a slow client {sent.dropped}); node {s}")
    assert s["transport"] == transport
    assert s["packets"] == sent.packets == STREAM_S * 50 and sent.dropped == 0
    assert s["lost"] == 0 and s["late"] == 0 and s["skipped"] == 0 and s["bad"] == 0
    # After the last packet the node conceals at most 13 turns (12 fading, then
    # silence) before it calls the stream over, and the sink runs dry once
    # there: that tail, and nothing in the stream, is what may show.
    assert s["concealed"] <= 13 and s["underruns"] <= 1, s
