"""Clock sync: the node trusts its clock only after SNTP (RFC 4330) says so.

A small SNTP server runs here on the loopback (a standard 48-byte NTP
packet) with a deliberately wrong clock and a slow answer, so a node that
took the host's time or ignored the round trip would be caught.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from loaxa.errors import NodeError

NTP_UNIX = 2208988800  # NTP seconds (from 1900) at the unix epoch
UNIX_2000 = 946684800


class SntpServer:
    """Answers like a stratum-1 server whose clock is `offset` s off the host's."""

    def __init__(self, offset: float, hold: float = 0.0, stratum: int = 1):
        self.offset, self.hold, self.stratum = offset, hold, stratum
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def now(self) -> float:
        return time.time() + self.offset

    def _stamp(self, t: float) -> bytes:
        t += NTP_UNIX
        s = int(t)
        return struct.pack(">II", s, int((t - s) * 2**32))

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            t2 = self.now()
            if len(data) >= 48 and data[0] & 7 == 3:
                self.requests += 1
                threading.Thread(target=self._answer, args=(data, addr, t2)).start()

    def _answer(self, data: bytes, addr: tuple, t2: float) -> None:
        time.sleep(self.hold)  # the answer waits: T3 - T2 tells the client
        head = bytes([(0 << 6) | (4 << 3) | 4, self.stratum, 6, 0xEC])
        ref = b"GPS\0" if self.stratum == 1 else b"RATE"
        out = head + bytes(8) + ref + self._stamp(t2) + data[40:48] + self._stamp(t2) \
            + self._stamp(self.now())
        if not self._stop.is_set():
            self.sock.sendto(out, addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def sntp(target_name):
    if target_name != "sim":
        pytest.skip("the test's SNTP server listens on this host's loopback, "
                    "which only the sim node can reach")
    srv = SntpServer(offset=3600.25, hold=0.3)
    yield srv
    srv.close()


def node_time(node) -> tuple[float, float, float]:
    """(host before, node clock, host after) around one clock.get."""
    h0 = time.time()
    c = node.request("clock.get")
    return h0, c["t2k"] + UNIX_2000 + c["ms"] / 1000, time.time()


def test_sync_sets_the_clock_to_the_server_within_milliseconds(node, sntp):
    assert not node.request("clock.get")["synced"]
    node.request("config.set", {"ntp.server": f"127.0.0.1:{sntp.port}"})
    r = node.request("clock.sync")
    assert r["synced"] and r["source"] == "sntp"
    assert r["rtt_ms"] < 100  # the server's 300 ms hold is not part of the trip
    for _ in range(3):
        h0, t, h1 = node_time(node)
        # the node's clock is the server's (an hour and 250 ms off the host's)
        assert h0 + sntp.offset - 0.03 <= t <= h1 + sntp.offset + 0.03, (
            f"{t - (h0 + sntp.offset):+.3f} s off")
    assert node.request("status")["clock"]["synced"]


def test_node_syncs_by_itself_and_keeps_trust_over_a_soft_reset(node, sntp):
    node.request("config.set", {"ntp.server": f"127.0.0.1:{sntp.port}"})
    deadline = time.monotonic() + 15
    while not node.request("clock.get")["synced"]:
        assert time.monotonic() < deadline, "no sync within 15 s"
        time.sleep(0.2)
    assert sntp.requests >= 1
    node.request("reboot")
    node.wait_restarted()
    c = node.request("clock.get")
    assert c["synced"] and c["source"] == "sntp"
    h0, t, h1 = node_time(node)
    assert h0 + sntp.offset - 0.1 <= t <= h1 + sntp.offset + 0.1


def test_an_unsynchronised_server_is_not_believed(node, target_name):
    if target_name != "sim":
        pytest.skip("loopback SNTP server: sim only")
    bad = SntpServer(offset=-5000, stratum=0)  # stratum 0: kiss-o'-death
    try:
        node.request("config.set", {"ntp.server": f"127.0.0.1:{bad.port}"})
        with pytest.raises(NodeError) as e:
            node.request("clock.sync")
        assert e.value.code == "sync_failed" and "not synchronised" in e.value.node_msg
        assert not node.request("clock.get")["synced"]
    finally:
        bad.close()
