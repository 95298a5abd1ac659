"""Deploy the application to a node: only what changed, verified, switched atomically.

Over the raw REPL (raw-paste mode: the device's own flow control) this
1. asks the device for its bytecode version, whether it can inflate, which
   app folder app.ptr names and that folder's manifest (path -> SHA-256);
2. builds the app for that bytecode (appbuild) and names it by its content:
   `app_<first 12 hex of the manifest's SHA-256>`;
3. stages that folder: files the current app already holds are copied on the
   device, the others are sent deflate-compressed (when that is smaller and
   the device has `deflate`) as base64 inside raw-paste programs;
4. hashes every staged file on the device and compares with the manifest;
5. only then writes app.ptr atomically (tmp + rename), so a power cut at any
   instant boots either the old app or the complete new one (main.py, the
   boot stub, reads app.ptr);
6. removes app folders other than the new and the previous one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from . import FIRMWARE
from .appbuild import APP_SRC, build
from .console import NodeConsole
from .errors import LoaxaError
from .progress import Report
from .rawrepl import RawRepl

PTR = "app.ptr"
MANIFEST = "manifest.json"
EXEC_BYTES = 3072  # raw data per program: bounded so the device's compile fits its heap
B64_LINE = 768  # raw bytes per a2b_base64 call (1 KB of text)
ZLIB_WBITS = 10  # 1 KB inflate window: cheap on a 64 KB heap

# Helpers defined on the device once per session; short names keep programs small.
_HELPERS = """\
import os,sys,json,binascii as A,hashlib as H
try:
 import deflate as D
except ImportError:
 D=None
F=None
B=bytearray(512)
M=memoryview(B)
def h(p):
 s=H.sha256()
 with open(p,'rb') as f:
  while 1:
   n=f.readinto(B)
   if not n:break
   s.update(M[:n])
 return A.hexlify(s.digest()).decode()
def x(p):
 try:
  return os.stat(p)[0]
 except OSError:
  return 0
def mk(p):
 q=''
 for c in p.split('/'):
  q=q+c
  if not x(q):os.mkdir(q)
  q=q+'/'
def o(p,z):
 global F
 F=open(p+('.z' if z else ''),'wb')
def w(s):
 F.write(A.a2b_base64(s))
def c(p,z):
 global F
 F.close()
 F=None
 if z:
  with open(p+'.z','rb') as i,open(p,'wb') as q:
   d=D.DeflateIO(i,D.ZLIB)
   while 1:
    n=d.readinto(B)
    if not n:break
    q.write(M[:n])
  os.remove(p+'.z')
def cp(a,b):
 with open(a,'rb') as i,open(b,'wb') as q:
  while 1:
   n=i.readinto(B)
   if not n:break
   q.write(M[:n])
def rm(p):
 if x(p)&0x4000:
  for e in os.listdir(p):rm(p+'/'+e)
  os.rmdir(p)
 elif x(p):os.remove(p)
def rd(p):
 try:
  with open(p) as f:return f.read().strip()
 except OSError:return ''
def hs(d,n):
 print(json.dumps({k:(h(d+'/'+k) if x(d+'/'+k) else '') for k in n}))
def mv(a,b):
 try:
  os.rename(a,b)
 except OSError:
  os.remove(b)
  os.rename(a,b)
 if hasattr(os,'sync'):os.sync()
def sw(p,v):
 with open(p+'.tmp','w') as f:f.write(v)
 mv(p+'.tmp',p)
"""

_PROBE = """\
p=rd('app.ptr')
m=rd(p+'/manifest.json') if p else ''
print(json.dumps({'mpy':getattr(sys.implementation,'_mpy',0),'inflate':D is not None,
 'ptr':p,'man':json.loads(m) if m else {},'main':h('main.py') if x('main.py') else '',
 'apps':[e for e in os.listdir() if e.startswith('app_')]}))
"""


@dataclass
class DeployResult:
    app: str
    previous: str
    files: int
    sent: int  # files sent over the wire
    copied: int  # files copied on the device from the previous app
    payload: int  # file bytes before compression
    tx: int  # bytes the host wrote to the port
    rx: int
    seconds: float

    @property
    def unchanged(self) -> bool:
        return self.app == self.previous and self.sent == 0 and self.copied == 0


def manifest_of(files: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())}


def app_name(manifest: dict[str, str]) -> str:
    canon = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return "app_" + hashlib.sha256(canon).hexdigest()[:12]


def _pack(data: bytes, inflate: bool) -> tuple[bytes, bool]:
    """(bytes to send, compressed?): zlib with a small window when that is smaller."""
    if inflate:
        co = zlib.compressobj(9, zlib.DEFLATED, ZLIB_WBITS)
        z = co.compress(data) + co.flush()
        if len(z) < len(data):
            return z, True
    return data, False


def _programs(items: list[tuple[str, bytes, bool]]):
    """Yield (program text, payload bytes it carries) for staged files."""
    prog: list[str] = []
    size = 0
    for path, blob, z in items:
        prog.append(f"o({path!r},{int(z)})")
        for i in range(0, max(len(blob), 1), B64_LINE):
            line = base64.b64encode(blob[i:i + B64_LINE]).decode()
            prog.append(f"w({line!r})")
            size += B64_LINE
            if size >= EXEC_BYTES:
                yield "\n".join(prog), size
                prog, size = [], 0
        prog.append(f"c({path!r},{int(z)})")
    if prog:
        yield "\n".join(prog), size


class Deployer:
    """One deploy session on a RawRepl already in the raw REPL."""

    def __init__(self, repl: RawRepl, src: Path = APP_SRC, report: Report | None = None):
        self.repl = repl
        self.src = src
        self.report = report or (lambda label, frac, note: None)

    def _json(self, code: str) -> dict:
        out = self.repl.exec(code, timeout=60).strip().splitlines()
        try:
            return json.loads(out[-1])
        except (IndexError, ValueError):
            raise LoaxaError(f"the device gave an unreadable answer: {out[-3:]!r}") from None

    def run(self) -> DeployResult:
        t0 = time.monotonic()
        self.repl.exec(_HELPERS)
        dev = self._json(_PROBE)
        files = build(self.src, mpy=dev["mpy"])
        manifest = manifest_of(files)
        files[MANIFEST] = json.dumps(manifest, sort_keys=True).encode()
        name = app_name(manifest)
        cur, cur_man = dev["ptr"], dev["man"]
        main_py = (FIRMWARE / "main.py").read_bytes()

        # What the target folder already holds (an interrupted earlier deploy).
        have = self._json(f"hs({name!r},{sorted(manifest)!r})") if name in dev["apps"] else {}
        to_copy = [k for k, v in manifest.items() if have.get(k) != v and cur != name
                   and cur_man.get(k) == v]
        to_send = [k for k, v in manifest.items() if have.get(k) != v and k not in to_copy]
        if have.get(MANIFEST) is None or to_send or to_copy:
            to_send.append(MANIFEST)  # written last: a folder with a manifest is complete
        if hashlib.sha256(main_py).hexdigest() == dev["main"]:
            main_py = b""

        dirs = sorted({name + "/" + k.rsplit("/", 1)[0] for k in files if "/" in k} | {name})
        self.repl.exec("\n".join(f"mk({d!r})" for d in dirs))
        if to_copy:
            self.repl.exec("\n".join(f"cp({cur + '/' + k!r},{name + '/' + k!r})"
                                     for k in to_copy), timeout=60)
        items = [(f"{name}/{k}", *_pack(files[k], dev["inflate"])) for k in to_send]
        if main_py:
            items.append(("main.py.new", *_pack(main_py, dev["inflate"])))
        total = sum(len(b) for _, b, _ in items) or 1
        done = 0
        for prog, n in _programs(items):
            self.repl.exec(prog, timeout=60)
            done += n
            self.report("send", min(done / total, 0.99), f"{done // 1024} KB")
        self.report("send", 1.0, "")

        got = self._json(f"hs({name!r},{sorted(files)!r})")
        bad = sorted(k for k in manifest if got.get(k) != manifest[k])
        if bad or not got.get(MANIFEST):
            raise LoaxaError(
                f"{len(bad)} file(s) did not verify on the node ({', '.join(bad[:3])}); "
                "the previous app stays active",
                "run loaxa deploy again; if it repeats, the node's flash may be full or failing",
            )
        self.report("verify", 1.0, "ok")
        if main_py:
            self.repl.exec("mv('main.py.new','main.py')")
        if cur != name:
            self.repl.exec(f"sw('app.ptr',{name!r})")
        keep = {name, cur}
        old = [a for a in dev["apps"] if a not in keep]
        if old:
            self.repl.exec("\n".join(f"rm({a!r})" for a in old), timeout=60)
        return DeployResult(
            app=name, previous=cur, files=len(manifest), sent=len([k for k in to_send
                                                                   if k != MANIFEST]),
            copied=len(to_copy), payload=sum(len(files[k]) for k in manifest),
            tx=self.repl.tx, rx=self.repl.rx, seconds=time.monotonic() - t0,
        )


def deploy(con: NodeConsole, src: Path = APP_SRC, report: Report | None = None,
           restart: bool = True) -> DeployResult:
    """Deploy over an open console; the app restarts from the new folder after."""
    port = con.pause()
    try:
        repl = RawRepl(port)
        repl.enter()
        result = Deployer(repl, src, report).run()
        repl.exit(soft_reset=restart)
    finally:
        con.resume()
    result.tx, result.rx = repl.tx, repl.rx
    return result
