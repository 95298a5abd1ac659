"""Civil time on the node's 2000 epoch, identical on both interpreters."""

import calendar
import datetime
import json
import random

from loaxa_node import timeutil

CASES = [(2000, 1, 1), (2000, 2, 29), (2024, 2, 29), (2025, 12, 31), (2026, 1, 1),
         (2026, 11, 22), (2033, 12, 31), (1999, 12, 31)]


def test_matches_cpython_calendar():
    for y, m, d in CASES:
        t = timeutil.t2k(y, m, d, 23, 59, 58)
        assert t + timeutil.UNIX_OFFSET == calendar.timegm((y, m, d, 23, 59, 58, 0, 0, 0))
        assert timeutil.civil(t) == (y, m, d, 23, 59, 58, datetime.date(y, m, d).weekday())


def test_parse_iso_with_offsets():
    assert timeutil.parse_iso("2026-11-22T17:30:00+07:00") == timeutil.t2k(2026, 11, 22, 10, 30)
    assert timeutil.parse_iso("2026-11-22T10:30Z") == timeutil.t2k(2026, 11, 22, 10, 30)
    assert timeutil.iso(timeutil.t2k(2026, 1, 1), 420) == "2026-01-01T07:00:00+07:00"


def test_same_answers_under_micropython(upy):
    rng = random.Random(7)
    ts = [rng.randrange(0, 0x3FFFFFFF) for _ in range(300)]
    code = (
        "import json\nfrom loaxa_node import timeutil\n"
        f"ts = {ts!r}\n"
        "print(json.dumps([[list(timeutil.civil(t)), timeutil.iso(t, 420)] for t in ts]))"
    )
    assert upy.json(code) == json.loads(
        json.dumps([[list(timeutil.civil(t)), timeutil.iso(t, 420)] for t in ts]))
