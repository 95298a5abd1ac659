"""`make demo` as a user (or CI, stdin not a terminal) runs it, in English and in
Vietnamese at once (about 0.3 of a core each, so both fit in one run's time):
each node's WAV has what it should have heard, the CSV's minutes per zone match
the audio, the refusal is told with the rules' reason, and neither language's
output carries the other's text (an untranslated message)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from loaxa.i18n import MESSAGES, t_in
from loaxa.testsignals import read_wav

NEWS_HZ, SIREN_HZ = 440, 1200  # the demo's announcement, the head-end's siren
LANGS = {"en": "en_US.UTF-8", "vi": "vi_VN.UTF-8"}


def start_demo(lang: str, tmp: Path) -> subprocess.Popen:
    """The demo's folder goes under tmp (TMPDIR), with the test's other files."""
    return subprocess.Popen([sys.executable, "-m", "loaxa.demo"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, LANG=LANGS[lang], LC_ALL="", LANGUAGE="",
                                     TMPDIR=str(tmp)))


def heard(wav: Path) -> dict[str, np.ndarray]:
    """Per half second of the node's timeline: which of the two signals sounds."""
    rate, x = read_wav(wav)
    step = rate // 2
    segs = x[: len(x) // step * step].reshape(-1, step).astype(float)
    hz = np.argmax(np.abs(np.fft.rfft(segs, axis=1)), axis=1) * rate / step
    loud = np.abs(segs).max(axis=1) > 1000
    return {"news": loud & (np.abs(hz - NEWS_HZ) < 20),
            "siren": loud & (np.abs(hz - SIREN_HZ) < 20), "loud": loud}


def fragments(code: str) -> set[str]:
    """The fixed words of every demo message in a language (placeholders cut out)."""
    out = set()
    for key in MESSAGES:
        if key.startswith("demo."):
            text = t_in(code, key, **{k: "" for k in re.findall(r"{(\w+)", MESSAGES[key])})
            out |= {f.strip() for f in re.split(r"[\n|]", text) if len(f.strip()) >= 12}
    return out


def test_demo_tells_the_story_in_both_languages(tmp_path):
    procs = {lang: start_demo(lang, tmp_path) for lang in LANGS}
    outs = {}
    for lang, p in procs.items():
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, f"{lang}: {err}\n{out}"
        outs[lang] = out
    en, vi = outs["en"], outs["vi"]

    assert "refused by n3: outside every broadcast window of area thon-2" in en
    assert "n3 từ chối: ngoài mọi khung giờ phát của khu vực thon-2" in vi
    for lang, out in outs.items():
        other = fragments("vi" if lang == "en" else "en") - fragments(lang)
        assert not [f for f in other if f in out], f"{lang} output has untranslated text"
        assert "http://127.0.0.1:" in out

    # the table: only n3 refused, and only once (the thon-1 broadcast never reached it)
    refused = dict(re.findall(r"^(n\d) .* (\d+) +/\S+\.wav$", en, re.M))
    assert refused == {"n1": "0", "n2": "0", "n3": "1"}, refused
    wavs = {Path(w).stem: heard(Path(w)) for w in re.findall(r"(/\S+/n\d\.wav)", en)}
    assert sorted(wavs) == ["n1", "n2", "n3"]
    for n in ("n1", "n2"):  # thon-1: the announcement, cut by the siren, then again
        news, siren = wavs[n]["news"], wavs[n]["siren"]
        s0, s1 = np.flatnonzero(siren)[[0, -1]]
        assert news[:s0].sum() >= 4 and news[s1:].sum() >= 18, n  # >= 2 s, 9 s of 10
        assert 6 <= siren.sum() <= 14, n  # the siren's 3-7 s
    assert not wavs["n3"]["news"].any(), "the announcement for thon-1 reached thon-2"
    assert wavs["n3"]["siren"].sum() >= 6
    onsets = [int(np.flatnonzero(w["siren"])[0]) for w in wavs.values()]
    assert max(onsets) - min(onsets) <= 1, onsets  # one clock: together within 0.5 s

    csv_path = re.search(r"(/\S+report\.csv)", en).group(1)
    zones_table = Path(csv_path).read_text().split("\n\n")[0]  # then the nodes' uptime
    rows = [ln.split(",") for ln in zones_table.splitlines()[1:]]
    secs = {r[0]: float(r[3]) for r in rows}
    # what was heard in each zone, against the report: ±1 s a play (docs/headend.md);
    # thon-1 had three (announcement, siren, announcement again), thon-2 one
    zone1 = wavs["n1"]["loud"] | wavs["n2"]["loud"]
    span1 = (np.flatnonzero(zone1)[-1] - np.flatnonzero(zone1)[0] + 1) / 2
    assert abs(secs["thon-1"] - span1) <= 3, (secs, span1)
    assert abs(secs["thon-2"] - wavs["n3"]["siren"].sum() / 2) <= 1.5, secs
