"""Pure pieces of the technician tools: the binary unit escaping (decoded by the
node's own receiver code on the MicroPython VM), the inventory, port naming."""

from __future__ import annotations

import json
import os
import random

import pytest
from serial.tools.list_ports_common import ListPortInfo

from loaxa import deploy, ports
from loaxa.errors import LoaxaError
from loaxa.inventory import Inventory
from loaxa.rawrepl import UNIT, escape_units


def _decoder_source() -> str:
    """The unit decoding lines of the node's receiver, cut from deploy's program."""
    src = deploy._HELPERS
    start = src.index("    d=bytes(R[:n])")
    line = src[start:src.index("\n", src.index("f.write(d", start))]
    return "\n".join(ln.strip() for ln in line.splitlines())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_escaped_units_decode_on_micropython_to_the_same_bytes(upy, seed):
    rnd = random.Random(seed)
    # dense in the special bytes, plus random runs, plus the 3-byte-unit corner
    data = bytes(rnd.choice([3, 0x1B, 1, 2, rnd.getrandbits(8)]) for _ in range(3000)) + b"\x03"
    units = escape_units(data)
    for u in units:
        assert 1 <= u[0] <= UNIT and u[0] != 3 and len(u) == u[0] + 1
        assert 3 not in u[1:], "Ctrl-C must never travel raw"
    code = (
        "import sys\nR=memoryview(bytearray(256))\nout=bytearray()\n"
        f"for u in {[list(u) for u in units]!r}:\n"
        " n=u[0]\n R[:n]=bytes(u[1:])\n"
        + "\n".join(" " + ln.replace("f.write(", "out.extend(")
                    for ln in _decoder_source().splitlines()) +
        "\nprint(list(out))\n"
    )
    assert bytes(upy.json(code)) == data


def test_inventory_keys_are_encrypted_and_files_private(tmp_path):
    db = tmp_path / "inv.sqlite"
    with Inventory(db) as inv:
        k = inv.new_node_key("n1")
        inv.record("n1", "provision", mac="24:0a", zones=["a", "b"], commune="an-binh")
        out = json.loads(inv.export())
        assert out[0]["zones"] == ["a", "b"] and "node_key" not in out[0]
        full = json.loads(inv.export(with_keys=True))
        assert full[0]["node_key"] == k and "commune_key" not in full[0]
        assert [e["action"] for e in inv.events("n1")] == ["keys", "provision"]
    raw = db.read_bytes()
    assert k.encode() not in raw
    for f in (db, db.with_suffix(".key")):
        assert f.stat().st_mode & 0o777 == 0o600
    other = tmp_path / "other.key"
    with Inventory(db, key_path=other) as inv, pytest.raises(LoaxaError, match="decrypt"):
        inv.node_key("n1")


def test_inventory_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LOAXA_INVENTORY", str(tmp_path / "x" / "i.sqlite"))
    with Inventory() as inv:
        assert inv.path == tmp_path / "x" / "i.sqlite" and inv.path.exists()


def test_ports_are_found_by_bridge_id_and_named_by_stable_path(tmp_path, monkeypatch):
    by_path = tmp_path / "by-path"
    by_path.mkdir()
    devs = []
    for name, vid, pid in (("ttyUSB0", 0x10C4, 0xEA60), ("ttyUSB1", 0x1234, 0x5678),
                           ("ttyACM0", 0x303A, 0x1001)):
        dev = tmp_path / name
        dev.touch()
        info = ListPortInfo(str(dev), skip_link_detection=True)
        info.vid, info.pid = vid, pid
        devs.append(info)
    os.symlink(tmp_path / "ttyUSB0", by_path / "pci-0000:00:14.0-usb-0:3:1.0-port0")
    monkeypatch.setattr(ports, "STABLE_DIRS", (by_path, tmp_path / "by-id"))
    monkeypatch.setattr(ports.list_ports, "comports", lambda: devs)
    found = ports.find()
    assert sorted((p.bridge, os.path.basename(p.path)) for p in found) == [
        ("CP210x", "pci-0000:00:14.0-usb-0:3:1.0-port0"), ("ESP32-S3 USB", "ttyACM0")]
