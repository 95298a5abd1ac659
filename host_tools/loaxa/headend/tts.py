"""Text read aloud (đọc văn bản): a typed bulletin, normalised for a Vietnamese
listener (vitext), synthesised offline into a library bulletin the officer
previews before broadcasting it (docs/headend.md, "Text read aloud").

The engine is a command template, `serve --tts-command`, so that a commune can
plug in a better voice (Piper with a voice model file it supplies, any program
that writes a WAV) without code changes. The default is Debian's espeak-ng,
whose Vietnamese voices (northern, central, southern) install from the
registries and need no network."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ..errors import LoaxaError
from . import vitext
from .service import Actor, Headend

ESPEAK = "espeak-ng -v {voice} -s {wpm} -w {out} -f {text}"
ESPEAK_VOICES = ("vi", "vi-vn-x-central", "vi-vn-x-south")  # Hà Nội, Huế, Sài Gòn
WPM = 150  # espeak-ng's words a minute at rate 100 %: its own 175 is hurried for a loudspeaker
TEXT_MAX = 5000  # characters: a long bulletin is about 800 words, 5 minutes read
SYNTH_S = 180
_VOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


class Speak(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=TEXT_MAX)
    title: str = Field("", max_length=80, description="default: the text's first words")
    voice: str | None = Field(None, max_length=64,
                              description="espeak-ng: vi, vi-vn-x-central, vi-vn-x-south")
    rate: int = Field(100, ge=50, le=200, description="speed, percent of the normal")
    dry: bool = Field(False, description="only answer the text as it will be read")


def template(he: Headend) -> str:
    return (he.store.setting("serve") or {}).get("tts") or ESPEAK


def engine(he: Headend) -> dict:
    """The engine serve was started with: its program and the voices it offers."""
    tpl = template(he)
    prog = Path(shlex.split(tpl)[0]).name
    return {"engine": prog, "command": tpl,
            "voices": list(ESPEAK_VOICES) if tpl == ESPEAK else [],
            "default_voice": ESPEAK_VOICES[0] if tpl == ESPEAK else ""}


def synthesise(tpl: str, spoken: str, out: Path, voice: str = "", rate: int = 100) -> None:
    """Run the engine's command: {text} a UTF-8 file of the text (also on
    standard input), {out} the WAV to write, {voice}, {rate} (percent),
    {wpm} (espeak's words a minute), {length_scale} (Piper's: 100/rate)."""
    if voice and not _VOICE.fullmatch(voice):
        raise LoaxaError(f"bad voice name {voice!r}")
    txt = out.with_suffix(".txt")
    txt.write_text(spoken + "\n", encoding="utf-8")
    vals = {"text": str(txt), "out": str(out), "voice": voice or ESPEAK_VOICES[0],
            "rate": str(rate), "wpm": str(round(WPM * rate / 100)),
            "length_scale": f"{100 / rate:.3f}"}
    try:
        args = [a.format(**vals) for a in shlex.split(tpl)]
    except (KeyError, IndexError, ValueError) as e:
        raise LoaxaError(f"the TTS command template is wrong: {e}",
                         "placeholders: {text} {out} {voice} {rate} {wpm} {length_scale}"
                         ) from None
    if not args or shutil.which(args[0]) is None:
        raise LoaxaError(f"the TTS engine {args[0] if args else ''!r} is not installed",
                         "apt-get install espeak-ng, or see --tts-command")
    try:
        r = subprocess.run(args, input=spoken + "\n", capture_output=True, text=True,
                           timeout=SYNTH_S)
    except subprocess.TimeoutExpired:
        raise LoaxaError(f"the TTS engine took more than {SYNTH_S} s") from None
    if r.returncode != 0 or not out.exists() or out.stat().st_size < 100:
        why = (r.stderr.strip().splitlines() or [f"exit {r.returncode}, no audio"])[-1][:200]
        raise LoaxaError(f"the TTS engine failed: {why}")


def speak(he: Headend, lib: object, actor: Actor, body: Speak) -> dict:
    detail = {"title": body.title, "chars": len(body.text), "voice": body.voice,
              "rate": body.rate}
    he._check(actor, "viewer" if body.dry else "operator", "tts", detail)
    spoken = vitext.normalise(body.text)
    if body.dry:
        return {"spoken": spoken}
    if not spoken:
        raise he._refuse(actor, "tts", detail, "the text has nothing to read")
    title = body.title.strip() or " ".join(body.text.split()[:8])[:80]
    with tempfile.TemporaryDirectory(prefix="loaxa-tts-") as tmp:
        wav = Path(tmp) / "speech.wav"
        try:
            synthesise(template(he), spoken, wav, body.voice or "", body.rate)
        except LoaxaError as e:
            raise he._refuse(actor, "tts", detail, e.msg, e.hint) from None
        from .media import Library

        assert isinstance(lib, Library)
        item = lib.add(actor, wav, title, source="tts",
                       extra={"text": body.text, "voice": body.voice or "",
                              "rate": body.rate})
    return {**item, "spoken": spoken}


def router(he: Headend, lib: object) -> APIRouter:
    """Text to speech into the library (lib: media.Library)."""
    from starlette.concurrency import run_in_threadpool

    from . import models as m
    from .app import actor

    r = APIRouter(prefix="/api/tts", tags=["bulletins"])

    @r.post("", response_model=m.Spoken, response_model_exclude_unset=True)
    async def tts(body: Speak, request: Request) -> dict:
        """Synthesise text into a library bulletin (`dry`: only the text as it
        will be read). Numbers, times, dates and abbreviations are read in words."""
        return await run_in_threadpool(lambda: speak(he, lib, actor(request), body))

    @r.get("", response_model=m.TtsEngine)
    def tts_engine(request: Request) -> dict:
        """The synthesis engine and its voices."""
        he._check(actor(request), "viewer", "tts", {})
        return engine(he)

    return r
