"""The schedule forms' model and writer (loaxa.headend.schedule): every rules
file of docs/examples and every rules text the tests use loads into the form
and saves unchanged to the identical text; an edit changes that field and
keeps the comments and the keys the forms do not show; the checker's error
names the field."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from loaxa import rules
from loaxa.errors import LoaxaError
from loaxa.headend.schedule import Form, apply, model

ROOT = Path(__file__).resolve().parents[1]


def rules_texts() -> list[tuple[str, str]]:
    """(where, text): the example files, and each string constant in the tests
    that the checker accepts as a rules file (format fields filled)."""
    out = [(str(p.relative_to(ROOT)), p.read_text()) for p in
           sorted((ROOT / "docs" / "examples").glob("*.toml"))]
    for f in sorted([*ROOT.glob("tests/*.py"), *ROOT.glob("hil_tests/*.py")]):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                    "[[window]]" in node.value:
                text = re.sub(r"\{(\w*)\}", "x1", node.value)
                try:
                    rules.compile_text(text)
                except LoaxaError:
                    continue
                out.append((f"{f.relative_to(ROOT)}:{node.lineno}", text))
    return out


TEXTS = rules_texts()


def as_form(m: dict, base: str) -> Form:
    return Form(base=base, version=m["version"], quiet_hours=m["quiet_hours"],
                limits={k: v for k, v in m["limits"].items()},
                windows=m["windows"], items=m["items"])


def test_there_are_rules_files_to_round_trip():
    assert len(TEXTS) >= 8 and TEXTS[0][0] == "docs/examples/an-phu.toml"


@pytest.mark.parametrize("where,text", TEXTS, ids=[w for w, _ in TEXTS])
def test_load_then_save_unchanged_is_the_identical_text(where, text):
    saved = apply(text, as_form(model(text), text))
    assert saved == text
    assert rules.compile_text(saved).rules == rules.compile_text(text).rules


EXAMPLE = (ROOT / "docs" / "examples" / "an-phu.toml").read_text()


def test_an_edit_changes_that_field_and_keeps_the_rest():
    m = model(EXAMPLE)
    assert [w["name"] for w in m["windows"]] == ["morning", "evening", "market"]
    assert m["items"][0]["source"] == "relay:vov1" and m["limits"]["session_minutes"] == 45
    m["windows"][1]["time"] = "17:30-18:15"
    m["windows"].append({"name": "trua", "days": "sat-sun", "time": "11:00-11:45",
                         "volume": 60, "max_volume": 70, "zones": ["thon1"]})
    m["items"].append({"name": "tin-trua", "source": "file:bt-20261206-0800-ab12",
                       "start": "11:05", "minutes": 10, "days": "sat-sun",
                       "zones": ["thon1"]})
    m["version"] = "2026-12-b"
    m["limits"]["minutes_per_day"] = 120
    new = apply(EXAMPLE, as_form(m, EXAMPLE))
    c = rules.compile_text(new)
    assert c.rules["ver"] == "2026-12-b"
    assert "# Tết: silence (emergencies still play)" in new  # comments kept
    assert 'dates = "lunar:01-01..01-05"' in new and "[streams.vov1]" in new
    assert 'time = "17:30-18:15"' in new and 'time = "17:00-17:45"' not in new
    assert "# the market zone gets a quieter noon slot" in new
    again = model(new)
    assert [w["name"] for w in again["windows"]] == ["morning", "evening", "market", "trua"]
    assert again["items"][1]["start"] == "11:05" and again["limits"]["minutes_per_day"] == 120
    # removing a window and clearing a field
    again["windows"] = [w for w in again["windows"] if w["name"] != "market"]
    again["windows"][0]["max_volume"] = None
    newer = apply(new, as_form(again, new))
    assert 'name = "market"' not in newer and "max_volume = 80" in newer
    assert [w["name"] for w in model(newer)["windows"]] == ["morning", "evening", "trua"]


def test_a_form_with_a_bad_field_is_refused_by_name():
    m = model(EXAMPLE)
    m["windows"][0]["colour"] = "red"
    with pytest.raises(LoaxaError, match="unknown fields colour"):
        apply(EXAMPLE, as_form(m, EXAMPLE))
    m = model(EXAMPLE)
    m["windows"][2]["time"] = "11:00-29:00"
    bad = apply(EXAMPLE, as_form(m, EXAMPLE))
    with pytest.raises(rules.RulesFileError) as e:
        rules.compile_text(bad)
    assert e.value.key == "window[2].time"


def test_forms_start_from_no_rules_at_all():
    m = model("")
    assert m["windows"] == [] and m["items"] == []
    m["version"] = "v1"
    m["windows"] = [{"name": "ngay", "days": "daily", "time": "06:00-21:00", "volume": 70}]
    text = apply("", as_form(m, ""))
    assert rules.compile_text(text).rules["ver"] == "v1"


def test_an_item_of_a_library_bulletin_brings_where_the_nodes_fetch_it():
    """A file:NAME item plays only if the rules say where the files are: the forms
    write serve's stream server as [files] when the text has none."""
    from loaxa.streamer import Format

    files = Format().session(url="http://10.0.0.2:8001/file/")  # serve's, as it passes it
    m = model("")
    m["version"] = "v1"
    m["windows"] = [{"name": "ngay", "days": "daily", "time": "06:00-21:00", "volume": 70}]
    m["items"] = [{"name": "tin", "source": "file:bt-1", "start": "07:00", "minutes": 5,
                   "days": "daily"}]
    text = apply("", as_form(m, ""), files)
    assert rules.compile_text(text).rules["fs"] == {"transport": "http", **files}
    # a [files] the text has stays as it is; a tone needs none
    mine = text.replace("10.0.0.2", "10.0.0.9")
    assert apply(mine, as_form(model(mine), mine), files) == mine
    m["items"][0]["source"] = "tone:440"
    assert "[files]" not in apply("", as_form(m, ""), files)
