"""Node flash images built on the host, read by MicroPython's own LittleFS driver.

The unix VM carries the same lfs2 code and mount options as the ESP32 port, so
a tree it reads back (and files it writes that the host then reads) shows the
image is what a node mounts at boot.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from loaxa import FIRMWARE, boards
from loaxa.deploy import MANIFEST, PTR, app_name
from loaxa.errors import LoaxaError
from loaxa.image import (
    BLOCK,
    device_mpy,
    flash_image,
    littlefs,
    node_files,
    read_flash,
    read_littlefs,
)
from loaxa_node import config as node_config

MOUNT = """
import vfs, os, json, hashlib, binascii
class Dev:
    def __init__(s, path):
        s.f = open(path, 'r+b')
        s.f.seek(0, 2)
        s.n = s.f.tell() // %(block)d
    def readblocks(s, n, buf, off=0):
        s.f.seek(n * %(block)d + off)
        s.f.readinto(buf)
    def writeblocks(s, n, buf, off=None):
        if off is None:
            off = 0
        s.f.seek(n * %(block)d + off)
        s.f.write(buf)
    def ioctl(s, op, arg):
        if op == 4: return s.n
        if op == 5: return %(block)d
        if op == 6: return 0
        if op == 3: s.f.flush(); return 0
d = Dev(%(path)r)
vfs.mount(vfs.VfsLfs2(d, readsize=32, progsize=32, lookahead=32), '/fs')
def walk(p, out):
    for name, kind, *_ in os.ilistdir(p):
        q = p + '/' + name
        if kind == 0x4000:
            walk(q, out)
        else:
            with open(q, 'rb') as f:
                out[q[4:]] = binascii.hexlify(hashlib.sha256(f.read()).digest()).decode()
    return out
"""


def digests(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}


@pytest.fixture(scope="module")
def qemu_files():
    return node_files("esp32-qemu", {"node_id": "xa-01", "zones": ["cho"]},
                      extra={"data/keys.json": b'{"node_key": "00"}'})


def test_node_files_are_what_deploy_and_config_set_leave(qemu_files):
    files = qemu_files
    app = files[PTR].decode()
    manifest = json.loads(files[f"{app}/{MANIFEST}"])
    assert app == app_name(manifest)  # the folder is named by its content, as deploy names it
    in_app = {k[len(app) + 1:]: v for k, v in files.items()
              if k.startswith(app + "/") and k != f"{app}/{MANIFEST}"}
    assert manifest == digests(in_app)
    assert "loaxa_node/app.mpy" in in_app and "loaxa_node/app.py" not in in_app
    assert files["main.py"] == (FIRMWARE / "main.py").read_bytes()
    assert json.loads(files["data/board.json"]) == boards.load("esp32-qemu")
    cfg = json.loads(files["data/config.json"])
    assert cfg == node_config.merged(node_config.defaults(), {"node_id": "xa-01",
                                                              "zones": ["cho"]})
    assert files["data/keys.json"] == b'{"node_key": "00"}'


def test_bytecode_is_built_for_the_pinned_release():
    # v1.23 on the ESP32: .mpy 6.3, xtensawin (the value sys.implementation._mpy gives)
    assert device_mpy(boards.load("esp32-qemu")) == 6 | 3 << 8 | 10 << 10
    assert device_mpy(boards.load("sim")) is None


def test_a_bad_setting_is_refused_before_anything_is_built():
    with pytest.raises(LoaxaError, match="volume"):
        node_files("esp32-qemu", {"volume": 300})


def test_micropython_mounts_the_image_and_the_host_reads_what_it_wrote(
        upy, qemu_files, tmp_path):
    img = tmp_path / "vfs.bin"
    img.write_bytes(littlefs(qemu_files, 64 * BLOCK * 8))
    code = MOUNT % {"block": BLOCK, "path": str(img)} + """
seen = walk('/fs', {})
with open('/fs/data/config.json.tmp', 'w') as f:
    f.write('{"volume": 40}')
os.rename('/fs/data/config.json.tmp', '/fs/data/config.json')
vfs.umount('/fs')
print(json.dumps(seen))
"""
    assert upy.json(code) == digests(qemu_files)
    back = read_littlefs(img.read_bytes())
    assert back["data/config.json"] == b'{"volume": 40}'
    assert {k: v for k, v in back.items() if k != "data/config.json"} == \
        {k: v for k, v in qemu_files.items() if k != "data/config.json"}


def test_a_size_off_the_block_grid_is_refused():
    with pytest.raises(LoaxaError, match="multiple of 4096"):
        littlefs({}, 5000)


def partition_table(entries: list[tuple[str, int, int, int, int]]) -> bytes:
    rows = b"".join(struct.pack("<2sBBII16sI", b"\xaa\x50", ptype, sub, off, size,
                                name.encode(), 0) for name, ptype, sub, off, size in entries)
    return rows + b"\xff" * (0xC00 - len(rows))


def test_flash_image_puts_firmware_and_filesystem_where_the_table_says(tmp_path):
    fw = bytearray(b"\xe9" + bytes(range(256)) * 40)
    table = partition_table([("nvs", 1, 2, 0x9000, 0x6000), ("factory", 0, 0, 0x10000, 0x1F0000),
                             ("vfs", 1, 0x81, 0x200000, 0x200000)])
    fw[0x7000:0x7000] = b"\xff" * (0x7000 - len(fw))  # the table sits at 0x8000 in flash
    fw[0x7000:0x7000 + len(table)] = table
    (tmp_path / "fw.bin").write_bytes(fw)
    out = flash_image(tmp_path / "fw.bin", {"main.py": b"print(1)\n"}, tmp_path / "flash.bin")
    flash = out.read_bytes()
    assert len(flash) == 4 << 20
    assert flash[0x1000:0x1000 + len(fw)] == fw
    assert read_flash(out) == {"main.py": b"print(1)\n"}


def test_an_image_without_a_vfs_partition_is_refused(tmp_path):
    (tmp_path / "fw.bin").write_bytes(b"\xe9" * 4096)
    with pytest.raises(LoaxaError, match="no vfs partition"):
        flash_image(tmp_path / "fw.bin", {}, tmp_path / "flash.bin")


@pytest.mark.skipif(not os.environ.get("QEMU_FIRMWARE"), reason="QEMU_FIRMWARE not set")
def test_the_pinned_image_has_room_for_the_node(qemu_files, tmp_path):
    fw = Path(os.environ["QEMU_FIRMWARE"])
    if fw.is_dir():
        fw = fw / boards.load("esp32-qemu")["image"]["file"]
    out = flash_image(fw, qemu_files, tmp_path / "flash.bin")
    assert read_flash(out) == qemu_files
