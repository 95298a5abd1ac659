"""An ESP32 node in Espressif's QEMU: finds QEMU and the pinned image, builds the flash, runs it.

QEMU comes from $QEMU_XTENSA or PATH; the MicroPython image from $QEMU_FIRMWARE
(the file, or a folder holding it), else a firmware/ folder next to the QEMU
install, and must match the board's pinned SHA-256. The flash file is built
once per node (loaxa.image) and kept across power cycles, as a board keeps its
flash. The console is a relay on a fixed socket:// URL that survives power
cycles like a USB-serial bridge powered by the host; QEMU's own UART socket
changes with every start.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import cast

from .. import boards
from .. import image as flashimage
from ..errors import LoaxaError
from ..flash import sha256_file
from .process import free_port


class Unavailable(LoaxaError):
    """This target cannot run here (missing binary, image or port)."""


# No -icount: the guest's clock is the host's, so a stream is consumed at the
# pace the head-end sends it. Under `-icount shift=auto` the guest ran several
# times slower and a 10 s stream over PPP lost or skipped most of its packets;
# without it every packet played (docs/hil.md, 2026-12-02). icount had been
# chosen against hangs while the app imported from flash, gone since main.py
# mounts the filesystem with a larger cache. A fixed shift (args) remains for
# instruction-counted measurements (the decode bench).
# The emulated timer groups' watchdogs off: the guest's timers run on the
# host's clock, and when QEMU gets no CPU for a while (a loaded host) they
# all come due before the guest runs an instruction, the interrupt
# watchdog's reset stage included (seen: rst:0x8 TG1WDT_SYS_RESET and
# rst:0x7 TG0WDT_SYS_RESET with no panic message, in the middle of an HTTP
# stream over PPP). The app's own watchdog is off on esp32-qemu for the
# same reason (boards/esp32-qemu.json).
NO_WDT = ("-global", "driver=timer.esp32.timg,property=wdt_disable,value=true")
SEEN_MAX = 1 << 16  # console bytes kept for wait_output (the boot's tail)


def find_qemu() -> str:
    exe = os.environ.get("QEMU_XTENSA") or shutil.which("qemu-system-xtensa")
    if not exe or not Path(exe).is_file():
        raise Unavailable("qemu-system-xtensa not found",
                          "set $QEMU_XTENSA to Espressif's QEMU (idf_tools.py install "
                          "qemu-xtensa) or put it on PATH")
    return exe


def find_firmware(board: dict, qemu: str) -> Path:
    pin = board["image"]
    env = os.environ.get("QEMU_FIRMWARE")
    if env:
        where = Path(env)
    else:  # a release unpacked as bin/ + firmware/
        where = Path(qemu).resolve().parent.parent / "firmware"
        if not where.is_dir():
            where = Path(qemu).parent.parent / "firmware"
    path = where / pin["file"] if where.is_dir() else where
    if not path.is_file():
        raise Unavailable(f"MicroPython image {pin['file']} not found (looked in {where})",
                          "set $QEMU_FIRMWARE to the image (micropython.org/download/"
                          "ESP32_GENERIC) or the folder that holds it")
    if sha256_file(path) != pin["sha256"]:
        raise Unavailable(f"{path} is not the image board {board['name']} pins "
                          f"(SHA-256 {pin['sha256'][:12]}...)",
                          "use the exact file named in the board definition")
    return path


class Relay:
    """A socket:// endpoint on a fixed port, joined to QEMU's UART socket of the moment."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.seen = bytearray()  # what the node sent since the last power-on
        self._client: socket.socket | None = None
        self._node: socket.socket | None = None
        self._lock = threading.Lock()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.server, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="qemu-relay", daemon=True)
        self._thread.start()

    def attach(self, node: socket.socket | None) -> None:
        """Join the relay to a new UART socket (None: powered off); the old one is closed."""
        with self._lock:
            self._node = node
            self.seen.clear()
        self._wake_w.send(b"x")

    def _swap(self, attr: str, new: socket.socket | None) -> None:
        old = getattr(self, attr)
        if old is not None:
            self._sel.unregister(old)
            old.close()
        setattr(self, attr, new)
        if new is not None:
            self._sel.register(new, selectors.EVENT_READ)

    def _run(self) -> None:
        registered_node = None
        while not self._stop:
            with self._lock:
                node = self._node
            if node is not registered_node:
                if registered_node is not None:
                    self._sel.unregister(registered_node)
                    registered_node.close()
                if node is not None:
                    self._sel.register(node, selectors.EVENT_READ)
                registered_node = node
            for key, _ in self._sel.select(0.5):
                sock = cast(socket.socket, key.fileobj)
                if sock is self.server:
                    conn, _ = self.server.accept()
                    self._swap("_client", conn)
                elif sock is self._wake_r:
                    self._wake_r.recv(64)
                elif sock is self._client:
                    data = self._recv(sock)
                    if not data:
                        self._swap("_client", None)
                    elif node is not None and node is registered_node:
                        try:
                            node.sendall(data)
                        except OSError:
                            pass  # powered off: a UART with no chip behind it
                elif sock is registered_node:
                    data = self._recv(sock)
                    if not data:  # QEMU exited; attach() brings the next one
                        self._sel.unregister(sock)
                        registered_node = None
                        with self._lock:
                            if self._node is sock:
                                self._node = None
                        sock.close()
                        continue
                    with self._lock:
                        self.seen += data
                        del self.seen[:-SEEN_MAX]
                    if self._client is not None:
                        try:
                            self._client.sendall(data)
                        except OSError:
                            self._swap("_client", None)

    @staticmethod
    def _recv(sock: socket.socket) -> bytes | None:
        try:
            return sock.recv(4096)
        except OSError:
            return None

    def close(self) -> None:
        self._stop = True
        self.attach(None)
        self._thread.join(2)
        for s in (self._client, self.server, self._wake_r, self._wake_w):
            if s is not None:
                s.close()


class QemuNode:
    """One emulated node: its flash file, QEMU process and console relay.

    files/config: extra files and settings on the flash before the first boot
    (as provisioning would leave them). args: extra QEMU arguments. uarts:
    how many UARTs beyond UART0 get a TCP socket (uart_url(1) for UART1).
    app=False: the bare image (for deploying onto). image: a whole flash image
    to boot instead (copied; files/config/app are then not used).
    """

    def __init__(self, workdir: Path, board: str = "esp32-qemu", *, config: dict | None = None,
                 files: dict[str, bytes] | None = None, args: list[str] | tuple = (),
                 uarts: int = 0, app: bool = True,
                 image: Path | None = None):
        self.board = boards.load(board)
        self.qemu = find_qemu()
        self.firmware = find_firmware(self.board, self.qemu)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.flash = self.workdir / "flash.bin"
        if image is not None:
            shutil.copy2(image, self.flash)
        else:
            tree = flashimage.node_files(board, config, files) if app else dict(files or {})
            flashimage.flash_image(self.firmware, tree, self.flash)
        self.args = [*NO_WDT, *args]
        self.uart_ports = [free_port() for _ in range(uarts)]
        self.relay = Relay()
        self.url = self.relay.url
        self.proc: subprocess.Popen | None = None
        self.boots = 0

    def uart_url(self, n: int) -> str:
        """socket:// of UART n (1...): QEMU listens there while the node runs."""
        return f"socket://127.0.0.1:{self.uart_ports[n - 1]}"

    def start(self) -> str:
        if self.proc and self.proc.poll() is None:
            return self.url
        port = free_port()
        # -serial order is UART order: UART0 (the console) first, extra args after
        cmd = [self.qemu, "-nographic", "-machine", "esp32",
               "-drive", f"file={self.flash},if=mtd,format=raw",
               "-serial", f"tcp:127.0.0.1:{port},server=on,wait=off",
               *(a for p in self.uart_ports
                 for a in ("-serial", f"tcp:127.0.0.1:{p},server=on,wait=off")),
               "-monitor", "none", *self.args]
        err = open(self.workdir / "qemu.log", "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                self.relay.attach(socket.create_connection(("127.0.0.1", port), 0.5))
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.workdir / "qemu.log").read_text(errors="replace")[-500:]
                    self.stop()
                    raise LoaxaError(f"QEMU did not start: {log.strip()}") from None
                time.sleep(0.05)
        self.boots += 1
        return self.url

    def wait_output(self, marks: tuple[bytes, ...], timeout: float) -> bytes | None:
        """Wait until the node printed one of marks since power-on."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = bytes(self.relay.seen)
            for m in marks:
                if m in seen:
                    return m
            time.sleep(0.1)
        return None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.relay.attach(None)

    def close(self) -> None:
        self.stop()
        self.relay.close()

    def files(self) -> dict[str, bytes]:
        """The node's filesystem as it is on the flash now."""
        return flashimage.read_flash(self.flash)

    def write_files(self, files: dict[str, bytes]) -> None:
        """Replace the filesystem (only while powered off)."""
        assert self.proc is None, "the flash is written only while the node is off"
        flash = bytearray(self.flash.read_bytes())
        offset, size = flashimage.partitions(flash)["vfs"]
        flash[offset:offset + size] = flashimage.littlefs(files, size)
        self.flash.write_bytes(flash)
