"""One WAV per node on a common clock: the sim's speaker writes a file per play
(audio/sink_wav.py), with the wall-clock time of its first sample in its timing.log;
laid out at those times, the nodes' files line up and the emergency cuts in at
the same second in each."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import LoaxaError
from ..testsignals import read_wav, write_wav

RATE = 16000


def captures(audio_dir: Path, since: float) -> list[tuple[float, Path]]:
    """(wall-clock time of its first sample, file) of every capture opened after
    since. A file's first sample is written at `first`, not at `open`: in between
    the node fetches and buffers the stream (up to 2 s for a file broadcast)."""
    log = audio_dir / "timing.log"
    out, opened = [], None
    for ln in log.read_text().splitlines() if log.exists() else []:
        parts = ln.split()
        if len(parts) >= 3 and parts[1] == "open":
            opened = audio_dir / parts[2] if float(parts[0]) >= since else None
        elif len(parts) == 2 and parts[1] == "first" and opened is not None:
            out.append((float(parts[0]), opened))
            opened = None
    return out


def node_timeline(audio_dir: Path, since: float, until: float, dest: Path) -> Path:
    """Write what the node's speaker played from since to until, silence between."""
    x = np.zeros(int((until - since) * RATE), dtype=np.int16)
    for t, wav in captures(audio_dir, since):
        rate, y = read_wav(wav)
        if rate != RATE:  # the demo's media (Format's default) and the siren are 16 kHz
            raise LoaxaError(f"{wav} is {rate} Hz, the timeline {RATE} Hz")
        a = int((t - since) * RATE)
        n = max(0, min(len(y), len(x) - a))
        x[a:a + n] = y[:n]
    return write_wav(dest, x, RATE)
