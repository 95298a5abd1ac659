"""One factory write per board vs flash + deploy + provision, 1 and N boards at once.

The bootloaders are esp32-mock-bootloader instances behind a relay that paces
both directions at 460800 baud (46 080 bytes/s, what the USB bridge would carry),
so esptool's compressed transfer costs wire time as on a board; the mock's own
flash writes are instant, a real chip adds its erase and write time (about
10-15 s for the image). The nodes for deploy + provision are simulated nodes
on a 115200-baud console, with heap to spare (the tools are measured here, not
the node's budget). Every port runs in `loaxa batch` as a technician runs it.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path

from esp32_mock_bootloader import mock_bootloader

from .. import boards
from ..batch import FACTORY_STEPS, STEPS, Job, run_batch
from ..flash import image_dirs
from ..provision import Identity
from ..sim import SimNode, _Throttle
from . import Table

FLASH_BAUD = 460800
NS = (1, 3)


class PacedRelay:
    """TCP relay to a mock bootloader whose bytes flow at a UART's rate."""

    def __init__(self, target: str, baud: int = FLASH_BAUD):
        host, port = target.removeprefix("socket://").split(":")
        self.target = (host, int(port))
        self.baud = baud
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            b = socket.create_connection(self.target)
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        pace = _Throttle(self.baud)
        try:
            while data := src.recv(4096):
                while data:
                    n = pace.allow(len(data))
                    if not n:
                        time.sleep(0.002)
                        continue
                    dst.sendall(data[:n])
                    data = data[n:]
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def close(self) -> None:
        self.sock.close()


def _run(n: int, factory: bool, image: Path, tmp: Path) -> tuple[float, int]:
    board = boards.load("esp32-devkitc-max98357")
    mocks = [mock_bootloader(chip="esp32") for _ in range(n)]
    relays = [PacedRelay(m.url()) for m in mocks]
    sims = [] if factory else [SimNode(tmp / f"n{n}-{i}", baud=115200, seed_app=False,
                                       heap_kb=256)
                               for i in range(n)]
    try:
        jobs = [Job(port=r.url, flash_port=r.url) for r in relays] if factory else \
            [Job(port=s.start(), flash_port=r.url) for s, r in zip(sims, relays, strict=True)]
        for i, j in enumerate(jobs):
            j.node_id = f"b{n}-{i}"
        ident = Identity(node_id="", commune="an-binh", zones=["thon-1"], net="eth",
                         broker="mqtt://hq:1883")
        t0 = time.monotonic()
        with open(tmp / "batch.log", "w") as log:
            run_batch(jobs, board=board, ident=ident, pin="2468", inventory=str(tmp / "inv.db"),
                      image=str(image), steps=("factory",) if factory else STEPS,
                      flash_baud=FLASH_BAUD, stream=log)
        took = time.monotonic() - t0
        for j in jobs:
            if not j.ok:
                print(f"bench factory: {j.port}: {j.error}", flush=True)
        return took, sum(1 for j in jobs if j.ok)
    finally:
        for r in relays:
            r.close()
        for m in mocks:
            m.stop()
        for s in sims:
            s.stop()


def run(argv: list[str]) -> list[Table]:
    pin = boards.load("esp32-devkitc-max98357")["image"]["file"]
    image = next((d / pin for d in image_dirs() if (d / pin).is_file()), None)
    table = Table(f"Bare board to ready node at {FLASH_BAUD} baud: one factory write vs "
                  "flash + deploy + provision (mock bootloader, paced)",
                  ["method", "boards", "ok", "seconds", "s per board", "scaling vs 1 board"])
    if image is None:
        table.note = f"skipped: {pin} not in {', '.join(map(str, image_dirs()))}"
        return [table]
    for factory, label in ((True, "flash --factory"), (False, "flash + deploy + provision")):
        one = 0.0
        for n in NS:
            with tempfile.TemporaryDirectory(prefix="loaxa-bench-f-") as d:
                took, ok = _run(n, factory, image, Path(d))
            one = one or took
            table.rows.append([label, n, ok, took, took / n, f"{took / one:.2f}x"])
    table.note = (f"{FACTORY_STEPS[0]}: one esptool write-flash --compress of the pinned image "
                  "and the used vfs blocks (app + provisioning); flash + deploy + provision: "
                  "esptool, then deploy and provision over a 115200-baud simulated console "
                  "(tone self-test included). Scaling = time for N boards / time for 1 "
                  "(1.00x = perfectly parallel). Wire time only for the flash part: a "
                  "real chip adds its erase/write time to both methods alike.")
    return [table]
