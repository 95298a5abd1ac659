"""What `loaxa diag` makes of the node's own words: reasons in log lines, meters."""

from __future__ import annotations

import pytest

from loaxa.diag import view
from loaxa.diag.doctor import unreachable
from loaxa.errors import NodeError, NodeTimeout

LINE = ('5202054 info rules: stop relay:vov1: {"code": "quiet_hours", "start": "21:00", '
        '"end": "05:00"}')


@pytest.mark.parametrize("lang,want", [
    ("en", "5202054 info rules: stop relay:vov1: quiet hours 21:00-05:00: only emergency plays"),
    ("vi", "5202054 info rules: stop relay:vov1: giờ yên tĩnh 21:00-05:00: chỉ phát tin khẩn cấp"),
])
def test_log_lines_carry_the_rules_reason_in_words(monkeypatch, lang, want):
    monkeypatch.setenv("LANGUAGE", lang)
    assert view.log_line(LINE) == want
    assert view.log_line("MPY: soft reboot") == "MPY: soft reboot"
    assert view.log_line("12 info rules: x: {not json}") == "12 info rules: x: {not json}"


def test_the_meter_spans_60_db():
    assert view.meter(0).startswith("·" * 30)
    assert view.meter(32767).startswith("█" * 30) and "-0.0 dBFS" in view.meter(32767)
    assert view.meter(33).count("█") == 0  # -60 dBFS


def test_a_node_out_of_memory_is_a_heap_fault_not_a_dead_console(monkeypatch):
    monkeypatch.setenv("LANGUAGE", "en")
    oom = unreachable("/dev/ttyUSB0", NodeError("internal", "MemoryError('memory allocation "
                                                            "failed, allocating 640 bytes',)"))
    assert [(c.key, c.verdict) for c in oom] == [("console", "ok"), ("heap", "fault")]
    silent = unreachable("/dev/ttyUSB0", NodeTimeout("no answer"))
    assert [(c.key, c.verdict, c.code) for c in silent] == [("console", "fault",
                                                             "console.silent")]


def test_the_crash_log_tail_is_cut_to_whole_entries():
    tail = ("plete\nMemoryError: x\n\ncrash: Traceback (most recent call last):\n  File ...\n"
            "MemoryError: y\n\nboot failed: OSError: 5\n")
    assert view.crash_entries(tail) == [
        "crash: Traceback (most recent call last):\n  File ...\nMemoryError: y",
        "boot failed: OSError: 5"]
    assert view.crash_entries("MemoryError only\n") == ["MemoryError only"]
    assert view.crash_entries("  \n") == []
