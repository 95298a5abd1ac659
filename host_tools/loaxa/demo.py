"""`make demo`: boot a simulated node, show its health, test its speaker."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from .console import NodeConsole
from .i18n import t
from .sim import SimNode
from .term import print_table


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="loaxa-demo-"))
    print(t("demo.boot"))
    with SimNode(state) as node:
        with NodeConsole(node.url, log_path=state / "console.log") as con:
            st = con.wait_ready(30)
            print(t("demo.console", url=node.url) + "\n")
            print(t("demo.health"))
            clock = t("demo.synced" if st["clock"]["synced"] else "demo.unsynced")
            values = [
                f"{st['fw']} ({st['board']})",
                t("demo.uptime", s=st["uptime_s"], cause=st["reset_cause"]),
                f"{st['clock']['local']} ({clock})",
                f"{st['volume']} %",
                st["playing"] or t("demo.nothing"),
                t("demo.heap", alloc=st["heap"]["alloc"], free=st["heap"]["free"]),
                ", ".join(st["errors"]) or t("demo.none"),
            ]
            print_table((), list(zip(t("demo.rows").split("|"), values, strict=True)))
            print("\n" + t("demo.tone"))
            con.request("tone", {"freq": 1000, "seconds": 1, "volume": 80})
            while con.request("status")["playing"]:
                time.sleep(0.2)
            wavs = sorted(node.audio_dir.glob("*.wav"))
            print(t("demo.captured", path=wavs[-1] if wavs else t("demo.nothing")))
            print("\n" + t("demo.log", path=state / "console.log"))
            print(t("demo.own"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
