"""`loaxa diag doctor`: a checklist of the node's health, one verdict per line.

Each check reads facts the node reports (status, version, clock, config, log,
rules) and gives ok / warning / fault, what it found, and the next step. The
verdict codes are the field guide's index (docs/field-guide.md); the exit
code is the worst verdict: 0 ok, 1 warning, 2 fault.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from loaxa_node import timeutil
from loaxa_node.rules import engine

from ..console import NodeConsole
from ..errors import LoaxaError, NodeError
from ..i18n import t
from ..inventory import Inventory, norm_mac
from . import view

OK, WARNING, FAULT = "ok", "warning", "fault"
EXIT = {OK: 0, WARNING: 1, FAULT: 2}
HEAP_FAULT, HEAP_WARN = 0.08, 0.12  # free share of the heap; a stream leaves ~15 % on the sim
WEAK_DBM = -105  # LTE RSSI below this drops calls and streams
TONE_S = 1.5
CHECKS = ("console", "power", "clock", "link", "broker", "rules", "amp", "heap", "errors",
          "version")


@dataclass
class Check:
    key: str  # one of CHECKS
    verdict: str  # ok | warning | fault
    found: str  # what the check saw, in the reader's language
    next: str = ""  # what to do about it; empty when all is well
    code: str = ""  # the field guide's entry, e.g. "clock.untrusted"
    facts: dict[str, Any] = field(default_factory=dict)


def worst(checks: list[Check]) -> str:
    return max((c.verdict for c in checks), key=EXIT.__getitem__, default=OK)


def _ago(s: int | None) -> str:
    if s is None:
        return "?"
    if s < 120:
        return t("time.s", n=s)
    if s < 7200:
        return t("time.min", n=s // 60)
    return t("time.h", n=s // 3600)


# -- the checks -------------------------------------------------------------------
def power(st: dict, crash: str) -> Check:
    cause, fails = st.get("reset_cause"), st.get("boot_fails", 0)
    facts = {"reset_cause": cause, "boots": st.get("boots"), "boot_fails": fails,
             "safe_mode": st.get("safe_mode"), "crash": crash.strip().splitlines()[-1:]}
    last = _last_crash(crash).splitlines()[-1] if crash.strip() else ""
    if st.get("safe_mode"):
        return Check("power", FAULT, t("doctor.safe_mode", fails=fails, last=last or "-"),
                     t("doctor.safe_mode_next"), "power.safe_mode", facts)
    if cause == "watchdog":
        return Check("power", WARNING, t("doctor.watchdog"), t("doctor.watchdog_next"),
                     "power.watchdog", facts)
    if cause == "brownout":
        return Check("power", WARNING, t("doctor.brownout"), t("doctor.brownout_next"),
                     "power.brownout", facts)
    if fails:
        return Check("power", WARNING, t("doctor.failed_boots", fails=fails, last=last or "-"),
                     t("doctor.failed_boots_next"), "power.failed_boots", facts)
    return Check("power", OK, t("doctor.power_ok", cause=view.cause(cause), boots=st.get("boots"),
                                 uptime=_ago(st.get("uptime_s"))), facts=facts)


def clock(c: dict) -> Check:
    facts = {k: c.get(k) for k in ("synced", "source", "local", "since_sync_s")}
    if c.get("synced"):
        return Check("clock", OK, t("doctor.clock_ok", local=c["local"][:19].replace("T", " "),
                                     source=c.get("source"), ago=_ago(c.get("since_sync_s"))),
                     facts=facts)
    if c.get("since_sync_s") is None:
        return Check("clock", FAULT, t("doctor.clock_never", local=c["local"][:19]
                                       .replace("T", " ")),
                     t("doctor.clock_next"), "clock.untrusted", facts)
    return Check("clock", FAULT, t("doctor.clock_stale", ago=_ago(c["since_sync_s"])),
                 t("doctor.clock_next"), "clock.untrusted", facts)


def _signal(sig: Any) -> tuple[str, int | None]:
    if isinstance(sig, dict):
        dbm = sig.get("dbm")
        return (t("doctor.signal", dbm=dbm, csq=sig.get("csq")) if dbm is not None else ""), dbm
    if isinstance(sig, int):  # Wi-Fi RSSI
        return t("doctor.rssi", dbm=sig), None
    return "", None


def link(net: dict | None, cfg: dict) -> Check:
    net = net or {}
    facts = dict(net, configured=cfg.get("net.type"))
    kind = net.get("type") or cfg.get("net.type") or "none"
    if net.get("up"):
        sig, dbm = _signal(net.get("signal"))
        found = t("doctor.link_ok", type=kind, addr=net.get("addr") or net.get("ip") or "-",
                  up=_ago(net.get("up_s")), reconnects=net.get("reconnects", 0)) + sig
        if dbm is not None and dbm < WEAK_DBM:
            return Check("link", WARNING, found, t("doctor.weak_next"), "link.weak", facts)
        return Check("link", OK, found, facts=facts)
    err = net.get("error") or t("doctor.no_reason")
    return Check("link", FAULT, t("doctor.link_down", type=kind, error=err,
                                  reconnects=net.get("reconnects", 0)),
                 t("doctor.link_next"), "link.down", facts)


def broker(b: dict | None, cfg: dict, expected: str | None) -> Check:
    url = cfg.get("broker.url") or ""
    facts = {"status": b, "configured": url, "inventory": expected}
    if not b:
        if expected and not url:
            return Check("broker", FAULT, t("doctor.broker_missing", url=expected),
                         t("doctor.broker_missing_next"), "broker.missing", facts)
        if url:
            return Check("broker", WARNING, t("doctor.broker_unreported", url=url),
                         t("doctor.broker_unreported_next"), "broker.unreported", facts)
        return Check("broker", OK, t("doctor.broker_none"), facts=facts)
    if b.get("connected"):
        found = t("doctor.broker_ok", url=b.get("url"), up=_ago(b.get("up_s")),
                  queued=b.get("queued_events", 0))
        if b.get("dropped_events"):
            return Check("broker", WARNING, found + t("doctor.dropped",
                                                      n=b["dropped_events"]),
                         t("doctor.dropped_next"), "broker.dropped", facts)
        return Check("broker", OK, found, facts=facts)
    return Check("broker", FAULT, t("doctor.broker_down", url=b.get("url"),
                                    error=b.get("error") or t("doctor.no_reason"),
                                    reconnects=b.get("reconnects", 0)),
                 t("doctor.broker_next"), "broker.down", facts)


def rules(info: dict | None, R: dict | None, now: int | None, zones: list[str],
          tz: int) -> Check:
    facts = {"rules": info}
    if info is None:
        return Check("rules", FAULT, t("doctor.rules_off"), t("doctor.safe_mode_next"),
                     "power.safe_mode", facts)
    if info.get("version") in view.NO_RULES:
        return Check("rules", FAULT, t("doctor.rules_none"), t("doctor.rules_none_next"),
                     "rules.none", facts)
    window = info.get("window")
    found = (t("doctor.window_open", window=window) if window else t("doctor.window_closed"))
    if R is not None and now is not None:
        nxt = engine.next_change(R, now, zones)
        found += t("doctor.next_change", at=timeutil.iso(nxt, tz)[11:16])
        facts["next_change"] = timeutil.iso(nxt, tz)
    return Check("rules", OK, t("doctor.rules_ok", version=info["version"]) + found,
                 facts=facts)


def amp(st: dict, tone: dict | None, tone_error: str | None) -> Check:
    """tone: what the node showed while the test tone played (None: not played)."""
    fault = (tone or {}).get("amp_fault") or st.get("amp_fault")
    facts = {"amp_fault": fault, "sensing": st.get("amp_fault") is not None, "tone": tone,
             "tone_error": tone_error}
    if fault:
        return Check("amp", FAULT, t("doctor.amp_fault", kind=fault), t("doctor.amp_fault_next"),
                     "amp.fault", facts)
    if st.get("safe_mode"):
        return Check("amp", FAULT, t("doctor.amp_safe"), t("doctor.safe_mode_next"),
                     "power.safe_mode", facts)
    if tone is None:
        return Check("amp", WARNING, t("doctor.amp_untested", why=tone_error or "-"),
                     t("doctor.amp_untested_next"), "amp.untested", facts)
    if not tone.get("level"):
        return Check("amp", FAULT, t("doctor.amp_silent"), t("doctor.amp_silent_next"),
                     "amp.silent", facts)
    sensed = t("doctor.amp_sensed") if st.get("amp_fault") is False else t("doctor.amp_listen")
    return Check("amp", OK, t("doctor.amp_ok", what=tone.get("what"), db=tone["db"]) + sensed,
                 facts=facts)


def _last_crash(crash: str) -> str:
    return (view.crash_entries(crash) or [""])[-1]


def heap(h: dict, errs: list[str], crash: str) -> Check:
    free, alloc = h.get("free", 0), h.get("alloc", 0)
    share = free / (free + alloc) if free + alloc else 0.0
    facts = dict(h, free_share=round(share, 3))
    found = t("doctor.heap", free=free // 1024, total=(free + alloc) // 1024,
              pct=round(share * 100))
    # Free space after a collection says little about fragmentation; a
    # MemoryError since the start, or in the crash that led here, says it all.
    oom = [e for e in errs + [_last_crash(crash)] if "MemoryError" in e]
    if oom:
        facts["memory_error"] = oom[-1]
        return Check("heap", FAULT, t("doctor.heap_oom") + found, t("doctor.heap_next"),
                     "heap.low", facts)
    if share < HEAP_FAULT:
        return Check("heap", FAULT, found, t("doctor.heap_next"), "heap.low", facts)
    if share < HEAP_WARN:
        return Check("heap", WARNING, found, t("doctor.heap_next"), "heap.low", facts)
    return Check("heap", OK, found, facts=facts)


def errors(errs: list[str]) -> Check:
    if not errs:
        return Check("errors", OK, t("doctor.errors_none"))
    last = errs[-1].strip().splitlines()[-1][:120]
    return Check("errors", WARNING, t("doctor.errors", n=len(errs), last=last),
                 t("doctor.errors_next"), "errors.recent", {"errors": errs})


def version(st: dict, ver: dict, record: dict | None) -> Check:
    facts = {"fw": st.get("fw"), "app": ver.get("app"), "micropython": ver.get("micropython"),
             "inventory": record}
    have = t("doctor.version", fw=st.get("fw"), app=ver.get("app") or t("doctor.app_image"),
             mpy=ver.get("micropython"))
    if record is None:
        return Check("version", OK, have + t("doctor.not_in_inventory"), facts=facts)
    if record.get("app") and ver.get("app") and record["app"] != ver["app"]:
        return Check("version", WARNING, have + t("doctor.app_differs", want=record["app"]),
                     t("doctor.app_next"), "version.app", facts)
    want = record.get("image_version")
    if want and ver.get("micropython") and want != ver["micropython"]:
        return Check("version", WARNING, have + t("doctor.image_differs", want=want),
                     t("doctor.image_next"), "version.image", facts)
    return Check("version", OK, have + t("doctor.as_inventory"), facts=facts)


# -- gathering ------------------------------------------------------------------
def _tone(con: NodeConsole, pin: str | None) -> tuple[dict | None, str | None]:
    """Play the test tone and watch the node while it sounds."""
    st = con.request("status")
    if st.get("playing"):  # never cut a broadcast for a test: judge what plays
        p = st["playing"]
        seen = {"what": p.get("source"), "level": st.get("level", 0),
                "amp_fault": st.get("amp_fault")}
    else:
        try:
            if pin:
                con.request("auth", {"pin": pin})
            con.request("tone", {"freq": 1000, "seconds": TONE_S})
        except NodeError as e:
            why = t("diag.need_pin") if e.code in ("auth_required", "bad_pin", "locked") \
                else e.node_msg
            return None, why
        seen = {"what": t("doctor.tone_what"), "level": 0, "amp_fault": None}
        deadline = time.monotonic() + TONE_S + 3
        while time.monotonic() < deadline:
            s = con.request("status")
            seen["level"] = max(seen["level"], s.get("level", 0))
            seen["amp_fault"] = seen["amp_fault"] or s.get("amp_fault")
            if not s.get("playing"):
                break
            time.sleep(0.25)
    lvl = seen["level"]
    seen["db"] = round(20 * math.log10(lvl / 32768), 1) if lvl else None
    return seen, None


def _inventory(st: dict, path: str | None) -> tuple[dict | None, str | None]:
    try:
        with Inventory(path) as inv:
            nodes = list(inv.nodes())
    except LoaxaError:
        return None, None
    mac = norm_mac(st.get("uid") or "")
    for n in nodes:
        if n["node_id"] == st.get("node_id") or (mac and n.get("mac") == mac):
            return n, n.get("broker")
    return None, None


def run(con: NodeConsole, pin: str | None = None, tone: bool = True,
        inventory: str | None = None) -> list[Check]:
    """All checks against the node on con (already answering)."""
    oom: list[str] = []

    def ask(cmd: str, args: dict | None = None) -> dict:
        # A node short of memory fails a request now and then: try once more,
        # and let the heap check say what happened.
        try:
            return con.request(cmd, args)
        except NodeError as e:
            if "MemoryError" not in e.node_msg:
                raise
            oom.append(f"{cmd}: {e.node_msg}")
            time.sleep(0.5)
            return con.request(cmd, args)

    st = ask("status")
    try:
        return _checks(con, st, ask, oom, pin, tone, inventory)
    except NodeError as e:
        if "MemoryError" not in e.node_msg:
            raise
    # No room on the node to answer the rest twice in a row: what status said
    # is what there is, and the heap check says why.
    return [_console(st, con.url), power(st, ""),
            heap(st.get("heap", {}), (st.get("errors") or []) + oom, "")]


def _console(st: dict, port: str) -> Check:
    return Check("console", OK, t("doctor.console_ok", node=view.node_name(st),
                                   board=st.get("board", "?"), port=port))


def _checks(con: NodeConsole, st: dict, ask: Callable[..., dict], oom: list[str],
            pin: str | None, tone: bool, inventory: str | None) -> list[Check]:
    ver = ask("version")
    clk = ask("clock.get")
    cfg = ask("config.get", {"keys": ["net.type", "broker.url", "zones"]})
    crash = ask("log", {"n": 1}).get("crash", "") if st.get("boot_fails") or \
        st.get("safe_mode") else ""  # the log on flash is history unless this boot follows it
    R = None
    if st.get("rules") and st["rules"].get("version") not in view.NO_RULES:
        R = ask("rules.get").get("rules")
    record, expected_broker = _inventory(st, inventory)
    tone_seen, tone_error = _tone(con, pin) if tone and not st.get("safe_mode") else \
        (None, t("doctor.tone_skipped") if not tone else None)
    tz = (R or {}).get(engine.TZ, timeutil.TZ_MIN)
    return [
        _console(st, con.url),
        power(st, crash),
        clock(clk),
        link(st.get("net"), cfg),
        broker(st.get("broker"), cfg, expected_broker),
        rules(st.get("rules"), R, clk.get("t2k"), cfg.get("zones") or [], tz),
        amp(st, tone_seen, tone_error),
        heap(st.get("heap", {}), (st.get("errors") or []) + oom, crash),
        errors(st.get("errors") or []),
        version(st, ver, record),
    ]


def unreachable(port: str, err: LoaxaError) -> list[Check]:
    """The checklist when the node could not be asked: silent, or out of memory."""
    if isinstance(err, NodeError) and "MemoryError" in err.node_msg:
        return [_console({}, port),
                Check("heap", FAULT, t("doctor.heap_oom") + err.node_msg, t("doctor.heap_next"),
                      "heap.low", {"memory_error": err.node_msg})]
    return [Check("console", FAULT, t("doctor.console_down", port=port, error=err.msg),
                  t("doctor.console_next"), "console.silent")]


def as_json(checks: list[Check]) -> dict:
    return {"verdict": worst(checks), "exit": EXIT[worst(checks)],
            "checks": [asdict(c) for c in checks]}
