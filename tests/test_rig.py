"""The HIL rig's parts without a node: the console's port hand-over, the
strategy as the one owner of power, targets' declared capabilities."""

from __future__ import annotations

import os

import pytest

from loaxa.console import NodeConsole
from loaxa.rig.strategy import NodeStrategy
from loaxa.rig.targets import (
    CAPABILITIES,
    TARGETS,
    Lacking,
    QemuTarget,
    SerialTarget,
    SimTarget,
    Target,
)


def test_pause_hands_the_port_over_before_it_returns():
    """Whatever arrives after pause() returned is the caller's: the reader never
    takes a byte of it (it is out of its read once pause returns)."""
    master, slave = os.openpty()
    con = NodeConsole(os.ttyname(slave))
    # a read that waits longer than any fixed pause would (a slow bridge, a busy host)
    con.port.timeout = 0.2
    try:
        for i in range(5):
            os.write(master, b"line %d\n" % i)  # the reader's
            con.expect(rf"^line {i}$", 2)
            port = con.pause()
            os.write(master, b"mine %d\n" % i)
            got = port.read_until(b"\n")
            assert got == b"mine %d\n" % i, "the reader took part of the caller's bytes"
            con.resume()
        assert not any(ln.startswith("mine") for ln in con.lines_since(0))
    finally:
        con.close()
        os.close(master)
        os.close(slave)


class FakeConsole:
    def __init__(self, url: str, log: list):
        self.url, self.log = url, log

    def wait_ready(self, timeout: float = 20.0) -> dict:
        self.log.append("ready")
        return {}

    def ctrl_c(self) -> None:
        self.log.append("ctrl-c")

    def ctrl_d(self) -> None:
        self.log.append("ctrl-d")

    def expect(self, *a, **kw) -> str:
        return ">>> "

    def close(self) -> None:
        self.log.append("close")


class FakeTarget(Target):
    name = "fake"
    provides = frozenset({"power_cut"})

    def __init__(self):
        self.log: list[str] = []

    def start(self) -> str:
        self.log.append("start")
        return "fake://"

    def power_cycle(self) -> None:
        self.log.append("cycle")

    def stop(self) -> None:
        self.log.append("stop")


def strategy_on(t: Target) -> NodeStrategy:
    return NodeStrategy(t, lambda url: FakeConsole(url, t.log))  # type: ignore[arg-type, attr-defined]


def test_the_strategy_switches_the_power_and_waits_only_where_asked():
    t = FakeTarget()
    s = strategy_on(t)
    assert s.transition("on") is None and t.log == ["start"]  # no console: the port is free
    s.transition("app")
    assert t.log == ["start", "ready"] and s.state == "app"
    s.transition("app")  # already there: nothing happens
    assert t.log == ["start", "ready"]
    s.transition("app", fresh=True)  # a power cut at this instant, then the app again
    assert t.log[2:] == ["cycle", "ready"]
    s.transition("on", fresh=True)  # a cut, nothing awaited (the test reads what follows)
    assert t.log[4:] == ["cycle"] and s.state == "on"
    s.transition("repl")
    assert t.log[5:] == ["ready", "ctrl-c"] and s.state == "repl"
    s.transition("app")
    assert t.log[7:] == ["ctrl-d", "ready"]
    s.transition("off")
    assert t.log[9:] == ["close", "stop"] and s.state == "off"
    s.transition("app", fresh=True)  # from off a boot is fresh anyway: one power-on
    assert t.log[11:] == ["start", "ready"]
    with pytest.raises(ValueError):
        s.transition("booting")


def test_a_target_without_power_switching_says_so():
    class NoPower(FakeTarget):
        provides = frozenset()
        power_cycle = Target.power_cycle

    s = strategy_on(NoPower())
    s.transition("app")
    with pytest.raises(Lacking, match="cannot provide power_cut"):
        s.transition("app", fresh=True)


# the members each capability stands for (CAPABILITIES says what they do)
MEMBERS = {"power_cut": ["power_cycle"], "filesystem": ["state"], "audio_capture": ["audio_dir"],
           "link_control": ["link_cut", "link_restore"], "memory_leak": ["leak"],
           "amp_sense": ["amp_fault"], "usb_replug": ["port_link", "unplug", "plug"],
           "extra_uarts": ["uart_url"], "boot_count": ["boots"], "known_uid": ["uid"]}


@pytest.mark.parametrize("cls", [SimTarget, QemuTarget, SerialTarget])
def test_a_target_provides_exactly_the_capabilities_it_implements(cls):
    """A capability in `provides` has its members overridden; one that is not
    keeps Target's, which raises Lacking (a skip with the reason)."""
    assert set(cls.provides) <= set(CAPABILITIES) and TARGETS[cls.name] is cls
    for cap, members in MEMBERS.items():
        for m in members:
            own = getattr(cls, m) is not getattr(Target, m)
            assert own == (cap in cls.provides), f"{cls.name}.{m} vs provides {cap}"


def test_a_missing_capability_is_a_lacking_with_its_reason(tmp_path):
    t = SerialTarget("/dev/null")
    with pytest.raises(Lacking, match=r"target serial cannot provide filesystem \(state:"):
        t.state  # noqa: B018
    with pytest.raises(Lacking, match="cannot provide link_control"):
        t.link_cut()
