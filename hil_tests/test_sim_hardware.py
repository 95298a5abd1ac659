"""The sim behaves like hardware where it matters: a UART's pace, a drifting RTC."""

import time

import pytest

from loaxa_node import timeutil


@pytest.fixture
def sim_options(request):
    return getattr(request, "param", {})


@pytest.mark.needs("uart_throttle")
@pytest.mark.parametrize("sim_options", [{"baud": 9600}], indirect=True)
def test_console_is_throttled_to_the_baud_rate(node):
    node.request("status")
    t = time.monotonic()
    n = 0
    for _ in range(5):
        n += len(str(node.request("config.get")))
    took = time.monotonic() - t
    assert n * 10 / 9600 <= took  # a 9600-baud UART cannot carry it faster


@pytest.mark.needs("rtc_control")
@pytest.mark.parametrize("sim_options", [{"rtc_start": timeutil.t2k(2026, 2, 28, 23, 59, 58),
                                          "rtc_drift_ppm": 500000}], indirect=True)
def test_rtc_starts_where_asked_and_drifts(node):
    first = node.request("clock.get")
    assert first["utc"].startswith("2026-02-28T23:59:5")
    assert first["synced"] is False  # a set RTC is still not a trusted one
    time.sleep(2.0)
    later = node.request("clock.get")
    # 2 s of host time at +50 % drift is 3 s of node time (integer seconds)
    assert 2 <= later["t2k"] - first["t2k"] <= 4
    assert later["utc"].startswith("2026-03-01")  # 2026 is no leap year
