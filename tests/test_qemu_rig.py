"""The qemu rig's set-up: what it finds, what it refuses, and its console relay."""

from __future__ import annotations

import socket
import time

import pytest
import serial

from loaxa import boards
from loaxa.rig.qemu import Relay, Unavailable, find_firmware, find_qemu

BOARD = boards.load("esp32-qemu")


def test_missing_qemu_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("QEMU_XTENSA", str(tmp_path / "nope"))
    with pytest.raises(Unavailable, match="qemu-system-xtensa not found"):
        find_qemu()


def test_firmware_is_found_next_to_the_qemu_install_and_checked(monkeypatch, tmp_path):
    monkeypatch.delenv("QEMU_FIRMWARE", raising=False)
    (tmp_path / "bin").mkdir()
    qemu = tmp_path / "bin" / "qemu-system-xtensa"
    qemu.write_text("")
    with pytest.raises(Unavailable, match=BOARD["image"]["file"]):
        find_firmware(BOARD, str(qemu))
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / BOARD["image"]["file"]).write_bytes(b"not micropython")
    with pytest.raises(Unavailable, match="not the image board esp32-qemu pins"):
        find_firmware(BOARD, str(qemu))


def read_until(port, want: bytes, timeout: float = 5) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while want not in got and time.monotonic() < deadline:
        got += port.read(64)
    return got


def test_relay_keeps_its_url_across_power_cycles():
    relay = Relay()
    server = socket.create_server(("127.0.0.1", 0))
    try:
        tool = serial.serial_for_url(relay.url, timeout=0.1)
        for boot in (b"first", b"second"):
            relay.attach(socket.create_connection(server.getsockname()))
            uart, _ = server.accept()
            uart.sendall(b"boot " + boot + b"\n")
            assert boot in read_until(tool, boot)
            tool.write(b"@1 status\n")
            uart.settimeout(5)
            assert uart.recv(64) == b"@1 status\n"
            uart.close()  # the power goes; the tool's port stays open
        tool.close()
    finally:
        relay.close()
        server.close()
