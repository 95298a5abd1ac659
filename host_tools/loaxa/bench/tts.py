"""Text read aloud (docs/headend.md): how long each engine takes to synthesise a
minute of speech, on the bulletin sentences of tests/test_vitext.py, side by
side in one run; and what the Vietnamese normaliser costs before it."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from . import Table

SENTENCES = Path(__file__).resolve().parents[3] / "tests" / "test_vitext.py"


def bulletins() -> list[str]:
    """The test's bulletin sentences (the source text, not the expected reading)."""
    import ast

    tree = ast.parse(SENTENCES.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "BULLETINS":
            return [p[0] for p in ast.literal_eval(node.value)]
    raise RuntimeError("no BULLETINS in " + str(SENTENCES))


# (label, command template, voice); the templates as serve --tts-command takes them
ENGINES = [("espeak-ng vi (northern)", None, "vi"),
           ("espeak-ng vi-vn-x-central", None, "vi-vn-x-central"),
           ("espeak-ng vi-vn-x-south", None, "vi-vn-x-south")]


def run(argv: list[str]) -> list[Table]:
    from ..headend import media, tts, vitext

    texts = bulletins()
    t0 = time.perf_counter()
    spoken = [vitext.normalise(t) for t in texts]
    norm_ms = (time.perf_counter() - t0) * 1000
    text = " ".join(spoken)
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as d:
        for label, tpl, voice in ENGINES:
            exe = (tpl or tts.ESPEAK).split()[0]
            if not shutil.which(exe):
                rows.append([label, "not installed", "", "", ""])
                continue
            out = Path(d) / "speech.wav"
            walls = []
            for _ in range(3):
                t0 = time.perf_counter()
                tts.synthesise(tpl or tts.ESPEAK, text, out, voice, 100)
                walls.append(time.perf_counter() - t0)
            speech = media.probe(out)["seconds"]
            wall = sorted(walls)[1]
            rows.append([label, round(speech, 1), round(wall, 2), wall / speech * 60,
                         speech / wall])
    rows.append(["piper-tts (PyPI) + a Vietnamese voice model", "not measured", "", "", ""])
    return [Table("text read aloud: synthesis time per minute of speech (median of 3 runs of "
                  f"the {len(texts)} bulletin sentences, normalised, as one text)",
                  ["engine", "speech s", "synthesis s", "synthesis s per speech min",
                   "x real time"], rows,
                  f"normalising the {len(texts)} sentences ({sum(map(len, texts))} characters) "
                  f"took {norm_ms:.0f} ms in all (vietnormalizer + loaxa's pass). Piper "
                  "needs a voice model file that no registry here ships: a commune that has "
                  "one plugs it in with serve --tts-command (docs/headend.md)")]
