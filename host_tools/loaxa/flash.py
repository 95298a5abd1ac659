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
                r"result was 01C1|result was 0107", re.I),
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
) -> FlashResult:
    """Write the board's pinned image at its offset; skip it if already there."""
    path = resolve_image(board, image, force)
    pin = board["image"]
    args = [*esptool_cmd(), "--chip", board["chip"], "--port", port, "--baud", str(baud),
            "--after", "hard-reset", "write-flash"]
    # --skip-flashed compares the flash's MD5 first: a board that already has
    # this image costs a second, not a full write. Erasing makes that moot.
    args += ["--erase-all"] if erase else ["--skip-flashed"]
    args += [pin["offset"], str(path)]
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
    mac = _MAC.search(text)
    chip = _CHIP_TYPE.search(text)
    if report:
        report("write", 1.0, "done")
    return FlashResult(
        port=port, chip=chip.group(1).strip() if chip else board["chip"],
        mac=mac.group(1) if mac else "", version=pin["version"], sha256=sha256_file(path),
        skipped="already in flash" in text,
    )
