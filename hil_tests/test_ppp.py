"""IP over the LTE modem path on the emulated ESP32: the stock v1.23 image's
network.PPP (lwIP) on UART1, the node's own net_modem dialogue with the rig's
modem (loaxa.rig.modem), which hands the line to slirp after CONNECT.

The node is 10.0.2.15, the host 10.0.2.2 (slirp relays it to 127.0.0.1).
Streams over PPP are not here yet (docs/network.md, open points).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from test_link import wait_net
from test_sntp import SntpServer

from loaxa import boards, image
from loaxa.console import NodeConsole
from loaxa.rig.modem import HOST, RigModem
from loaxa.rig.strategy import NodeStrategy
from loaxa.rig.targets import QemuTarget, Unavailable

# one emulated boot serves the module; on a busy host it takes minutes
pytestmark = [pytest.mark.qemu, pytest.mark.timeout(1800)]
BOARD = "esp32-qemu"


def firmware_bin() -> Path:
    """The board's pinned MicroPython image: $QEMU_FIRMWARE, else next to QEMU."""
    name = boards.load(BOARD)["image"]["file"]
    env = os.environ.get("QEMU_FIRMWARE")
    if env:
        p = Path(env)
        return p / name if p.is_dir() else p
    qemu = os.environ.get("QEMU_XTENSA") or shutil.which("qemu-system-xtensa")
    if not qemu:
        raise Unavailable("qemu-system-xtensa not found (set $QEMU_XTENSA)")
    return Path(qemu).resolve().parent.parent / "firmware" / name


@pytest.fixture(scope="module")
def rig(tmp_path_factory, request):
    """One emulated node for the module (a boot is slow under emulation) with the
    rig's modem on its UART1 and an SNTP server on the host."""
    if request.config.getoption("--target") != "qemu":
        pytest.skip("PPP runs on the emulated ESP32 (--target qemu); the sim's modem "
                    "tests are in test_link.py")
    tmp = tmp_path_factory.mktemp("ppp")
    try:
        fw = firmware_bin()
        if not fw.is_file():
            raise Unavailable(f"no MicroPython image at {fw} (set $QEMU_FIRMWARE)")
        modem = RigModem(ppp=True, log_path=tmp / "modem.log")
    except Unavailable as e:
        pytest.skip(f"qemu: {e.msg}")
    ntp = SntpServer(offset=0.0)
    flash = image.flash_image(fw, image.node_files(BOARD, {"ntp.server": f"{HOST}:{ntp.port}"}),
                              tmp / "node.bin")
    t = QemuTarget(tmp, BOARD, image=flash, extra_args=(
        "-serial", f"tcp:{modem.address}",  # UART1: the modem
        # virtual time follows instructions: on a busy host the guest's watchdogs
        # otherwise fire while QEMU waits for a CPU
        "-icount", "shift=auto"))
    s = NodeStrategy(t, lambda url: NodeConsole(url, log_path=tmp / "console.log"))
    t0 = time.monotonic()
    node = s.transition("app", timeout=900)  # a loaded host makes an emulated boot slow
    yield node, modem, ntp, t0
    s.transition("off")
    t.stop()
    modem.stop()
    ntp.close()


def test_ppp_comes_up_through_the_modem_dialogue_and_sntp_syncs_over_it(rig):
    node, modem, ntp, t0 = rig
    n = wait_net(node, lambda n: n["up"], 120, "PPP up")
    print(f"PPP up {time.monotonic() - t0:.1f} s after power-on")
    assert n["type"] == "lte" and n["addr"] == "10.0.2.15"
    assert n["signal"] == {"csq": 20, "dbm": -73}
    assert modem.commands[:3] == ["AT", "ATE0", "AT+CPIN?"] and modem.dials == 1
    deadline = time.monotonic() + 60
    while not (c := node.request("status", timeout=60)["clock"])["synced"]:
        assert time.monotonic() < deadline, f"no SNTP sync over PPP: {c}"
        time.sleep(1)
    assert c["source"] == "sntp"
    assert ntp.requests >= 1

