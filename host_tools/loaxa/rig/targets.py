"""Targets differ only in how the console is reached and the power switched."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import serial

from ..appbuild import write_tree
from ..errors import LoaxaError
from ..sim import SimNode
from .qemu import QemuNode
from .qemu import Unavailable as QemuUnavailable

# What a test may need; a target that cannot provide it skips, saying why.
CAPABILITIES = ("audio_capture", "power_cut", "rtc_control", "uart_throttle", "filesystem",
                "link_control", "memory_leak")


Unavailable = QemuUnavailable  # this target cannot run here (missing binary, image or port)


class Target:
    name = "?"
    provides: frozenset[str] = frozenset()
    slowdown = 1.0  # how much longer than a board everything takes (console timeouts)

    def start(self) -> str:
        """Power on; return the console's pyserial URL."""
        raise NotImplementedError

    def power_cycle(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pass

    def close(self) -> None:
        """Release everything (stop() only powers off)."""
        self.stop()

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


class QemuTarget(Target):
    """The stock MicroPython image on Espressif's QEMU ESP32, the app on its flash.

    The flash is built on the host exactly as deploy + config.set leave it
    (loaxa.image); power cycles kill QEMU and start it again on the same
    flash file. `state` is the node's filesystem as a folder: read from the
    flash when asked, and what a test changes in it is written back at the
    next power cycle, as if the flash had been edited with the power off.
    """

    name = "qemu"
    # No I2S (a counting null sink: nothing to capture), the RTC always starts
    # in 2000, no Wi-Fi/Ethernet, and the UART receive pace is QEMU's, not the
    # baud's: those tests skip.
    provides = frozenset({"power_cut", "filesystem"})
    # The emulated flash is far slower than a board's (every read stops both
    # CPUs, which QEMU pays dearly for), more so on a busy host: console
    # timeouts stretch by the first boot's time against a board's.
    BOARD_BOOT_S = 3.0
    slowdown = 4.0  # at least; raised after the first boot

    def __init__(self, workdir: Path, board: str = "esp32-qemu",
                 extra_args: tuple[str, ...] = (), **options):
        """options: QemuNode's; extra_args: more QEMU options (e.g. a second -serial)."""
        options["args"] = (*options.get("args", ()), *extra_args)
        try:
            self.node = QemuNode(workdir / "qemu", board, **options)
        except QemuUnavailable as e:
            raise Unavailable(e.msg, e.hint) from None
        self.boot_s: float | None = None
        self._view: Path | None = None
        self._view_digest: dict[str, str] = {}
        self.url = self.node.url

    def uart_url(self, n: int) -> str:
        return self.node.uart_url(n)

    @property
    def state(self) -> Path:
        view = self.node.workdir / "fs"
        if view.exists():
            shutil.rmtree(view)
        files = self.node.files()
        write_tree(files, view)
        self._view, self._view_digest = view, _digests(files)
        return view

    def _apply_edits(self) -> None:
        """Carry what a test changed in `state` onto the (powered-off) flash."""
        if self._view is None:
            return
        now = {p.relative_to(self._view).as_posix(): p.read_bytes()
               for p in self._view.rglob("*") if p.is_file()}
        changed = {k: v for k, v in now.items() if _digests({k: v})[k] != self._view_digest.get(k)}
        gone = set(self._view_digest) - set(now)
        self._view = None
        if changed or gone:
            files = self.node.files()
            files.update(changed)
            for k in gone:
                files.pop(k, None)
            self.node.write_files(files)

    def start(self) -> str:
        self._apply_edits()
        t0 = time.monotonic()
        url = self.node.start()
        # Returns once the boot is over, so a console's usual timeouts hold. On a
        # busy host a boot has taken over 7 min; one that never ends is the test's
        # to find (its console times out), stretched by the wait so far.
        self.node.wait_output((b"loaxa: ", b" ready\r\n", b">>> "), 900)
        if self.node.boots == 1:
            self.boot_s = time.monotonic() - t0
            self.slowdown = max(self.slowdown, self.boot_s / self.BOARD_BOOT_S)
        return url

    def power_cycle(self) -> None:
        self.node.stop()
        self.start()

    def stop(self) -> None:
        self.node.stop()

    def close(self) -> None:
        self.node.close()


def _digests(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


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
                **options) -> Target:
    """options: SimNode's for the sim, QemuNode's for qemu (see each)."""
    if name == "sim":
        return SimTarget(workdir, board or "sim", **options)
    if name == "qemu":
        return QemuTarget(workdir, board or "esp32-qemu", **options)
    if name == "serial":
        return SerialTarget(port)
    raise LoaxaError(f"unknown target {name!r}", "use sim, qemu or serial")
