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

# What a test may need (@pytest.mark.needs); a target that cannot provide it
# skips the test, saying why. Each optional member of Target names its capability.
CAPABILITIES = {
    "power_cut": "power_cycle(): cut the power at an instant (the strategy's)",
    "filesystem": "state: the node's filesystem as a folder",
    "audio_capture": "audio_dir: what the speaker played, as WAV files",
    "link_control": "link_cut(), link_restore(): the node's network link",
    "rtc_control": "the RTC starts where the test asks (sim_options rtc_start)",
    "uart_throttle": "the console paced at its baud rate",
    "memory_leak": "leak(): hold part of the node's heap",
    "amp_sense": "amp_fault(): break the amplifier line as the board senses it",
    "usb_replug": "unplug(), plug(), port_link: pull and replug the USB cable",
    "extra_uarts": "uart_url(n): UART1... on sockets",
    "boot_count": "boots: how many times the node has powered on or reset",
    "known_uid": "uid: the chip id the node reports",
}


Unavailable = QemuUnavailable  # this target cannot run here (missing binary, image or port)


class Lacking(Exception):
    """A test used a capability its target does not have; the HIL plugin skips it
    with this message (a test should say so up front with @pytest.mark.needs)."""


class Target:
    """Where a node runs and how its power is switched (labgrid's resource +
    power driver). The console is one driver for all (NodeConsole on `start()`'s
    URL); getting into a state is the strategy's (NodeStrategy): tests do not
    call start/power_cycle/stop themselves."""

    name = "?"
    provides: frozenset[str] = frozenset()
    slowdown = 1.0  # how much longer than a board everything takes (console timeouts)
    # A boot takes minutes (emulation): tests that leave the node as they found it
    # (marked keeps_node) share one node per run instead of booting their own.
    boots_are_dear = False

    def start(self) -> str:
        """Power on; return the console's pyserial URL."""
        raise NotImplementedError

    def power_cycle(self) -> None:
        """Cut the power and power on again (the console's URL stays)."""
        raise self.lacking("power_cut")

    def stop(self) -> None:
        pass

    def close(self) -> None:
        """Release everything (stop() only powers off)."""
        self.stop()

    def why_not(self, capability: str) -> str:
        return (f"target {self.name} cannot provide {capability} "
                f"({CAPABILITIES.get(capability, '?')})")

    def lacking(self, capability: str) -> Lacking:
        return Lacking(self.why_not(capability))

    # -- optional capabilities: a target that has one overrides it and lists it
    # in `provides`; here each raises Lacking, which the HIL plugin skips on.
    @property
    def url(self) -> str:
        """The console's pyserial URL (for tools that open the port themselves)."""
        raise NotImplementedError

    @property
    def state(self) -> Path:
        raise self.lacking("filesystem")

    @property
    def audio_dir(self) -> Path:
        raise self.lacking("audio_capture")

    def link_cut(self) -> None:
        raise self.lacking("link_control")

    def link_restore(self) -> None:
        raise self.lacking("link_control")

    def leak(self, kb_left: int | None) -> None:
        raise self.lacking("memory_leak")

    def amp_fault(self, kind: str | None) -> None:
        raise self.lacking("amp_sense")

    @property
    def port_link(self) -> Path:
        raise self.lacking("usb_replug")

    def unplug(self) -> None:
        raise self.lacking("usb_replug")

    def plug(self) -> str:
        raise self.lacking("usb_replug")

    def uart_url(self, n: int) -> str:
        raise self.lacking("extra_uarts")

    @property
    def boots(self) -> int:
        raise self.lacking("boot_count")

    @property
    def uid(self) -> str:
        raise self.lacking("known_uid")


class SimTarget(Target):
    name = "sim"
    provides = frozenset(CAPABILITIES) - {"extra_uarts"}

    def __init__(self, workdir: Path, board: str = "sim", **sim_options):
        self.node = SimNode(workdir / "flash", board=board, **sim_options)

    @property
    def url(self) -> str:
        return self.node.url

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

    def leak(self, kb_left: int | None) -> None:
        self.node.leak(kb_left)

    def amp_fault(self, kind: str | None) -> None:
        self.node.amp_fault(kind)

    @property
    def port_link(self) -> Path:
        return self.node.port_link

    def unplug(self) -> None:
        self.node.unplug()

    def plug(self) -> str:
        return self.node.plug()

    @property
    def boots(self) -> int:
        return self.node.boots

    @property
    def uid(self) -> str:
        return self.node.uid

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
    provides = frozenset({"power_cut", "filesystem", "extra_uarts", "boot_count"})
    boots_are_dear = True
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

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def boots(self) -> int:
        return self.node.boots

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
    provides = frozenset({"power_cut"})

    def __init__(self, port: str | None):
        if not port:
            raise Unavailable("--target serial needs --port (e.g. /dev/ttyUSB0)")
        self.port = port

    @property
    def url(self) -> str:
        return self.port

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


TARGETS: dict[str, type[Target]] = {"sim": SimTarget, "qemu": QemuTarget, "serial": SerialTarget}


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
