"""Heap: what the node's module code costs in RAM (the whole node's heap while
streaming is in the audio bench).

The node's bytecode modules are imported one by one and the retained heap
after each is measured (garbage collected), on three VMs side by side: the x64
VM loading .mpy from a filesystem (how the sim runs), the same VM running them
in place from a ROMFS image (vfs.VfsRom: bytecode stays in "flash"), and
MicroPython's 32-bit WebAssembly port (npm package, run by node) loading the
same .mpy. The last is the reference for a 32-bit device such as the ESP32:
it shows how far the sim's "64-bit needs twice the heap" rule holds
(docs/sim.md). Modules with viper code are left out: the WebAssembly port has
no native emitter.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..appbuild import cache_dir
from ..sim import compile_app, micropython_cmd
from . import Table

WASM_PKG = "@micropython/micropython-webassembly-pyscript@1.27.0"
# Bytecode-only modules in boot order (their imports of each other resolve as
# on the node); stdlib modules are imported first so only our code is counted.
MODULES = ("compat", "storage", "timeutil", "log", "config", "console", "auth", "clock",
           "sink_null", "sink_wav", "service", "rules", "rulesvc", "app", "rtp",
           "rtpsource", "envelope", "rulecheck")
MEASURE = """
import gc, sys
for m in ("asyncio", "json", "hashlib", "struct", "os", "time", "binascii", "errno"):
    __import__(m)
%(mount)s
sys.path.insert(0, %(root)r)
gc.collect()
prev = gc.mem_alloc()
for m in %(mods)r:
    __import__("loaxa_node." + m)
    gc.collect()
    a = gc.mem_alloc()
    print("M", m, a - prev)
    prev = a
"""
NODE_RUNNER = """
import { loadMicroPython } from "%(pkg)s";
import fs from "fs";
const mp = await loadMicroPython({heapsize: 4 << 20, stdout: console.log, stderr: console.log});
const src = %(src)s;
mp.FS.mkdirTree("/app/loaxa_node");
for (const f of fs.readdirSync(src)) if (f.endsWith(".mpy"))
  mp.FS.writeFile("/app/loaxa_node/" + f, fs.readFileSync(src + "/" + f));
mp.runPython(fs.readFileSync(%(script)s, "utf8"));
"""


def run(argv: list[str]) -> list[Table]:
    """ARGS=noqemu leaves out the emulated ESP32's table (a boot takes minutes)."""
    return [_module_table(), *([] if "noqemu" in argv else [_qemu_table()])]


def _module_table() -> Table:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        compile_app(tmp / "app", march="x64")
        pkg = tmp / "app" / "loaxa_node"
        # keep bytecode-only modules: .mpy with native code have arch bits set
        for f in pkg.glob("*.mpy"):
            if f.read_bytes()[2] >> 2:
                f.unlink()
        cols = {"x64, .mpy from a filesystem": _x64(tmp, mount="", root=str(tmp / "app"))}
        from mpremote.romfs import make_romfs

        with contextlib.redirect_stdout(io.StringIO()):  # it prints the tree
            image = make_romfs(str(tmp / "app"), mpy_cross=False)
        (tmp / "app.romfs").write_bytes(image)
        rom = (f"import vfs\nvfs.mount(vfs.VfsRom(open({str(tmp / 'app.romfs')!r}, 'rb')"
               ".read()), '/rom')")
        cols["x64, ROMFS in place"] = _x64(tmp, mount=rom, root="/rom")
        cols["wasm32, .mpy"] = _wasm(tmp, pkg)
    names = list(cols)
    rows = []
    for m in MODULES:
        vals = [cols[n].get(m) for n in names]
        rows.append([m, *[_kb(v) for v in vals], _ratio(vals[2], vals[0])])
    totals = [sum(c.values()) if c else None for c in cols.values()]
    rows.append(["total", *[_kb(v) for v in totals], _ratio(totals[2], totals[0])])
    note = ("wasm32 / x64 near 1 means module code does not shrink on a 32-bit VM:"
            " only objects do.") if cols["wasm32, .mpy"] else (
            "wasm32 column empty: needs node and npm (the package is installed into the"
            " build cache on first use).")
    return Table("module code in RAM after import (KB)", ["module", *names, "wasm32 / x64"],
                 rows, note)


def _x64(tmp: Path, mount: str, root: str) -> dict[str, int]:
    script = tmp / "measure.py"
    script.write_text(MEASURE % {"mount": mount, "root": root, "mods": MODULES})
    out = subprocess.run([*micropython_cmd(), "-X", "heapsize=4M", str(script)],
                         capture_output=True, text=True, timeout=60).stdout
    return _parse(out)


def _wasm(tmp: Path, pkg_dir: Path) -> dict[str, int]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return {}
    where = cache_dir().parent / "wasm"
    mod = where / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
    if not mod.is_dir():
        r = subprocess.run([npm, "install", "--silent", "--prefix", str(where), WASM_PKG],
                           capture_output=True, text=True, timeout=300)
        if r.returncode:
            return {}
    script = tmp / "measure_wasm.py"
    script.write_text(MEASURE % {"mount": "", "root": "/app", "mods": MODULES})
    runner = where / "measure.mjs"
    runner.write_text(NODE_RUNNER % {"pkg": str(mod / "micropython.mjs"),
                                     "src": json.dumps(str(pkg_dir)),
                                     "script": json.dumps(str(script))})
    out = subprocess.run([node, str(runner)], capture_output=True, text=True, timeout=120)
    return _parse(out.stdout)


def _parse(out: str) -> dict[str, int]:
    return {p[1]: int(p[2]) for p in (line.split() for line in out.splitlines())
            if len(p) == 3 and p[0] == "M"}


def _kb(v: int | None) -> object:
    return "n/a" if v is None else v / 1024


def _ratio(a: int | None, b: int | None) -> object:
    return "n/a" if not a or not b else a / b


# -- the emulated ESP32 (QEMU, the stock image) -------------------------------

RULES = """
version = "bench"
quiet_hours = "21:00-05:00"
[[window]]
name = "morning"
days = "daily"
time = "05:30-06:15"
volume = 60
max_volume = 80
[[schedule]]
name = "bell"
source = "tone:1000"
start = "05:30"
minutes = 1
days = "daily"
"""
MEM_INFO = ("import gc, micropython\ngc.collect()\nprint('H', gc.mem_alloc(), gc.mem_free())\n"
            "micropython.mem_info()")
ROUND_TRIPS = 20


def _qemu_table() -> Table:
    """The app on the emulated ESP32 with the rig's LTE modem: GC heap as the
    node reports it (`status`, collected first), then from the REPL after
    Ctrl-C (the app's modules stay imported) for the largest free block."""
    import time

    from .. import rules
    from ..console import NodeConsole
    from ..errors import NodeTimeout
    from ..rawrepl import RawRepl
    from ..rig.modem import RigModem
    from ..rig.qemu import ICOUNT
    from ..rig.strategy import NodeStrategy
    from ..rig.targets import QemuTarget, Unavailable

    title = f"GC heap on the emulated ESP32 (stock v1.23 image, QEMU {' '.join(ICOUNT)})"
    headers = ["state", "used KB", "free KB", "largest free KB", "note"]
    with tempfile.TemporaryDirectory(prefix="loaxa-bench-heap-") as t:
        tmp = Path(t)
        try:
            modem = RigModem(ppp=True, log_path=tmp / "modem.log")
        except Unavailable as e:
            return Table(title, headers, [], f"skipped: {e.msg}")
        try:
            target = QemuTarget(tmp, "esp32-qemu", extra_args=("-serial", f"tcp:{modem.address}"))
        except Unavailable as e:
            modem.stop()
            return Table(title, headers, [], f"skipped: {e.msg}")
        s = NodeStrategy(target, lambda url: NodeConsole(url, log_path=tmp / "console.log"))
        rows: list[list[object]] = []
        try:
            t0 = time.monotonic()
            node = s.transition("app", timeout=900)
            assert node is not None  # "app" always yields the console
            boot = time.monotonic() - t0

            def row(state: str, note: str = "") -> None:
                h = node.request("status", timeout=60)["heap"]
                rows.append([state, h["alloc"] / 1024, h["free"] / 1024, "", note])

            row("booted", f"boot to ready {boot:.0f} s")
            deadline = time.monotonic() + 300
            while not node.request("status", timeout=60)["net"]["up"]:
                if time.monotonic() > deadline:
                    break
                time.sleep(2)
            row("PPP up (LTE modem, lwIP)")
            t1 = time.monotonic()
            for _ in range(ROUND_TRIPS):
                node.request("version", timeout=60)
            rtt = (time.monotonic() - t1) / ROUND_TRIPS
            key = "5e" * 32
            env = rules.sign(rules.compile_text(RULES).rules, bytes.fromhex(key), "headend", 1, 0)
            try:
                node.request("keys.set", {"commune_key": key}, timeout=60)
                node.request("rules.set", env, timeout=60)
                row("with the rules service (one signed rule set)")
            except NodeTimeout:  # seen on qemu (docs/hil.md); Ctrl-C below still works
                rows.append(["with the rules service", "n/a", "", "", "rules.set: no answer"])
            port = node.pause()
            try:
                repl = RawRepl(port, timeout=60)
                repl.enter(soft_reset=False)  # keep the app's heap as it is
                out = repl.exec(MEM_INFO, timeout=60)
            finally:
                node.resume()
            used, free = next((int(p[1]), int(p[2])) for p in
                              (ln.split() for ln in out.splitlines()) if p and p[0] == "H")
            # mem_info: "max free sz: N" in 16-byte blocks
            largest = next(int(ln.split("max free sz:")[1].split()[0]) for ln in
                           out.splitlines() if "max free sz:" in ln) * 16
            rows.append(["REPL after Ctrl-C (app modules imported)", used / 1024, free / 1024,
                         largest / 1024, ""])
        finally:
            s.transition("off")
            target.close()
            modem.stop()
    return Table(title, headers, rows,
                 f"console round trip (`version`, {ROUND_TRIPS} in a row): {rtt * 1000:.0f} ms."
                 " Host times under icount depend on the host's load.")
