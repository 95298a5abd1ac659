"""The speaker test a field technician runs: a real sine through the audio path."""

import time
import wave

import numpy as np
import pytest


def read_wav(path):
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


@pytest.mark.needs("audio_capture")
@pytest.mark.parametrize("freq,volume", [(1000, 100), (440, 80), (2500, 50)])
def test_tone_has_the_asked_frequency_and_level(node, target, freq, volume):
    node.request("tone", {"freq": freq, "seconds": 1, "volume": volume})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and node.request("status")["playing"]:
        time.sleep(0.1)
    wavs = sorted(target.audio_dir.glob("*.wav"))
    assert len(wavs) == 1
    rate, x = read_wav(wavs[0])
    assert abs(len(x) / rate - 1.0) < 0.1  # about the asked duration
    steady = x[len(x) // 4: 3 * len(x) // 4].astype(float)
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    peak_hz = np.argmax(spectrum) * rate / len(steady)
    assert abs(peak_hz - freq) <= 5
    rms_db = 20 * np.log10(np.sqrt(np.mean(steady**2)) / 32768)
    expected = 20 * np.log10(1 / np.sqrt(2)) + (volume - 100) * 0.5  # sine RMS, 0.5 dB/step
    assert abs(rms_db - expected) < 0.5, f"level {rms_db:.2f} dBFS, expected {expected:.2f}"
    # fades in and out: no click at either end
    assert abs(int(x[0])) < 2000 and abs(int(x[-1])) < 2000
    assert np.max(np.abs(np.diff(x.astype(int)))) < 32768 * 2 * np.pi * freq / rate * 1.1
