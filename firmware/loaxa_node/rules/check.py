# Checks the compiled form of the rules (engine.py evaluates it) on arrival,
# so malformed rules never replace good ones. A module of its own because
# the node needs it only while accepting rules: it is unloaded afterwards.
from ..timeutil import DAY
from .engine import _WIN_PRI, KINDS, PRIORITIES, RulesError

_TOP = ("v", "ver", "tz", "q", "ev", "cap", "zcap", "w", "sch", "x", "st", "fs")
_WIN = ("id", "d", "dr", "s", "e", "vol", "max", "p", "z")
_ITEM = ("id", "src", "k", "p", "s", "dur", "d", "dr", "z", "vol")
_EXC = ("id", "from", "to", "z", "mute", "w")


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
    _int(x, "d", 0, 127, where)
    for r in _list(x, "dr", where):
        if not (isinstance(r, list) and len(r) == 2 and isinstance(r[0], int)
                and isinstance(r[1], int) and r[0] <= r[1]):
            _fail(where + ".dr", "must be [first day, last day] pairs")
    for z in _list(x, "z", where):
        if not isinstance(z, str):
            _fail(where + ".z", "must be zone names")
    if not isinstance(x["id"], str):
        _fail(where + ".id", "must be a string")


def _check_win(w, where):
    _obj(w, where, _WIN, ("id", "s", "e", "vol", "max"))
    _common(w, where)
    _int(w, "s", 0, 1439, where)
    _int(w, "e", 0, 1440, where)
    _int(w, "vol", 0, 100, where)
    _int(w, "max", 0, 100, where)
    for p in _list(w, "p", where):
        if p not in _WIN_PRI:
            _fail(where + ".p", "must be among " + ", ".join(_WIN_PRI))


def _session(s, where):
    # the sources relay:NAME and file:NAME play: what a play command would take
    from ..audio import sdp
    try:
        sdp.session(s)
    except ValueError as e:
        _fail(where, str(e))


def check(R):
    """Raise RulesError naming the first malformed field of compiled rules R."""
    _obj(R, "rules", _TOP, ("v",))
    if R["v"] != 1:
        _fail("rules.v", "format version must be 1")
    if not isinstance(R.get("ver", ""), str):
        _fail("rules.ver", "must be a string")
    _int(R, "tz", -720, 840, "rules")
    _int(R, "ev", 0, 100, "rules")
    q = R.get("q", [])
    if q and not (isinstance(q, list) and len(q) == 2 and all(
            isinstance(m, int) and 0 <= m < 1440 for m in q)):
        _fail("rules.q", "quiet hours must be [start, end] minutes of the day")
    caps = [("rules.cap", R.get("cap", {}))]
    zcap = R.get("zcap", {})
    if not isinstance(zcap, dict):
        _fail("rules.zcap", "must be an object of zone limits")
    for z in zcap:
        caps.append(("rules.zcap." + str(z), zcap[z]))
    for where, cap in caps:
        _obj(cap, where, ("s", "n", "d"), ())
        for k in cap:
            _int(cap, k, 0, 1440, where)
    st = R.get("st", {})
    if not isinstance(st, dict):
        _fail("rules.st", "must be an object of stream sessions")
    for name in st:
        _session(st[name], "rules.st." + str(name))
    if "fs" in R:
        _session(R["fs"], "rules.fs")
    for i, w in enumerate(_list(R, "w", "rules")):
        _check_win(w, "rules.w[%d]" % i)
    for i, it in enumerate(_list(R, "sch", "rules")):
        where = "rules.sch[%d]" % i
        _obj(it, where, _ITEM, ("id", "src", "k", "s", "dur"))
        _common(it, where)
        _int(it, "s", 0, 1439, where)
        _int(it, "dur", 1, 1440, where)
        if it["k"] not in KINDS[1:] or it.get("p", "normal") not in PRIORITIES:
            _fail(where, "kind must be file, relay or tone and p a priority")
        if "vol" in it:
            _int(it, "vol", 0, 100, where)
    for i, x in enumerate(_list(R, "x", "rules")):
        where = "rules.x[%d]" % i
        _obj(x, where, _EXC, ("id", "from", "to"))
        _common(x, where)
        _int(x, "from", 0, 0x3FFFFFFF // DAY, where)
        _int(x, "to", x["from"], 0x3FFFFFFF // DAY, where)
        for j, w in enumerate(_list(x, "w", where)):
            _check_win(w, where + ".w[%d]" % j)
