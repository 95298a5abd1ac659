"""`make demo`: boot a simulated node, show its health, test its speaker."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from .console import NodeConsole
from .sim import SimNode


def table(rows: list[tuple[str, object]]) -> str:
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="loaxa-demo-"))
    print("Booting a simulated speaker node (real MicroPython VM)...")
    with SimNode(state) as node:
        with NodeConsole(node.url, log_path=state / "console.log") as con:
            st = con.wait_ready(30)
            print(f"Console on {node.url}\n")
            print("Node health (console `status`):")
            print(table([
                ("firmware", f"{st['fw']} on board {st['board']}"),
                ("uptime", f"{st['uptime_s']} s, reset cause {st['reset_cause']}"),
                ("clock", f"{st['clock']['local']} "
                          f"({'synced' if st['clock']['synced'] else 'NOT synced: no schedule'})"),
                ("volume", f"{st['volume']} %"),
                ("playing", st["playing"] or "nothing"),
                ("heap", f"{st['heap']['alloc']} B used, {st['heap']['free']} B free"),
                ("errors", ", ".join(st["errors"]) or "none"),
            ]))
            print("\nSpeaker test: 1 kHz tone for 1 s at 80 % ...")
            con.request("tone", {"freq": 1000, "seconds": 1, "volume": 80})
            while con.request("status")["playing"]:
                time.sleep(0.2)
            wavs = sorted(node.audio_dir.glob("*.wav"))
            print(f"  captured: {wavs[-1] if wavs else 'nothing'}")
            print(f"\nFull console log: {state / 'console.log'}")
            print("Run your own node: .venv/bin/loaxa sim   (then open the printed port)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
