"""Test and bench signals, and the comparisons tests make on captured audio."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np


def speech_like(n: int, rate: int = 16000, seed: int = 1) -> np.ndarray:
    """Voiced harmonics on a moving pitch, syllable-rate envelope, noise bursts
    (fricatives): broadband and non-stationary like speech, so it stresses
    ADPCM and makes time alignment unambiguous."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    ph = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * ph) / k for k in range(1, 12))
    x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    x = x + 0.1 * rng.standard_normal(n) * (np.sin(2 * np.pi * 1.3 * t) > 0.6)
    return np.asarray(x / np.max(np.abs(x)) * 20000, dtype=np.int16)


def write_wav(path: Path, x: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def align(ref: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The overlapping parts of ref and got after the lag that best matches them."""
    a, b = ref.astype(float), got.astype(float)
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xc = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    lag = int(np.argmax(xc))
    if lag > n // 2:
        lag -= n
    if lag >= 0:
        b = b[lag:]
    else:
        a = a[-lag:]
    m = min(len(a), len(b))
    return a[:m], b[:m]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def level_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(float) ** 2)) + 1e-9))


def longest_zero_run(x: np.ndarray) -> int:
    z = np.concatenate([[0], (x == 0).astype(np.int8), [0]])
    d = np.diff(z)
    starts, ends = np.where(d == 1)[0], np.where(d == -1)[0]
    return int(np.max(ends - starts)) if len(starts) else 0


def find_lag(x: np.ndarray, y: np.ndarray) -> int:
    """Where x starts in y (FFT cross-correlation)."""
    n = 1 << int(np.ceil(np.log2(len(x) + len(y))))
    xc = np.fft.irfft(np.fft.rfft(y.astype(float), n) * np.conj(np.fft.rfft(x.astype(float), n)),
                      n)
    lag = int(np.argmax(xc))
    return lag - n if lag > n // 2 else lag


def local_lags(src: np.ndarray, got: np.ndarray, rate: int, block_s: float = 0.25,
               search_ms: int = 20, min_corr: float = 0.9) -> list[tuple[int, int]]:
    """(source sample j, capture sample i - j) for blocks of the source, each
    looked for within search_ms of where the last one was found: how the
    capture shifts against the source over time (a drift correction, a hole,
    a skip). Blocks that match worse than min_corr (concealed loss) are left
    out; a lone block off by a pitch period is put back in line."""
    lag = find_lag(src[rate: 2 * rate], got[: 6 * rate]) - rate
    n = int(block_s * rate)
    win = rate * search_ms // 1000
    out = []
    for j in range(0, len(src) - n, n):
        lo = j + lag - win
        if lo < 0:
            continue  # before the capture starts (its fade-in)
        seg = got[lo: j + lag + n + win].astype(float)
        if len(seg) < n + 2 * win:
            break
        x = src[j: j + n].astype(float)
        c = np.correlate(seg, x, "valid")
        k = int(np.argmax(c))
        w = seg[k: k + n]
        den = float(np.sqrt(np.dot(x, x) * np.dot(w, w)))
        if den == 0 or c[k] / den < min_corr:
            continue
        lag = lo - j + k
        out.append((j, lag))
    # A voiced block can match one pitch period off; a real shift (a slip, a
    # hole) stays in the blocks after it: the median of three keeps only those.
    lags = [lag for _, lag in out]
    for i in range(1, len(out) - 1):
        out[i] = (out[i][0], sorted(lags[i - 1: i + 2])[1])
    return out


# A probe of this host's scheduling: a process that sleeps 5 ms at a time and
# logs (wall time, ms) each wake-up later than 45 ms. A sim node is a process on
# the same host: a host that does not run it for 100 ms empties its sink, as a
# board's never would. Tests and benches name such stalls next to an underrun.
_STALL_PROBE = """
import sys, time
out = open(sys.argv[1], "w", buffering=1)
t = time.monotonic()
while True:
    time.sleep(0.005)
    n = time.monotonic()
    if n - t > 0.045:
        out.write("%.3f %.0f\\n" % (time.time(), (n - t) * 1000))
    t = n
"""


def start_stall_probe(log: Path) -> subprocess.Popen:
    """Start the probe writing to log; the caller kills it."""
    return subprocess.Popen([sys.executable, "-c", _STALL_PROBE, str(log)])


def host_stalls(log: Path, t0: float = 0.0, t1: float = 1e12) -> list[tuple[float, int]]:
    """(wall time, ms) of the probe's late wake-ups between t0 and t1."""
    out = []
    for ln in log.read_text().splitlines() if log.exists() else []:
        t, ms = ln.split()
        if t0 <= float(t) <= t1:
            out.append((float(t), int(ms)))
    return out
