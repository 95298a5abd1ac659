"""A node's flash, built on the host: firmware at 0x1000, a LittleFS `vfs` with the app.

node_files() lays out exactly what `loaxa deploy` and provisioning leave on a
node (main.py, app.ptr, the content-named app folder with its manifest,
data/board.json, data/config.json); littlefs() turns such a tree into the
`vfs` partition the stock MicroPython image mounts at boot; flash_image()
puts firmware and filesystem into one file for QEMU or for esptool. A node so
written boots straight into the app, with no transfer over the REPL.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from littlefs import LittleFS

from loaxa_node import config as node_config

from . import FIRMWARE, boards
from .appbuild import ARCHS, build
from .deploy import MANIFEST, PTR, app_name, manifest_of
from .errors import LoaxaError

FLASH_SIZE = 4 << 20  # the stock ESP32_GENERIC layout
FIRMWARE_OFFSET = 0x1000
PARTITION_TABLE = 0x8000
BLOCK = 4096
# MicroPython's ESP32 port mounts the vfs with these (ports/esp32/modules/_boot.py);
# disk version 2.0 is the one every littlefs v2 driver reads and writes.
LFS_DISK_VERSION = 0x00020000
# (.mpy version, sub-version) each pinned MicroPython release loads; the
# architecture comes from the board's mpy_arch.
MPY_OF_RELEASE = {"1.23": (6, 3)}


def device_mpy(board: dict) -> int | None:
    """The sys.implementation._mpy of the board's pinned image (None: the sim)."""
    img = board.get("image")
    if not img:
        return None
    release = ".".join(img["version"].split(".")[:2])
    if release not in MPY_OF_RELEASE:
        raise LoaxaError(f"no known bytecode version for MicroPython {img['version']}",
                         "add it to loaxa.image.MPY_OF_RELEASE")
    version, sub = MPY_OF_RELEASE[release]
    return version | sub << 8 | ARCHS.index(board["mpy_arch"]) << 10


def node_files(board_name: str, config: dict | None = None,
               extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """The filesystem of a node with the app deployed and config set: path -> bytes."""
    board = boards.load(board_name)
    mpy = device_mpy(board)
    app = build(mpy=mpy) if mpy is not None else build(march=board["mpy_arch"])
    manifest = manifest_of(app)
    name = app_name(manifest)
    files = {f"{name}/{k}": v for k, v in app.items()}
    files[f"{name}/{MANIFEST}"] = json.dumps(manifest, sort_keys=True).encode()
    files[PTR] = name.encode()
    files["main.py"] = (FIRMWARE / "main.py").read_bytes()
    files["data/board.json"] = json.dumps(board).encode()
    if config:
        try:  # what config.set stores: the whole config, defaults included
            full = node_config.merged(node_config.defaults(), config)
        except node_config.ConfigError as e:
            raise LoaxaError(f"bad setting {e.key}: {e.msg}") from None
        files["data/config.json"] = json.dumps(full).encode()
    files.update(extra or {})
    return files


def _lfs(size: int, mount: bool, disk_version: int = LFS_DISK_VERSION) -> LittleFS:
    return LittleFS(block_size=BLOCK, block_count=size // BLOCK, read_size=32, prog_size=32,
                    lookahead_size=32, disk_version=disk_version, mount=mount)


def littlefs(files: dict[str, bytes], size: int = 0x200000) -> bytes:
    """A LittleFS image of `size` bytes holding files (paths with '/')."""
    if size % BLOCK:
        raise LoaxaError(f"a filesystem size must be a multiple of {BLOCK} bytes")
    fs = _lfs(size, mount=True)
    for path in sorted(files):
        parent = path.rpartition("/")[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(path, "wb") as f:
            f.write(files[path])
    return bytes(fs.context.buffer)


def read_littlefs(blob: bytes) -> dict[str, bytes]:
    """Every file in a LittleFS image (e.g. a vfs after the node wrote to it)."""
    # Any minor version reads: a newer driver may have upgraded the superblock when it wrote.
    fs = _lfs(len(blob), mount=False, disk_version=0)
    fs.context.buffer[:] = blob
    fs.mount()
    out = {}
    for root, _dirs, names in fs.walk("/"):
        for n in names:
            p = f"{root.rstrip('/')}/{n}".lstrip("/")
            with fs.open(p, "rb") as f:
                out[p] = f.read()
    return out


def partitions(flash: bytes | bytearray) -> dict[str, tuple[int, int]]:
    """name -> (offset, size) from the partition table in a flash image."""
    out = {}
    for i in range(PARTITION_TABLE, PARTITION_TABLE + 0xC00, 32):
        entry = flash[i:i + 32]
        if entry[:2] != b"\xaa\x50":
            break
        offset, size = struct.unpack_from("<II", entry, 4)
        out[entry[12:28].rstrip(b"\0").decode()] = (offset, size)
    return out


def flash_image(firmware_bin: Path, files: dict[str, bytes], out_path: Path) -> Path:
    """Write a whole flash: the firmware at 0x1000, files in its `vfs` partition."""
    fw = Path(firmware_bin).read_bytes()
    flash = bytearray(b"\xff" * FLASH_SIZE)
    flash[FIRMWARE_OFFSET:FIRMWARE_OFFSET + len(fw)] = fw
    vfs = partitions(flash).get("vfs")
    if vfs is None or vfs[0] < FIRMWARE_OFFSET + len(fw) or sum(vfs) > FLASH_SIZE:
        raise LoaxaError(f"{Path(firmware_bin).name} has no vfs partition in a 4 MB layout",
                         "use the board's pinned MicroPython image (boards/*.json)")
    flash[vfs[0]:vfs[0] + vfs[1]] = littlefs(files, vfs[1])
    out = Path(out_path)
    out.write_bytes(flash)
    return out


def read_flash(path: Path) -> dict[str, bytes]:
    """The files in the vfs partition of a flash image file."""
    flash = Path(path).read_bytes()
    offset, size = partitions(flash)["vfs"]
    return read_littlefs(flash[offset:offset + size])
