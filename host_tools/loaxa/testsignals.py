"""Test and bench signals, and the comparisons tests make on captured audio."""

from __future__ import annotations

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
