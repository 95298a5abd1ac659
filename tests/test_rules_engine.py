"""The rules engine: same answers on both interpreters, and the promises it makes.

Random compiled rule sets (hypothesis) cover windows crossing midnight, date
ranges, exceptions, zones, caps, schedule items and time zones; instants
cluster around 29 February and the year end, where calendars break.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaxa_node import timeutil
from loaxa_node.rules import check as rulecheck
from loaxa_node.rules import engine as rules
from loaxa_node.timeutil import DAY, t2k

# Local days the instants and dated rules cluster around.
BASE_DAYS = [timeutil.days_from_civil(*d) for d in
             ((2024, 2, 28), (2026, 12, 31), (2028, 2, 29), (2026, 11, 23), (2000, 1, 8))]
ZONES = ("a", "b", "c")
TZS = (420, 0, -300, 345, 840, -720)

minute = st.integers(0, 1439)
zones = st.lists(st.sampled_from(ZONES), max_size=2, unique=True)


@st.composite
def window(draw, wid, base):
    s = draw(minute)
    e = (s + draw(st.integers(1, 1439))) % 1440 or 1440
    mx = draw(st.integers(0, 100))
    w = {"id": wid, "d": draw(st.sampled_from((127, 31, 63)) | st.integers(1, 127)), "s": s, "e": e,
         "vol": draw(st.integers(0, mx)), "max": mx}
    if draw(st.booleans()):
        w["p"] = draw(st.lists(st.sampled_from(("priority", "normal", "test")), min_size=1,
                               max_size=3, unique=True))
    if draw(st.integers(0, 3)) == 0:
        w["z"] = draw(st.lists(st.sampled_from(ZONES), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 3)) == 0:
        a = base + draw(st.integers(-3, 3))
        w["dr"] = [[a, a + draw(st.integers(0, 3))]]
    return w


@st.composite
def rule_sets(draw):
    base = draw(st.sampled_from(BASE_DAYS))
    R: dict = {"v": 1, "ver": "t", "tz": draw(st.sampled_from(TZS)),
               "ev": draw(st.integers(0, 100))}
    if draw(st.integers(0, 2)) == 0:
        q = draw(st.tuples(minute, minute).filter(lambda q: q[0] != q[1]))
        R["q"] = list(q)
    R["w"] = [draw(window(f"w{i}", base)) for i in range(draw(st.integers(1, 5)))]
    cap = {}
    for k, hi in (("s", 120), ("n", 3), ("d", 300)):
        if draw(st.booleans()):
            cap[k] = draw(st.integers(1, hi))
    if cap:
        R["cap"] = cap
    zcap = {}
    for z in ZONES:  # a zone's own limits, tighter or looser than the commune's
        c = {k: draw(st.integers(1, hi)) for k, hi in (("s", 120), ("n", 3), ("d", 300))
             if draw(st.integers(0, 3)) == 0}
        if c:
            zcap[z] = c
    if zcap:
        R["zcap"] = zcap
    items = []
    for i in range(draw(st.integers(0, 3))):
        it = {"id": f"i{i}", "src": "tone:440", "k": draw(st.sampled_from(("file", "relay",
                                                                              "tone"))),
              "p": draw(st.sampled_from(("priority", "normal", "test"))), "s": draw(minute),
              "dur": draw(st.integers(1, 240)), "d": draw(st.integers(1, 127))}
        z = draw(zones)
        if z:
            it["z"] = z
        items.append(it)
    if items:
        R["sch"] = items
    exc = []
    for i in range(draw(st.integers(0, 2))):
        a = base + draw(st.integers(-3, 3))
        x = {"id": f"x{i}", "from": a, "to": a + draw(st.integers(0, 2))}
        z = draw(zones)
        if z:
            x["z"] = z
        if draw(st.booleans()):
            x["mute"] = True
        else:
            n = draw(st.integers(0, 2))
            x["w"] = [draw(window(f"x{i}.w{j}", base)) for j in range(n)]
        exc.append(x)
    if exc:
        R["x"] = exc
    rulecheck.check(R)
    return R, base


@st.composite
def instants(draw, R, base):
    """t2k instants near the edges of R's windows and items, or anywhere."""
    day = base + draw(st.integers(-4, 4))
    marks = rules._marks(R)
    how = draw(st.integers(0, 3))
    if how == 0:  # inside a window, on a day it opens
        w = draw(st.sampled_from(R["w"]))
        days = [d for d in range(base - 4, base + 5) if rules._dayok(w, d)] or [day]
        s, e = rules._span(w)
        return draw(st.sampled_from(days)) * DAY + draw(st.integers(s, e - 1)) - R["tz"] * 60
    if how < 3 and len(marks) > 1:
        sec = draw(st.sampled_from(marks)) * 60 + draw(st.integers(-90, 90))
    else:
        sec = draw(st.integers(0, DAY - 1))
    return day * DAY + sec - R["tz"] * 60


requests = st.fixed_dictionaries({
    # normal first: hypothesis leans to the first choice, emergency is the trivial one
    "priority": st.sampled_from(("normal", "priority", "test", "emergency")),
    "kind": st.sampled_from(("file", "live", "relay", "tone")),
    "zones": zones,
    "volume": st.one_of(st.none(), st.integers(0, 100)),
    "running_s": st.one_of(st.just(0), st.integers(1, 3 * 3600)),
})


@st.composite
def cases(draw):
    R, base = draw(rule_sets())
    now = draw(instants(R, base))
    usage = draw(st.one_of(st.none(), st.fixed_dictionaries({
        "day": st.just((now + R["tz"] * 60) // DAY) | st.integers(0, 12000),
        "n": st.integers(0, 3), "s": st.integers(0, 20000)})))
    return R, now, draw(requests), usage, draw(st.sampled_from((True, True, False)))


def _local_day(R, t):
    return (t + R["tz"] * 60) // DAY


def _advance(R, now, t, usage, req):
    """Usage and request at t if req played from now on, counted like the node."""
    u = usage or {}
    d0, d1 = _local_day(R, now), _local_day(R, t)
    used, n = (u.get("s", 0), u.get("n", 0)) if u.get("day") == d0 else (0, 0)
    req = dict(req, running_s=req["running_s"] + t - now)
    if d1 == d0:
        return {"day": d0, "n": n, "s": used + t - now}, req
    return {"day": d1, "n": 1, "s": (t + R["tz"] * 60) % DAY}, req


def _same(a, b):
    return (a["allow"], a["volume"], a["reason"]) == (b["allow"], b["volume"], b["reason"])


FAST = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# -- both interpreters ------------------------------------------------------------

UPY_EVAL = """
import sys, json
from loaxa_node.rules import engine as rules
for line in sys.stdin:
    R, now, req, usage, trusted = json.loads(line)
    z = req["zones"]
    c = rules.current(R, now, z)
    print(json.dumps([rules.evaluate(R, now, req, usage, trusted), rules.next_change(R, now, z),
                      c["window"], c["quiet"], c["muted"], [[i["id"], e] for i, e in c["items"]]]))
"""


def _answers(R, now, req, usage, trusted):
    z = req["zones"]
    c = rules.current(R, now, z)
    return [rules.evaluate(R, now, req, usage, trusted), rules.next_change(R, now, z),
            c["window"], c["quiet"], c["muted"], [[i["id"], e] for i, e in c["items"]]]


def test_cpython_and_micropython_give_identical_answers(upy):
    collected: list = []

    @settings(max_examples=2000, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases())
    def collect(case):
        collected.append(case)

    collect()
    assert len(collected) >= 1000
    stdin = "".join(json.dumps(c) + "\n" for c in collected).encode()
    got = [json.loads(line) for line in upy.run(UPY_EVAL, stdin, timeout=300).splitlines()]
    want = [json.loads(json.dumps(_answers(*c))) for c in collected]
    assert len(got) == len(want)
    for case, g, w in zip(collected, got, want, strict=True):
        assert g == w, f"differ for {case}"


# -- invariants -------------------------------------------------------------------

@FAST
@given(cases())
def test_emergency_is_always_allowed_at_the_emergency_volume(case):
    R, now, req, usage, trusted = case
    d = rules.evaluate(R, now, dict(req, priority="emergency"), usage, trusted)
    assert d["allow"] and d["volume"] == R["ev"] and d["until"] is None


@FAST
@given(cases())
def test_nothing_but_emergency_plays_in_quiet_hours(case):
    R, now, req, usage, _ = case
    if req["priority"] == "emergency" or "q" not in R:
        return
    m = (now + R["tz"] * 60) % DAY // 60
    s, e = R["q"]
    quiet = s <= m < e if s < e else (m >= s or m < e)
    if quiet:
        assert not rules.evaluate(R, now, req, usage, True)["allow"]


@FAST
@given(cases())
def test_volume_never_exceeds_the_window_cap(case):
    R, now, req, usage, trusted = case
    if req["priority"] == "emergency":
        return
    d = rules.evaluate(R, now, req, usage, trusted)
    if not d["allow"]:
        return
    wins = R["w"] + [w for x in R.get("x", []) for w in x.get("w", [])]
    if trusted:
        wid = rules.current(R, now, req["zones"])["window"]
        cap = next(w["max"] for w in wins if w["id"] == wid)
    else:  # live on an untrusted clock: the quietest window
        cap = min([min(w["vol"], w["max"]) for w in R["w"]] or [50])
    assert d["volume"] <= cap


@FAST
@given(cases(), st.lists(st.floats(0, 1, exclude_max=True), min_size=3, max_size=3))
def test_answer_holds_until_until_and_changes_there(case, fractions):
    R, now, req, usage, trusted = case
    d = rules.evaluate(R, now, req, usage, trusted)
    until = d["until"]
    if until is None:
        return
    assert until > now
    for t in [now + int(f * (until - now)) for f in fractions] + [until - 1]:
        u, r = _advance(R, now, t, usage, req) if d["allow"] else (usage, req)
        assert _same(rules.evaluate(R, t, r, u, trusted), d), f"changed at {t}"
    u, r = _advance(R, now, until, usage, req) if d["allow"] else (usage, req)
    assert not _same(rules.evaluate(R, until, r, u, trusted), d)


@FAST
@given(cases(), st.floats(0, 1, exclude_max=True))
def test_next_change_is_the_next_change(case, f):
    R, now, req, usage, trusted = case
    z = req["zones"]
    nc = rules.next_change(R, now, z)
    assert now < nc <= now + DAY
    t = now + int(f * (nc - now))
    for r in (dict(req, priority=p) for p in rules.PRIORITIES):
        assert _same(rules.evaluate(R, t, r, usage, trusted),
                     rules.evaluate(R, now, r, usage, trusted))
    assert rules.current(R, t, z) == rules.current(R, now, z) or \
        rules.current(R, t, z)["items"] != rules.current(R, now, z)["items"]
    assert rules._state(R, nc + R["tz"] * 60, z) != rules._state(R, now + R["tz"] * 60, z)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(rule_sets(), requests, st.integers(0, 2**31))
def test_caps_are_never_exceeded_over_a_simulated_week(rs, req, seed):
    """A node that starts whenever allowed and stops at `until` or at random."""
    import random
    R, base = rs
    # the limits in force: the commune's, tightened by the request's zones'
    cap = dict(R.get("cap", {}))
    for z in req["zones"]:
        for k, v in R.get("zcap", {}).get(z, {}).items():
            cap[k] = min(cap.get(k, v), v)
    if req["priority"] == "emergency" or not cap:
        return
    rng = random.Random(seed)
    tz = R["tz"] * 60
    t = base * DAY - tz
    end = t + 7 * DAY
    usage = {"day": -1, "n": 0, "s": 0}
    req = dict(req, running_s=0)
    per_day: dict[int, list] = {}
    while t < end:
        d = rules.evaluate(R, t, req, usage, True)
        if not d["allow"]:
            t = d["until"] if d["until"] is not None else t + 3600
            continue
        day = _local_day(R, t)
        if usage["day"] != day:
            usage = {"day": day, "n": 0, "s": 0}
        usage["n"] += 1
        start = t
        # the broadcast lasts up to `length`; the node stops it earlier when the
        # rules say so, re-checking at each `until` as the scheduler does
        length = rng.choice((rng.randint(1, 3600), 2 * DAY))
        while True:
            stop = start + length if d["until"] is None else min(d["until"], start + length)
            for k in range(_local_day(R, t), _local_day(R, stop - 1) + 1):
                a = max(t, k * DAY - tz)
                b = min(stop, (k + 1) * DAY - tz)
                if b > a:
                    per_day.setdefault(k, [0, 0])[1] += b - a
            usage, _ = _advance(R, t, stop, usage, req)
            t = stop
            if t >= start + length:
                break
            d = rules.evaluate(R, t, dict(req, running_s=t - start), usage, True)
            if not d["allow"]:
                break
        if cap.get("s"):
            assert t - start <= cap["s"] * 60
        per_day.setdefault(_local_day(R, start), [0, 0])[0] += 1
        t += 1
    for k, (n, secs) in per_day.items():
        if cap.get("n"):
            assert n <= cap["n"], f"day {k}: {n} sessions"
        if cap.get("d"):
            assert secs <= cap["d"] * 60, f"day {k}: {secs} s"


# -- edge cases -------------------------------------------------------------------

def test_a_zone_limit_tightens_the_communes_for_that_zone_only():
    R = {"v": 1, "ver": "t", "tz": 0, "cap": {"d": 90, "n": 3}, "zcap": {"cho": {"d": 30}},
         "w": [{"id": "all", "d": 127, "s": 0, "e": 1439, "vol": 70, "max": 100}]}
    rulecheck.check(R)
    now = t2k(2026, 11, 23, 10, 0)
    usage = {"day": now // DAY, "n": 1, "s": 40 * 60}
    cho = rules.evaluate(R, now, {"zones": ["cho"]}, usage)
    assert not cho["allow"]
    assert cho["reason"] == {"code": "minutes_per_day", "limit": 30, "zone": "cho"}
    other = rules.evaluate(R, now, {"zones": ["thon1"]}, usage)
    assert other["allow"] and other["until"] == now + 50 * 60  # 90 - 40 minutes left
    # the tighter limit of two zones, and the commune's where no zone has one
    R["zcap"]["thon1"] = {"d": 60, "n": 2}
    both = rules.evaluate(R, now, {"zones": ["thon1", "cho"]}, dict(usage, s=0))
    assert both["allow"] and both["until"] == now + 30 * 60
    two = rules.evaluate(R, now, {"zones": ["thon1"]}, dict(usage, n=2, s=0))
    assert two["reason"] == {"code": "sessions_per_day", "limit": 2, "zone": "thon1"}


def _R(**kw):
    R = {"v": 1, "ver": "t", "tz": 420, "w": []}
    R.update(kw)
    rulecheck.check(R)
    return R


def _at(R, y, m, d, hh, mm, ss=0, **req):
    now = t2k(y, m, d, hh, mm, ss) - R["tz"] * 60
    return rules.evaluate(R, now, dict({"priority": "normal", "kind": "live"}, **req))


FRI = 1 << 4


def test_window_crossing_midnight_belongs_to_the_day_it_starts():
    R = _R(w=[{"id": "night", "d": FRI, "s": 22 * 60, "e": 2 * 60, "vol": 50, "max": 60}])
    assert _at(R, 2026, 11, 27, 23, 0)["allow"]  # Friday 23:00
    assert _at(R, 2026, 11, 28, 1, 59, 59)["allow"]  # Saturday 01:59:59, Friday's window
    d = _at(R, 2026, 11, 28, 2, 0)
    assert not d["allow"] and d["reason"] == {"code": "outside_windows", "zones": []}
    assert not _at(R, 2026, 11, 28, 23, 0)["allow"]  # Saturday night: no window
    assert not _at(R, 2026, 11, 27, 1, 0)["allow"]  # Friday 01:00: Thursday had none


def test_until_of_a_midnight_window_is_its_end_next_day():
    R = _R(w=[{"id": "night", "d": FRI, "s": 22 * 60, "e": 2 * 60, "vol": 50, "max": 60}])
    d = _at(R, 2026, 11, 27, 23, 0)
    assert d["until"] == t2k(2026, 11, 28, 2, 0) - 7 * 3600


def test_29_february_date_range_and_year_end():
    leap = timeutil.days_from_civil(2028, 2, 29)
    R = _R(w=[{"id": "leap", "d": 127, "dr": [[leap, leap]], "s": 600, "e": 660, "vol": 50,
               "max": 60}])
    assert _at(R, 2028, 2, 29, 10, 30)["allow"]
    assert not _at(R, 2028, 2, 28, 10, 30)["allow"]
    assert not _at(R, 2028, 3, 1, 10, 30)["allow"]
    ny = timeutil.days_from_civil(2026, 12, 31)
    R = _R(w=[{"id": "nye", "d": 127, "dr": [[ny, ny]], "s": 23 * 60, "e": 60, "vol": 50,
               "max": 60}])
    assert _at(R, 2027, 1, 1, 0, 30)["allow"]  # started on 31 December
    assert _at(R, 2026, 12, 31, 23, 0)["until"] == t2k(2027, 1, 1, 1, 0) - 7 * 3600


@pytest.mark.parametrize("date,weekday", [((2026, 11, 23), 0), ((2026, 11, 29), 6),
                                          ((2000, 1, 1), 5), ((2028, 2, 29), 1),
                                          ((2027, 1, 1), 4)])
def test_days_of_week_map_monday_to_bit_0(date, weekday):
    R = _R(w=[{"id": "w", "d": 1 << weekday, "s": 600, "e": 660, "vol": 50, "max": 60}])
    assert _at(R, *date, 10, 30)["allow"]
    other = (weekday + 1) % 7
    R = _R(w=[{"id": "w", "d": 1 << other, "s": 600, "e": 660, "vol": 50, "max": 60}])
    assert not _at(R, *date, 10, 30)["allow"]


@pytest.mark.parametrize("tz", [420, 0, -300, 345, 840, -720])
def test_time_zone_offsets_move_windows_to_local_time(tz):
    R = _R(tz=tz, w=[{"id": "w", "d": 127, "s": 330, "e": 375, "vol": 50, "max": 60}])
    utc = t2k(2026, 11, 23, 5, 30) - tz * 60  # 05:30 local
    req = {"priority": "normal", "kind": "live"}
    assert not rules.evaluate(R, utc - 1, req)["allow"]
    assert rules.evaluate(R, utc - 1, req)["until"] == utc
    assert rules.evaluate(R, utc, req)["allow"]


def test_clock_untrusted_holds_scheduled_and_relay_but_not_live_or_emergency():
    R = _R(w=[{"id": "w", "d": 127, "s": 0, "e": 1440, "vol": 60, "max": 80}])
    now = t2k(2026, 11, 23, 10, 0)
    for kind in ("file", "relay", "tone"):
        d = rules.evaluate(R, now, {"kind": kind}, None, False)
        assert not d["allow"] and d["reason"] == {"code": "untrusted_waits", "kind": kind}
    live = rules.evaluate(R, now, {"kind": "live"}, None, False)
    assert live["volume"] == 60 and live["reason"] == {"code": "untrusted_live", "volume": 60}
    assert rules.evaluate(R, now, {"priority": "emergency", "kind": "relay"}, None, False)["allow"]


def test_caps_refuse_with_the_rule_named():
    R = _R(cap={"n": 2, "d": 30, "s": 15},
           w=[{"id": "w", "d": 127, "s": 0, "e": 1440, "vol": 60, "max": 80}])
    now = t2k(2026, 11, 23, 10, 0) - 7 * 3600
    day = (now + 7 * 3600) // DAY
    assert rules.evaluate(R, now, {}, {"day": day, "n": 2, "s": 0})["reason"] == \
        {"code": "sessions_per_day", "limit": 2}
    assert rules.evaluate(R, now, {}, {"day": day, "n": 1, "s": 1800})["reason"] == \
        {"code": "minutes_per_day", "limit": 30}
    assert rules.evaluate(R, now, {"running_s": 900})["reason"] == \
        {"code": "session_minutes", "limit": 15}
    d = rules.evaluate(R, now, {}, {"day": day, "n": 1, "s": 1500})
    assert d["allow"] and d["until"] == now + 300
    assert rules.evaluate(R, now, {}, {"day": day - 1, "n": 2, "s": 1800})["allow"]  # new day


def test_exception_replaces_windows_only_on_its_dates():
    day = timeutil.days_from_civil(2027, 9, 2)
    R = _R(w=[{"id": "w", "d": 127, "s": 330, "e": 375, "vol": 60, "max": 80}],
           x=[{"id": "qk", "from": day, "to": day,
               "w": [{"id": "qk.le", "s": 420, "e": 540, "vol": 80, "max": 90}]}])
    assert not _at(R, 2027, 9, 2, 5, 40)["allow"]
    d = _at(R, 2027, 9, 2, 7, 30)
    assert d["allow"] and d["volume"] == 80
    assert d["reason"] == {"code": "window_allows", "window": "qk.le", "start": "07:00",
                           "end": "09:00", "priority": "normal", "volume": 80, "cap": 90}
    assert _at(R, 2027, 9, 3, 5, 40)["allow"]


@pytest.mark.parametrize("bad,where", [
    ({"v": 2}, "rules.v"),
    ({"v": 1, "w": [{"id": "w", "s": 0, "e": 60, "vol": 101, "max": 100}]}, "rules.w[0].vol"),
    ({"v": 1, "w": [{"id": "w", "s": 0, "e": 60, "vol": 1, "max": 1, "colour": 1}]},
     "rules.w[0]"),
    ({"v": 1, "extra": 1}, "rules"),
    ({"v": 1, "cap": {"n": -1}}, "rules.cap.n"),
    ({"v": 1, "sch": [{"id": "i", "src": "x", "k": "live", "s": 0, "dur": 1}]}, "rules.sch[0]"),
    ([], "rules"),
])
def test_check_names_the_bad_field(bad, where):
    with pytest.raises(rules.RulesError) as e:
        rulecheck.check(bad)
    assert str(e.value).startswith(where + ":")


def test_daily_cap_starts_afresh_at_midnight_for_a_running_session():
    R = _R(cap={"d": 60}, w=[{"id": "w", "d": 127, "s": 22 * 60, "e": 3 * 60, "vol": 60,
                              "max": 80}])
    now = t2k(2026, 11, 23, 23, 30) - 7 * 3600
    day = (now + 7 * 3600) // DAY
    d = rules.evaluate(R, now, {"running_s": 600}, {"day": day, "n": 1, "s": 600})
    # 50 minutes left today, but today ends in 30: tomorrow's 60 minutes then run out
    assert d["allow"] and d["until"] == t2k(2026, 11, 24, 1, 0) - 7 * 3600


@pytest.mark.parametrize("req,msg", [
    ({"priority": "urgent"}, "priority must be one of"),
    ({"kind": "mp3"}, "kind must be one of"),
    ({"zones": 5}, "zones must be a list"),
    ({"volume": 101}, "volume must be an integer from 0 to 100"),
    ({"running_s": -1}, "running_s must be"),
])
def test_bad_requests_are_refused_with_what_is_allowed(req, msg):
    with pytest.raises(rules.RulesError) as e:
        rules.evaluate(_R(), 0, req)
    assert msg in str(e.value)
