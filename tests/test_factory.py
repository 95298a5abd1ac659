"""loaxa flash --factory: one esptool write of firmware + app + provisioning.

Written through esptool to esp32-mock-bootloader (a real ROM-protocol peer),
read back through the ROM path and opened as the LittleFS the node mounts.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
from esp32_mock_bootloader import mock_bootloader
from test_flash import read_back

from loaxa import boards
from loaxa.cli import main
from loaxa.flash import sha256_file
from loaxa.image import read_littlefs
from loaxa.inventory import Inventory
from loaxa_node.auth import _hash as pin_hash

VFS = (0x200000, 0x200000)


def _firmware(path: Path) -> Path:
    """An image laid out like the stock one: partition table at 0x8000 with a vfs."""
    rnd = random.Random(9)
    blob = bytearray(rnd.getrandbits(8) for _ in range(0x7000)) + b"\xff" * 0x1000
    rows = [(1, 2, 0x9000, 0x6000, b"nvs"), (0, 0, 0x10000, 0x1F0000, b"factory"),
            (1, 129, *VFS, b"vfs")]
    for i, (ty, sub, off, size, label) in enumerate(rows):
        struct.pack_into("<2sBBII16sI", blob, 0x7000 + 32 * i, b"\xaa\x50", ty, sub, off,
                         size, label, 0)
    path.write_bytes(bytes(blob) + b"micropython" * 4000)
    return path


@pytest.fixture
def board(tmp_path, monkeypatch):
    fw = _firmware(tmp_path / "fw.bin")
    b = boards.load("esp32-devkitc-max98357")
    b["image"] = dict(b["image"], sha256=sha256_file(fw), file=fw.name)
    monkeypatch.setenv("LOAXA_IMAGES", str(tmp_path))
    real = boards.load
    monkeypatch.setattr(boards, "load", lambda name: b if name == b["name"] else real(name))
    return b


def _ca(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A broker CA as openssl makes one: its PEM, its key, its DER."""
    pem, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=hq", "-days", "1",
                    "-keyout", str(key), "-out", str(pem)], check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(pem), "-outform", "der"],
                         check=True, capture_output=True).stdout
    return pem, key, der


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl makes the broker CA")
def test_factory_image_holds_app_identity_keys_and_pin_and_no_secret_leaks(
        board, tmp_path, capsys):
    inv_path = tmp_path / "inv.sqlite"
    ca_pem, _, ca_der = _ca(tmp_path)
    before = set(Path(tempfile.gettempdir()).glob("loaxa-factory-*"))
    with mock_bootloader(chip="esp32") as mock:
        rc = main(["flash", "--factory", "--port", mock.url(), "--board", board["name"],
                   "--node-id", "ab-09", "--commune", "an-binh", "--zones", "thon-2",
                   "--net", "wifi", "--ssid", "xa", "--wifi-password", "mat-khau-9",
                   "--broker", "mqtts://hq:8883", "--broker-ca", str(ca_pem),
                   "--pin", "97531", "--inventory", str(inv_path), "--verbose"])
        out = capsys.readouterr()
        assert rc == 0, out.err
        # esptool's own account of the regions it wrote, each read back by the ROM path
        wrote = [(int(a, 16), int(n)) for n, a in
                 re.findall(r"Wrote (\d+) bytes.*? at 0x([0-9a-f]+)", out.out + out.err)]
        back = bytearray(b"\xff" * VFS[1])
        for off, n in wrote[1:]:
            back[off - VFS[0]:off - VFS[0] + n] = read_back(mock.url(), off, n,
                                                            tmp_path / f"{off:x}.bin")
        fw = read_back(mock.url(), 0x1000, 0x7000, tmp_path / "fw.bin.back")
    assert fw == (tmp_path / "fw.bin").read_bytes()[:0x7000]
    files = read_littlefs(back)
    ptr = files["app.ptr"].decode()
    manifest = json.loads(files[f"{ptr}/manifest.json"])
    assert f"{ptr}/loaxa_node/app.mpy" in files and "main.py" in files
    assert set(manifest) == {p[len(ptr) + 1:] for p in files if p.startswith(ptr + "/")} - {
        "manifest.json"}
    cfg = json.loads(files["data/config.json"])
    assert (cfg["node_id"], cfg["zones"], cfg["net.ssid"]) == ("ab-09", ["thon-2"], "xa")
    keys = json.loads(files["data/keys.json"])
    assert files["data/ca.der"] == ca_der  # what the node pins for mqtts://
    auth = json.loads(files["data/auth.json"])
    assert auth["hash"] == pin_hash(bytes.fromhex(auth["salt"]), "97531")
    with Inventory(inv_path) as inv:
        assert keys["node_key"] == inv.node_key("ab-09")
        assert keys["mqtt_password"] == inv.mqtt_password("ab-09")  # its broker user: ab-09
        (row,) = inv.nodes()
        assert [e["action"] for e in inv.events("ab-09")] == ["keys", "factory"]
    assert sorted(keys) == ["mqtt_password", "node_key"]  # no key shared between nodes
    assert row["app"] == ptr and row["mac"] == "240ac4e29526" and row["board"] == board["name"]
    said = out.out + out.err  # esptool's full output included (--verbose)
    raw_inventory = inv_path.read_bytes().decode("latin-1")
    for secret in (keys["node_key"], keys["mqtt_password"], "97531", "mat-khau-9"):
        assert secret not in said
        assert secret not in raw_inventory
    assert set(Path(tempfile.gettempdir()).glob("loaxa-factory-*")) == before  # vfs.bin gone
    assert wrote[0][0] == 0x1000 and all(off >= VFS[0] for off, _ in wrote[1:])
    assert sum(n for _, n in wrote[1:]) < VFS[1] // 4  # only the used blocks


def test_factory_refuses_incomplete_provisioning_before_writing(board, tmp_path, capsys):
    with mock_bootloader(chip="esp32") as mock:
        rc = main(["flash", "--factory", "--port", mock.url(), "--board", board["name"],
                   "--node-id", "ab-10", "--commune", "an-binh", "--zones", "thon-2",
                   "--net", "eth", "--pin", "1234", "--inventory", str(tmp_path / "i.db")])
    assert rc != 0
    assert "--broker" in capsys.readouterr().err


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl makes the broker CA")
def test_factory_refuses_a_broker_ca_that_is_not_a_certificate(board, tmp_path, capsys):
    _, key, _ = _ca(tmp_path)
    with mock_bootloader(chip="esp32") as mock:
        rc = main(["flash", "--factory", "--port", mock.url(), "--board", board["name"],
                   "--node-id", "ab-11", "--commune", "an-binh", "--zones", "thon-2",
                   "--net", "eth", "--broker", "mqtts://hq:8883", "--broker-ca", str(key),
                   "--pin", "1234", "--inventory", str(tmp_path / "i.db")])
    assert rc != 0
    err = capsys.readouterr().err
    assert "is not a certificate" in err and "not its key" in err
    if (tmp_path / "i.db").exists():
        with Inventory(tmp_path / "i.db") as inv:
            assert not inv.nodes(), "a refused write made an inventory row"


def test_batch_factory_writes_every_board_in_parallel_one_failing(board, tmp_path, capsys):
    inv_path = tmp_path / "inv.sqlite"
    mocks = [mock_bootloader(chip=c) for c in ("esp32", "esp32", "esp32c3")]
    try:
        rc = main(["batch", "--factory", "--steps", "factory", "--ports",
                   ",".join(m.url() for m in mocks), "--board", board["name"],
                   "--node-ids", "f0,f1,f2", "--commune", "an-binh", "--zones", "thon-1",
                   "--net", "eth", "--broker", "mqtt://hq:1883", "--pin", "2468",
                   "--inventory", str(inv_path)])
    finally:
        for m in mocks:
            m.stop()
    out = capsys.readouterr().out
    assert rc == 1 and "2 of 3 boards ready" in out
    with Inventory(inv_path) as inv:
        nodes = {n["node_id"]: n for n in inv.nodes()}
        assert all(nodes[n]["app"].startswith("app_") and nodes[n]["commune"] == "an-binh"
                   for n in ("f0", "f1"))
        # the refused board: its key was sealed before the write, nothing else recorded
        assert [e["action"] for e in inv.events("f2")] == ["keys"] and not nodes["f2"]["app"]
        assert inv.node_key("f0") != inv.node_key("f1")
