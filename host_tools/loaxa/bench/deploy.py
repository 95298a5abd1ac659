"""Full app deploy over a 115200-baud UART: loaxa deploy vs mpremote cp -r.

Both tools get a fresh simulated node with the UART throttled to 115200 baud
(10 bits a byte: 11 520 bytes/s each way) and copy the same files: the app
compiled for the node's bytecode. Bytes are counted where they cross the
simulated UART, so both tools are measured the same way.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import boards
from ..appbuild import build, write_tree
from ..console import NodeConsole
from ..deploy import deploy
from ..sim import SimNode
from . import Table

BAUD = 115200
MPREMOTE = Path(sys.executable).parent / "mpremote"


def _node(tmp: Path, name: str) -> tuple[SimNode, NodeConsole]:
    node = SimNode(tmp / name, baud=BAUD)
    con = NodeConsole(node.start())
    con.wait_ready(30)
    return node, con


@dataclass
class Run:
    label: str
    files: int
    to_node: int
    from_node: int
    seconds: float


def _loaxa(tmp: Path) -> list[Run]:
    node, con = _node(tmp, "loaxa")
    rows = []
    try:
        for label in ("loaxa deploy", "loaxa deploy, again (no change)"):
            before = node.wire_in, node.wire_out
            t0 = time.monotonic()
            r = deploy(con, restart=False)
            secs = time.monotonic() - t0
            rows.append(Run(label, r.files, node.wire_in - before[0],
                            node.wire_out - before[1], secs))
            con.ctrl_d()
            con.wait_ready(30)
    finally:
        con.close()
        node.stop()
    return rows


def _mpremote(tmp: Path, tree: Path, files: int) -> list[Run]:
    node, con = _node(tmp, "mpremote")
    con.close()  # mpremote opens the port itself
    rows = []
    try:
        for label in ("mpremote cp -r", "mpremote cp -r, again"):
            before = node.wire_in, node.wire_out
            t0 = time.monotonic()
            subprocess.run([str(MPREMOTE), "connect", node.url, "cp", "-r",
                            str(tree / "loaxa_node"), ":"], check=True,
                           capture_output=True, timeout=900)
            secs = time.monotonic() - t0
            rows.append(Run(label, files, node.wire_in - before[0], node.wire_out - before[1],
                            secs))
    finally:
        node.stop()
    return rows


def run(argv: list[str]) -> list[Table]:
    with tempfile.TemporaryDirectory(prefix="loaxa-bench-") as d:
        tmp = Path(d)
        files = build(march=boards.load("sim")["mpy_arch"])  # what deploy builds there
        tree = tmp / "tree"
        write_tree(files, tree)
        payload = sum(len(b) for b in files.values())
        rows = _loaxa(tmp) + _mpremote(tmp, tree, len(files))
    qrows, qnote = _qemu_rows() if "noqemu" not in argv else ([], "qemu rows skipped")
    rows += qrows
    ref = next(r for r in rows if r.label == "mpremote cp -r").seconds
    cap = BAUD / 10
    table = Table(
        f"Full app deploy over a {BAUD}-baud UART (sim node; {len(files)} files, "
        f"{payload} bytes of .mpy)",
        ["tool", "files", "bytes to node", "bytes from node", "seconds", "link use",
         "time vs mpremote"],
    )
    for r in rows:
        if "QEMU" in r.label:  # another link and storage: no ratio to the sim's mpremote
            table.rows.append([r.label, r.files, r.to_node, r.from_node, r.seconds, "-", "-"])
            continue
        table.rows.append([r.label, r.files, r.to_node, r.from_node, r.seconds,
                           f"{r.to_node / (r.seconds * cap):.0%}",
                           f"{ref / r.seconds:.1f}x faster" if r.seconds < ref else
                           f"{r.seconds / ref:.2f}x"])
    table.note = ("link use = bytes to node / (seconds x 11520 B/s); seconds include entering "
                  "the raw REPL, not the app restart. loaxa deploy: one zlib stream as binary "
                  "units with credit flow control, every file verified on the node; mpremote: "
                  "repr() byte literals, one raw-paste exec per 256-byte chunk. The sim's "
                  "UART has no USB latency, which spares mpremote's many round trips. "
                  "QEMU rows: the stock v1.23.0 image on Espressif's QEMU over socket:// "
                  "(its UART is not throttled like the sim's; its flash takes ~73 ms an "
                  "operation, see docs/deploy.md); the first deploy there includes the "
                  "filesystem's first writes. " + qnote)
    return [table]


# -- emulated node (QEMU) ------------------------------------------------------

def _qemu_rows() -> tuple[list[Run], str]:
    """loaxa deploy to Espressif's QEMU with the stock image: first, then no change."""
    import os
    import shutil

    from ..flash import image_dirs

    qemu = os.environ.get("QEMU_XTENSA") or shutil.which("qemu-system-xtensa")
    pin = boards.load("esp32-qemu")["image"]["file"]
    dirs = [Path(os.environ["QEMU_FIRMWARE"]).parent] if os.environ.get("QEMU_FIRMWARE") \
        else []
    fw = next((d / pin for d in dirs + image_dirs() if (d / pin).is_file()), None)
    if not qemu or not fw:
        return [], f"qemu rows skipped: {'no QEMU' if not qemu else 'no ' + pin}"
    with tempfile.TemporaryDirectory(prefix="loaxa-bench-q-") as d:
        flash = Path(d) / "flash.bin"
        blob = bytearray(b"\xff" * (4 << 20))
        img = fw.read_bytes()
        blob[0x1000:0x1000 + len(img)] = img
        flash.write_bytes(blob)
        port = _free_port()
        proc = subprocess.Popen([qemu, "-nographic", "-machine", "esp32", "-drive",
                                 f"file={flash},if=mtd,format=raw", "-serial",
                                 f"tcp:127.0.0.1:{port},server=on,wait=off", "-monitor",
                                 "none"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = []
        try:
            time.sleep(10)  # boot to the REPL (about 8 s)
            con = NodeConsole(f"socket://127.0.0.1:{port}")
            try:
                for label in ("loaxa deploy to QEMU", "loaxa deploy to QEMU, again"):
                    t0 = time.monotonic()
                    r = deploy(con, restart=label.endswith("again"))
                    rows.append(Run(label, r.files, r.tx, r.rx, time.monotonic() - t0))
            finally:
                con.close()
        finally:
            proc.kill()
            proc.wait()
    return rows, ""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
