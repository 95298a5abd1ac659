"""loaxa rules: check, compile (and sign), explain and show the commune's rules."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from loaxa_node import timeutil
from loaxa_node.control.protocol import KINDS, PRIORITIES
from loaxa_node.rules import engine

from .. import rules
from ..i18n import t
from ..reasons import describe, kind, priority
from . import add_inventory_arg


def _dayname(weekday: int) -> str:
    return t("rules.days").split("|")[weekday]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rules", help="check, compile, sign and explain the commune's rules",
                       description="Work with the commune's rules file (TOML, see "
                       "docs/rules.md). Every answer comes from the same rules engine "
                       "the nodes run.")
    rs = p.add_subparsers(dest="rules_cmd", metavar="ACTION", required=True)

    c = rs.add_parser("check", help="validate a rules file")
    c.add_argument("file")
    c.set_defaults(func=check)

    c = rs.add_parser("compile", help="compile to the compact JSON nodes store; optionally sign")
    c.add_argument("file")
    c.add_argument("-o", "--output", help="write here instead of standard output")
    c.add_argument("--sign", metavar="NODE[,NODE...]", default="",
                   help="sign for these nodes, each with its own key from the inventory "
                   "(one envelope for one node, one a line for several)")
    c.add_argument("--commune", help="sign for every node of this commune in the inventory")
    c.add_argument("--sender", default="rules-cli",
                   help="sender name in the envelope (default rules-cli: the head-end's "
                   "own pushes are `headend`)")
    c.add_argument("--seq", type=int,
                   help="envelope sequence number (default: the next of the inventory's "
                   "counter for --sender, which only grows)")
    add_inventory_arg(c)
    c.set_defaults(func=compile_)

    c = rs.add_parser("explain", help="what the rules decide for one request at one time")
    c.add_argument("file")
    c.add_argument("--at", required=True,
                   help="time, e.g. 2026-11-23T05:40 (rules' time zone) or with an offset")
    c.add_argument("--priority", default="normal", choices=PRIORITIES)
    c.add_argument("--kind", default="live", choices=KINDS,
                   help="source kind (default live)")
    c.add_argument("--zone", action="append", default=[], help="the node's zone (repeatable)")
    c.add_argument("--untrusted", action="store_true",
                   help="as a node whose clock is not synced would decide")
    c.set_defaults(func=explain)

    c = rs.add_parser("calendar", help="a week of when and how loud each zone plays")
    c.add_argument("file")
    c.add_argument("--week", metavar="DATE", nargs="?", const="",
                   help="the week containing DATE (default: this week)")
    c.set_defaults(func=calendar)


def check(args: argparse.Namespace) -> int:
    c = rules.compile_file(args.file)
    R = c.rules
    print(t("rules.ok", file=args.file, windows=len(R[engine.WINDOWS]),
            items=len(R.get(engine.SCHEDULE, [])), exceptions=len(R.get(engine.EXCEPTIONS, [])),
            size=len(rules.compact(R))))
    return 0


def compile_(args: argparse.Namespace) -> int:
    R = rules.compile_file(args.file).rules
    now = int(time.time()) - timeutil.UNIX_OFFSET
    text = rules.compact(R)
    if args.sign or args.commune:
        envs = rules.sign_for(R, args.inventory, [n for n in args.sign.split(",") if n],
                              args.commune, args.sender, args.seq, now)
        text = "\n".join(rules.compact(e) for e in envs.values())
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(t("rules.wrote", file=args.output, size=len(text)), file=sys.stderr)
    else:
        print(text)
    return 0


def _local(t: int, tz: int) -> str:
    return timeutil.iso(t, tz).replace("T", " ")[:-6]


def explain(args: argparse.Namespace) -> int:
    R = rules.compile_file(args.file).rules
    tz = R.get(engine.TZ, timeutil.TZ_MIN)
    at = rules.parse_time(args.at, tz)
    req = {"priority": args.priority, "kind": args.kind, "zones": args.zone}
    d = engine.evaluate(R, at, req, None, not args.untrusted)
    cur = engine.current(R, at, args.zone)
    zone = ",".join(args.zone) or "-"
    print(f"{_local(at, tz)} ({_dayname(timeutil.weekday((at + tz * 60) // 86400))}), "
          f"{priority(args.priority)} {kind(args.kind)}, {zone}:")
    print(t("rules.plays", volume=d["volume"]) if d["allow"] else t("rules.refused"))
    print(t("rules.why", reason=describe(d["reason"])))
    print(t("rules.until", until=_local(d["until"], tz) if d["until"] is not None
            else t("rules.no_change")))
    for it, end in cur["items"]:
        print(t("rules.item", item=it[engine.ID], src=it[engine.SOURCE], end=_local(end, tz)))
    return 0


def calendar(args: argparse.Namespace) -> int:
    c = rules.compile_file(args.file)
    R = c.rules
    tz = R.get(engine.TZ, timeutil.TZ_MIN)
    wins = R[engine.WINDOWS] + [w for x in R.get(engine.EXCEPTIONS, [])
                                for w in x.get(engine.WINDOWS, [])]
    caps = {w[engine.ID]: w[engine.MAX_VOLUME] for w in wins}
    if args.week:
        day = rules.parse_time(args.week + "T12:00", tz)
    else:
        day = int(time.time()) - timeutil.UNIX_OFFSET
    monday, start = rules.week_of(R, day)
    y, m, d = timeutil.civil_from_days(monday)
    print(t("rules.week", monday=f"{y:04d}-{m:02d}-{d:02d}", tz=timeutil.iso(0, tz)[-6:]))
    for zone in (c.zones or [""]):
        zones = [zone] if zone else []
        print("\n" + (t("rules.zone", zone=zone) if zone else t("rules.all_nodes")))
        segs = rules.segments(R, start, start + 7 * 86400, zones)
        for k in range(7):
            a, b = start + k * 86400, start + (k + 1) * 86400
            yy, mm, dd = timeutil.civil_from_days(monday + k)
            parts = []
            for s0, s1, ok, vol, why, wid, items in segs:
                if s1 <= a or s0 >= b or not (ok or items):
                    continue
                lo, hi = max(s0, a), min(s1, b)
                hm = f"{_local(lo, tz)[11:16]}-{_local(hi, tz)[11:16]}"
                hm = hm.replace("-00:00", "-24:00")
                if ok:
                    txt = f"{hm} {wid} " + t("rules.open", volume=vol, cap=caps[wid])
                else:
                    txt = f"{hm} " + t("rules.refused_at", reason=describe(why))
                if items:
                    txt += " ▶ " + ",".join(items)
                parts.append(txt)
            muted = engine.current(R, a + 43200, zones)["muted"]
            line = "; ".join(parts) or (t("rules.silent_exc", name=muted) if muted
                                        else t("rules.silent"))
            print(f"  {_dayname(k)} {yy:04d}-{mm:02d}-{dd:02d}  {line}")
    print("\n" + t("rules.emergency", volume=R.get(engine.EMERGENCY_VOLUME, 100)))
    return 0

