"""The real mpremote works on the node's console, and the app comes back."""

import subprocess
import sys
from pathlib import Path

import pytest

MPREMOTE = Path(sys.executable).parent / "mpremote"


@pytest.mark.qemu  # over socket:// on the emulated ESP32: one boot and a soft reset
@pytest.mark.keeps_node  # back in the application afterwards, nothing stored
@pytest.mark.needs("filesystem")
def test_mpremote_runs_code_then_ctrl_d_brings_the_app_back(node, strategy):
    port = node.pause()  # one user of the port at a time
    # and one connection: a socket:// endpoint (the qemu relay) takes the newest
    # client and drops the one before
    port.close()
    try:
        r = subprocess.run(
            [str(MPREMOTE), "connect", port.port, "exec", "print('sum', 6 * 7)"],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        port.open()
        node.resume()
    assert r.returncode == 0, r.stderr
    assert "sum 42" in r.stdout
    node.ctrl_d()  # leave the REPL: soft reset into the application
    assert node.wait_ready(20)["reset_cause"] == "soft"
