"""Translations: every message the tools print has a Vietnamese translation in the
gettext catalogue, with the same placeholders, and the compiled catalogue that
`make` builds is the one in use."""

from __future__ import annotations

import gettext
import re
import string
import unicodedata
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from loaxa import i18n

PO = i18n.LOCALEDIR / "vi" / "LC_MESSAGES" / "loaxa.po"


def _catalogue():
    with PO.open("rb") as f:
        return read_po(f, locale="vi")


def _fields(s: str) -> set[str]:
    return {f for _, f, spec, _ in string.Formatter().parse(s) if f is not None}


def test_every_extracted_message_is_translated_with_the_same_placeholders():
    cat = _catalogue()
    extracted = {msg for _, _, msg, _, _ in extract_from_dir(
        str(i18n.LOCALEDIR.parent), method_map=[("**.py", "python")],
        keywords={"N_": None})}
    assert extracted == set(i18n.MESSAGES.values()), "MESSAGES and what Babel extracts differ"
    for msg in extracted:
        entry = cat.get(msg)
        assert entry is not None and entry.string, f"no Vietnamese for {msg!r}: make catalogues"
        assert not entry.fuzzy, f"fuzzy translation of {msg!r}: check it, then drop the flag"
        assert _fields(entry.string) == _fields(msg), f"placeholders differ in {msg!r}"
        assert unicodedata.is_normalized("NFC", entry.string), f"not NFC: {entry.string!r}"
    stale = [m.id for m in cat if m.id and m.id not in extracted]
    assert not stale, f"the catalogue translates messages the code no longer has: {stale}"


def test_the_compiled_catalogue_matches_the_po_file():
    mo = PO.with_suffix(".mo")
    assert mo.exists(), "the .mo is built by make (make venv)"
    assert mo.stat().st_mtime >= PO.stat().st_mtime, "the .mo is older than the .po: make venv"
    tr = gettext.GNUTranslations(mo.open("rb"))
    for entry in _catalogue():
        if entry.id:
            assert tr.gettext(entry.id) == entry.string


@pytest.mark.parametrize("env,want", [
    ({"LANG": "vi_VN.UTF-8"}, "Đã tắt cụm loa."),
    ({"LANG": "en_US.UTF-8"}, "Node powered off."),
    ({"LANG": "vi_VN.UTF-8", "LANGUAGE": "en"}, "Node powered off."),
    ({"LANG": "C", "LC_ALL": "vi_VN"}, "Đã tắt cụm loa."),
    ({}, "Node powered off."),
])
def test_language_follows_the_environment(monkeypatch, env, want):
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert i18n.t("sim.stopped") == want


def test_every_message_key_the_tools_name_exists():
    # a key dropped with one command's messages must not leave another's output a KeyError
    root = Path(i18n.__file__).parent
    call = re.compile(r"\bt(?:_in)?\((?:\w+, )?\"([a-z_]+(?:\.[a-z_0-9]+)+)\"")
    missing = sorted({(str(f.relative_to(root)), k) for f in root.rglob("*.py")
                      for k in call.findall(f.read_text()) if k not in i18n.MESSAGES})
    assert not missing
