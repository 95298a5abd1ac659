"""The commune's rules file (TOML, docs/rules.md): validate, compile, explain.

The operator's TOML is checked here with errors that name the file, the line
and key, what is wrong and what is allowed; it compiles to the compact JSON
form that nodes store. Every decision (explain, calendar) comes from the
firmware's own `loaxa_node.rules.engine`, the code the node runs.
"""

from __future__ import annotations

import datetime
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lunar_vn

from loaxa_node import envelope, timeutil
from loaxa_node.audio import sdp
from loaxa_node.control.protocol import BROADCAST_PRIORITIES, KINDS
from loaxa_node.rules import check as rulecheck
from loaxa_node.rules import engine
from loaxa_node.rules import engine as K  # the compiled form's keys: K.WINDOWS is "w"

from .errors import LoaxaError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_DAYS = 0b0011111  # Mon-Fri: no weekend sessions unless a rule says so
DEFAULT_QUIET = "21:00-06:00"
_HIGHEST_FIRST = BROADCAST_PRIORITIES[::-1]  # as hints name them: priority, normal, test
DEFAULT_TZ = timeutil.iso(0, timeutil.TZ_MIN)[-6:]  # "+07:00"
_IDENT = re.compile(r"^[\w-]{1,32}$")
_TOP = {"version", "timezone", "quiet_hours", "emergency_volume", "zones", "limits",
        "window", "schedule", "exception", "years", "streams", "files"}
_SESSION = {"transport", "url", "addr", "port", "codec", "rate", "pt"}
LUNAR_YEARS = 5  # lunar dates resolve for this year and the next four unless `years` says
_LIMITS = {"session_minutes", "sessions_per_day", "minutes_per_day", "zones"}
_CAPS = ((K.CAP_SESSION, "session_minutes"), (K.CAP_SESSIONS, "sessions_per_day"),
         (K.CAP_DAY, "minutes_per_day"))
_WINDOW = {"name", "days", "dates", "time", "overnight", "volume", "max_volume",
           "priorities", "zones"}
_SCHEDULE = {"name", "source", "start", "minutes", "days", "dates", "zones", "priority",
             "volume"}
_EXCEPTION = {"name", "dates", "zones", "mute", "window"}


class RulesFileError(LoaxaError):
    """A rules file that cannot be compiled: where, what is wrong, what is allowed."""

    def __init__(self, file: str, line: int | None, key: str, msg: str, allowed: str = ""):
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {key}: {msg}", allowed or None)
        self.file, self.line, self.key = file, line, key


@dataclass
class Compiled:
    rules: dict[str, Any]
    zones: list[str]


class _Src:
    """Finds the line of a key for error messages (tomllib keeps no positions)."""

    def __init__(self, name: str, text: str):
        self.name = name
        self.lines = text.splitlines()

    def line(self, table: str | None, index: int, key: str | None) -> int | None:
        start, seen = 0, -1
        if table:
            hdr = re.compile(r"^\s*\[\[?\s*" + re.escape(table) + r"\s*\]\]?")
            for i, ln in enumerate(self.lines):
                if hdr.match(ln):
                    seen += 1
                    if seen == index:
                        start = i
                        break
            else:
                return None
        if key is None:
            return start + 1
        pat = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for i in range(start if table else 0, len(self.lines)):
            ln = self.lines[i]
            if i > start and table and ln.lstrip().startswith("["):
                break
            if not table and ln.lstrip().startswith("["):
                break
            if pat.match(ln):
                return i + 1
        return start + 1 if table else None

    def fail(self, table: str | None, index: int, key: str | None, label: str, msg: str,
             allowed: str = "") -> RulesFileError:
        return RulesFileError(self.name, self.line(table, index, key), label, msg, allowed)


def _minutes(s: str) -> int:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", s.strip())
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59 or (
            int(m.group(1)) == 24 and int(m.group(2))):
        raise ValueError(f"{s!r} is not a time of day")
    return int(m.group(1)) * 60 + int(m.group(2))


def _day(s: str) -> int:
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", s.strip())
    if not m:
        raise ValueError(f"{s!r} is not a date")
    y, mo, d = (int(g) for g in m.groups())
    dn = timeutil.days_from_civil(y, mo, d)
    if not 1 <= mo <= 12 or timeutil.civil_from_days(dn) != (y, mo, d):
        raise ValueError(f"{s!r} is not a date in the calendar")
    return dn


class _Table:
    """One TOML table being read: typed getters that raise precise errors."""

    def __init__(self, src: _Src, table: str | None, index: int, label: str,
                 data: Any, allowed: set[str]):
        self.src, self.table, self.index, self.label = src, table, index, label
        if not isinstance(data, dict):
            raise src.fail(table, index, None, label, "must be a table")
        self.data = data
        for k in data:
            if k not in allowed:
                raise self.fail(k, f"unknown key {k!r}", "allowed: " + ", ".join(sorted(allowed)))

    def fail(self, key: str | None, msg: str, allowed: str = "") -> RulesFileError:
        label = f"{self.label}.{key}" if key else self.label
        return self.src.fail(self.table, self.index, key, label, msg, allowed)

    def num(self, key: str, default: int | None, lo: int, hi: int) -> int:
        v = self.data.get(key, default)
        if v is None:
            raise self.fail(key, "is missing", f"an integer from {lo} to {hi}")
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise self.fail(key, f"{v!r} is out of range", f"an integer from {lo} to {hi}")
        return v

    def text(self, key: str, default: str | None = None) -> str:
        v = self.data.get(key, default)
        if not isinstance(v, str):
            raise self.fail(key, "is missing" if v is None else "must be text")
        return v

    def name(self, seen: set[str]) -> str:
        v = self.text("name")
        if not _IDENT.match(v):
            raise self.fail("name", f"{v!r} is not a usable name",
                            "1-32 letters, digits, '-' or '_'")
        if v in seen:
            raise self.fail("name", f"{v!r} is used twice", "every name must be unique")
        seen.add(v)
        return v

    def days(self, default: int) -> int:
        v = self.data.get("days")
        if v is None:
            return default
        allowed = 'names like ["mon", "tue"], a range "mon-sat", or "daily"'
        items = v if isinstance(v, list) else str(v).replace(" ", "").split(",")
        mask = 0
        for item in items:
            if not isinstance(item, str):
                raise self.fail("days", f"{item!r} is not a day", allowed)
            item = item.lower()
            if item in ("daily", "all"):
                mask |= 127
                continue
            a, _, b = item.partition("-")
            if a not in DAYS or (b and b not in DAYS):
                raise self.fail("days", f"{item!r} is not a day", allowed)
            i, j = DAYS.index(a), DAYS.index(b or a)
            if j < i:
                raise self.fail("days", f"{item!r} ends before it starts", allowed)
            for k in range(i, j + 1):
                mask |= 1 << k
        if not mask:
            raise self.fail("days", "names no day", allowed)
        return mask

    def dates(self, required: bool = False) -> list[list[int]]:
        v = self.data.get("dates")
        if v is None:
            if required:
                raise self.fail("dates", "is missing", '"2027-02-05..2027-02-10" or a list')
            return []
        out = []
        for item in (v if isinstance(v, list) else [v]):
            try:
                a, _, b = str(item).partition("..")
                first, last = _day(a), _day(b or a)
            except ValueError as e:
                raise self.fail("dates", str(e),
                                'dates like "2027-02-05" or ranges "2027-02-05..2027-02-10"'
                                ) from None
            if last < first:
                raise self.fail("dates", f"{item!r}: end is before start",
                                "the first date comes first")
            out.append([first, last])
        return out

    def zones(self, known: list[str]) -> list[str]:
        v = self.data.get("zones", [])
        if not isinstance(v, list) or not all(isinstance(z, str) for z in v):
            raise self.fail("zones", "must be a list of zone names")
        for z in v:
            if z not in known:
                raise self.fail("zones", f"unknown zone {z!r}",
                                "zones declared at the top: " + (", ".join(known) or "none"))
        return v


def _span(t: _Table, key: str = "time") -> tuple[int, int]:
    v = t.text(key)
    allowed = 'a time range like "05:30-06:15"'
    a, sep, b = v.partition("-")
    try:
        s, e = _minutes(a), _minutes(b)
    except ValueError as err:
        raise t.fail(key, str(err), allowed) from None
    if not sep or s == e or s >= 1440:
        raise t.fail(key, f"{v!r} is empty or malformed", allowed)
    overnight = t.data.get("overnight", False)
    if e < s and overnight is not True:
        raise t.fail(key, f"end {b.strip()} is before start {a.strip()}",
                     "a window that runs past midnight needs overnight = true")
    if e > s and overnight is True:
        raise t.fail("overnight", f"{v!r} does not cross midnight", "remove overnight")
    return s, e


def _window(t: _Table, seen: set[str], zones: list[str], prefix: str = "") -> dict:
    w: dict[str, Any] = {K.ID: prefix + t.name(seen)}
    w[K.DAYS] = t.days(DEFAULT_DAYS if not prefix else 127)
    dr = t.dates()
    if dr:
        w[K.DATES] = dr
    w[K.START], w[K.END] = _span(t)
    w[K.MAX_VOLUME] = t.num("max_volume", 100, 0, 100)
    w[K.VOLUME] = t.num("volume", min(70, w[K.MAX_VOLUME]), 0, 100)
    if w[K.VOLUME] > w[K.MAX_VOLUME]:
        raise t.fail("volume", f"{w[K.VOLUME]} is above max_volume {w[K.MAX_VOLUME]}",
                     f"a volume from 0 to {w[K.MAX_VOLUME]}")
    p = t.data.get("priorities")
    if p is not None:
        if not isinstance(p, list) or not p or any(x not in BROADCAST_PRIORITIES for x in p):
            raise t.fail("priorities", f"{p!r} is not allowed",
                         f"a list of {', '.join(_HIGHEST_FIRST)} (emergency plays anyway)")
        w[K.PRIORITY] = p
    z = t.zones(zones)
    if z:
        w[K.ZONES] = z
    return w


def _week(x: dict) -> list[tuple[int, int]]:
    """Minutes of the week (Mon 00:00 = 0) that x covers, as intervals."""
    s, e = x[K.START], x[K.END] if K.END in x else x[K.START] + x[K.DURATION]
    if e <= s:
        e += 1440
    out = []
    for d in range(7):
        if x.get(K.DAYS, 127) >> d & 1:
            a, b = d * 1440 + s, d * 1440 + e
            out.append((a, min(b, 7 * 1440)))
            if b > 7 * 1440:
                out.append((0, b - 7 * 1440))
    return out


def _meet(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    return any(x0 < y1 and y0 < x1 for x0, x1 in a for y0, y1 in b)


def _share(a: dict, b: dict, key: str) -> bool:
    za, zb = a.get(key), b.get(key)
    if key == K.ZONES:
        return not za or not zb or bool(set(za) & set(zb))
    return not za or not zb or any(x0 <= y1 and y0 <= x1 for x0, x1 in za for y0, y1 in zb)


def _hm(m: int) -> str:
    return f"{m // 60 % 24:02d}:{m % 60:02d}"


def _check_windows(src: _Src, table: str, wins: list[dict], quiet: list[int],
                   base: int = 0) -> None:
    def fail(i: int, key: str, msg: str, allowed: str = "") -> RulesFileError:
        return src.fail(table, base + i, key, f"{table}[{i}].{key}",
                        f"window {wins[i][K.ID]!r} " + msg, allowed)

    for i, a in enumerate(wins):
        for j in range(i):
            b = wins[j]
            if _share(a, b, K.ZONES) and _share(a, b, K.DATES) and _meet(_week(a), _week(b)):
                raise fail(i, "time", f"overlaps window {b[K.ID]!r} "
                           f"({_hm(b[K.START])}-{_hm(b[K.END])}) on a shared day and zone",
                           "windows of one zone must not overlap; merge them or move one")
        if quiet:
            q = {K.START: quiet[0], K.END: quiet[1], K.DAYS: 127}
            if _meet(_week(a), _week(q)):
                raise fail(i, "time", f"{_hm(a[K.START])}-{_hm(a[K.END])} reaches into quiet "
                           f"hours {_hm(quiet[0])}-{_hm(quiet[1])}",
                           "move the window, or change quiet_hours at the top "
                           '(e.g. quiet_hours = "21:00-05:00")')


def _years(top: _Table, this_year: int) -> range:
    v = top.data.get("years")
    if v is None:
        return range(this_year, min(this_year + LUNAR_YEARS, 2034))
    # the node counts days from 2000 in 31-bit ints (rulecheck: up to 2034)
    allowed = 'a year like 2027 or a range like "2026..2030", from 2000 to 2033'
    m = re.fullmatch(r"(\d{4})(?:\.\.(\d{4}))?", str(v).strip())
    if not m:
        raise top.fail("years", f"{v!r} is not a year or range of years", allowed)
    a, b = int(m.group(1)), int(m.group(2) or m.group(1))
    if not 2000 <= a <= b <= 2033:
        raise top.fail("years", f"{v!r} is out of range", allowed)
    return range(a, b + 1)


def _lunar_day(month: int, day: int, year: int) -> int:
    """Day number of a (non-leap) lunar date by the Vietnamese calendar
    (UTC+7). Day 30 of a month that has 29 that year is its 29th, as a giỗ
    or "30 Tết" is kept on the last day of the month."""
    d = lunar_vn.lunar_to_solar(lunar_vn.LunarDate(day, month, year), time_zone=7.0)
    dn = timeutil.days_from_civil(d.year, d.month, d.day)
    back = lunar_vn.solar_to_lunar(d, time_zone=7.0)
    return dn if (back.day, back.month) == (day, month) else dn - 1


def _lunar_dates(t: _Table, years: range) -> list[list[int]]:
    """'lunar:MM-DD[..MM-DD]' -> one solar [first, last] per lunar year."""
    v = str(t.data.get("dates")).strip()
    allowed = ('"lunar:01-01..01-05" (Tết) or "lunar:03-10" (Giỗ Tổ Hùng Vương): '
               'month-day in the Vietnamese lunar calendar')
    m = re.fullmatch(r"lunar:(\d{2})-(\d{2})(?:\.\.(\d{2})-(\d{2}))?", v)
    if not m:
        raise t.fail("dates", f"{v!r} is not a lunar date", allowed)
    m1, d1 = int(m.group(1)), int(m.group(2))
    m2, d2 = (int(m.group(3)), int(m.group(4))) if m.group(3) else (m1, d1)
    if not (1 <= m1 <= 12 and 1 <= m2 <= 12 and 1 <= d1 <= 30 and 1 <= d2 <= 30):
        raise t.fail("dates", f"{v!r}: month 1-12, day 1-30", allowed)
    # a range that passes the lunar new year ends in the next lunar year
    return [[_lunar_day(m1, d1, y), _lunar_day(m2, d2, y if (m2, d2) >= (m1, d1) else y + 1)]
            for y in years]


def compile_text(text: str, name: str = "rules.toml", this_year: int | None = None
                 ) -> Compiled:
    """this_year: where lunar dates start resolving when the file names no
    `years` (default: the current year in Việt Nam)."""
    src = _Src(name, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise RulesFileError(name, int(m.group(1)) if m else None, "TOML", str(e),
                             "see docs/rules.md for the format") from None
    top = _Table(src, None, 0, "rules", doc, _TOP)
    R: dict[str, Any] = {K.FORMAT: 1, K.VER: top.text("version", "")}
    if len(R[K.VER]) > 32 or any(ord(c) > 0xFFFF or ord(c) < 0x20 for c in R[K.VER]):
        # MicroPython's JSON reader splits characters beyond U+FFFF (docs/envelope.md)
        raise top.fail("version", f"{R[K.VER]!r} is not a usable version",
                       "at most 32 characters, no emoji or control characters")
    tz = top.text("timezone", DEFAULT_TZ)
    m = re.fullmatch(r"(?:UTC)?([+-])(\d{2}):(\d{2})", tz)
    if not m or int(m.group(2)) > 14 or int(m.group(3)) > 59:
        raise top.fail("timezone", f"{tz!r} is not an offset", f'like "{DEFAULT_TZ}" (Việt Nam)')
    R[K.TZ] = (1 if m.group(1) == "+" else -1) * (int(m.group(2)) * 60 + int(m.group(3)))
    q = top.text("quiet_hours", DEFAULT_QUIET)
    quiet: list[int] = []
    if q.strip():
        a, sep, b = q.partition("-")
        try:
            quiet = [_minutes(a) % 1440, _minutes(b) % 1440]
        except ValueError as e:
            raise top.fail("quiet_hours", str(e), '"21:00-06:00", or "" for none') from None
        if not sep or quiet[0] == quiet[1]:
            raise top.fail("quiet_hours", f"{q!r} is empty", '"21:00-06:00", or "" for none')
        R[K.QUIET] = quiet
    R[K.EMERGENCY_VOLUME] = top.num("emergency_volume", 100, 0, 100)
    zones = top.data.get("zones", [])
    if not isinstance(zones, list) or not all(isinstance(z, str) and _IDENT.match(z)
                                              for z in zones):
        raise top.fail("zones", "must be a list of names", "1-32 letters, digits, '-' or '_'")
    if "limits" in doc:
        lim = _Table(src, "limits", 0, "limits", doc["limits"], _LIMITS)
        cap = {k: lim.num(key, 0, 0, 1440) for k, key in _CAPS}
        cap = {k: v for k, v in cap.items() if v}
        if cap:
            R[K.CAP] = cap
        zl = lim.data.get("zones", {})
        if not isinstance(zl, dict):
            raise lim.fail("zones", "must be tables [limits.zones.NAME]",
                           "[limits.zones.cho] with session_minutes, sessions_per_day, "
                           "minutes_per_day")
        zcap = {}
        for z, raw in zl.items():
            zt = _Table(src, "limits", 0, f"limits.zones.{z}", raw,
                        {k for k in _LIMITS if k != "zones"})
            if z not in zones:
                raise zt.fail(None, f"unknown zone {z!r}",
                              "zones declared at the top: " + (", ".join(zones) or "none"))
            c = {k: v for k, v in ((k, zt.num(key, 0, 0, 1440)) for k, key in _CAPS) if v}
            if c:
                zcap[z] = c
        if zcap:
            R[K.ZONE_CAP] = zcap
    streams = doc.get("streams", {})
    if not isinstance(streams, dict):
        raise top.fail("streams", "must be tables [streams.NAME]", "[streams.vov1] with url, "
                       "codec and rate (see docs/rules.md)")
    st = {name: _session(_Table(src, "streams", 0, f"streams.{name}", raw, _SESSION))
          for name, raw in streams.items()}
    if st:
        R[K.STREAMS] = st
    if "files" in doc:
        ft = _Table(src, "files", 0, "files", doc["files"], _SESSION)
        fs = _session(ft)
        if fs["transport"] != "http":
            raise ft.fail("url", "files come from the head-end over HTTP",
                          'url = "http://HEADEND:8001/file/" (the file name is appended)')
        R[K.FILES] = fs
    seen: set[str] = set()
    wins = doc.get("window", [])
    if not isinstance(wins, list):
        raise top.fail("window", "must be [[window]] tables")
    R[K.WINDOWS] = [_window(_Table(src, "window", i, f"window[{i}]", w, _WINDOW), seen, zones)
              for i, w in enumerate(wins)]
    _check_windows(src, "window", R[K.WINDOWS], quiet)
    R[K.SCHEDULE] = []
    for i, raw in enumerate(doc.get("schedule", [])):
        t = _Table(src, "schedule", i, f"schedule[{i}]", raw, _SCHEDULE)
        it: dict[str, Any] = {K.ID: t.name(seen)}
        srcv = t.text("source")
        kind, _, rest = srcv.partition(":")
        if kind not in KINDS[1:] or not rest:  # a live source is no schedule item
            raise t.fail("source", f"{srcv!r} is not a source",
                         '"relay:NAME", "file:NAME" or "tone:HZ"')
        if kind == "tone" and not (rest.isdigit() and 50 <= int(rest) <= 8000):
            raise t.fail("source", f"{srcv!r}: tone frequency", "tone:50 to tone:8000")
        if kind == "file" and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", rest) or ".." in rest:
            raise t.fail("source", f"{srcv!r}: not a file name",
                         "file:NAME, NAME of letters, digits, '.', '-', '_'")
        it[K.SOURCE], it[K.KIND] = srcv, kind
        it[K.PRIORITY] = t.text("priority", "normal")
        if it[K.PRIORITY] not in BROADCAST_PRIORITIES:
            raise t.fail("priority", f"{it[K.PRIORITY]!r} is not allowed",
                         ", ".join(_HIGHEST_FIRST[:-1]) + " or " + _HIGHEST_FIRST[-1])
        try:
            it[K.START] = _minutes(t.text("start")) % 1440
        except ValueError as e:
            raise t.fail("start", str(e), 'a time like "05:30"') from None
        it[K.DURATION] = t.num("minutes", None, 1, 1440)
        it[K.DAYS] = t.days(DEFAULT_DAYS)
        dr = t.dates()
        if dr:
            it[K.DATES] = dr
        z = t.zones(zones)
        if z:
            it[K.ZONES] = z
        if "volume" in t.data:
            it[K.VOLUME] = t.num("volume", None, 0, 100)
        inside = [w for w in R[K.WINDOWS]
                  if (not w.get(K.ZONES) or (z and set(z) <= set(w[K.ZONES]))) and _covers(w, it)]
        if not inside:
            raise t.fail("start", f"{_hm(it[K.START])} for {it[K.DURATION]} min is not inside any "
                         "window of its days and zones", "a schedule item must lie inside "
                         "one window on each of its days")
        R[K.SCHEDULE].append(it)
    R[K.EXCEPTIONS] = []
    if this_year is None:
        this_year = (datetime.datetime.now(datetime.UTC)
                     + datetime.timedelta(minutes=timeutil.TZ_MIN)).year
    years = _years(top, this_year)
    xw = 0  # [[exception.window]] tables seen so far, to find their lines
    for i, raw in enumerate(doc.get("exception", [])):
        t = _Table(src, "exception", i, f"exception[{i}]", raw, _EXCEPTION)
        x: dict[str, Any] = {K.ID: t.name(seen)}
        if str(raw.get("dates", "")).startswith("lunar:"):
            # the node knows only solar dates: one exception per year, same name
            spans = _lunar_dates(t, years)
        else:
            dr = t.dates(required=True)
            if len(dr) > 1:
                raise t.fail("dates", "give one range per exception",
                             '"2027-02-05..2027-02-10"')
            spans = dr
        z = t.zones(zones)
        if z:
            x[K.ZONES] = z
        mute = t.data.get(K.MUTE, False)
        sub = t.data.get("window", [])
        if not isinstance(mute, bool) or bool(mute) == bool(sub):
            raise t.fail("mute", "say either mute = true or give [[exception.window]] "
                         "tables that replace the windows on these dates",
                         "one of the two")
        if mute:
            x[K.MUTE] = True
        else:
            x[K.WINDOWS] = [_window(_Table(src, "exception.window", xw + j,
                                     f"exception[{i}].window[{j}]", w, _WINDOW),
                              seen, zones, prefix=x[K.ID] + ".")
                      for j, w in enumerate(sub)]
            _check_windows(src, "exception.window", x[K.WINDOWS], quiet, xw)
            xw += len(sub)
        for first, last in spans:
            R[K.EXCEPTIONS].append({K.ID: x[K.ID], K.FROM: first, K.TO: last,
                           **{k: v for k, v in x.items() if k != K.ID}})
    for k in (K.SCHEDULE, K.EXCEPTIONS):
        if not R[k]:
            del R[k]
    rulecheck.check(R)  # the node's own check: whatever we emit, it accepts
    return Compiled(R, zones)


def _session(t: _Table) -> dict:
    """A stream as the node's play command takes it, checked by the node's own code."""
    s = dict(t.data)
    if "url" in s:
        s.setdefault("transport", "http")
    try:
        return sdp.session(s)
    except ValueError as e:
        raise t.fail(None, str(e), "see docs/audio.md, Sessions") from None


def _covers(w: dict, it: dict) -> bool:
    if (it[K.DAYS] & ~w[K.DAYS]) & 127:
        return False
    ws, we = w[K.START], w[K.END] if w[K.END] > w[K.START] else w[K.END] + 1440
    return ws <= it[K.START] and it[K.START] + it[K.DURATION] <= we


def segments(R: dict, start: int, end: int, zones: list[str]) -> list[tuple]:
    """(from, to, allowed, volume, why, window, items) for a normal live request,
    t2k seconds from start to end: the week calendar of `loaxa rules calendar`
    and of the head-end's page."""
    out: list[tuple] = []
    now = start
    req = {"priority": "normal", "kind": "live", "zones": zones}
    while now < end:
        nxt = min(engine.next_change(R, now, zones), end)
        d = engine.evaluate(R, now, req)
        cur = engine.current(R, now, zones)
        items = [it[K.ID] for it, _ in cur["items"]]
        seg = (now, nxt, d["allow"], d["volume"], d["reason"], cur["window"], items)
        if out and out[-1][2:] == seg[2:]:
            out[-1] = (out[-1][0], nxt, *seg[2:])
        else:
            out.append(seg)
        now = nxt
    return out


def week_of(R: dict, day: int) -> tuple[int, int]:
    """(the local day number of its Monday, that Monday's midnight in t2k seconds)
    of the week that holds the instant day, in the rules' time zone."""
    tz = R.get(K.TZ, timeutil.TZ_MIN)
    ld = (day + tz * 60) // 86400
    monday = ld - timeutil.weekday(ld)
    return monday, monday * 86400 - tz * 60


def compile_file(path: str | Path) -> Compiled:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise LoaxaError(f"cannot read {p}: {e.strerror}", "check the file name") from None
    except UnicodeDecodeError:
        raise LoaxaError(f"{p} is not UTF-8 text", "save it as UTF-8") from None
    return compile_text(text, str(p))


def compact(R: dict) -> str:
    return json.dumps(R, separators=(",", ":"), ensure_ascii=False)


def sign(R: dict, key: bytes, sender: str, to: str, seq: int, ts: int) -> dict:
    """R as a rule set envelope for node `to`, signed with that node's key."""
    return envelope.seal(key, "rules", sender, to, seq, ts, 0, R)


def sign_for(R: dict, inventory: str | None, nodes: list[str], commune: str | None,
             sender: str, seq: int | None, ts: int) -> dict[str, dict]:
    """One envelope per node (node -> envelope), each with its own key from the
    technicians' inventory: nodes named, or every node of commune. The sequence
    comes from the inventory's counter for sender unless given."""
    from .inventory import Inventory

    with Inventory(inventory) as inv:
        known = {n["node_id"]: n for n in inv.nodes()}
        if commune:
            nodes = nodes + sorted(n for n, r in known.items() if r.get("commune") == commune
                                   and n not in nodes)
        if not nodes:
            raise LoaxaError("no node to sign for",
                             "name nodes with --sign ID[,ID...] or all with --commune")
        bad = [n for n in nodes if n not in known]
        if bad:
            raise LoaxaError(f"{', '.join(bad)} not in the inventory {inv.path}",
                             "provision the node first, or give --inventory")
        keys = {n: envelope.key_bytes(inv.node_key(n)) for n in nodes}
        if seq is None:
            seq = inv.next_seq(sender)
    if seq <= 0:
        raise LoaxaError("--seq must be a positive integer")
    return {n: sign(R, keys[n], sender, n, seq, ts) for n in nodes}


def parse_time(s: str, tz_min: int = timeutil.TZ_MIN) -> int:
    """ISO time → t2k; a time without an offset is in the rules' time zone."""
    if not re.search(r"(Z|[+-]\d{2}:\d{2})$", s):
        s += timeutil.iso(0, tz_min)[-6:] if tz_min else "Z"
    try:
        return timeutil.parse_iso(s)
    except ValueError as e:
        raise LoaxaError(str(e)) from None
