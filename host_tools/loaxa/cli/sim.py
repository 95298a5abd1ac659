"""loaxa sim: run a simulated node and print its console URL."""

from __future__ import annotations

import argparse
import signal
import tempfile
import threading

from .. import boards
from ..i18n import t
from ..sim import SimNode, parse_rtc_start


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sim",
        help="run a simulated node on the MicroPython VM",
        description="Run the real firmware on the MicroPython unix VM with simulated "
        "hardware. Prints the console's serial URL (a PTY) that any serial tool, "
        "mpremote or the HIL suite can open.",
    )
    p.add_argument("--state", help="node flash directory (default: a new temporary one)")
    p.add_argument("--board", default="sim", choices=boards.names(), help="board definition")
    p.add_argument("--heap-kb", type=int,
                   help="VM heap in KB (default: twice the board's budget on this 64-bit VM)")
    p.add_argument("--rtc-start", default="2000",
                   help="RTC at power-on: 2000 (unsynced, like a real node after power "
                   "loss), host, or an ISO time such as 2026-11-22T05:29:50+07:00")
    p.add_argument("--rtc-offset", type=float, default=0.0,
                   help="seconds added to --rtc-start (e.g. -30 with host)")
    p.add_argument("--rtc-drift-ppm", type=float, default=0.0, help="RTC drift in ppm")
    p.add_argument("--audio-ppm", type=int, default=0,
                   help="the audio sink's clock error in ppm (+100: plays 100 ppm fast), "
                   "as a real I2S clock differs from a sender's")
    p.add_argument("--baud", type=int, help="throttle the console to this UART baud rate")
    p.add_argument("--audio-dir", help="where the sink writes WAV files (default STATE/audio)")
    p.add_argument("--seconds", type=float, help="power off after this many seconds")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    state = args.state or tempfile.mkdtemp(prefix="loaxa-sim-")
    node = SimNode(
        state,
        board=args.board,
        heap_kb=args.heap_kb,
        rtc_start=parse_rtc_start(args.rtc_start) + int(args.rtc_offset),
        rtc_drift_ppm=args.rtc_drift_ppm,
        audio_ppm=args.audio_ppm,
        baud=args.baud,
        audio_dir=args.audio_dir,
    )
    url = node.start()
    print(t("sim.started", board=args.board, heap=node.heap_kb, url=url, state=node.state,
            audio=node.audio_dir), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
        print(t("sim.stopped"))
    return 0
