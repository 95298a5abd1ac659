"""loaxa flash against esp32-mock-bootloader (a real SLIP ROM-protocol peer) via esptool."""

from __future__ import annotations

import random
import socket
import subprocess
import threading

import pytest
from esp32_mock_bootloader import mock_bootloader

from loaxa import boards
from loaxa.cli import main
from loaxa.errors import LoaxaError
from loaxa.flash import esptool_cmd, flash, sha256_file
from loaxa.inventory import Inventory

BOARD = "esp32-devkitc-max98357"


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "test-image.bin"
    rnd = random.Random(5)
    # half random, half repeated: compressible like a real image
    p.write_bytes(bytes(rnd.getrandbits(8) for _ in range(40_000)) + b"loaxa" * 8_000)
    return p


@pytest.fixture
def board(image):
    b = boards.load(BOARD)
    b["image"] = dict(b["image"], sha256=sha256_file(image), file=image.name)
    return b


def read_back(url: str, offset: int, size: int, dest) -> bytes:
    # The ROM path (--no-stub) reads the mock's flash independently of our writer.
    subprocess.run([*esptool_cmd(), "--chip", "esp32", "--port", url, "--before", "no-reset",
                    "--after", "no-reset", "--no-stub", "read-flash", hex(offset), str(size),
                    str(dest)], check=True, capture_output=True, timeout=120)
    return dest.read_bytes()


def test_flash_writes_the_image_then_skips_it_when_identical(board, image, tmp_path):
    seen = []
    with mock_bootloader(chip="esp32") as mock:
        r = flash(mock.url(), board, image, report=lambda s, f, n: seen.append((s, f)))
        assert not r.skipped
        assert r.mac == "24:0a:c4:e2:95:26"  # the mock's synthetic MAC for esp32
        assert r.chip.startswith("ESP32")
        data = read_back(mock.url(), int(board["image"]["offset"], 16), image.stat().st_size,
                         tmp_path / "back.bin")
        assert data == image.read_bytes()
        assert seen[-1] == ("write", 1.0) and len(seen) > 3  # progress was reported
        again = flash(mock.url(), board, image)
        assert again.skipped


def test_wrong_chip_is_refused_naming_both_chips(board, image):
    with mock_bootloader(chip="esp32c3") as mock:
        with pytest.raises(LoaxaError) as e:
            flash(mock.url(), board, image)
    assert "ESP32-C3" in e.value.msg and BOARD in e.value.msg
    assert "--board" in e.value.hint


def test_image_not_matching_the_pin_needs_force(image, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LOAXA_INVENTORY", str(tmp_path / "inv.sqlite"))
    with mock_bootloader(chip="esp32") as mock:
        assert main(["flash", "--port", mock.url(), "--board", BOARD,
                     "--image", str(image)]) == 2
        assert "not the one board" in capsys.readouterr().err
        assert main(["flash", "--port", mock.url(), "--board", BOARD, "--image", str(image),
                     "--force"]) == 0
        assert "flashed MicroPython 1.23.0" in capsys.readouterr().out
    with Inventory() as inv:  # provisioning later finds the image by the node's MAC
        inv.record("n1", "provision", mac="240AC4E29526")
        (n1,) = inv.nodes()
    assert n1["image_version"] == "1.23.0" and n1["board"] == BOARD


def test_simulated_board_has_nothing_to_flash():
    with pytest.raises(LoaxaError, match="simulated"):
        flash("/dev/null", boards.load("sim"))


FLASH_DEFL_DATA = 0x11


class Proxy:
    """TCP relay between esptool and the mock. mode "corrupt" flips one payload byte
    in every compressed flash-data packet (as a bad cable would, so esptool's
    resends fail too); "drop" cuts the link after `after` bytes from the tool."""

    def __init__(self, target_port: int, after: int, mode: str):
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.srv.getsockname()[1]}"
        self.target, self.after, self.mode = target_port, after, mode
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        client, _ = self.srv.accept()
        upstream = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
        self._pump(client, upstream, True)

    @staticmethod
    def _corrupt(frame: bytes) -> bytes:
        # frame: 0x00 direction, command, ... (SLIP-escaped); past the 8-byte command
        # header and 16-byte data header, flip a byte that is no escape
        if len(frame) < 64 or frame[1] != FLASH_DEFL_DATA:
            return frame
        i = next(i for i in range(40, len(frame)) if frame[i] < 0xC0 and frame[i - 1] != 0xDB)
        return frame[:i] + bytes([frame[i] ^ 0x01]) + frame[i + 1:]

    def _pump(self, src, dst, tamper: bool) -> None:
        seen = 0
        pending = b""
        try:
            while data := src.recv(4096):
                seen += len(data)
                if tamper and self.mode == "drop" and seen > self.after:
                    break
                if tamper and self.mode == "corrupt":
                    *frames, pending = (pending + data).split(b"\xc0")
                    data = b"".join(self._corrupt(f) + b"\xc0" for f in frames)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            s.close()


@pytest.mark.parametrize("mode, words", [("corrupt", "corrupted"), ("drop", "dropped|answer")])
def test_link_faults_give_a_clear_error_with_a_hint(board, image, mode, words):
    with mock_bootloader(chip="esp32") as mock:
        proxy = Proxy(mock.port(), 40_000, mode)
        with pytest.raises(LoaxaError, match=words) as e:
            flash(proxy.url, board, image)
    assert e.value.hint and ("cable" in e.value.hint or "baud" in e.value.hint)
