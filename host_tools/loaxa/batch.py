"""Flash, deploy and provision many boards at once: one worker thread per port.

Each port goes through the same steps as the single commands; a failure stops
that port only. Node ids come from a list or from a prefix plus the board's
MAC, so a replugged board keeps its id.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from rich.progress import Progress as Bars
from rich.progress import TaskID

from .appbuild import APP_SRC
from .console import NodeConsole
from .deploy import deploy
from .errors import LoaxaError
from .flash import flash, read_mac
from .inventory import Inventory, norm_mac
from .progress import bars
from .provision import Identity, factory_write, provision

STEPS = ("flash", "deploy", "provision")
# --factory: one esptool write per board, then (check) the booted node's status
FACTORY_STEPS = ("factory", "check")


@dataclass
class Job:
    port: str  # the console port; also the flash port unless flash_port is set
    flash_port: str = ""
    node_id: str = ""
    stage: str = "waiting"
    fraction: float = 0.0
    ok: bool | None = None
    error: str = ""
    mac: str = ""
    app: str = ""
    seconds: float = 0.0
    hint: str = field(default="", repr=False)

    @classmethod
    def parse(cls, spec: str) -> Job:
        """PORT, or FLASH_PORT=CONSOLE_PORT where the two differ (test rigs)."""
        flash_port, _, console = spec.rpartition("=")
        return cls(port=console, flash_port=flash_port or console)


class Board:
    """Per-port progress: a rich bar per board on a terminal, else a line per stage."""

    def __init__(self, jobs: list[Job], stream: TextIO | None = None):
        self.jobs = jobs
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.lock = threading.Lock()
        self.bars: Bars | None = None
        self.tasks: dict[int, TaskID] = {}

    def update(self, job: Job, stage: str, fraction: float) -> None:
        with self.lock:
            changed = stage != job.stage
            job.stage, job.fraction = stage, fraction
            if not self.tty:
                if changed:
                    self.stream.write(f"{job.port}: {stage}\n")
                    self.stream.flush()
                return
            if self.bars is None:
                self.bars = bars(self.stream)
                self.bars.start()
                self.tasks = {id(j): self.bars.add_task(self._name(j), total=1.0, note="")
                              for j in self.jobs}
            self.bars.update(self.tasks[id(job)], description=self._name(job),
                             completed=fraction)
            self.bars.refresh()
            if all(j.stage in ("done", "failed") for j in self.jobs):
                self.bars.stop()

    @staticmethod
    def _name(j: Job) -> str:
        return f"{j.port:<40} {j.stage:<9}"


def run_batch(
    jobs: list[Job],
    *,
    board: dict,
    ident: Identity,
    pin: str,
    id_prefix: str = "",
    inventory: str | None = None,
    image: str | None = None,
    force: bool = False,
    steps: tuple[str, ...] = STEPS,
    src: Path = APP_SRC,
    baud: int = 115200,
    flash_baud: int = 460800,
    stream: TextIO | None = None,
) -> list[Job]:
    board_view = Board(jobs, stream)

    def work(job: Job) -> None:
        t0 = time.monotonic()
        try:
            _one(job, board, ident, pin, id_prefix, inventory, image, force, steps, src,
                 baud, flash_baud, board_view)
            job.ok = True
            board_view.update(job, "done", 1.0)
        except LoaxaError as e:
            job.ok, job.error, job.hint = False, e.msg, e.hint or ""
            board_view.update(job, "failed", job.fraction)
        except Exception as e:  # a bug in one worker must not hide the others' results
            job.ok, job.error = False, f"internal error: {e!r}"
            board_view.update(job, "failed", job.fraction)
        job.seconds = time.monotonic() - t0

    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        list(pool.map(work, jobs))
    return jobs


def _factory(job, board, ident, pin, id_prefix, inv, image, force, steps, baud, flash_baud,
             view: Board) -> None:
    """One write of firmware + app + provisioning; then the booted node says who it is."""
    if not job.node_id:
        view.update(job, "mac", 0.0)
        job.mac = norm_mac(read_mac(job.flash_port, board, flash_baud))
        job.node_id = id_prefix + job.mac[-6:]
    view.update(job, "factory", 0.0)
    r = factory_write(job.flash_port, board, inv, replace(ident, node_id=job.node_id), pin,
                      image, force=force, baud=flash_baud,
                      report=lambda _l, f, _n: view.update(job, "factory", f))
    job.mac = norm_mac(r.mac) or job.mac
    job.app = inv_app(inv, job.node_id)
    if "check" in steps:
        view.update(job, "check", 0.5)
        with NodeConsole(job.port, baud) as con:
            status = con.wait_ready(60)
        if status.get("node_id") != job.node_id or status.get("safe_mode"):
            raise LoaxaError(f"the node booted as {status.get('node_id')!r}"
                             f"{' in safe mode' if status.get('safe_mode') else ''}",
                             "flash it again; if it repeats, read its log: "
                             "loaxa console --port PORT log")


def inv_app(inv: Inventory, node_id: str) -> str:
    return next((n["app"] for n in inv.nodes() if n["node_id"] == node_id), "") or ""


def _one(job, board, ident, pin, id_prefix, inventory, image, force, steps, src, baud,
         flash_baud, view: Board) -> None:
    if "factory" in steps:
        with Inventory(inventory) as inv:
            _factory(job, board, ident, pin, id_prefix, inv, image, force, steps, baud,
                     flash_baud, view)
        return
    with Inventory(inventory) as inv:
        image_version = None
        if "flash" in steps and board.get("image"):
            view.update(job, "flash", 0.0)
            r = flash(job.flash_port, board, image, force=force, baud=flash_baud,
                      report=lambda _l, f, _n: view.update(job, "flash", f))
            job.mac, image_version = r.mac.replace(":", ""), r.version
        con = NodeConsole(job.port, baud)
        try:
            if "deploy" in steps:
                view.update(job, "deploy", 0.0)
                d = deploy(con, src, report=lambda _l, f, _n: view.update(job, "deploy", f))
                job.app = d.app
            status = con.wait_ready(30)
            job.mac = job.mac or status.get("uid", "")
            if not job.node_id and id_prefix:
                job.node_id = id_prefix + job.mac[-6:]
            if not job.node_id:
                raise LoaxaError("no node id for this port", "give --node-ids or --id-prefix")
            if "provision" in steps:
                view.update(job, "provision", 0.0)
                provision(con, inv, replace(ident, node_id=job.node_id), pin,
                          board=board["name"],
                          report=lambda _l, f, _n: view.update(job, "provision", f))
        finally:
            con.close()
        inv.record(job.node_id, "batch", ",".join(steps), mac=job.mac, board=board["name"],
                   image_version=image_version, app=job.app or None)
