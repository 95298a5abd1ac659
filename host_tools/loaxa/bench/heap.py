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

import asyncio
import contextlib
import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..appbuild import cache_dir
from ..sim import compile_app, micropython_cmd
from ..testrules import RULES, provision
from ..testsignals import speech_like, write_wav
from . import Table

WASM_PKG = "@micropython/micropython-webassembly-pyscript@1.27.0"
# Bytecode-only modules in boot order (their imports of each other resolve as
# on the node); stdlib modules are imported first so only our code is counted.
# A sub-package is a row of its own before its first module: what the package
# itself (its empty __init__) costs.
MODULES = ("compat", "storage", "timeutil", "log", "config", "console", "auth", "clock",
           "audio", "audio.sink_null", "audio.sink_wav", "control", "control.system", "rules",
           "rules.engine", "rules.service", "app", "audio.rtp", "audio.stream", "envelope",
           "rules.check")
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
for (const f of fs.readdirSync(src, {recursive: true})) if (f.endsWith(".mpy")) {
  mp.FS.mkdirTree("/app/loaxa_node/" + f.split("/").slice(0, -1).join("/"));
  mp.FS.writeFile("/app/loaxa_node/" + f, fs.readFileSync(src + "/" + f));
}
mp.runPython(fs.readFileSync(%(script)s, "utf8"));
"""


def run(argv: list[str]) -> list[Table]:
    """ARGS=noqemu leaves out the emulated ESP32's table (a boot takes minutes)."""
    return [_module_table(), _uses_table(),
            *([] if "noqemu" in argv else [_qemu_table(), _qemu_decode_table()])]


def _module_table() -> Table:
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        compile_app(tmp / "app", march="x64")
        pkg = tmp / "app" / "loaxa_node"
        # keep bytecode-only modules: .mpy with native code have arch bits set
        for f in pkg.rglob("*.mpy"):
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


# Modules a node can load for one use (a request, a pass, a connect) and drop
# after it, with what uses them. Measured on top of the booted node's modules:
# what each holds while loaded (with what its import brings in), and what stays
# after it is dropped (the names it interned: qstrs are never freed).
USES = (("config", "boot, config.set"), ("control.system", "console system commands"),
        ("control.play", "play, stop, volume"), ("control.arbiter", "each play and its end"),
        ("audio.sdp", "play with an SDP"), ("rules.commands", "rules.get/set/eval"),
        ("rules.check", "rules.set, boot"), ("rules.engine", "each scheduler pass"),
        ("envelope", "each MQTT message, rules.set"), ("control.commands", "each MQTT message"),
        ("control.setup", "broker (re)configure"), ("control.status", "each status heartbeat"),
        ("net.mqtt_connect", "each broker connect"))
BOOTED = ("compat", "storage", "timeutil", "log", "console", "auth", "clock", "app",
          "rules.service", "net.link", "net.mqtt", "control.plane")
MEASURE_USES = """
import gc, sys
for m in ("asyncio", "json", "hashlib", "struct", "os", "time", "binascii", "errno"):
    __import__(m)
sys.path.insert(0, %(root)r)
for m in %(booted)r:
    __import__("loaxa_node." + m)
from loaxa_node.compat import unload
def table():
    return [k[11:] for k in sys.modules if k.startswith("loaxa_node.")]
for m in %(mods)r:
    before = table()
    gc.collect()
    a = gc.mem_alloc()
    try:
        __import__("loaxa_node." + m)
    except ImportError:  # it needs viper code (not on the WebAssembly port)
        unload(*[n for n in table() if n not in before])
        continue
    gc.collect()
    b = gc.mem_alloc()
    new = [n for n in table() if n not in before]
    unload(*new)
    gc.collect()
    print("U", m, b - a, gc.mem_alloc() - a, "+".join(new))
"""


def _uses_table() -> Table:
    """What unloading gives back, per module a node loads for one use only:
    its RAM while loaded against what stays after it is dropped, on the
    32-bit VM and the sim's x64 VM."""
    mods = tuple(m for m, _ in USES)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        compile_app(tmp / "app", march="x64")
        pkg = tmp / "app" / "loaxa_node"
        script = tmp / "measure_uses.py"
        script.write_text(MEASURE_USES % {"root": str(tmp / "app"), "booted": BOOTED,
                                          "mods": mods})
        x64 = _parse_uses(subprocess.run(
            [*micropython_cmd(), "-X", "heapsize=4M", str(script)],
            capture_output=True, text=True, timeout=60).stdout)
        for f in pkg.rglob("*.mpy"):  # the WebAssembly port has no native emitter
            if f.read_bytes()[2] >> 2:
                f.unlink()
        (tmp / "wasm").mkdir()
        (tmp / "wasm" / "measure_uses.py").write_text(
            MEASURE_USES % {"root": "/app", "booted": BOOTED, "mods": mods})
        wasm = _parse_uses(_wasm_out(tmp / "wasm", pkg, "measure_uses.py"))
    rows = []
    for m, use in USES:
        w, x = wasm.get(m), x64.get(m)
        rows.append([m, use, "n/a" if w is None else w[0] / 1024,
                     *(["n/a", "n/a"] if x is None else [x[0] / 1024, x[1] / 1024]),
                     (x or w or (0, 0, ""))[2]])
    return Table("per-use modules: RAM while loaded vs after unloading (KB, on top of the booted"
                 " node's modules)", ["module", "loaded for", "wasm32 loaded", "x64 loaded",
                                      "x64 after unload", "its import loads"], rows,
                 "'after unload' is what stays: interned names (qstrs are never freed, and"
                 " their pools grow by doubling) and heap unloading could not give back;"
                 " loaded minus after is what per-use loading saves between uses. The"
                 " WebAssembly port's collector did not free unloaded modules (2.1 KB loaded,"
                 " 1.9 KB left, even across separate runPython calls; cause not known), so it"
                 " has no 'after' column; n/a there: the import needs viper code, which that"
                 " port cannot run.")


def _parse_uses(out: str) -> dict[str, tuple[int, int, str]]:
    return {p[1]: (int(p[2]), int(p[3]), p[4] if len(p) > 4 else "")
            for p in (line.split() for line in out.splitlines()) if len(p) >= 4 and p[0] == "U"}


def _x64(tmp: Path, mount: str, root: str) -> dict[str, int]:
    script = tmp / "measure.py"
    script.write_text(MEASURE % {"mount": mount, "root": root, "mods": MODULES})
    out = subprocess.run([*micropython_cmd(), "-X", "heapsize=4M", str(script)],
                         capture_output=True, text=True, timeout=60).stdout
    return _parse(out)


def _wasm(tmp: Path, pkg_dir: Path) -> dict[str, int]:
    (tmp / "measure_wasm.py").write_text(MEASURE % {"mount": "", "root": "/app",
                                                    "mods": MODULES})
    return _parse(_wasm_out(tmp, pkg_dir, "measure_wasm.py"))


def _wasm_out(tmp: Path, pkg_dir: Path, script: str) -> str:
    """stdout of tmp/script run by MicroPython's WebAssembly port with the
    package at /app/loaxa_node ("" without node and npm)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return ""
    where = cache_dir().parent / "wasm"
    mod = where / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
    if not mod.is_dir():
        r = subprocess.run([npm, "install", "--silent", "--prefix", str(where), WASM_PKG],
                           capture_output=True, text=True, timeout=300)
        if r.returncode:
            return ""
    runner = tmp / "measure.mjs"
    runner.write_text(NODE_RUNNER % {"pkg": str(mod / "micropython.mjs"),
                                     "src": json.dumps(str(pkg_dir)),
                                     "script": json.dumps(str(tmp / script))})
    return subprocess.run([node, str(runner)], capture_output=True, text=True,
                          timeout=120).stdout


def _parse(out: str) -> dict[str, int]:
    return {p[1]: int(p[2]) for p in (line.split() for line in out.splitlines())
            if len(p) == 3 and p[0] == "M"}


def _kb(v: int | None) -> object:
    return "n/a" if v is None else v / 1024


def _ratio(a: int | None, b: int | None) -> object:
    return "n/a" if not a or not b else a / b


# -- the emulated ESP32 (QEMU, the stock image) -------------------------------

MEM_INFO = ("import gc, micropython\ngc.collect()\nprint('H', gc.mem_alloc(), gc.mem_free())\n"
            "micropython.mem_info()")
# On the node's REPL after Ctrl-C: DVI4 decode speed in the guest's own time
# (instructions under a fixed -icount shift), and bytes allocated per packet
# by the whole receive path (RTP parse, jitter buffer, decode) with gc off.
DECODE = """
import gc, time
from loaxa_node.audio import codec as ac, rtp
from loaxa_node.audio.jitter import JitterBuffer
pkts = [bytes.fromhex(p) for p in %(pkts)r]
codec = ac.codec_by_name("DVI4")
out = bytearray(640)
plen = len(pkts[0]) - 12
t = time.ticks_us()
for _ in range(%(reps)d):
    for p in pkts:
        ac.decode(codec, p, 12, plen, out)
dt = time.ticks_diff(time.ticks_us(), t)
h = rtp.Header()
jb = JitterBuffer(codec, 16000, %(pt)d, 180)
for i in range(10):  # warm-up: first-use allocations are not per packet
    p = pkts[i]
    h.parse(p, len(p)); jb.push(h, p, i * 20); jb.read(out, 320)
gc.collect(); gc.disable()
a = gc.mem_alloc()
n = 0
for r in range(1, 5):
    for i in range(len(pkts)):
        p = pkts[i]
        h.parse(p, len(p)); jb.push(h, p, (r * len(pkts) + i) * 20); jb.read(out, 320)
        n += 1
per = (gc.mem_alloc() - a) / n
gc.enable()
print('D', dt, %(reps)d * len(pkts), per)
"""
DECODE_PACKETS = 25  # 0.5 s of DVI4 16 kHz: 8.6 KB of hex over the emulated UART
DECODE_REPS = 8
DECODE_SHIFT = 2  # 4 ns an instruction: 250 MIPS, about a 240 MHz ESP32's ceiling
STREAM_S = 20
ROUND_TRIPS = 20
RTP_PORT = 5004


def _qemu_table() -> Table:
    """The app on the emulated ESP32 with the rig's LTE modem: GC heap as the
    node reports it (`status`, collected first), then from the REPL after
    Ctrl-C (the app's modules stay imported) for the largest free block."""
    import time

    from .. import rules
    from ..console import NodeConsole
    from ..errors import NodeTimeout
    from ..rawrepl import RawRepl
    from ..rig.modem import GUEST, RigModem
    from ..rig.process import free_port
    from ..rig.strategy import NodeStrategy
    from ..rig.targets import QemuTarget, Unavailable
    from ..streamer import Format

    title = "GC heap on the emulated ESP32 (stock v1.23 image, QEMU in real time)"
    headers = ["state", "used KB", "free KB", "largest free KB", "note"]
    with tempfile.TemporaryDirectory(prefix="loaxa-bench-heap-") as t:
        tmp = Path(t)
        udp_port = free_port()
        try:
            modem = RigModem(ppp=True, redirects=[("udp", udp_port, RTP_PORT)],
                             log_path=tmp / "modem.log")
        except Unavailable as e:
            return Table(title, headers, [], f"skipped: {e.msg}")
        try:
            target = QemuTarget(tmp, "esp32-qemu", extra_args=("-serial", f"tcp:{modem.address}"))
        except Unavailable as e:
            modem.stop()
            return Table(title, headers, [], f"skipped: {e.msg}")
        s = NodeStrategy(target, lambda url: NodeConsole(url, log_path=tmp / "console.log",
                                                         slowdown=target.slowdown))
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
            R = rules.compile_text(RULES.format(version="bench")).rules
            env = rules.sign(R, bytes.fromhex(key), "headend", "heap", 1, 0)
            try:
                provision(node, "heap", key, env, timeout=60)
                row("with the rules service (one signed rule set)")
            except NodeTimeout:  # seen on qemu (docs/hil.md); Ctrl-C below still works
                rows.append(["with the rules service", "n/a", "", "", "rules.set: no answer"])
            fmt = Format("DVI4", 16000)
            wav = write_wav(tmp / "speech.wav", speech_like(STREAM_S * 16000, seed=4), 16000)
            # the first play imports the stream's modules from the emulated flash
            # (109-195 s seen); the head-end starts at once after its answer
            node.request("play", {"session": fmt.session(addr=GUEST, port=RTP_PORT)},
                         timeout=120)
            sent, mid = asyncio.run(_stream_sampled(str(wav), fmt, udp_port, node))
            h, st = mid["heap"], mid["stream"]
            rows.append(["streaming DVI4 16 kHz over PPP (UDP)", h["alloc"] / 1024,
                         h["free"] / 1024, "", f"{st['packets']} packets, lost {st['lost']}, "
                         f"underruns {st['underruns']} at {STREAM_S // 2} s"])
            deadline = time.monotonic() + 120
            while (end := node.request("status", timeout=60))["playing"] and \
                    time.monotonic() < deadline:
                time.sleep(1)
            st = end["stream"]
            row("after the stream", f"{st['packets']} of {sent.packets} packets played, "
                f"lost {st['lost']}, late {st['late']}, underruns {st['underruns']}")
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
                 f"console round trip (`version`, {ROUND_TRIPS} in a row): {rtt * 1000:.0f} ms"
                 " of host time; it depends on the host's load.")


def _qemu_decode_table() -> Table:
    """DVI4 decode on the emulated ESP32 under a fixed -icount shift, so the
    guest's clock counts instructions: speed on a CPU of DECODE_MIPS whatever
    the host's load. The app's files on the flash without main.py (the bare
    REPL imports from them)."""
    import serial

    from .. import image
    from ..deploy import PTR
    from ..rawrepl import RawRepl
    from ..rig.qemu import QemuNode
    from ..rig.targets import Unavailable
    from ..streamer import Format, Packetizer

    mips = 1000 >> DECODE_SHIFT
    title = (f"DVI4 16 kHz on the emulated ESP32 (-icount shift={DECODE_SHIFT}: "
             f"{1 << DECODE_SHIFT} ns an instruction, a {mips} MIPS CPU)")
    headers = ["payload", "decode x real time", "receive path bytes alloc/packet"]
    fmt = Format("DVI4", 16000)
    pk = Packetizer(fmt, ssrc=0x10AA5A)
    x = speech_like(DECODE_PACKETS * fmt.samples, seed=5)
    pkts = [pk.packet(x[i:i + fmt.samples].astype("<i2").tobytes()).hex()
            for i in range(0, len(x), fmt.samples)]
    files = image.node_files("esp32-qemu")
    del files["main.py"]  # the REPL, not the app
    with tempfile.TemporaryDirectory(prefix="loaxa-bench-decode-") as t:
        try:
            node = QemuNode(Path(t), app=False, files=files,
                            args=["-icount", f"shift={DECODE_SHIFT}"])
        except Unavailable as e:
            return Table(title, headers, [], f"skipped: {e.msg}")
        try:
            node.start()
            node.wait_output((b">>> ",), 300)
            port = serial.serial_for_url(node.url, timeout=0.05)
            try:
                repl = RawRepl(port, timeout=300)
                repl.enter(soft_reset=False)
                out = repl.exec(f"import sys\nsys.path.insert(0, {files[PTR].decode()!r})\n"
                                + DECODE % {"pkts": pkts, "reps": DECODE_REPS, "pt": fmt.pt},
                                timeout=900)
            finally:
                port.close()
        finally:
            node.close()
    d = next(ln.split() for ln in out.splitlines() if ln.startswith("D "))
    speed = int(d[2]) * fmt.ptime / 1000 / (int(d[1]) / 1e6)
    return Table(title, headers, [["DVI4 16 kHz, 20 ms", round(speed, 1), round(float(d[3]), 1)]],
                 "A 240 MHz ESP32 runs at most 240 million instructions a second (fewer on "
                 "flash cache misses): read the speed as an upper bound for a board's. "
                 "Receive path: RTP parse, jitter buffer push and 20 ms read (decode), gc off.")


async def _stream_sampled(src: str, fmt, port: int, node) -> tuple:
    """Stream src to the node's redirect; its status halfway through."""
    from ..streamer import stream

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(stream(src, fmt, [("127.0.0.1", port)]))
    await asyncio.sleep(STREAM_S / 2)
    mid = await loop.run_in_executor(None, node.request, "status")
    return await task, mid
