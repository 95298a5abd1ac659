"""Exceptions on lunar dates: the host compiler resolves them to solar dates by
the Vietnamese lunar calendar (UTC+7); the node sees plain solar exceptions."""

from __future__ import annotations

import datetime

import pytest

from loaxa.rules import RulesFileError, _lunar_day, compile_text
from loaxa_node import timeutil
from loaxa_node.rules import engine as rules

BASE = """
version = "lunar"
[[window]]
name = "morning"
days = "daily"
time = "06:30-07:15"
"""

# Tết Nguyên Đán, published (Việt Nam). 1985 and 2007 are the years the
# Vietnamese calendar (UTC+7) differs from the Chinese one (UTC+8):
# China's New Year fell on 1985-02-20 and 2007-02-18.
TET = {1985: "1985-01-21", 2007: "2007-02-17", 2020: "2020-01-25", 2021: "2021-02-12",
       2022: "2022-02-01", 2023: "2023-01-22", 2024: "2024-02-10", 2025: "2025-01-29",
       2026: "2026-02-17"}
CHINA = {1985: "1985-02-20", 2007: "2007-02-18"}
GIO_TO = {2024: "2024-04-18", 2025: "2025-04-07", 2026: "2026-04-26"}  # 10/3 âm lịch


def day(iso: str) -> int:
    d = datetime.date.fromisoformat(iso)
    return timeutil.days_from_civil(d.year, d.month, d.day)


def iso(dn: int) -> str:
    y, m, d = timeutil.civil_from_days(dn)
    return f"{y:04d}-{m:02d}-{d:02d}"


def exceptions(dates: str, years: str, **kw) -> list[dict]:
    text = f'years = "{years}"\n' + BASE
    text += f'[[exception]]\nname = "x"\ndates = "{dates}"\nmute = true\n'
    return compile_text(text, **kw).rules["x"]


def test_tet_resolves_to_the_published_vietnamese_dates():
    for y, want in TET.items():
        assert iso(_lunar_day(1, 1, y)) == want, y
    for y, china in CHINA.items():
        assert iso(_lunar_day(1, 1, y)) != china
    # through the compiler (the node's day numbers start in 2000)
    xs = exceptions("lunar:01-01", "2007..2026")
    got = {timeutil.civil_from_days(x["from"])[0]: iso(x["from"]) for x in xs}
    assert all(got[y] == TET[y] for y in TET if y >= 2007)
    assert len(xs) == 20 and all(x["id"] == "x" for x in xs)


def test_gio_to_hung_vuong_and_the_five_days_of_tet():
    xs = exceptions("lunar:03-10", "2024..2026")
    assert [iso(x["from"]) for x in xs] == list(GIO_TO.values())
    assert all(x["from"] == x["to"] for x in xs)
    (x,) = exceptions("lunar:01-01..01-05", "2027")
    assert (iso(x["from"]), iso(x["to"])) == ("2027-02-06", "2027-02-10")
    # across the lunar new year: 23 tháng Chạp (Ông Công Ông Táo) to mùng 3
    (x,) = exceptions("lunar:12-23..01-03", "2025")
    assert (iso(x["from"]), iso(x["to"])) == ("2026-02-10", "2026-02-19")


def test_without_years_the_five_years_from_this_year():
    xs = exceptions("lunar:01-01", "2026", this_year=2030)  # years given: it wins
    assert len(xs) == 1
    text = BASE + '[[exception]]\nname = "tet"\ndates = "lunar:01-01"\nmute = true\n'
    xs = compile_text(text, this_year=2024).rules["x"]
    assert [iso(x["from"]) for x in xs] == [TET[2024], TET[2025], TET[2026], "2027-02-06",
                                            "2028-01-26"]


def test_day_30_is_the_last_day_of_the_month_in_years_it_has_29():
    # "30 Tết": tháng Chạp has 30 days before Tết 2023 and 2024, then 29 up to
    # Tết 2030, when the eve is the 29th
    xs = exceptions("lunar:12-30", "2022..2025")
    assert [iso(x["from"]) for x in xs] == ["2023-01-21", "2024-02-09", "2025-01-28",
                                            "2026-02-16"]
    assert all(x["from"] + 1 == _lunar_day(1, 1, y) for x, y in zip(xs, range(2023, 2027),
                                                                     strict=True))


@pytest.mark.parametrize("dates", ["lunar:13-01", "lunar:01-31", "lunar:1-1", "lunar:tet"])
def test_bad_lunar_dates_are_refused(dates):
    with pytest.raises(RulesFileError) as e:
        exceptions(dates, "2026")
    assert e.value.key.endswith("dates")


def test_the_node_mutes_on_the_solar_day_of_tet():
    text = BASE + '[[exception]]\nname = "tet"\ndates = "lunar:01-01..01-03"\nmute = true\n'
    R = compile_text(text, this_year=2026).rules
    req = {"priority": "normal", "kind": "file"}
    tz = 7 * 3600
    at = timeutil.t2k(2026, 2, 18, 6, 40) - tz  # mùng 2 Tết, 06:40 in Việt Nam
    assert rules.evaluate(R, at, req)["reason"] == {"code": "exception_mutes",
                                                    "exception": "tet"}
    after = timeutil.t2k(2026, 2, 20, 6, 40) - tz  # mùng 4: the window plays again
    assert rules.evaluate(R, after, req)["allow"]
