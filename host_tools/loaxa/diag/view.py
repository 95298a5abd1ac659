"""The node's status in words: rows for `diag status` and the monitor."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..i18n import t
from ..reasons import describe

_LOGGED = re.compile(r"^(rules: .*?: )(\{.*\})$")


def log_message(msg: str) -> str:
    """A node log message with the rules reason it carries (JSON) worded."""
    m = _LOGGED.match(msg)
    if not m:
        return msg
    try:
        return m.group(1) + describe(json.loads(m.group(2)))
    except ValueError:
        return msg


_CRASH_ENTRY = re.compile(r"^(crash|boot failed): ", re.M)


def crash_entries(crash: str) -> list[str]:
    """The crash log's entries, oldest first (each starts "crash:" or "boot failed:").
    The node sends the log's last 1 KB: text before the first entry is the cut-off
    end of an older one and is dropped, unless it is all there is."""
    text = crash.strip()
    starts = [m.start() for m in _CRASH_ENTRY.finditer(text)]
    if not starts:
        return [text] if text else []
    return [text[a:b].strip() for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def log_line(line: str) -> str:
    """A console log line `<ms> <level> <message>` with its reason worded."""
    ms, _, rest = line.partition(" ")
    level, _, msg = rest.partition(" ")
    if not ms.isdigit() or level not in ("debug", "info", "warn", "error"):
        return line
    return f"{ms} {level} {log_message(msg)}"


CAUSES = ("power_on", "hard", "soft", "watchdog", "brownout", "deepsleep", "console",
          "factory_reset")


def cause(c: str | None) -> str:
    """A reset cause (hal.reset_cause) in words."""
    return t("cause." + c) if c in CAUSES else str(c)


def dbfs(level: int) -> float | None:
    return round(20 * math.log10(level / 32768), 1) if level > 0 else None


def meter(level: int, width: int = 30) -> str:
    """A peak meter from -60 to 0 dBFS."""
    db = dbfs(level)
    n = 0 if db is None else max(0, min(width, round((db + 60) / 60 * width)))
    return "█" * n + "·" * (width - n) + (f" {db:5.1f} dBFS" if db is not None else "   –   ")


def _net(n: dict | None) -> str:
    n = n or {}
    if not n.get("up"):
        return t("status.net_down", type=n.get("type") or "-",
                 error=n.get("error") or t("doctor.no_reason"))
    sig = n.get("signal")
    s = f", {sig['dbm']} dBm" if isinstance(sig, dict) and sig.get("dbm") is not None else \
        (f", {sig} dBm" if isinstance(sig, int) else "")
    return t("status.net_up", type=n.get("type"), addr=n.get("addr") or n.get("ip") or "-") + s


def _broker(b: dict | None) -> str:
    if not b:
        return t("doctor.broker_none")
    key = "status.broker_up" if b.get("connected") else "status.broker_down"
    return t(key, url=b.get("url"), error=b.get("error") or "")


def playing(st: dict) -> str:
    p = st.get("playing")
    if not p:
        return t("demo.nothing")
    from ..reasons import priority
    return t("status.playing", source=p.get("source"), priority=priority(p.get("priority", "")),
             codec=p.get("codec"), volume=p.get("volume", st.get("volume")))


def _amp(st: dict) -> str:
    on = t("status.amp_on") if st.get("amp") else t("status.amp_off")
    f = st.get("amp_fault")
    if f:
        return on + ", " + t("status.amp_fault", kind=f)
    return on + ("" if f is None else ", " + t("status.amp_fine"))


UNNAMED = "unset"  # the node_id of a node not provisioned yet (firmware config.py)
NO_RULES = ("default", "", None)  # rules versions of a node without the commune's rules


def node_name(st: dict[str, Any]) -> str:
    n = st.get("node_id", "?")
    return t("status.unnamed") if n == UNNAMED else str(n)


def rows(st: dict[str, Any]) -> list[tuple[str, str]]:
    c = st.get("clock", {})
    r = st.get("rules") or {}
    h = st.get("heap", {})
    clock = c.get("local", "?")[:19].replace("T", " ") + " " + (
        t("status.synced", source=c.get("source")) if c.get("synced") else t("status.unsynced"))
    rules = (t("doctor.rules_off") if not r else t("doctor.rules_none")
             if r.get("version") in NO_RULES else
             t("status.rules", version=r.get("version"), window=r.get("window") or "-"))
    return [
        (t("status.node"), f"{node_name(st)}  ({st.get('board')}, {st.get('uid')})"),
        (t("status.firmware"), str(st.get("fw"))),
        (t("status.uptime"), t("status.uptime_v", s=st.get("uptime_s"),
                               cause=cause(st.get("reset_cause")), boots=st.get("boots"))
         + (" — " + t("status.safe_mode") if st.get("safe_mode") else "")),
        (t("status.clock"), clock),
        (t("status.network"), _net(st.get("net"))),
        (t("status.broker"), _broker(st.get("broker"))),
        (t("status.rules_l"), rules),
        (t("status.volume"), f"{st.get('volume')} %"),
        (t("status.playing_l"), playing(st)),
        (t("status.level"), meter(st.get("level", 0))),
        (t("status.amp"), _amp(st)),
        (t("status.heap"), t("status.heap_use", alloc=h.get("alloc"), free=h.get("free"))),
        (t("status.temperature"), "-" if st.get("temperature") is None
         else f"{st['temperature']} °C"),
        (t("status.errors"), "; ".join(e.strip().splitlines()[-1][:80]
                                       for e in st.get("errors") or []) or t("status.none")),
    ]
