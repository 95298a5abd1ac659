"""HIL plugin: one option picks the target; every test runs unchanged on each.

  pytest hil_tests --target sim                 # default; real MicroPython VM
  pytest hil_tests --target qemu                # needs QEMU ($QEMU_XTENSA or PATH), $QEMU_FIRMWARE
  pytest hil_tests --target serial --port /dev/ttyUSB0

Tests declare what they need with @pytest.mark.needs("audio_capture", ...);
a target that cannot provide it skips the test and says why (and a capability
used without being declared skips the same way, loaxa.rig.targets.Lacking).
Tests ask the strategy for a state (`strategy.transition("app", fresh=True)` for
a power cut); they never switch the power themselves. A test marked keeps_node
leaves the node as it found it: where boots are dear (qemu) it shares one node
with the run's other such tests.
"""

from __future__ import annotations

import pytest

from loaxa.console import NodeConsole
from loaxa.rig.strategy import NodeStrategy
from loaxa.rig.targets import TARGETS, Lacking, Target, Unavailable, make_target


def pytest_addoption(parser):
    g = parser.getgroup("loaxa HIL")
    g.addoption("--target", default="sim", choices=("sim", "qemu", "serial"),
                help="where the node runs (default sim)")
    g.addoption("--port", default=None, help="serial port for --target serial")
    g.addoption("--board", default=None, help="board definition (default per target)")
    g.addoption("--baud", type=int, default=115200, help="console baud rate")


def pytest_configure(config):
    config.addinivalue_line("markers", "needs(*caps): capabilities the target must provide")
    config.addinivalue_line("markers", "qemu: part of the qemu stage of `make test`, the "
                            "subset CI runs on the emulated ESP32 (whole CI run under 30 min: "
                            "docs/hil.md)")
    config.addinivalue_line("markers", "keeps_node: the test leaves the node as it found it "
                            "(application answering, nothing persisted changed), so on a "
                            "target whose boots are dear (qemu) it shares the run's node")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except Lacking as e:
        pytest.skip(str(e))


@pytest.fixture
def target_name(request) -> str:
    return request.config.getoption("--target")


@pytest.fixture
def sim_options() -> dict:
    """Override in a test module to start the sim differently (rtc, baud...)."""
    return {}


@pytest.fixture
def qemu_options() -> dict:
    """Override in a test module to start QEMU differently: extra `args`, `uarts`
    (UART1... on sockets: target.uart_url(1)), `files` and `config` on the flash
    before the first boot, `app=False` for the bare image (loaxa.rig.qemu.QemuNode)."""
    return {}


def _make_target(request, workdir, target_name: str, options: dict) -> Target:
    try:
        t = make_target(target_name, workdir, request.config.getoption("--board"),
                        request.config.getoption("--port"), **options)
    except Unavailable as e:
        pytest.skip(f"{target_name}: {e.msg}")
    marker = request.node.get_closest_marker("needs")
    for cap in marker.args if marker else ():
        if cap not in t.provides:
            t.close()
            pytest.skip(t.why_not(cap))
    return t


def _strategy(request, target: Target, log_dir) -> NodeStrategy:
    baud = request.config.getoption("--baud")
    return NodeStrategy(target, lambda url: NodeConsole(url, baud, log_path=log_dir / "console.log",
                                                        slowdown=target.slowdown))


def _shares(request, target_name: str) -> bool:
    cls = TARGETS.get(target_name)
    return bool(cls and cls.boots_are_dear and request.node.get_closest_marker("keeps_node"))


@pytest.fixture(scope="session")
def shared_node():
    """The run's one node for keeps_node tests on a target whose boots are dear,
    booted by the first test that asks and kept in the application state."""
    shared: dict[str, NodeStrategy] = {}
    yield shared
    for s in shared.values():
        s.transition("off")
        s.target.close()


@pytest.fixture
def target(request, tmp_path, tmp_path_factory, target_name, sim_options, qemu_options,
           shared_node):
    if _shares(request, target_name):
        s = shared_node.get("strategy")
        if s is None:
            workdir = tmp_path_factory.mktemp("shared-node")
            t = _make_target(request, workdir, target_name, {})
            shared_node["strategy"] = _strategy(request, t, workdir)
            yield t
        else:
            marker = request.node.get_closest_marker("needs")
            for cap in marker.args if marker else ():
                if cap not in s.target.provides:
                    pytest.skip(s.target.why_not(cap))
            yield s.target
        return
    options = {"sim": sim_options, "qemu": qemu_options}.get(target_name, {})
    t = _make_target(request, tmp_path, target_name, options)
    yield t
    t.close()


@pytest.fixture
def strategy(request, target, tmp_path, shared_node):
    s = shared_node.get("strategy")
    if s is not None and s.target is target:
        yield s
        # leave it for the next keeps_node test only as this one promised to
        try:
            s.transition("app")
            s.console.wait_ready(10)  # it answers, not only says "app"
        except Exception:
            shared_node.pop("strategy")
            s.transition("off")
            target.close()
            raise
        return
    s = _strategy(request, target, tmp_path)
    yield s
    s.transition("off")


@pytest.fixture
def node(strategy) -> NodeConsole:
    """The node's console with the application running."""
    return strategy.transition("app")
