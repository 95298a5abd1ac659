"""Payload decoders against independent references, on both interpreters.

References: ffmpeg's own G.711 and L16 decoders, and CPython's audioop IMA
ADPCM (Jack Jansen's C code; first sample in the high nibble, as RFC 3551
§4.5.1 wants) for DVI4.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings

import numpy as np
import pytest

from loaxa.testsignals import speech_like
from loaxa_node.audio import codec as ac
from loaxa_node.audio import encoder as audioenc

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg not installed")


def ffmpeg_decode(data: bytes, fmt: str, rate: int = 8000) -> np.ndarray:
    r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", fmt, "-ar",
                        str(rate), "-ac", "1", "-i", "-", "-f", "s16le", "-"],
                       input=data, capture_output=True, check=True)
    return np.frombuffer(r.stdout, "<i2")


def decode(codec: int, payload: bytes) -> np.ndarray:
    out = bytearray(4 * len(payload) + 16)
    n = ac.decode(codec, payload, 0, len(payload), out)
    return np.frombuffer(bytes(out[: 2 * n]), "<i2")


@needs_ffmpeg
@pytest.mark.parametrize("codec,fmt", [(ac.PCMU, "mulaw"), (ac.PCMA, "alaw")])
def test_g711_decodes_every_code_like_ffmpeg(codec, fmt):
    codes = bytes(range(256))
    assert np.array_equal(decode(codec, codes), ffmpeg_decode(codes, fmt))


@needs_ffmpeg
def test_l16_network_order_decodes_like_ffmpeg():
    x = speech_like(800).astype(">i2").tobytes()
    assert np.array_equal(decode(ac.L16, x), ffmpeg_decode(x, "s16be"))


@pytest.mark.parametrize("codec,lib", [(ac.PCMU, audioop.lin2ulaw), (ac.PCMA, audioop.lin2alaw)])
def test_g711_encoder_matches_reference(codec, lib):
    x = np.arange(-32768, 32768, 3, dtype=np.int16)
    out = bytearray(len(x))
    audioenc.Encoder(codec).encode([int(v) for v in x], out)
    assert bytes(out) == lib(x.astype("<i2").tobytes(), 2)


def dvi4_packets(x: np.ndarray, spp: int) -> list[bytes]:
    enc = audioenc.Encoder(ac.DVI4)
    out = bytearray(ac.bytes_for(ac.DVI4, spp))
    pkts = []
    for i in range(0, len(x) - spp + 1, spp):
        n = enc.encode([int(v) for v in x[i: i + spp]], out)
        pkts.append(bytes(out[:n]))
    return pkts


def reference_dvi4(pkt: bytes) -> np.ndarray:
    # RFC 3551 §4.5.1 header: predicted value (int16, network order), step index
    state = (int.from_bytes(pkt[:2], "big", signed=True), min(pkt[2], 88))
    pcm, _ = audioop.adpcm2lin(pkt[4:], 2, state)
    return np.frombuffer(pcm, "<i2")


def test_dvi4_decoder_equals_reference_sample_for_sample():
    pkts = dvi4_packets(speech_like(16000), 320)
    rng = np.random.default_rng(7)
    # arbitrary bytes too: clamping and index limits must agree
    pkts += [bytes([rng.integers(0, 256) for _ in range(4)]) + rng.bytes(80) for _ in range(50)]
    for p in pkts:
        assert np.array_equal(decode(ac.DVI4, p), reference_dvi4(p))


def test_dvi4_encoder_matches_reference_and_round_trip_snr():
    x = speech_like(32000)
    pkts = dvi4_packets(x, 320)
    ref, _ = audioop.lin2adpcm(x.astype("<i2").tobytes(), 2, None)
    assert b"".join(p[4:] for p in pkts) == ref  # state carried across packets
    y = np.concatenate([decode(ac.DVI4, p) for p in pkts]).astype(float)
    err = x[: len(y)].astype(float) - y
    snr = 10 * np.log10(np.sum(x[: len(y)].astype(float) ** 2) / np.sum(err**2))
    assert snr > 20, f"DVI4 round trip SNR {snr:.1f} dB"


def test_decoders_give_identical_samples_under_micropython(upy):
    pkts = {ac.PCMU: bytes(range(256)), ac.PCMA: bytes(range(255, -1, -1)),
            ac.L16: speech_like(200).astype(">i2").tobytes(),
            ac.DVI4: dvi4_packets(speech_like(640), 320)[1]}
    code = (
        "import sys, json\nfrom loaxa_node.audio import codec as ac\n"
        f"pk = {json.dumps({str(k): v.hex() for k, v in pkts.items()})}\n"
        "out = {}\nbuf = bytearray(2048)\n"
        "for k in pk:\n"
        "    p = bytes.fromhex(pk[k])\n"
        "    n = ac.decode(int(k), p, 0, len(p), buf)\n"
        "    out[k] = bytes(buf[:2 * n]).hex()\n"
        "print(json.dumps(out))\n")
    got = upy.json(code)
    for k, p in pkts.items():
        assert bytes.fromhex(got[str(k)]) == decode(k, p).astype("<i2").tobytes(), ac.NAMES[k]
