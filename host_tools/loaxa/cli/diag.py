"""loaxa diag: a field technician's view of one node over its USB serial console."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from loaxa_node import timeutil
from loaxa_node.control.protocol import KINDS, PRIORITIES

from ..console import NodeConsole
from ..diag import authorise, doctor, mutate, view
from ..diag.monitor import Monitor
from ..errors import LoaxaError, NodeError
from ..i18n import t
from ..ports import auto
from ..reasons import describe, kind, priority
from ..term import console, print_table
from . import add_inventory_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diag", help="diagnose a node over its USB cable (status, logs, doctor, monitor...)",
        description="Field diagnostics over the node's serial console. The port is found by "
        "itself when one ESP32 board is plugged in. docs/field-guide.md explains every "
        "verdict.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--port", help="serial port (default: the one ESP32 board plugged in; "
                        "loaxa ports lists them)")
    common.add_argument("--baud", type=int, default=115200, help="console baud rate")
    common.add_argument("--pin", default=os.environ.get("LOAXA_SERVICE_PIN"),
                        help="service PIN for tone, volume and clock --set (default "
                        "$LOAXA_SERVICE_PIN)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--slow", type=float, default=1.0, metavar="FACTOR",
                        help="wait FACTOR times longer for every answer: an emulated ESP32 "
                        "under QEMU takes seconds where a board takes milliseconds")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    s.add_parser("status", parents=[common], help="the node's health as a table")
    c = s.add_parser("logs", parents=[common], help="recent log lines, the crash log, or follow")
    c.add_argument("-n", type=int, default=20, help="how many lines (1-32)")
    c.add_argument("--level", default="debug", choices=("debug", "info", "warn", "error"))
    c.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    c.add_argument("--crash", action="store_true", help="the crash log kept on flash")
    c = s.add_parser("tone", parents=[common], help="speaker test: a tone through the amplifier")
    c.add_argument("--freq", type=int, default=1000)
    c.add_argument("--seconds", type=float, default=2.0)
    c.add_argument("--volume", type=int, help="default: the node's volume")
    c = s.add_parser("volume", parents=[common], help="show or set the volume")
    c.add_argument("value", nargs="?", type=int, help="0-100: the new default (and what plays)")
    c = s.add_parser("clock", parents=[common], help="show the clock, or set it from this laptop")
    c.add_argument("--set", action="store_true",
                   help="set the node's clock from this laptop's (trusted until the next sync)")
    c = s.add_parser("rules", parents=[common],
                     help="the window now, the next change, and why something does not play")
    c.add_argument("--priority", default="normal", choices=PRIORITIES)
    c.add_argument("--kind", choices=KINDS,
                   help="default: scheduled (relay) and live")
    c = s.add_parser("doctor", parents=[common], help="checklist with a verdict per line; "
                     "exit code 0 ok, 1 warning, 2 fault")
    c.add_argument("--no-tone", action="store_true", help="do not play the test tone")
    add_inventory_arg(c)
    c = s.add_parser("monitor", parents=[common], help="live view; survives reboots and replugs")
    c.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    c.add_argument("--seconds", type=float, help=argparse.SUPPRESS)  # tests end it this way
    p.set_defaults(func=run)


def _out(data: object) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def run(args: argparse.Namespace) -> int:
    port = auto(args.port)
    if args.action == "monitor":
        return Monitor(port, args.baud, args.interval, slowdown=args.slow).run(args.seconds)
    if args.action == "doctor":
        return _doctor(args, port)
    with NodeConsole(port, args.baud, slowdown=args.slow) as con:
        con.wait_ready(10)
        authorise(con, args.pin)
        return {"status": _status, "logs": _logs, "tone": _tone, "volume": _volume,
                "clock": _clock, "rules": _rules}[args.action](args, con)


def _status(args: argparse.Namespace, con: NodeConsole) -> int:
    st = con.request("status")
    if args.json:
        _out(st)
        return 0
    print_table((), view.rows(st))
    return 0


def _logs(args: argparse.Namespace, con: NodeConsole) -> int:
    mark = con.mark()
    got = con.request("log", {"n": max(1, min(32, args.n)), "level": args.level})
    if args.json:
        _out(got)
    elif args.crash:
        print("\n\n".join(view.crash_entries(got["crash"])) or t("diag.no_crash"))
    else:
        for e in got["lines"]:
            print(f"{e['ms']} {e['level']} {view.log_message(e['msg'])}")
    if not args.follow:
        return 0
    try:
        while True:
            if con.broken:  # a log of a node one cannot see is no log: say so and stop
                raise LoaxaError(t("diag.follow_lost", port=con.url), t("diag.follow_lost_hint"))
            lines = con.lines_since(mark)
            mark += len(lines)
            for ln in lines:
                if ln.strip() and not ln.startswith("@"):
                    print(json.dumps({"line": ln}) if args.json else view.log_line(ln),
                          flush=True)
            time.sleep(0.2)
    except KeyboardInterrupt:
        return 0


def _tone(args: argparse.Namespace, con: NodeConsole) -> int:
    req = {"freq": args.freq, "seconds": args.seconds}
    if args.volume is not None:
        req["volume"] = args.volume
    r = mutate(con, args.pin, "tone", req)
    peak, fault = 0, None
    deadline = time.monotonic() + args.seconds + 3
    while time.monotonic() < deadline:
        s = con.request("status")
        peak, fault = max(peak, s.get("level", 0)), fault or s.get("amp_fault")
        if not s.get("playing"):
            break
        time.sleep(0.2)
    res = dict(r, level=peak, dbfs=view.dbfs(peak), amp_fault=fault)
    if args.json:
        _out(res)
    else:
        print(t("diag.tone", freq=r["freq"], seconds=r["seconds"], volume=r["volume"],
                meter=view.meter(peak)))
        if fault:
            print(t("status.amp_fault", kind=fault))
    return 2 if fault or not peak else 0


def _volume(args: argparse.Namespace, con: NodeConsole) -> int:
    if args.value is not None:
        if not 0 <= args.value <= 100:
            raise LoaxaError(t("diag.volume_range"))
        mutate(con, args.pin, "config.set", {"volume": args.value})
        if con.request("status").get("playing"):
            mutate(con, args.pin, "volume", {"volume": args.value})
    st = con.request("status")
    p = st.get("playing")
    res = {"volume": st["volume"], "playing_volume": p.get("volume") if p else None}
    if args.json:
        _out(res)
    else:
        print(t("diag.volume", volume=res["volume"]) + (
            t("diag.volume_playing", volume=res["playing_volume"]) if p else ""))
    return 0


def _clock(args: argparse.Namespace, con: NodeConsole) -> int:
    if args.set:
        # send on a whole second of this laptop's clock: the node keeps seconds
        time.sleep(1 - time.time() % 1)
        mutate(con, args.pin, "clock.set", {"time": int(round(time.time()))})
    c = con.request("clock.get")
    laptop = time.time() - timeutil.UNIX_OFFSET
    c["offset_s"] = round(c["t2k"] + c["ms"] / 1000 - laptop, 1)
    if args.json:
        _out(c)
        return 0
    trust = t("status.synced", source=c["source"]) if c["synced"] else t("status.unsynced")
    print(t("diag.clock", local=c["local"], trust=trust, offset=c["offset_s"]))
    return 0


def _rules(args: argparse.Namespace, con: NodeConsole) -> int:
    from loaxa_node.rules import engine
    try:
        got = con.request("rules.get")
    except NodeError as e:
        if e.code == "unknown_command":  # no rules service: safe mode
            raise LoaxaError(t("doctor.rules_off"), t("doctor.safe_mode_next")) from None
        raise
    clk = con.request("clock.get")
    cfg = con.request("config.get", {"keys": ["zones"]})
    R, zones = got["rules"], cfg["zones"]
    tz = R.get(engine.TZ, timeutil.TZ_MIN)
    kinds = [args.kind] if args.kind else ["relay", "live"]
    answers = [dict(con.request("rules.eval", {"priority": args.priority, "kind": k}),
                    kind=k, priority=args.priority) for k in kinds]
    nxt = engine.next_change(R, clk["t2k"], zones)
    res = {"version": got["version"], "window": got["window"], "zones": zones,
           "now": clk["local"], "trusted": clk["synced"],
           "next_change": timeutil.iso(nxt, tz), "answers": answers}
    if args.json:
        _out(res)
        return 0
    version = t("diag.rules_builtin") if got["version"] in view.NO_RULES else got["version"]
    print(t("diag.rules_head", version=version, now=clk["local"][:19].replace("T", " "),
            zones=",".join(zones) or "-"))
    print(t("diag.rules_window", window=got["window"] or t("diag.no_window")))
    print(t("diag.rules_next", at=res["next_change"][:16].replace("T", " ")))
    for a in answers:
        verdict = t("rules.plays", volume=a["volume"]).strip() if a["allow"] else \
            t("rules.refused").strip()
        print(f"  {priority(a['priority'])} {kind(a['kind'])}: {verdict} — "
              f"{describe(a['reason'])}")
    return 0


def _doctor(args: argparse.Namespace, port: str) -> int:
    try:
        con = NodeConsole(port, args.baud, slowdown=args.slow)
    except LoaxaError as e:
        checks = doctor.unreachable(port, e)
    else:
        try:
            con.wait_ready(10)
            checks = doctor.run(con, args.pin, not args.no_tone, args.inventory)
        except LoaxaError as e:
            checks = doctor.unreachable(port, e)
        finally:
            con.close()
    verdict = doctor.worst(checks)
    if args.json:
        _out(doctor.as_json(checks))
        return doctor.EXIT[verdict]
    c = console()
    colour = {"ok": "green", "warning": "yellow", "fault": "bold red"}
    print(t("doctor.head", port=port))
    for ch in checks:
        v = t("verdict." + ch.verdict)
        name = t("check." + ch.key)
        line = f"  {v:<9} {name:<20} {ch.found}"
        if c.is_terminal:
            c.print(f"  [{colour[ch.verdict]}]{v:<9}[/] {name:<20} ", end="", markup=True,
                    highlight=False)
            c.print(ch.found, markup=False, highlight=False)
        else:
            print(line)
        if ch.next:
            print(" " * 33 + t("doctor.next", next=ch.next))
    print(t("doctor.verdict", verdict=t("verdict." + verdict), code=doctor.EXIT[verdict]))
    sys.stdout.flush()
    return doctor.EXIT[verdict]
