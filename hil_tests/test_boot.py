"""Boot and health: what field staff and the head-end read from every node."""

import time

import pytest

from loaxa.rawrepl import RawRepl

STATUS_TYPES = {
    "fw": str,
    "board": str,
    "uptime_s": int,
    "reset_cause": str,
    "clock": dict,
    "net": dict,
    "volume": int,
    "counters": dict,
    "heap": dict,
    "errors": list,
}


@pytest.mark.qemu  # the app boots on the stock ESP32 image and answers
def test_status_has_every_field_typed(node):
    st = node.request("status")
    for key, kind in STATUS_TYPES.items():
        assert isinstance(st.get(key), kind), f"status.{key} = {st.get(key)!r}"
    assert "playing" in st and st["playing"] is None
    assert isinstance(st["clock"]["synced"], bool)
    assert st["clock"]["local"][:2] in ("19", "20")
    assert isinstance(st["heap"]["free"], int) and st["heap"]["free"] > 0
    assert isinstance(st["heap"]["alloc"], int) and st["heap"]["alloc"] > 0
    assert st["reset_cause"] == "power_on"


@pytest.mark.needs("rtc_control")
def test_clock_starts_unsynced_in_2000_like_after_power_loss(node):
    c = node.request("clock.get")
    assert c["synced"] is False
    assert c["utc"].startswith("2000-01-01")


def test_clock_set_is_trusted_and_survives_soft_reset(node):
    node.request("clock.set", {"time": "2026-11-22T17:30:00+07:00"})
    node.request("reboot")
    st = node.wait_restarted()  # a restart, not a power cut: the RTC and its memory stay
    assert st["clock"]["synced"] is True
    assert st["clock"]["local"].startswith("2026-11-22T17:3")
    assert st["reset_cause"] in ("soft", "hard") and st["boots"] == 2


@pytest.mark.needs("power_cut")
def test_power_cut_loses_clock_trust(node, strategy):
    node.request("clock.set", {"time": "2026-11-22T17:30:00+07:00"})
    strategy.transition("on", fresh=True)
    st = node.wait_ready(20)
    assert st["clock"]["synced"] is False


def test_version_and_log_tail(node):
    v = node.request("version")
    assert v["fw"] == node.request("status")["fw"]
    lines = node.request("log", {"n": 5})["lines"]
    assert lines and all({"level", "msg", "ms"} <= set(e) for e in lines)
    assert any("ready" in e["msg"] for e in node.request("log", {"n": 32})["lines"])


@pytest.mark.needs("power_cut")
@pytest.mark.parametrize("after_ms", [0, 10, 30, 60])
def test_power_cut_just_after_a_raw_repl_soft_reset_boots_the_app(node, strategy, after_ms):
    # A deploy cut short by power: the node was coming back into the raw REPL
    # (a soft reset there keeps it in the raw REPL) when the power went.
    repl = RawRepl(node.pause())
    try:
        repl.enter(soft_reset=False)
        repl.write(b"\x04")
        time.sleep(after_ms / 1000)
        strategy.transition("on", fresh=True)
    finally:
        node.resume()
    st = node.wait_ready(20)
    assert st["reset_cause"] == "power_on"
