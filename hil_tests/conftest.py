"""HIL plugin: one option picks the target; every test runs unchanged on each.

  pytest hil_tests --target sim                 # default; real MicroPython VM
  pytest hil_tests --target qemu                # needs QEMU ($QEMU_XTENSA or PATH), $QEMU_FIRMWARE
  pytest hil_tests --target serial --port /dev/ttyUSB0

Tests declare what they need with @pytest.mark.needs("audio_capture", ...);
a target that cannot provide it skips the test and says why.
"""

from __future__ import annotations

import pytest

from loaxa.console import NodeConsole
from loaxa.rig.strategy import NodeStrategy
from loaxa.rig.targets import Unavailable, make_target


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


@pytest.fixture
def target(request, tmp_path, target_name, sim_options, qemu_options):
    options = {"sim": sim_options, "qemu": qemu_options}.get(target_name, {})
    try:
        t = make_target(target_name, tmp_path, request.config.getoption("--board"),
                        request.config.getoption("--port"), **options)
    except Unavailable as e:
        pytest.skip(f"{target_name}: {e.msg}")
    marker = request.node.get_closest_marker("needs")
    for cap in marker.args if marker else ():
        if cap not in t.provides:
            pytest.skip(t.why_not(cap))
    yield t
    t.close()


@pytest.fixture
def strategy(request, target, tmp_path):
    baud = request.config.getoption("--baud")
    s = NodeStrategy(target, lambda url: NodeConsole(url, baud, log_path=tmp_path / "console.log",
                                                     slowdown=target.slowdown))
    yield s
    s.transition("off")


@pytest.fixture
def node(strategy) -> NodeConsole:
    """The node's console with the application running."""
    return strategy.transition("app")
