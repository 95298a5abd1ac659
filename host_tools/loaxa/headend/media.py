"""The bulletin library (thư viện bản tin): audio the officer uploads from the
page or the API, recorded in the browser, or synthesised from a text
(headend/tts.py), kept in the head-end's media folder that nodes fetch from
(docs/headend.md, "Bulletin library").

An upload is hostile until ffmpeg has made it ours: its size is limited while
it is read (Content-Length first, then every chunk counted), its client file
name is never a path (the stored name is made here), ffprobe must find an audio
stream of a demuxer on a short list (no playlists, no concat scripts, no URLs)
and a duration within the limit, and ffmpeg transcodes it to the one stored
format (FLAC, mono, 16 bit, at most 48 kHz): a file that passes is audio the
head-end wrote itself."""

from __future__ import annotations

import json
import mimetypes
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncGenerator
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from ..errors import LoaxaError
from . import models as m
from .service import Actor, Headend

MAX_BYTES = 50 * 1024 * 1024  # a 30 min phone recording at 128 kb/s is 29 MB
MAX_SECONDS = 30 * 60  # longer than any bulletin; a broadcast window caps it anyway
MIN_SECONDS = 0.2
SLACK = 16 * 1024  # the multipart framing and the title around the file
TITLE_MAX = 80
STORED = ".flac"
# ffmpeg's demuxer names an upload may be read with: the formats phones, recorders
# and browsers write. Not hls, concat, image2 or any that names other files.
DEMUXERS = ("mov", "mp3", "ogg", "wav", "w64", "amr", "amrnb", "amrwb", "flac", "aac",
            "matroska", "webm", "aiff", "caf")
TOOL_S = 120  # ffprobe/ffmpeg on one upload; a 30 min file transcodes in seconds
KEY = "library"  # the store's setting: name -> {title, seconds, uploader, at, source}

_lock = threading.Lock()


def _tool(name: str) -> str:
    exe = shutil.which(name)
    if not exe:
        raise LoaxaError(f"{name} is not installed", "run `make sysdeps` (apt-get install ffmpeg)")
    return exe


def probe(path: str | os.PathLike[str]) -> dict:
    """ffprobe's word on a file: its demuxer, and its first audio stream's
    duration in seconds; refused if it is not audio ffmpeg reads as such."""
    cmd = [_tool("ffprobe"), "-v", "error", "-format_whitelist", ",".join(DEMUXERS),
           "-protocol_whitelist", "file", "-show_entries",
           "format=format_name,duration:stream=codec_type,duration", "-of", "json",
           str(path)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_S)
    except subprocess.TimeoutExpired:
        raise LoaxaError("the file took too long to read") from None
    try:
        doc = json.loads(r.stdout or "{}")
    except ValueError:
        doc = {}
    audio = [s for s in doc.get("streams", []) if s.get("codec_type") == "audio"]
    if r.returncode != 0 or not audio:
        why = (r.stderr.strip().splitlines() or ["no audio stream"])[-1][:200]
        raise LoaxaError(f"this is not an audio file ffmpeg reads: {why}",
                         "upload m4a/AAC, MP3, OGG/Opus, WAV, AMR or FLAC")
    fmt = doc.get("format", {})
    try:
        seconds = float(audio[0].get("duration") or fmt.get("duration") or 0)
    except ValueError:
        seconds = 0.0
    return {"format": fmt.get("format_name", ""), "seconds": seconds}


def transcode(src: str | os.PathLike[str], dst: str | os.PathLike[str],
              max_seconds: float = MAX_SECONDS) -> float:
    """src -> dst as the library stores audio; the stored file's seconds."""
    cmd = [_tool("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error",
           "-format_whitelist", ",".join(DEMUXERS), "-protocol_whitelist", "file",
           "-i", str(src), "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1",
           "-t", str(max_seconds + 1), "-ac", "1", "-af", "aresample=resampler=soxr",
           "-sample_fmt", "s16", "-ar", "48000", "-c:a", "flac", "-f", "flac", "-y", str(dst)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_S)
    except subprocess.TimeoutExpired:
        raise LoaxaError("the file took too long to convert") from None
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["?"])[-1][:200]
        raise LoaxaError(f"ffmpeg could not convert the audio: {why}")
    return probe(dst)["seconds"]


def new_name(tz: Any) -> str:
    """A stored bulletin's name: its date and time, and a random tail (the
    client's file name never becomes a path)."""
    return "bt-" + datetime.now(tz).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


class Library:
    """The media folder's bulletins, and what the store knows of each."""

    def __init__(self, he: Headend):
        self.he = he

    @property
    def root(self) -> Path:
        if self.he.files.root is None:
            raise LoaxaError("this head-end has no media folder", "start it with --media DIR")
        return Path(self.he.files.root)

    def _meta(self) -> dict[str, dict]:
        return dict(self.he.store.setting(KEY) or {})

    def items(self, actor: Actor) -> list[dict]:
        """Every bulletin a broadcast may name: uploaded or synthesised ones with
        their title, duration, uploader and date, and files a technician copied
        into the folder (title: their name)."""
        self.he._check(actor, "viewer", "media", {})
        meta = self._meta()
        out = []
        for name in self.he.media():
            m = meta.get(name)
            if m is None:
                path = self.he.files.find(name)
                try:
                    seconds = round(probe(path)["seconds"], 1) if path else None
                except LoaxaError:
                    seconds = None
                m = {"title": name, "seconds": seconds, "uploader": None, "at": None,
                     "source": "folder"}
            out.append({"name": name, **m})
        out.sort(key=lambda m: (m["at"] or "", m["name"]), reverse=True)
        return out

    def add(self, actor: Actor, upload: Path, title: str, source: str = "upload",
            extra: dict | None = None) -> dict:
        """Check and store an uploaded file (a path the caller owns; it is not kept)."""
        title = " ".join(title.split())
        detail = {"title": title, "source": source, "bytes": upload.stat().st_size}
        self.he._check(actor, "operator", "media.add", detail)
        if not title or len(title) > TITLE_MAX or not title.isprintable():
            raise self.he._refuse(actor, "media.add", detail,
                                  f"a bulletin needs a title of 1 to {TITLE_MAX} characters")
        try:
            got = probe(upload)
            if got["seconds"] > MAX_SECONDS:
                raise LoaxaError(f"the audio lasts {got['seconds']:.0f} s, more than "
                                 f"{MAX_SECONDS} s", "cut it into shorter bulletins")
            name = new_name(self.he.tz)
            part = self.root / ".incoming" / (name + STORED)  # not listed until done
            part.parent.mkdir(exist_ok=True)
            try:
                seconds = transcode(upload, part)
                if seconds < MIN_SECONDS:
                    raise LoaxaError("the audio is empty or shorter than "
                                     f"{MIN_SECONDS} s")
                if seconds > MAX_SECONDS + 0.5:
                    raise LoaxaError(f"the audio lasts {seconds:.0f} s, more than "
                                     f"{MAX_SECONDS} s", "cut it into shorter bulletins")
                os.replace(part, self.root / (name + STORED))
            finally:
                part.unlink(missing_ok=True)
        except LoaxaError as e:
            raise self.he._refuse(actor, "media.add", detail, e.msg, e.hint) from None
        item = {"title": title, "seconds": round(seconds, 1), "uploader": actor[0],
                "at": datetime.now(self.he.tz).isoformat(timespec="seconds"),
                "source": source, **(extra or {})}
        with _lock:
            meta = self._meta()
            meta[name] = item
            self.he.store.set_setting(KEY, meta)
        self.he.store.audit(actor[0], "media.add", {**detail, "name": name,
                                                    "seconds": item["seconds"]}, "ok")
        return {"name": name, **item}

    def path(self, actor: Actor, name: str) -> str:
        self.he._check(actor, "viewer", "media.get", {"name": name})
        path = self.he.files.find(name)
        if path is None:
            raise LoaxaError(f"no bulletin {name!r}")
        return path

    def delete(self, actor: Actor, name: str) -> dict:
        detail = {"name": name}
        self.he._check(actor, "operator", "media.delete", detail)
        path = self.he.files.find(name)
        if path is None:
            raise self.he._refuse(actor, "media.delete", detail, f"no bulletin {name!r}")
        os.unlink(path)
        with _lock:
            meta = self._meta()
            gone = meta.pop(name, None)
            self.he.store.set_setting(KEY, meta)
        self.he.store.audit(actor[0], "media.delete",
                            {**detail, "title": (gone or {}).get("title")}, "ok")
        return {"name": name, "state": "deleted"}


async def limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request's body, refused as soon as it is longer than limit."""
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise TooLarge()
        yield chunk


class TooLarge(Exception):
    pass


def router(he: Headend, lib: Library) -> APIRouter:
    """The bulletin library's routes."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    from .app import actor

    r = APIRouter(prefix="/api/media", tags=["bulletins"])

    def too_big() -> JSONResponse:
        return JSONResponse({"error": f"the file is larger than {MAX_BYTES / 2**20:g} MB",
                             "hint": "shorter, or a compressed format (m4a, mp3)"}, 413)

    @r.post("", response_model=m.Bulletin, response_model_exclude_unset=True)
    async def upload(request: Request) -> JSONResponse:
        """Add a bulletin: multipart/form-data with `file` (any audio ffmpeg reads:
        m4a/AAC, MP3, OGG/Opus, WAV, AMR...) and `title`. Checked and stored as
        FLAC; answers its name, title, seconds, uploader and date."""
        from starlette.concurrency import run_in_threadpool

        # the store's calls block: off the loop, which the broker and controller share
        who = await run_in_threadpool(actor, request)
        await run_in_threadpool(he._check, who, "operator", "media.add", {})
        try:
            length = int(request.headers.get("content-length", ""))
        except ValueError:
            return JSONResponse({"error": "the upload has no Content-Length"}, 411)
        if length > MAX_BYTES + SLACK:
            await run_in_threadpool(he.store.audit, who[0], "media.add", {"bytes": length},
                                    "refused: too large")
            return too_big()
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return JSONResponse({"error": "send multipart/form-data with file and title"}, 415)
        parser = MultiPartParser(request.headers, limited(request, MAX_BYTES + SLACK),
                                 max_files=1, max_fields=2, max_part_size=4096)
        try:
            form = await parser.parse()
        except TooLarge:
            await run_in_threadpool(he.store.audit, who[0], "media.add", {"bytes": length},
                                    "refused: too large")
            return too_big()
        except MultiPartException as e:
            return JSONResponse({"error": f"bad upload: {e.message}"}, 400)
        try:
            f, title = form.get("file"), form.get("title")
            if not isinstance(f, UploadFile) or not isinstance(title, str):
                return JSONResponse({"error": "bad input: give file and title"}, 422)
            with tempfile.TemporaryDirectory(prefix="loaxa-upload-") as tmp:
                src = Path(tmp) / "upload"  # never the client's name
                with open(src, "wb") as out:
                    while chunk := await f.read(1 << 16):
                        out.write(chunk)
                item = await run_in_threadpool(lib.add, who, src, title)
        finally:
            await form.close()
        return JSONResponse(item)

    @r.get("", response_model=list[m.Bulletin], response_model_exclude_unset=True)
    def listing(request: Request) -> list[dict]:
        """The library: name, title, seconds, uploader, date (at), source."""
        return lib.items(actor(request))

    @r.get("/{name}/audio", response_model=None, response_class=FileResponse,
           responses={200: {"content": {"audio/flac": {}, "audio/*": {}},
                            "description": "the stored audio (FLAC; a copied-in file as it is)"}})
    def audio(name: str, request: Request) -> FileResponse:
        """The stored audio, for the page's preview."""
        path = lib.path(actor(request), name)
        mt = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return FileResponse(path, media_type=mt, headers={"Cache-Control": "no-store"})

    @r.delete("/{name}", response_model=m.Deleted)
    def delete(name: str, request: Request) -> dict:
        return lib.delete(actor(request), name)

    return r
