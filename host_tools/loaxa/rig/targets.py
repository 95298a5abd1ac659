"""Targets differ only in how the console is reached and the power switched."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import serial

from ..errors import LoaxaError
from ..sim import SimNode

# What a test may need; a target that cannot provide it skips, saying why.
CAPABILITIES = ("audio_capture", "power_cut", "rtc_control", "uart_throttle", "filesystem",
                "link_control")


class Unavailable(LoaxaError):
    """This target cannot run here (missing binary, image or port)."""


class Target:
    name = "?"
    provides: frozenset[str] = frozenset()

    def start(self) -> str:
        """Power on; return the console's pyserial URL."""
        raise NotImplementedError

    def power_cycle(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pass

    def why_not(self, capability: str) -> str:
        return f"target {self.name} cannot provide {capability}"


class SimTarget(Target):
    name = "sim"
    provides = frozenset(CAPABILITIES)

    def __init__(self, workdir: Path, board: str = "sim", **sim_options):
        self.node = SimNode(workdir / "flash", board=board, **sim_options)

    @property
    def state(self) -> Path:
        return self.node.state

    @property
    def audio_dir(self) -> Path:
        return self.node.audio_dir

    def start(self) -> str:
        return self.node.start()

    def power_cycle(self) -> None:
        self.node.power_cut()

    def link_cut(self) -> None:
        self.node.link_cut()

    def link_restore(self) -> None:
        self.node.link_restore()

    def stop(self) -> None:
        self.node.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QemuTarget(Target):
    """Espressif's QEMU with a flash image holding MicroPython (+ the app).

    Needs $QEMU_XTENSA (qemu-system-xtensa of the esp-develop line) and
    $QEMU_IMAGE (a 4 MB flash image); neither is in a registry reachable from
    CI, so without them every qemu test skips, naming what is missing.
    """

    name = "qemu"
    provides = frozenset({"power_cut", "filesystem"})

    def __init__(self, workdir: Path, board: str = "esp32-qemu", image: Path | None = None,
                 extra_args: tuple[str, ...] = ()):
        """image: a flash image to boot instead of $QEMU_IMAGE; extra_args: more
        QEMU options (the PPP tests give UART1 as a second -serial)."""
        qemu = os.environ.get("QEMU_XTENSA") or shutil.which("qemu-system-xtensa")
        src = image or os.environ.get("QEMU_IMAGE")
        if not qemu:
            raise Unavailable("qemu-system-xtensa not found (set $QEMU_XTENSA to Espressif's "
                              "QEMU build)")
        if not src or not Path(src).is_file():
            raise Unavailable("no ESP32 flash image (set $QEMU_IMAGE to a 4 MB image with "
                              "MicroPython ESP32_GENERIC v1.23.0 at 0x1000)")
        self.qemu = qemu
        self.image = workdir / "flash.bin"
        shutil.copy2(src, self.image)  # the guest writes its filesystem here
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> str:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [self.qemu, "-nographic", "-machine", "esp32", "-m", "4M",
             "-drive", f"file={self.image},if=mtd,format=raw",
             "-serial", f"tcp:127.0.0.1:{self.port},server=on,wait=off",
             "-monitor", "none", *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        return f"socket://127.0.0.1:{self.port}"

    def power_cycle(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class SerialTarget(Target):
    """A real board on a USB serial port; reset through the bridge's DTR/RTS."""

    name = "serial"
    provides = frozenset({"power_cut", "filesystem"})

    def __init__(self, port: str | None):
        if not port:
            raise Unavailable("--target serial needs --port (e.g. /dev/ttyUSB0)")
        self.port = port

    def start(self) -> str:
        return self.port

    def power_cycle(self) -> None:
        # EN is wired to RTS on the usual auto-reset circuit; DTR low keeps
        # GPIO0 high so the chip boots the application, not the ROM loader.
        with serial.Serial(self.port) as s:
            s.dtr = False
            s.rts = True
            time.sleep(0.1)
            s.rts = False


def make_target(name: str, workdir: Path, board: str | None, port: str | None,
                **sim_options) -> Target:
    if name == "sim":
        return SimTarget(workdir, board or "sim", **sim_options)
    if name == "qemu":
        return QemuTarget(workdir, board or "esp32-qemu")
    if name == "serial":
        return SerialTarget(port)
    raise LoaxaError(f"unknown target {name!r}", "use sim, qemu or serial")
