# The commune's rules (DESIGN section 6), evaluated on the compiled compact
# form that the host compiler writes (docs/rules.md has the TOML form).
# Pure: the node and the host tools run this same code, and the tests prove
# both interpreters give identical answers.
#
# Times: `now` is t2k UTC seconds; rules are in local time (tz minutes east
# of UTC). Window, quiet-hour and schedule edges fall on whole minutes of the
# local day, so every answer is constant between two "marks" (those minutes,
# on each day) and evaluation only ever has to look at marks.
from ..control.protocol import BROADCAST_PRIORITIES, KINDS, PRIORITIES
from ..timeutil import DAY, TZ_MIN, weekday

HORIZON_DAYS = 8  # `until` looks this far ahead, then gives None ("not soon")

# The compiled form's keys, named once for the engine, the checker (check.py)
# and the host's compiler (loaxa/rules.py); docs/rules.md, "Compiled form",
# shows this table. Short because the node keeps its rules in RAM and a signed
# rule set must fit one MQTT packet.
FORMAT = "v"  # format version, 1
VER = "ver"  # the rule set's version text (status shows it)
TZ = "tz"  # the commune's offset, minutes east of UTC
QUIET = "q"  # quiet hours: [start, end], minutes of the local day
EMERGENCY_VOLUME = "ev"
CAP = "cap"  # the commune's limits: {CAP_SESSION, CAP_SESSIONS, CAP_DAY}
ZONE_CAP = "zcap"  # {zone: limits} tighter than the commune's
STREAMS = "st"  # {name: stream session} that relay:NAME items play
FILES = "fs"  # the head-end's file service session that file:NAME items play
WINDOWS = "w"  # broadcast windows (top level, or an exception's own)
SCHEDULE = "sch"  # schedule items
EXCEPTIONS = "x"  # dated exceptions: days muted or with windows of their own
# in a window, a schedule item or an exception
ID = "id"  # its name
DAYS = "d"  # weekdays, a mask with Monday in bit 0 (127: every day)
DATES = "dr"  # only these dates: [[first, last]] days since 2000-01-01
ZONES = "z"  # only these zones (absent: all)
START = "s"  # minute of the local day
END = "e"  # a window's end, minute of the local day
DURATION = "dur"  # a schedule item's length, minutes
VOLUME = "vol"
MAX_VOLUME = "max"  # a window's ceiling
PRIORITY = "p"  # a window's allowed priorities; a schedule item's own
KIND = "k"  # a schedule item's: file, relay or tone
SOURCE = "src"  # a schedule item's source: file:NAME, relay:NAME or tone:HZ
FROM = "from"  # an exception's first day
TO = "to"  # an exception's last day
MUTE = "mute"  # an exception that silences its days
# in CAP and ZONE_CAP
CAP_SESSION = "s"  # minutes one session may play
CAP_SESSIONS = "n"  # sessions a day
CAP_DAY = "d"  # minutes a day


class RulesError(ValueError):
    pass


def _hm(m):
    return "%02d:%02d" % (m // 60 % 24, m % 60)


def _zok(x, zones):
    z = x.get(ZONES)
    if not z:
        return True
    for a in zones:
        if a in z:
            return True
    return False


def _dayok(x, d):
    if not (x.get(DAYS, 127) >> weekday(d)) & 1:
        return False
    dr = x.get(DATES)
    if not dr:
        return True
    for a, b in dr:
        if a <= d <= b:
            return True
    return False


def _exc(R, d, zones, mute):
    for x in R.get(EXCEPTIONS, ()):
        if x[FROM] <= d <= x[TO] and _zok(x, zones) and bool(x.get(MUTE)) == mute:
            return x
    return None


def _span(x):
    # (start, end) seconds from the start day's midnight; end > 1 day crosses it
    s = x[START] * 60
    e = s + x[DURATION] * 60 if DURATION in x else x[END] * 60
    return s, (e + DAY if e <= s else e)


def _window(R, lt, zones):
    """The window open at local time lt for zones (first in file order)."""
    d, sec = divmod(lt, DAY)
    for dd, off in ((d, sec), (d - 1, sec + DAY)):
        x = _exc(R, dd, zones, False)
        for w in (x.get(WINDOWS, ()) if x else R.get(WINDOWS, ())):
            s, e = _span(w)
            if s <= off < e and _zok(w, zones) and _dayok(w, dd):
                return w
    return None


def _quiet(R, lt):
    q = R.get(QUIET)
    if not q:
        return False
    sec = lt % DAY
    s, e = q[0] * 60, q[1] * 60
    return s <= sec < e if s < e else (sec >= s or sec < e)


def _items(R, lt, zones):
    """[(item, local end)] of schedule items running at local time lt."""
    d, sec = divmod(lt, DAY)
    out = []
    for it in R.get(SCHEDULE, ()):
        s, e = _span(it)
        for dd, off in ((d, sec), (d - 1, sec + DAY)):
            if s <= off < e and _zok(it, zones) and _dayok(it, dd):
                out.append((it, dd * DAY + e))
                break
    return out


def _marks(R):
    m = {0}
    q = R.get(QUIET)
    if q:
        m.add(q[0])
        m.add(q[1] % 1440)
    for ws in [R.get(WINDOWS, ())] + [x.get(WINDOWS, ()) for x in R.get(EXCEPTIONS, ())]:
        for w in ws:
            m.add(w[START])
            m.add(w[END] % 1440)
    for it in R.get(SCHEDULE, ()):
        m.add(it[START])
        m.add((it[START] + it[DURATION]) % 1440)
    return sorted(m)


def _after(R, lt, days):
    """Local instants (mark minutes) after lt, in order, for `days` days."""
    marks = _marks(R)
    d = lt // DAY
    for dd in range(d, d + days + 1):
        for m in marks:
            c = dd * DAY + m * 60
            if c > lt:
                yield c


def _lowest_volume(R):
    v = [min(w[VOLUME], w[MAX_VOLUME]) for w in R.get(WINDOWS, ())]
    return min(v) if v else 50


def _decide(R, lt, pri, kind, zones, vol, run, usage, trusted):
    """(allow, volume, reason, seconds of cap left or None) at local time lt.

    The reason is a code with its parameters (docs/rules.md lists them); the
    host words it in the reader's language, the node only logs it.
    """
    if pri == "emergency":
        ev = R.get(EMERGENCY_VOLUME, 100)
        return True, ev, {"code": "emergency", "volume": ev}, None
    if not trusted:
        if kind == "live":
            v = _lowest_volume(R)
            return True, v, {"code": "untrusted_live", "volume": v}, None
        return False, 0, {"code": "untrusted_waits", "kind": kind}, None
    if _quiet(R, lt):
        q = R[QUIET]
        return False, 0, {"code": "quiet_hours", "start": _hm(q[0]), "end": _hm(q[1])}, None
    d = lt // DAY
    x = _exc(R, d, zones, True)
    if x:
        return False, 0, {"code": "exception_mutes", "exception": x[ID]}, None
    w = _window(R, lt, zones)
    if w is None:
        return False, 0, {"code": "outside_windows", "zones": list(zones)}, None
    if pri not in w.get(PRIORITY, BROADCAST_PRIORITIES):
        return False, 0, {"code": "window_denies_priority", "window": w[ID],
                          "priority": pri}, None
    cap, by = _caps(R, zones)
    n, used = (usage.get("n", 0), usage.get("s", 0)) if usage.get("day") == d else (0, 0)
    left = None
    if cap.get(CAP_SESSIONS) and not run and n >= cap[CAP_SESSIONS]:
        return False, 0, _limit("sessions_per_day", cap, by, CAP_SESSIONS), None
    if cap.get(CAP_DAY):
        left = cap[CAP_DAY] * 60 - used
        if left <= 0:
            return False, 0, _limit("minutes_per_day", cap, by, CAP_DAY), None
        midnight = DAY - lt % DAY
        if left > midnight:  # tomorrow's budget starts at midnight
            left = midnight + cap[CAP_DAY] * 60 if cap[CAP_DAY] < 1440 else None
    if cap.get(CAP_SESSION):
        s = cap[CAP_SESSION] * 60 - run
        if s <= 0:
            return False, 0, _limit("session_minutes", cap, by, CAP_SESSION), None
        left = s if left is None else min(left, s)
    v = min(w[VOLUME] if vol is None else vol, w[MAX_VOLUME])
    return True, v, {"code": "window_allows", "window": w[ID], "start": _hm(w["s"]),
                     "end": _hm(w[END]), "priority": pri, "volume": v, "cap": w[MAX_VOLUME]}, left


def _caps(R, zones):
    """The commune's limits tightened by those of the request's zones; and
    which zone set each limit that a zone tightened."""
    cap = R.get(CAP, {})
    zcap = R.get(ZONE_CAP)
    by = {}  # type: dict
    if not zcap:
        return cap, by
    cap = dict(cap)
    for z in zones:
        for k, v in zcap.get(z, {}).items():
            if not cap.get(k) or v < cap[k]:
                cap[k] = v
                by[k] = z
    return cap, by


def _limit(code, cap, by, k):
    r = {"code": code, "limit": cap[k]}
    if k in by:
        r["zone"] = by[k]
    return r


def _request(req):
    pri = req.get("priority", "normal")
    kind = req.get("kind", "live")
    if pri not in PRIORITIES:
        raise RulesError("priority must be one of " + ", ".join(PRIORITIES))
    if kind not in KINDS:
        raise RulesError("kind must be one of " + ", ".join(KINDS))
    zones = req.get("zones") or ()
    if isinstance(zones, str):
        zones = (zones,)
    if not isinstance(zones, (list, tuple)) or not all(isinstance(z, str) for z in zones):
        raise RulesError("zones must be a list of zone names")
    vol = req.get("volume")
    run = req.get("running_s", 0)
    for k, v, hi in (("volume", vol, 100), ("running_s", run, 0x3FFFFFFF)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= hi):
            raise RulesError("%s must be an integer from 0 to %d" % (k, hi))
    return pri, kind, zones, vol, run


def evaluate(R, now, req, usage=None, trusted=True):
    """May req play at now? {allow, volume, reason, until}.

    req: {priority, kind, zones, volume (asked, optional), running_s (seconds
    this session has played, 0 for a new one)}. usage: {day (local day
    number), n (sessions started that day), s (seconds played that day)}.
    until: the first instant (t2k) the answer changes if the request keeps
    playing, or None if it does not change within HORIZON_DAYS.
    """
    pri, kind, zones, vol, run = _request(req)
    usage = usage or {}
    tz = R.get(TZ, TZ_MIN) * 60
    lt = now + tz
    a = _decide(R, lt, pri, kind, zones, vol, run, usage, trusted)
    until = None if a[3] is None else now + a[3]
    if pri != "emergency" and trusted:
        for c in _after(R, lt, HORIZON_DAYS):
            if until is not None and c - tz >= until:
                break
            if _decide(R, c, pri, kind, zones, vol, run, usage, trusted)[:3] != a[:3]:
                until = c - tz
                break
    return {"allow": a[0], "volume": a[1], "reason": a[2], "until": until}


def _state(R, lt, zones):
    w = _window(R, lt, zones)
    x = _exc(R, lt // DAY, zones, True)
    return (lt // DAY, _quiet(R, lt), x and x[ID], w and w[ID],
            [it[ID] for it, _ in _items(R, lt, zones)])


def next_change(R, now, zones=()):
    """First instant after now at which any answer for zones may change."""
    tz = R.get(TZ, TZ_MIN) * 60
    lt = now + tz
    s0 = _state(R, lt, zones)
    for c in _after(R, lt, 1):
        if _state(R, c, zones) != s0:
            return c - tz
    return now + DAY  # unreachable: the local day always changes at midnight


def current(R, now, zones=()):
    """What the rules say for zones at now: open window, quiet, running items."""
    lt = now + R.get(TZ, TZ_MIN) * 60
    w = _window(R, lt, zones)
    x = _exc(R, lt // DAY, zones, True)
    return {
        "window": w and w[ID],
        "quiet": _quiet(R, lt),
        "muted": x and x[ID],
        "items": [(it, end - lt + now) for it, end in _items(R, lt, zones)],
        "day": lt // DAY,
    }


def item_request(it, zones):
    return {"priority": it.get(PRIORITY, "normal"), "kind": it[KIND], "zones": zones,
            "volume": it.get(VOLUME)}
