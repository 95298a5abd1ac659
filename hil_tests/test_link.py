"""The link manager and the LTE modem driver, on the sim.

The host link is cut and restored by the rig; the modem is the rig's AT
responder (loaxa.rig.modem) on the sim HAL's modem socket, the very driver an
LTE board runs. PPP itself (lwIP on the ESP32 port) runs on qemu:
test_ppp.py.
"""

from __future__ import annotations

import time

import pytest

from loaxa.console import NodeConsole
from loaxa.rig.modem import RigModem
from loaxa.rig.strategy import NodeStrategy
from loaxa.rig.targets import SimTarget


def net(node) -> dict:
    return node.request("status", timeout=60)["net"]  # an emulated node under load is slow


def wait_net(node, pred, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        n = net(node)
        if pred(n):
            return n
        if time.monotonic() > deadline:
            logs = [ln for ln in node.lines_since(0) if not ln.startswith("@")]
            raise AssertionError(f"{what} not within {timeout} s: net {n}\n"
                                 + "\n".join(logs[-15:]))
        time.sleep(0.2)


@pytest.fixture
def sim_only(target_name):
    if target_name != "sim":
        pytest.skip("the rig cuts the host link and plays the modem on a socket for the sim; "
                    "qemu's link is PPP (test_ppp.py)")


@pytest.mark.needs("link_control")
def test_cut_link_is_reported_and_comes_back_with_backoff_without_a_reboot(node, target):
    n = wait_net(node, lambda n: n["up"], 10, "link up")
    assert n["type"] == "host" and n["addr"] and n["up_s"] is not None
    s0 = node.request("status")
    t_cut = time.monotonic()
    mark = node.mark()
    target.link_cut()
    n = wait_net(node, lambda n: not n["up"], 5, "link down")
    assert n["up_s"] is None and n["error"]
    # while cut, the manager retries with growing waits
    node.expect(r"link: retry in \d+ ms", 5, since=mark)
    time.sleep(8)
    waits = [int(ln.split("retry in ")[1].split()[0]) for ln in node.lines_since(mark)
             if "link: retry in" in ln]
    assert len(waits) >= 2 and waits[-1] > waits[0], waits
    t0 = time.monotonic()
    target.link_restore()
    n = wait_net(node, lambda n: n["up"], 20, "link back")
    back_s = time.monotonic() - t0
    assert n["reconnects"] == 1 and n["error"] is None
    s = node.request("status")
    # same boot, and the uptime ran on through the cut
    assert s["boots"] == s0["boots"], "the node rebooted for the network"
    assert s["uptime_s"] >= s0["uptime_s"] + int(time.monotonic() - t_cut) - 1
    print(f"link back {back_s:.1f} s after restore; retry waits {waits} ms")


@pytest.fixture
def modem(sim_only, tmp_path):
    m = RigModem(ppp=False, log_path=tmp_path / "modem.log")
    yield m
    m.stop()


@pytest.fixture
def lte_node(request, modem, tmp_path):
    """A sim node on the sim-lte board, its modem the rig's. Faults set on
    `modem` before the first request to this fixture hold from power-on."""
    t = SimTarget(tmp_path, board="sim-lte", modem=modem.address)
    s = NodeStrategy(t, lambda url: NodeConsole(url, log_path=tmp_path / "console.log"))
    yield s.transition("app")
    s.transition("off")


def test_modem_dialogue_brings_the_link_up_with_signal_and_apn(modem, lte_node):
    n = wait_net(lte_node, lambda n: n["up"], 15, "LTE link up")
    assert n["type"] == "lte" and n["signal"] == {"csq": 20, "dbm": -73}
    assert modem.commands[:3] == ["AT", "ATE0", "AT+CPIN?"]
    assert "ATD*99#" in modem.commands and modem.apn == ""
    assert lte_node.request("status")["errors"] == []  # the modem's code left the rest room
    lte_node.request("config.set", {"net.apn": "v-internet"})  # used at the next dial
    modem.drop_carrier()
    wait_net(lte_node, lambda n: n["up"] and n["reconnects"] == 1, 20, "link back")
    assert modem.apn == "v-internet"


def test_no_sim_is_reported_and_retried_never_dialled(modem, lte_node_nosim):
    n = wait_net(lte_node_nosim, lambda n: n["error"] and "SIM" in n["error"], 15, "SIM error")
    assert not n["up"] and "+CME ERROR: 10" in n["error"]
    modem.wait(lambda: modem.commands.count("AT+CPIN?") >= 2, 15, "a second try")
    assert modem.dials == 0
    modem.fault = None  # the SIM is inserted: the next try dials
    wait_net(lte_node_nosim, lambda n: n["up"], 30, "link up after the SIM came")


@pytest.fixture
def lte_node_nosim(modem, request):
    modem.fault = "nosim"
    return request.getfixturevalue("lte_node")


@pytest.fixture
def lte_node_noreg(modem, request):
    modem.fault = "noreg"
    return request.getfixturevalue("lte_node")


def test_denied_registration_is_reported_and_never_dialled(modem, lte_node_noreg):
    n = wait_net(lte_node_noreg, lambda n: n["error"] and "registration" in n["error"], 15,
                 "registration error")
    assert not n["up"] and "denied" in n["error"]
    assert modem.dials == 0


@pytest.fixture
def lte_node_silent(modem, request):
    modem.silent_power_ons = 1  # hung from power-on until it is power-cycled
    return request.getfixturevalue("lte_node")


def test_silent_modem_is_power_cycled_through_pwrkey(modem, lte_node_silent):
    n = wait_net(lte_node_silent, lambda n: n["up"], 40, "link up after a power cycle")
    assert modem.power_ons == 2, "the node power-cycled the modem once"
    assert n["type"] == "lte"
    assert any("power cycle #1" in ln for ln in lte_node_silent.lines_since(0))


def test_carrier_lost_reconnects_with_backoff_without_a_reboot(modem, lte_node):
    wait_net(lte_node, lambda n: n["up"], 15, "LTE link up")
    boots = lte_node.request("status")["boots"]
    modem.drop_carrier()
    n = wait_net(lte_node, lambda n: not n["up"], 5, "link down after NO CARRIER")
    assert n["error"] == "link lost"
    t0 = time.monotonic()
    n = wait_net(lte_node, lambda n: n["up"], 20, "link back")
    print(f"LTE link back {time.monotonic() - t0:.1f} s after the carrier dropped")
    assert n["reconnects"] == 1 and modem.dials == 2 and modem.power_ons == 1
    # the modem hangs in the middle of the next session: power cycle, then up again
    modem.hang()
    n = wait_net(lte_node, lambda n: n["reconnects"] == 2 and n["up"], 60,
                 "link back after the modem hung")
    assert modem.power_ons == 2
    assert lte_node.request("status")["boots"] == boots
