# Checks the compiled form of the rules (engine.py evaluates it) on arrival,
# so malformed rules never replace good ones. A module of its own because
# the node needs it only while accepting rules: it is unloaded afterwards.
from ..control.protocol import BROADCAST_PRIORITIES, PRIORITIES, SCHEDULE_KINDS
from ..timeutil import DAY
from .engine import (
    CAP,
    CAP_DAY,
    CAP_SESSION,
    CAP_SESSIONS,
    DATES,
    DAYS,
    DURATION,
    EMERGENCY_VOLUME,
    END,
    EXCEPTIONS,
    FILES,
    FORMAT,
    FROM,
    ID,
    KIND,
    MAX_VOLUME,
    MUTE,
    PRIORITY,
    QUIET,
    SCHEDULE,
    SOURCE,
    START,
    STREAMS,
    TO,
    TZ,
    VER,
    VOLUME,
    WINDOWS,
    ZONE_CAP,
    ZONES,
    RulesError,
)

_TOP = (FORMAT, VER, TZ, QUIET, EMERGENCY_VOLUME, CAP, ZONE_CAP, WINDOWS, SCHEDULE, EXCEPTIONS,
        STREAMS, FILES)
_WIN = (ID, DAYS, DATES, START, END, VOLUME, MAX_VOLUME, PRIORITY, ZONES)
_ITEM = (ID, SOURCE, KIND, PRIORITY, START, DURATION, DAYS, DATES, ZONES, VOLUME)
_EXC = (ID, FROM, TO, ZONES, MUTE, WINDOWS)
_CAP = (CAP_SESSION, CAP_SESSIONS, CAP_DAY)


def _fail(where, msg):
    raise RulesError("%s: %s" % (where, msg))


def _obj(x, where, keys, need):
    if not isinstance(x, dict):
        _fail(where, "must be an object")
    for k in x:
        if k not in keys:
            _fail(where, "unknown field %r; allowed: %s" % (k, ", ".join(keys)))
    for k in need:
        if k not in x:
            _fail(where, "missing " + k)


def _int(x, k, lo, hi, where):
    v = x.get(k, lo)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        _fail(where + "." + k, "must be an integer from %d to %d" % (lo, hi))


def _list(x, k, where):
    v = x.get(k, [])
    if not isinstance(v, list):
        _fail(where + "." + k, "must be a list")
    return v


def _common(x, where):
    _int(x, DAYS, 0, 127, where)
    for r in _list(x, DATES, where):
        if not (isinstance(r, list) and len(r) == 2 and isinstance(r[0], int)
                and isinstance(r[1], int) and r[0] <= r[1]):
            _fail(where + "." + DATES, "must be [first day, last day] pairs")
    for z in _list(x, ZONES, where):
        if not isinstance(z, str):
            _fail(where + "." + ZONES, "must be zone names")
    if not isinstance(x[ID], str):
        _fail(where + "." + ID, "must be a string")


def _check_win(w, where):
    _obj(w, where, _WIN, (ID, START, END, VOLUME, MAX_VOLUME))
    _common(w, where)
    _int(w, START, 0, 1439, where)
    _int(w, END, 0, 1440, where)
    _int(w, VOLUME, 0, 100, where)
    _int(w, MAX_VOLUME, 0, 100, where)
    for p in _list(w, PRIORITY, where):
        if p not in BROADCAST_PRIORITIES:
            _fail(where + "." + PRIORITY, "must be among " + ", ".join(BROADCAST_PRIORITIES))


def _session(s, where):
    # the sources relay:NAME and file:NAME play: what a play command would take
    from ..audio import sdp
    try:
        sdp.session(s)
    except ValueError as e:
        _fail(where, str(e))


def check(R):
    """Raise RulesError naming the first malformed field of compiled rules R."""
    _obj(R, "rules", _TOP, (FORMAT,))
    if R[FORMAT] != 1:
        _fail("rules." + FORMAT, "format version must be 1")
    if not isinstance(R.get(VER, ""), str):
        _fail("rules." + VER, "must be a string")
    _int(R, TZ, -720, 840, "rules")
    _int(R, EMERGENCY_VOLUME, 0, 100, "rules")
    q = R.get(QUIET, [])
    if q and not (isinstance(q, list) and len(q) == 2 and all(
            isinstance(m, int) and 0 <= m < 1440 for m in q)):
        _fail("rules." + QUIET, "quiet hours must be [start, end] minutes of the day")
    caps = [("rules." + CAP, R.get(CAP, {}))]
    zcap = R.get(ZONE_CAP, {})
    if not isinstance(zcap, dict):
        _fail("rules." + ZONE_CAP, "must be an object of zone limits")
    for z in zcap:
        caps.append(("rules.%s.%s" % (ZONE_CAP, z), zcap[z]))
    for where, cap in caps:
        _obj(cap, where, _CAP, ())
        for k in cap:
            _int(cap, k, 0, 1440, where)
    st = R.get(STREAMS, {})
    if not isinstance(st, dict):
        _fail("rules." + STREAMS, "must be an object of stream sessions")
    for name in st:
        _session(st[name], "rules.%s.%s" % (STREAMS, name))
    if FILES in R:
        _session(R[FILES], "rules." + FILES)
    for i, w in enumerate(_list(R, WINDOWS, "rules")):
        _check_win(w, "rules.%s[%d]" % (WINDOWS, i))
    for i, it in enumerate(_list(R, SCHEDULE, "rules")):
        where = "rules.%s[%d]" % (SCHEDULE, i)
        _obj(it, where, _ITEM, (ID, SOURCE, KIND, START, DURATION))
        _common(it, where)
        _int(it, START, 0, 1439, where)
        _int(it, DURATION, 1, 1440, where)
        if it[KIND] not in SCHEDULE_KINDS or it.get(PRIORITY, "normal") not in PRIORITIES:
            _fail(where, "kind must be file, relay or tone and p a priority")
        if VOLUME in it:
            _int(it, VOLUME, 0, 100, where)
    for i, x in enumerate(_list(R, EXCEPTIONS, "rules")):
        where = "rules.%s[%d]" % (EXCEPTIONS, i)
        _obj(x, where, _EXC, (ID, FROM, TO))
        _common(x, where)
        _int(x, FROM, 0, 0x3FFFFFFF // DAY, where)
        _int(x, TO, x[FROM], 0x3FFFFFFF // DAY, where)
        for j, w in enumerate(_list(x, WINDOWS, where)):
            _check_win(w, where + ".%s[%d]" % (WINDOWS, j))
