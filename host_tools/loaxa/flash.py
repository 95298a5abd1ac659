"""Flash a board's pinned MicroPython image with esptool.

esptool runs as a child process (`python -m esptool`): its logger is global,
so a child per port keeps parallel batch flashing apart, and its exit status
and last words are all we need. Its output is parsed for the chip, the MAC,
progress, and the failure, which becomes one LoaxaError with a hint a
technician can act on.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import REPO
from .errors import LoaxaError
from .progress import Report

DEFAULT_BAUD = 460800

_PROGRESS = re.compile(r"(Writing at|Erasing|Comparing).*?(\d+(?:\.\d+)?)%")
_MAC = re.compile(r"^MAC:\s+([0-9a-f:]{17})", re.M)
_CHIP_TYPE = re.compile(r"^Chip type:\s+(.+)$", re.M)
_WRONG_CHIP = re.compile(r"This chip is (\S+?),? not (\S+?)\.")

# (pattern in esptool's output, message, hint): first match wins.
_FAILURES = (
    (_WRONG_CHIP, None, None),  # handled with the names filled in
    # 0xC1 (stub) and 0x07 (ROM) are the loaders' "bad data checksum" codes
    (re.compile(r"checksum|MD5 of file does not match|Hash of data does not match|"
                r"result was 01C1|result was 0107|Serial data stream stopped", re.I),
     "the data arrived corrupted on the way to the board",
     "try a lower baud (--baud 115200) and a shorter, better USB cable"),
    (re.compile(r"Failed to connect|No serial data received|Invalid head of packet|"
                r"Wrong boot mode", re.I),
     "the board did not answer as a bootloader",
     "hold the BOOT button, tap EN/RESET, release BOOT, and try again; "
     "check the USB cable carries data"),
    (re.compile(r"No more data to read|device reports readiness to read but returned no data|"
                r"Connection reset|Broken pipe|Input/output error|disconnected", re.I),
     "the connection to the board dropped while flashing",
     "check the USB cable and the board's power (a USB hub may need its own supply), "
     "then flash again"),
    (re.compile(r"Timed out|timeout", re.I),
     "the board stopped answering while flashing",
     "try a lower baud (--baud 115200); with a USB hub, plug the board in directly"),
    (re.compile(r"could not open port|No such file or directory|Permission denied", re.I),
     "cannot open the serial port",
     "check the port name (loaxa ports) and that you may use it "
     "(Linux: add yourself to the dialout group)"),
)


@dataclass
class FlashResult:
    port: str
    chip: str
    mac: str
    version: str
    sha256: str
    skipped: bool  # the image was already in flash


def image_dirs() -> list[Path]:
    """Where pinned images are looked for, first match wins."""
    dirs = [Path(os.environ["LOAXA_IMAGES"])] if os.environ.get("LOAXA_IMAGES") else []
    return dirs + [REPO / "images", Path.home() / ".cache" / "loaxa" / "images"]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def resolve_image(board: dict, image: str | os.PathLike | None, force: bool) -> Path:
    """The image to flash, checked against the board's SHA-256 pin."""
    pin = board.get("image")
    if not pin:
        raise LoaxaError(f"board {board['name']} runs no flashed image (it is simulated)",
                         "pick a hardware board: loaxa flash --board esp32-devkitc-max98357")
    if image is None:
        for d in image_dirs():
            if (d / pin["file"]).exists():
                image = d / pin["file"]
                break
        else:
            raise LoaxaError(
                f"image {pin['file']} not found in {', '.join(map(str, image_dirs()))}",
                f"download MicroPython {pin['version']} for ESP32 ({pin['file']}) from the "
                "official MicroPython download page into one of those folders, or give --image",
            )
    path = Path(image)
    if not path.is_file():
        raise LoaxaError(f"image {path} does not exist", "check the --image path")
    digest = sha256_file(path)
    if digest != pin["sha256"] and not force:
        raise LoaxaError(
            f"image {path.name} is not the one board {board['name']} pins "
            f"(SHA-256 {digest[:12]}…, expected {pin['sha256'][:12]}…)",
            "use the pinned image; --force flashes this one anyway (for testing new images)",
        )
    return path


def esptool_cmd() -> list[str]:
    return [sys.executable, "-u", "-m", "esptool"]


def _explain(out: str, board: dict, port: str) -> LoaxaError:
    m = _WRONG_CHIP.search(out)
    if m:
        return LoaxaError(
            f"the board on {port} has an {m.group(1)} chip, but board {board['name']} "
            f"is for {m.group(2)}",
            "choose the --board that matches this hardware (loaxa flash --help lists them)",
        )
    for rx, msg, hint in _FAILURES[1:]:
        if rx.search(out):
            return LoaxaError(f"{msg} ({port})", hint)
    last = [ln.strip() for ln in out.splitlines() if ln.strip()][-3:]
    return LoaxaError(f"esptool failed on {port}: {' / '.join(last)}",
                      "run again with --verbose to see esptool's full output")


def flash(
    port: str,
    board: dict,
    image: str | os.PathLike | None = None,
    *,
    erase: bool = False,
    force: bool = False,
    baud: int = DEFAULT_BAUD,
    report: Report | None = None,
    verbose: bool = False,
    stub: bool = True,
    reset: bool = True,
) -> FlashResult:
    """Write the board's pinned image at its offset; skip it if already there."""
    path = resolve_image(board, image, force)
    pin = board["image"]
    # --skip-flashed compares the flash's MD5 first: a board that already has
    # this image costs a second, not a full write. Erasing makes that moot.
    opts = ["--erase-all"] if erase else ["--skip-flashed"]
    text = _write(port, board, baud, [*opts, pin["offset"], str(path)], report, verbose,
                  stub, reset)
    return _result(port, board, path, text, skipped="already in flash" in text)


def factory(
    port: str,
    board: dict,
    files: dict[str, bytes],
    image: str | os.PathLike | None = None,
    *,
    force: bool = False,
    baud: int = DEFAULT_BAUD,
    report: Report | None = None,
    verbose: bool = False,
    stub: bool = True,
    reset: bool = True,
) -> FlashResult:
    """One esptool write of firmware + a vfs holding files (app, provisioning).

    Compressed on the wire and checked by esptool's flash hash after writing.
    Only the filesystem's used blocks are written (LittleFS spreads ~25 of
    them over the 2 MB partition): it never reads a block it has not
    allocated, so what an earlier filesystem left elsewhere is harmless, and
    erasing 2 MB would cost a board seconds for nothing. Those files hold
    secrets: they live in a private temporary folder, removed when the write
    ends.
    """
    from . import image as node_image

    path = resolve_image(board, image, force)
    pin = board["image"]
    fw = path.read_bytes()
    layout = bytearray(b"\xff" * node_image.FLASH_SIZE)
    layout[node_image.FIRMWARE_OFFSET:node_image.FIRMWARE_OFFSET + len(fw)] = fw
    vfs = node_image.partitions(layout).get("vfs")
    if vfs is None:
        raise LoaxaError(f"{path.name} has no vfs partition",
                         "use the board's pinned MicroPython image (boards/*.json)")
    blob = node_image.littlefs(files, vfs[1])
    with tempfile.TemporaryDirectory(prefix="loaxa-factory-") as tmp:  # 0700
        regions = [pin["offset"], str(path)]
        for off, run in used_runs(blob, node_image.BLOCK):
            fs_path = Path(tmp) / f"vfs-{off:06x}.bin"
            fd = os.open(fs_path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(run)
            regions += [hex(vfs[0] + off), str(fs_path)]
        text = _write(port, board, baud, regions, report, verbose, stub, reset)
    return _result(port, board, path, text, skipped=False)


def _result(port: str, board: dict, path: Path, text: str, skipped: bool) -> FlashResult:
    """What a write of the image at path did, from esptool's output text."""
    mac = _MAC.search(text)
    chip = _CHIP_TYPE.search(text)
    return FlashResult(
        port=port, chip=chip.group(1).strip() if chip else board["chip"],
        mac=mac.group(1) if mac else "", version=board["image"]["version"],
        sha256=sha256_file(path), skipped=skipped,
    )


def read_mac(port: str, board: dict, baud: int = DEFAULT_BAUD, stub: bool = True,
             reset: bool = True) -> str:
    """The board's MAC, read by esptool (a node id may be made of it before a write)."""
    args = [*esptool_cmd(), "--chip", board["chip"], "--port", port, "--baud", str(baud),
            *_connect_opts(stub, reset), "read-mac"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    mac = _MAC.search(out)
    if r.returncode or not mac:
        raise _explain(out, board, port)
    return mac.group(1)


def _connect_opts(stub: bool, reset: bool) -> list[str]:
    opts = ["--before", "default-reset", "--after", "hard-reset"] if reset else \
        ["--before", "no-reset", "--after", "no-reset"]
    return opts + ([] if stub else ["--no-stub"])


def used_runs(blob: bytes, block: int, gap: int = 2) -> list[tuple[int, bytes]]:
    """(offset, bytes) runs of the blocks that are not erased (all 0xFF).

    Runs closer than `gap` blocks are merged: an esptool region costs a
    command round trip, a blank block only its compressed few bytes.
    """
    blank = b"\xff" * block
    used = [i for i in range(len(blob) // block) if blob[i * block:(i + 1) * block] != blank]
    runs: list[list[int]] = []
    for i in used:
        if runs and i - runs[-1][1] <= gap + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return [(a * block, blob[a * block:(b + 1) * block]) for a, b in runs]


def _write(port: str, board: dict, baud: int, write_args: list[str], report: Report | None,
           verbose: bool, stub: bool, reset: bool) -> str:
    """Run esptool write-flash; return its output or raise the explained failure.

    stub=False, reset=False: the ROM loader as it is, without DTR/RTS resets
    (QEMU in download mode, whose ROM does not come back from the stub).
    """
    args = [*esptool_cmd(), "--chip", board["chip"], "--port", port, "--baud", str(baud),
            *_connect_opts(stub, reset), "write-flash", "--compress", *write_args]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout
    out = bytearray()
    line = bytearray()
    while True:
        ch = proc.stdout.read1(4096)  # type: ignore[attr-defined]
        if not ch:
            break
        out += ch
        for b in ch:
            if b in (10, 13):
                text = line.decode("utf-8", "replace")
                if verbose and text.strip():
                    print(text, file=sys.stderr)
                m = _PROGRESS.search(text)
                if m and report:
                    stage = "write" if m.group(1) == "Writing at" else "check"
                    report(stage, float(m.group(2)) / 100, "")
                line.clear()
            else:
                line.append(b)
    proc.wait()
    text = out.decode("utf-8", "replace")
    if proc.returncode:
        raise _explain(text, board, port)
    if report:
        report("write", 1.0, "done")
    return text
