"""Every shipped board definition passes the node's own schema."""

import json

import pytest

from loaxa import BOARDS, boards
from loaxa.errors import LoaxaError
from loaxa_node.board import BoardError, validate


@pytest.mark.parametrize("name", boards.names())
def test_shipped_boards_validate(name):
    b = boards.load(name)
    assert b["name"] == name
    if b["chip"] != "sim":
        assert len(b["image"]["sha256"]) == 64


def test_required_boards_exist():
    assert {"sim", "esp32-devkitc-max98357", "esp32-poe-lan8720", "esp32-lte-sim7600",
            "esp32-qemu"} <= set(boards.names())


def test_qemu_board_declares_no_radio_or_mac_only_the_rigs_modem():
    # QEMU crashes on WLAN/LAN; its network is PPP on UART1 (the rig plays the modem)
    b = boards.load("esp32-qemu")
    assert b["net"] == ["lte"]
    assert (b["lte"]["uart"], b["lte"]["tx"], b["lte"]["rx"]) == (1, 17, 16)


def test_lte_board_needs_its_uart_pins():
    b = boards.load("esp32-lte-sim7600")
    del b["lte"]["rx"]
    with pytest.raises(BoardError, match="lte: missing rx"):
        validate(b)


def test_bad_board_errors_name_the_key():
    b = json.loads((BOARDS / "esp32-devkitc-max98357.json").read_text())
    b["heap_kb"] = 1
    with pytest.raises(BoardError, match="heap_kb"):
        validate(b)
    b["heap_kb"] = 64
    b["net"] = ["carrier-pigeon"]
    with pytest.raises(BoardError, match="net"):
        validate(b)
    with pytest.raises(LoaxaError, match="known boards"):
        boards.load("nope")
