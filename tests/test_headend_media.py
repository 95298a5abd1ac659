"""The bulletin library through the API (docs/headend.md): uploads of the
formats a phone or a recorder writes become FLAC bulletins with their title,
duration, uploader and date; what is not audio, too large, too long, or sent by
a viewer is refused with a clear error and nothing stored; delete is audited."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from test_headend_api import login

from loaxa.headend import media
from loaxa.headend.app import create_app
from loaxa.headend.service import Headend
from loaxa.headend.store import Store


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("media")
    (tmp / "media").mkdir()
    store = Store(tmp / "headend.sqlite")
    for name, role in (("vien", "viewer"), ("oanh", "operator")):
        store.add_user(name, f"{name}-secret", role, "test")
    he = Headend(store, media=tmp / "media")
    client = TestClient(create_app(he))
    yield {"he": he, "client": client, "tmp": tmp, "store": store}
    client.close()
    store.close()


def clip(tmp: Path, name: str, *codec: str, seconds: float = 1.5) -> Path:
    """A tone ffmpeg encodes as a phone or a recorder would."""
    out = tmp / name
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}:sample_rate=44100", *codec,
                    str(out)], check=True)
    return out


@pytest.mark.parametrize("name,codec", [
    ("phone.m4a", ("-c:a", "aac", "-b:a", "64k")),
    ("song.mp3", ("-c:a", "libmp3lame",)),
    ("voice.ogg", ("-c:a", "libopus", "-ar", "48000")),
    ("plain.wav", ()),
    ("old.amr", None),  # ffmpeg reads AMR but Debian's does not write it: sox does
])
def test_an_upload_of_each_format_becomes_a_flac_bulletin(lib, name, codec):
    c, tmp = lib["client"], lib["tmp"]
    if codec is None:
        src = tmp / name
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-t", "amr-nb", str(src),
                        "synth", "1.5", "sine", "440"], check=True)
    else:
        src = clip(tmp, name, *codec)
    h = login(c, "oanh")
    r = c.post("/api/media", headers=h, data={"title": f"Tin {name}"},
               files={"file": ("../../etc/" + name, src.read_bytes(), "audio/whatever")})
    assert r.status_code == 200, r.text
    item = r.json()
    assert item["title"] == f"Tin {name}" and item["uploader"] == "oanh"
    assert abs(item["seconds"] - 1.5) < 0.1, item
    stored = Path(lib["he"].files.find(item["name"]))
    assert stored.parent == tmp / "media" and stored.suffix == ".flac"
    assert media.probe(stored)["format"] == "flac"
    listed = {m["name"]: m for m in c.get("/api/media", headers=h).json()}
    assert listed[item["name"]]["title"] == f"Tin {name}"
    got = c.get(f"/api/media/{item['name']}/audio", headers=h)
    assert got.status_code == 200 and got.content == stored.read_bytes()
    assert got.headers["content-type"] == "audio/flac"


def test_what_is_not_audio_or_too_big_is_refused_and_nothing_stored(lib, monkeypatch):
    c, tmp, he = lib["client"], lib["tmp"], lib["he"]
    h = login(c, "oanh")
    before = sorted(p.name for p in (tmp / "media").iterdir())

    def up(content: bytes, title: str = "x", fname: str = "a.mp3") -> dict:
        r = c.post("/api/media", headers=h, data={"title": title},
                   files={"file": (fname, content, "audio/mpeg")})
        assert r.status_code >= 400, r.text
        return {"code": r.status_code, **r.json()}
    assert "not an audio file" in up(b"hello, I am a text file\n" * 100)["error"]
    # a playlist naming a local file is refused (no hls/concat demuxer is allowed)
    wav = clip(tmp, "inner.wav")
    assert "not an audio file" in up(f"ffconcat version 1.0\nfile '{wav}'\n".encode(),
                                     fname="list.txt")["error"]
    assert "not an audio file" in up(f"#EXTM3U\n#EXTINF:1,\n{wav}\n".encode(),
                                     fname="list.m3u8")["error"]
    png = tmp / "img.png"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=red:s=16x16", "-frames:v", "1", str(png)], check=True)
    assert "not an audio file" in up(png.read_bytes(), fname="img.png")["error"]
    good = clip(tmp, "ok.mp3", "-c:a", "libmp3lame").read_bytes()
    assert "title" in up(good, title="   ")["error"]
    monkeypatch.setattr(media, "MAX_SECONDS", 1)
    assert "more than 1 s" in up(good)["error"]
    monkeypatch.setattr(media, "MAX_SECONDS", 60)
    monkeypatch.setattr(media, "MAX_BYTES", 1000)
    big = clip(tmp, "big.mp3", "-c:a", "libmp3lame", seconds=5).read_bytes()
    assert len(big) > 1000 + media.SLACK
    assert up(big)["code"] == 413  # by Content-Length, before the body is read
    # a chunked body without a length is refused before it is read
    r = c.post("/api/media", headers={**h, "Content-Type": "multipart/form-data; boundary=x"},
               content=iter([b"--x\r\n"]))
    assert r.status_code == 411
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp / "media").iterdir()) in (before, before + [".incoming"])
    assert not list((tmp / "media" / ".incoming").glob("*")) if (
        tmp / "media" / ".incoming").exists() else True
    v = login(c, "vien")
    r = c.post("/api/media", headers=v, data={"title": "x"},
               files={"file": ("a.mp3", good, "audio/mpeg")})
    assert r.status_code == 403
    audit = [a for a in he.store.audit_log(50) if a["action"] == "media.add"]
    assert audit[0]["result"].startswith("refused: needs operator")


def test_delete_is_for_operators_and_audited(lib):
    c, tmp, he = lib["client"], lib["tmp"], lib["he"]
    h = login(c, "oanh")
    src = clip(tmp, "del.wav")
    name = c.post("/api/media", headers=h, data={"title": "Xóa tôi"},
                  files={"file": ("x.wav", src.read_bytes(), "audio/wav")}).json()["name"]
    assert c.delete(f"/api/media/{name}", headers=login(c, "vien")).status_code == 403
    assert he.files.find(name)
    r = c.delete(f"/api/media/{name}", headers=h)
    assert r.status_code == 200 and he.files.find(name) is None
    assert name not in {m["name"] for m in c.get("/api/media", headers=h).json()}
    a = [x for x in he.store.audit_log(20) if x["action"] == "media.delete"]
    assert a[0]["who"] == "oanh" and a[0]["detail"] == {"name": name, "title": "Xóa tôi"}
    assert c.delete(f"/api/media/{name}", headers=h).status_code == 400
    assert c.get("/api/media/..%2Fheadend.sqlite/audio", headers=h).status_code in (400, 404)


TTS_TEXT = ("UBND xã thông báo: lúc 7h30 ngày 15/12, tiêm vắc-xin cho 120 trẻ "
            "tại TYT xã.")


def espeak_seconds(tmp: Path, spoken: str) -> float:
    """The engine's own output for the normalised text, run by hand."""
    out = tmp / "direct.wav"
    subprocess.run(["espeak-ng", "-v", "vi", "-s", str(150), "-w", str(out), spoken],
                   check=True)
    return media.probe(out)["seconds"]


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed "
                    "(make sysdeps)")
def test_a_typed_bulletin_is_read_aloud_into_the_library(lib):
    c, tmp, he = lib["client"], lib["tmp"], lib["he"]
    h = login(c, "oanh")
    dry = c.post("/api/tts", headers=h, json={"text": TTS_TEXT, "dry": True}).json()
    assert dry["spoken"] == ("ủy ban nhân dân xã thông báo: lúc bảy giờ ba mươi ngày mười "
                             "lăm tháng mười hai, tiêm vắc xin cho một trăm hai mươi trẻ tại "
                             "trạm y tế xã."), dry
    r = c.post("/api/tts", headers=h, json={"text": TTS_TEXT, "title": "Tiêm chủng"})
    assert r.status_code == 200, r.text
    item = r.json()
    assert item["source"] == "tts" and item["title"] == "Tiêm chủng" and item["text"] == TTS_TEXT
    direct = espeak_seconds(tmp, dry["spoken"])
    assert direct > 3 and abs(item["seconds"] - direct) <= 0.2 * direct, (item, direct)
    # speech, not silence: loud for most of it
    stored = he.files.find(item["name"])
    raw = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", stored, "-ac", "1",
                          "-ar", "16000", "-f", "s16le", "-"], capture_output=True,
                         check=True).stdout
    x = np.frombuffer(raw, "<i2").astype(float)
    frames = x[: len(x) // 320 * 320].reshape(-1, 320)
    assert np.mean(np.sqrt(np.mean(frames ** 2, axis=1)) > 300) > 0.5
    slow = c.post("/api/tts", headers=h, json={"text": TTS_TEXT, "title": "Chậm",
                                               "rate": 70, "voice": "vi-vn-x-south"}).json()
    assert slow["seconds"] > item["seconds"] * 1.25, (slow, item)
    a = [x for x in he.store.audit_log(10) if x["action"] == "media.add"][0]
    assert a["detail"]["source"] == "tts" and a["who"] == "oanh"


def test_tts_refusals_and_a_plugged_in_engine(lib, monkeypatch):
    c, he = lib["client"], lib["he"]
    h = login(c, "oanh")
    v = login(c, "vien")
    assert c.post("/api/tts", headers=v, json={"text": "Chào bà con"}).status_code == 403
    assert c.post("/api/tts", headers=v, json={"text": "7h", "dry": True}).json() == {
        "spoken": "bảy giờ"}  # a viewer may see how a text will be read
    assert c.post("/api/tts", headers=h, json={"text": "x" * 5001}).status_code == 422
    assert c.post("/api/tts", headers=h, json={"text": "a", "rate": 20}).status_code == 422
    r = c.post("/api/tts", headers=h, json={"text": "Chào", "voice": "--path=/etc"})
    assert r.status_code == 400 and "bad voice" in r.json()["error"]
    r = c.post("/api/tts", headers=h, json={"text": " . , "})
    assert r.status_code == 400 or r.json()["seconds"] > 0
    # a commune's own engine: any command writing {out}; here sox saying a tone
    serve = he.store.setting("serve") or {}
    he.store.set_setting("serve", {**serve, "tts": "sox -n -r 22050 -c 1 {out} synth 1.5 "
                                                   "sine 300"})
    try:
        assert c.get("/api/tts", headers=h).json()["engine"] == "sox"
        r = c.post("/api/tts", headers=h, json={"text": "Chào bà con", "title": "Thử"})
        assert r.status_code == 200 and abs(r.json()["seconds"] - 1.5) < 0.05, r.text
        he.store.set_setting("serve", {**serve, "tts": "no-such-engine {out}"})
        r = c.post("/api/tts", headers=h, json={"text": "Chào bà con"})
        assert r.status_code == 400 and "not installed" in r.json()["error"]
        he.store.set_setting("serve", {**serve, "tts": "sox {oops}"})
        r = c.post("/api/tts", headers=h, json={"text": "Chào bà con"})
        assert r.status_code == 400 and "template" in r.json()["error"]
    finally:
        he.store.set_setting("serve", serve)
    assert c.get("/api/tts", headers=h).json()["voices"] == ["vi", "vi-vn-x-central",
                                                             "vi-vn-x-south"]


def test_a_self_signed_certificate_is_made_once_and_verifies(tmp_path):
    import socket
    import ssl
    import threading

    from loaxa.headend.selfsigned import ensure

    cert, key, fp = ensure(tmp_path, "192.168.1.10")
    assert ensure(tmp_path, "192.168.1.10") == (cert, key, fp)  # kept: the browser's exception
    assert (Path(key).stat().st_mode & 0o077) == 0
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(cert, key)
    lst = socket.create_server(("127.0.0.1", 0))
    port = lst.getsockname()[1]

    def serve_one() -> None:
        conn, _ = lst.accept()
        with srv_ctx.wrap_socket(conn, server_side=True) as s:
            s.sendall(b"ok")
    th = threading.Thread(target=serve_one, daemon=True)
    th.start()
    cli_ctx = ssl.create_default_context(cafile=cert)  # a browser that accepted it
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            cli_ctx.wrap_socket(raw, server_hostname="localhost") as s:
        assert s.recv(2) == b"ok"
    th.join(5)
    lst.close()
    _, _, other = ensure(tmp_path, "headend.an-phu.lan")  # a new name: a new certificate
    assert other != fp
