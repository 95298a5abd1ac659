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


def test_qemu_board_declares_no_radio_or_mac():
    assert boards.load("esp32-qemu")["net"] == []


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
